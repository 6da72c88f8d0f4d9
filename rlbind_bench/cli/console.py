"""What every command shares: exit codes, the console, and argparse value types."""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def console():
    from rich.console import Console

    # Logs and CI pipes are not terminals: give tables room instead of rich's 80-column default.
    return Console() if sys.stdout.isatty() else Console(width=160)


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected MODALITY=PATH, got {text!r}")
    return key.strip(), value.strip()


def csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def eps_list(text: str) -> list[float]:
    from rlbind_bench.threats.spec import parse_number

    return [parse_number(t, "--eps") for t in csv(text)]
