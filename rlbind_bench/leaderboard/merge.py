"""Load result folders and merge their summaries into one table keyed by cell.

A cell is (model, modality, dataset, threat, norm, eps, severity). The same cell coming from several runs
is kept once when its config_hash agrees (a rerun or a resumed run: the newest run wins). When the hashes
differ the runs measured different things under one name (other steps, eps grid, templates, weights...):
`merge` refuses by default, or keeps the newest and flags the cell ``config_conflict`` when asked to.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rlbind_bench.errors import UserError
from rlbind_bench.leaderboard.schema import LEADERBOARD_COLUMNS
from rlbind_bench.results.store import read_table

CELL_KEYS = ["model", "modality", "dataset", "threat", "norm", "eps", "severity"]
CONFLICT_FLAG = "config_conflict"


def eps_key(eps: float) -> str:
    """Eps as a join key: NaN-safe and immune to float noise from '4/255' parsed in different places."""
    return "nan" if eps is None or (isinstance(eps, float) and math.isnan(eps)) else f"{float(eps):.8g}"


@dataclass
class ResultFolder:
    """One results folder: summary.parquet and run.json (samples.parquet is not needed for leaderboards)."""

    path: Path
    summary: pd.DataFrame
    run: dict
    source: str = ""  # label in the leaderboard: the folder name, made unique by merge_folders

    def __post_init__(self):
        self.source = self.source or self.path.name

    @property
    def run_id(self) -> str:
        return str(self.run.get("run_id") or "")


def read_run_json(path: Path) -> dict:
    try:
        run = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable run.json ({exc})") from exc
    if not isinstance(run, dict):
        raise UserError(f"{path}: not a run.json object")
    return run


def load_result_folder(path: Path) -> ResultFolder:
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"results folder {path} not found")
    run = read_run_json(path / "run.json")
    return ResultFolder(path, with_attack_kinds(read_table(path / "summary.parquet"), run), run)


def with_attack_kinds(summary: pd.DataFrame, run: dict) -> pd.DataFrame:
    """Rows of schema 1 know whether they are adversarial but not which attack ran ("" after the upgrade);
    their run.json does (its threats' `attack:`)."""
    unknown = summary["attack"] == ""
    if not unknown.any():
        return summary
    attack_of = {t.get("name"): t.get("attack", "") for t in run.get("threats") or [] if isinstance(t, dict)}
    summary = summary.copy()
    summary.loc[unknown, "attack"] = [attack_of.get(t.split(":")[0], "") for t in summary.loc[unknown, "threat"]]
    return summary


@dataclass
class Conflict:
    """One cell measured under different configs (or with different numbers under the same config)."""

    key: tuple
    hashes: list[str]
    sources: list[str]
    reason: str

    def describe(self) -> str:
        model, modality, dataset, threat, norm, eps, severity = self.key
        where = " ".join(x for x in (threat, norm, "" if eps == "nan" else f"eps={eps}",
                                      f"severity={severity}" if severity else "") if x)
        return (f"{model} / {modality} / {dataset} / {where}: {self.reason} "
                f"(config hashes {', '.join(self.hashes)} from {', '.join(self.sources)})")


@dataclass
class Merged:
    table: pd.DataFrame  # LEADERBOARD_COLUMNS, one row per cell
    folders: list[ResultFolder]
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def models(self) -> list[str]:
        return sorted(self.table["model"].unique().tolist())

    @property
    def modalities(self) -> list[str]:
        return sorted(self.table["modality"].unique().tolist())


def merge_folders(folders: list[ResultFolder], allow_conflicts: bool = False) -> Merged:
    """Merge summaries; the newest run (run.json 'finished', then command-line order) wins duplicates."""
    if not folders:
        raise UserError("no results folder given")
    seen: set[str] = set()
    for folder in folders:  # runs/a/results and runs/b/results must stay apart
        base, k = folder.path.name, 1
        folder.source = base
        while folder.source in seen:
            k += 1
            folder.source = f"{base}#{k}"
        seen.add(folder.source)
    frames = []
    for order, folder in enumerate(folders):
        frame = folder.summary.copy()
        frame["run_id"] = folder.run_id
        frame["source"] = folder.source
        frame["flags"] = ""
        frame["_when"] = str(folder.run.get("finished") or "")
        frame["_order"] = order
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    if table.empty:
        raise UserError("the results folders hold no summary rows")
    table["_eps"] = table["eps"].map(eps_key)
    table = table.sort_values(["_when", "_order"], kind="stable")
    group_keys = [k if k != "eps" else "_eps" for k in CELL_KEYS]
    conflicts: list[Conflict] = []
    keep = []
    for key, grp in table.groupby(group_keys, sort=True, dropna=False):
        newest = grp.index[-1]
        if len(grp) > 1:
            hashes = grp["config_hash"].unique().tolist()
            numbers = grp[["n", "n_correct"]].drop_duplicates()
            reason = ("different config_hash" if len(hashes) > 1
                      else "same config_hash, different numbers" if len(numbers) > 1 else None)
            if reason:
                conflicts.append(Conflict(tuple(key), hashes, grp["source"].tolist(), reason))
                table.loc[newest, "flags"] = CONFLICT_FLAG
        keep.append(newest)
    if conflicts and not allow_conflicts:
        shown = "; ".join(c.describe() for c in conflicts[:3])
        more = f" and {len(conflicts) - 3} more" if len(conflicts) > 3 else ""
        raise UserError(f"{len(conflicts)} cell(s) differ across runs: {shown}{more}. Rerun them under one "
                        "config, or pass --allow-conflicts to keep the newest run and flag them")
    merged = table.loc[keep].sort_values(group_keys, kind="stable")[LEADERBOARD_COLUMNS].reset_index(drop=True)
    return Merged(merged, list(folders), conflicts)


def load_and_merge(paths: list[Path], allow_conflicts: bool = False) -> Merged:
    return merge_folders([load_result_folder(p) for p in paths], allow_conflicts=allow_conflicts)
