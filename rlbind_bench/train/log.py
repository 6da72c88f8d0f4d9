"""The training log (DIR/train_log.csv, one row per step) and the progress bar."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from rlbind_bench.files import write_bytes_atomic
from rlbind_bench.train.recipes import Recipe


def progress_bar(enabled: bool, recipe: Recipe, done: int) -> tuple[Progress, int] | None:
    """A started bar for `recipe.steps` steps, `done` of them already done (a resumed run); None if disabled."""
    if not enabled:
        return None
    p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    p.start()
    return p, p.add_task(recipe.name, total=recipe.steps, completed=done)


def read_log(path: Path, upto: int) -> list[dict]:
    """The rows of steps before `upto`: a resumed run drops those logged after its checkpoint."""
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = [dict(r) for r in csv.DictReader(fh)]
    return [r for r in rows if int(r["step"]) < upto]


def write_log(path: Path, rows: list[dict]) -> None:
    # Columns in order of first appearance: objectives add their own (loss_image, align, ...).
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(path, buf.getvalue().encode())
