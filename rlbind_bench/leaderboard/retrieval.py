"""The retrieval table of a leaderboard: R@1 clean and attacked, per model, set and pair (`rlbind-bench retrieve`
folders), written as retrieval.md beside the classification pages."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from rlbind_bench.files import write_bytes_atomic
from rlbind_bench.leaderboard.merge import read_run_json
from rlbind_bench.leaderboard.render import md_escape
from rlbind_bench.retrieval.tables import SUMMARY_FILE, read_retrieval_summary

RETRIEVAL_PAGE = "retrieval.md"
ROW_KEYS = ["model", "dataset", "pair"]


def split_folders(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(folders with classification results, folders with retrieval results); a folder may be in both."""
    paths = [Path(p) for p in paths]
    retrieval = [p for p in paths if (p / SUMMARY_FILE).is_file()]
    classification = [p for p in paths if p not in retrieval or (p / "summary.parquet").is_file()]
    return classification, retrieval


def merged_retrieval(folders: list[Path]) -> pd.DataFrame:
    """Every folder's summary rows; a cell measured twice keeps the newest run (run.json `finished`)."""
    frames = []
    for order, folder in enumerate(folders):
        frame = read_retrieval_summary(folder)
        frame["_when"] = str(read_run_json(folder / "run.json").get("finished") or "")
        frame["_order"] = order
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True).sort_values(["_when", "_order"], kind="stable")
    table["_eps"] = table["eps"].map(lambda e: f"{float(e):.8g}")
    return table.drop_duplicates([*ROW_KEYS, "side", "norm", "_eps"], keep="last")


def _level(side: str, norm: str, eps: float) -> str:
    if side == "none":
        return "clean"
    return f"{side} {norm} {eps * 255:.3g}/255" if norm == "Linf" else f"{side} {norm} {eps:.3g}"


def retrieval_markdown(table: pd.DataFrame) -> str:
    cells = table.assign(_level=[_level(s, n, e) for s, n, e in zip(table["side"], table["norm"], table["eps"],
                                                                     strict=True)])
    attacked = cells[cells["side"] != "none"].sort_values(["side", "norm", "eps"])
    levels = ["clean", *dict.fromkeys(attacked["_level"])]
    lookup = {(*k, lv): r for k, lv, r in zip(cells[ROW_KEYS].itertuples(index=False, name=None), cells["_level"],
                                              cells["r1"], strict=True)}
    header = ["model", "set", "pair (query:gallery)", "relevance", *[f"R@1 {lv}" for lv in levels]]
    lines = ["# Retrieval under attack", "",
             "R@1 in % (share of queries whose top-ranked gallery item is relevant; ties count against the query). "
             "Relevance *class*: the items are not paired across modalities, so every item of the query's class "
             "is relevant; *paired*: a caption's own media item, a media item's own captions. Attacks: PGD on the "
             "query or gallery side at the given budget in each modality's input space (run.json holds the "
             "settings).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    keys = cells.drop_duplicates(ROW_KEYS).sort_values(ROW_KEYS)
    for r in keys.itertuples():
        values = [lookup.get((r.model, r.dataset, r.pair, lv)) for lv in levels]
        shown = ["—" if v is None or math.isnan(v) else f"{v * 100:.1f}" for v in values]
        lines.append("| " + " | ".join([md_escape(r.model), md_escape(r.dataset), md_escape(r.pair),
                                        md_escape(r.relevance), *shown]) + " |")
    return "\n".join(lines) + "\n"


def write_retrieval(folders: list[Path], out: Path) -> Path:
    path = Path(out) / RETRIEVAL_PAGE
    write_bytes_atomic(path, retrieval_markdown(merged_retrieval(folders)).encode())
    return path
