"""What every benchmark script does with its result: the commit it measured, printing, appending to the docs."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commit() -> str:
    """The checkout's short commit; "" where there is no git or no .git (the device machine's copy of the tree)."""
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return ""


def emit(text: str, append: Path | None) -> None:
    print(text)
    if append:
        with open(append, "a") as fh:
            fh.write("\n" + text)
