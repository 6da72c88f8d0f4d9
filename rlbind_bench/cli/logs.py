"""Logging and Python warnings for the command line: one line each on stderr, at a level set by
``-v``/``-q`` or ``$RLBIND_LOG_LEVEL``.

Warnings are routed through logging (logger ``rlbind_bench.warnings``) so that ``-q`` silences them with
the rest. Everything is undone when the command returns: tests call ``main()`` many times in one process.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator

from rlbind_bench.errors import UserError

LEVEL_ENV = "RLBIND_LOG_LEVEL"
LEVEL_NAMES = ("debug", "info", "warning", "error", "critical")
WARNINGS_LOGGER = "rlbind_bench.warnings"

# Third-party warnings hidden from the CLI's users: nothing in them is theirs to act on, and they print on
# every run, burying the warnings that matter (e.g. "Linf eps 4 >= 1 ... did you mean 4/255?").
# Each entry: (category, regex on the start of the message, who raises it and why it is noise). --debug
# and -W/PYTHONWARNINGS show them again.
THIRD_PARTY_NOISE: tuple[tuple[type[Warning], str, str], ...] = (
    (UserWarning, r"The 'torchvision\.transforms\._(functional|transforms)_video' module is deprecated",
     "torchvision, on languagebind.video importing the private video transforms (at import, every run)"),
    (FutureWarning, r"`torch\.jit\.script_method` is deprecated",
     "torch, on pytorchvideo.transforms decorating methods with it (imported by languagebind, every run)"),
)


def level_from(verbose: int, quiet: int, env: str | None) -> int:
    """WARNING by default (or $RLBIND_LOG_LEVEL: a name or a number); each -v one level more, each -q one
    level less, between DEBUG and CRITICAL."""
    base = logging.WARNING
    if env:
        text = env.strip().lower()
        if text.isdigit():
            base = int(text)
        elif text in LEVEL_NAMES:
            base = getattr(logging, text.upper())
        else:
            raise UserError(f"${LEVEL_ENV}={env!r}: expected one of {', '.join(LEVEL_NAMES)} or a number")
    return min(logging.CRITICAL, max(logging.DEBUG, base + 10 * (quiet - verbose)))


class _StderrHandler(logging.StreamHandler):
    """Writes to the sys.stderr of the moment (pytest's capsys swaps it after the handler is made)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # StreamHandler.__init__ assigns one; the property wins
        pass


class _OneLine(logging.Formatter):
    def __init__(self, with_names: bool) -> None:
        super().__init__()
        self.with_names = with_names

    def format(self, record: logging.LogRecord) -> str:
        text = " ".join(record.getMessage().split())  # a newline in a message would split a CI log's line
        where = f" [{record.name}]" if self.with_names else ""
        return f"rlbind-bench: {record.levelname.lower()}{where}: {text}"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    log = logging.getLogger(WARNINGS_LOGGER)
    # The project's own warnings speak to the user; a library's needs its source to make sense (and -v
    # gives every warning's source, for reporting one).
    own = "rlbind_bench" in str(filename) and not log.isEnabledFor(logging.INFO)
    log.warning("%s%s", message, "" if own else f" ({category.__name__} from {filename}:{lineno})")


def _filter_warnings(show_all: bool) -> None:
    if sys.warnoptions:  # -W or PYTHONWARNINGS: the user's explicit choice stands
        return
    warnings.simplefilter("default")  # every warning once per place in the code (pytest's filters aside)
    # Python's own defaults for deprecations: they address the authors of the code that calls the
    # deprecated API (ours: shown), not the user of a command.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
    warnings.filterwarnings("default", category=DeprecationWarning, module=r"rlbind_bench(\.|$)")
    if show_all:
        return
    for category, pattern, _why in THIRD_PARTY_NOISE:
        warnings.filterwarnings("ignore", message=pattern, category=category)


@contextlib.contextmanager
def cli_logging(level: int, debug: bool) -> Iterator[None]:
    """Route logging and warnings to stderr for one command, and restore everything afterwards."""
    root = logging.getLogger()
    handler = _StderrHandler()
    handler.setFormatter(_OneLine(with_names=debug or level <= logging.DEBUG))
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        with warnings.catch_warnings():
            _filter_warnings(show_all=debug)
            warnings.showwarning = _show_warning
            yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)

