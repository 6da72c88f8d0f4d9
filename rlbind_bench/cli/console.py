"""What every command shares: exit codes, the console, and argparse value types."""

from __future__ import annotations

import argparse
import sys

# Documented in the README ("Exit codes"); CI scripts branch on them.
EXIT_OK = 0  # success
EXIT_FAILURE = 1  # `check` found a regression (or another failing cell)
EXIT_USAGE = 2  # a user mistake: one line on stderr
EXIT_INTERNAL = 3  # a bug or an unexpected environment failure: one line, --debug for the traceback
EXIT_PIPE = 141  # stdout closed early (`| head`): the shell's code for SIGPIPE
EXIT_INTERRUPTED = 130  # Ctrl-C: the shell's code for SIGINT


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


def size(text: str) -> int:
    """Bytes from 5G, 500M, 0 / none (no cap): the cache cap's flags."""
    from rlbind_bench.caches import parse_size
    from rlbind_bench.errors import ConfigError

    try:
        return parse_size(text)
    except ConfigError as exc:  # argparse names the flag
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration(text: str) -> float:
    """Seconds from 30d, 12h, 15m."""
    from rlbind_bench.caches import parse_duration
    from rlbind_bench.errors import ConfigError

    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
