"""A rich progress bar for the evaluation grid, or nothing (disabled, or not rank 0)."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


class Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar: RichProgress | None = None

    def __enter__(self):
        if self.enabled:
            self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), transient=False)
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def add(self, description: str, total: int):
        return self.bar.add_task(description, total=total, rate="") if self.bar else None

    def update(self, task, advance: int, rate: float, description: str | None = None):
        if self.bar is not None:
            kwargs = {"description": description} if description else {}
            self.bar.update(task, advance=advance, rate=f"{rate:.1f} samples/s", **kwargs)
