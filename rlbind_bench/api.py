"""The Python API: evaluate a model in a few lines and get the per-sample rows and the summary as frames.

    import rlbind_bench
    results = rlbind_bench.evaluate("demo/rlbind-s0", {"image": "photos/"}, threats=["linf-pgd"])
    print(results.summary[["threat", "eps", "accuracy"]])

`evaluate` is the library call behind `rlbind-bench run`: the same RunConfig, the same runner, the same rows
(and files, when `out` is given).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rlbind_bench.config import RunConfig, RunRequest, load_datasets
from rlbind_bench.encoders.base import BoundEncoder
from rlbind_bench.encoders.registry import load_encoder
from rlbind_bench.errors import UserError
from rlbind_bench.runner import run_evaluation

DataArg = str | Path | Mapping[str, str | Path] | Sequence[str]
_CONFIG_FIELDS = {f.name for f in dataclasses.fields(RunConfig)} - {"model", "datasets"}


@dataclass
class Results:
    samples: pd.DataFrame  # one row per sample x cell (the columns of samples.parquet)
    summary: pd.DataFrame  # one row per cell: accuracy, Wilson CI, checks (summary.parquet)
    run: dict  # run.json: the config, provenance, timings
    out: Path | None  # the folder the files were written to, or None for an in-memory evaluation

    def __repr__(self) -> str:
        cells = self.summary[["modality", "dataset", "threat", "eps", "severity", "n", "accuracy"]]
        return f"Results({len(self.samples)} rows, out={self.out})\n{cells.to_string(index=False)}"


def evaluate(model: str | BoundEncoder, data: DataArg | None = None, *, suite: str = "clean",
             threats: Sequence[str] | None = None, out: str | Path | None = None, data_root: str | Path | None = None,
             datasets_file: str | Path | None = None, attacks_dir: str | Path | None = None,
             progress: bool = False, **config: Any) -> Results:
    """Evaluate `model` (a spec as for `--model`, or a BoundEncoder) on `data` under `suite` (+ `threats`).

    data: dataset names from the catalogue (`rlbind-bench list datasets`), a mapping modality -> folder of
    class folders, a "MODALITY=PATH" string, a folder (for a one-modality model), or None (every catalogued
    dataset found under the data root). Other keywords are RunConfig fields: eps, steps, n_samples, seed,
    device, batch_size, templates, modalities, precision, split, ...
    """
    unknown = sorted(set(config) - _CONFIG_FIELDS)
    if unknown:
        raise UserError(f"evaluate(): unknown option(s) {', '.join(unknown)} "
                        f"(known: {', '.join(sorted(_CONFIG_FIELDS))})")
    encoder = load_encoder(model) if isinstance(model, str) else model
    if not isinstance(encoder, BoundEncoder):
        raise UserError(f"evaluate(): model must be a spec string or a BoundEncoder, got {type(model).__name__}")
    names, dirs = _data(data, encoder, datasets_file)
    cfg = RunConfig(model=model if isinstance(model, str) else encoder.name, suite=suite, datasets=names,
                    threats=list(threats) if threats else None, **config)

    def run(folder: Path) -> Results:
        req = RunRequest(config=cfg, out=folder, data_root=Path(data_root) if data_root else None,
                         datasets_file=Path(datasets_file) if datasets_file else None,
                         attacks_dir=Path(attacks_dir) if attacks_dir else None, dataset_dirs=dirs,
                         progress=progress, command=["rlbind_bench.evaluate"], encoder=encoder)
        outcome = run_evaluation(req)
        return Results(samples=outcome.samples, summary=outcome.summary, run=outcome.run,
                       out=folder if out is not None else None)

    if out is not None:
        return run(Path(out))
    with tempfile.TemporaryDirectory(prefix="rlbind-evaluate-") as tmp:
        return run(Path(tmp) / "run")


def _data(data: DataArg | None, encoder: BoundEncoder, datasets_file) -> tuple[list[str] | None, dict[str, str]]:
    """(catalogue names, modality -> folder) from the forms `evaluate` accepts."""
    if data is None:
        return None, {}
    if isinstance(data, Mapping):
        return None, {str(m): str(Path(p).expanduser()) for m, p in data.items()}
    if isinstance(data, str | Path):
        text = str(data)
        path = Path(text).expanduser()
        if path.is_dir():
            if len(encoder.modalities) != 1:
                raise UserError(f"evaluate(): {text} is a folder but {encoder.name} has several modalities "
                                f"({', '.join(encoder.modalities)}): give {{'MODALITY': {text!r}}}")
            return None, {encoder.modalities[0]: str(path)}
        modality, sep, folder = text.partition("=")
        if sep:
            return None, {modality.strip(): str(Path(folder.strip()).expanduser())}
        data = [text]
    names = [str(n) for n in data]
    catalogue = load_datasets(Path(datasets_file) if datasets_file else None)
    missing = [n for n in names if n not in catalogue]
    if missing:
        raise UserError(f"evaluate(): {missing[0]!r} is neither a folder nor a catalogued dataset "
                        f"(known: {', '.join(sorted(catalogue))})")
    return names, {}
