"""rlbind-bench command line: parse, call the library, render. No logic of its own.

One module per command group (run, lists, data, train, leaderboard, cache); each has ``add_<command>(sub)``,
which declares the flags, and ``cmd_<command>(args) -> exit code``. Command functions import the
torch-, pandas- and matplotlib-backed parts of the library inside their bodies, and only those: building
the parser must stay cheap, so that ``rlbind-bench --help`` and ``list suites`` answer at once.

``main`` owns the exit codes (console.EXIT_*): every failure ends as one line on stderr, a traceback only
with ``--debug``. ``--debug``, ``-v`` and ``-q`` are accepted before or after the subcommand.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback

from rlbind_bench import __version__
from rlbind_bench.cli.cache import add_cache
from rlbind_bench.cli.console import (
    EXIT_FAILURE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE,
    EXIT_USAGE,
)
from rlbind_bench.cli.data import add_checkpoint, add_data
from rlbind_bench.cli.leaderboard import add_check, add_leaderboard
from rlbind_bench.cli.lists import add_list
from rlbind_bench.cli.logs import LEVEL_ENV, cli_logging, level_from
from rlbind_bench.cli.retrieve import add_retrieve
from rlbind_bench.cli.run import add_run
from rlbind_bench.cli.train import add_train
from rlbind_bench.errors import UserError

DESCRIPTION = "rlbind-bench command line: parse, call the library, render. No logic of its own."
COMMANDS = [add_run, add_retrieve, add_list, add_data, add_checkpoint, add_train, add_leaderboard, add_check,
            add_cache]
DEBUG_ENV = "RLBIND_DEBUG"
EPILOG = ("exit codes: 0 success, 1 `check` found a regression, 2 user mistake, 3 internal error, "
          f"130 interrupted, 141 stdout closed. Logging: -v/-q or ${LEVEL_ENV}.")

__all__ = ["COMMANDS", "EXIT_FAILURE", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE",
           "build_parser", "main"]
log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other user mistake
        raise UserError(f"{self.prog}: {message}")


def _add_global_flags(parser: argparse.ArgumentParser, suffix: str) -> None:
    """The flags every command takes, on the top parser (suffix "_top") and on each subcommand (""): a
    subparser's defaults overwrite the top parser's values of the same name, so the two sets are kept
    apart and merged in `_globals`."""
    group = parser.add_argument_group("output and diagnostics")
    group.add_argument("--debug", action="store_true", dest=f"debug{suffix}",
                       help=f"tracebacks for errors, every Python warning (also ${DEBUG_ENV}=1)")
    group.add_argument("-v", "--verbose", action="count", default=0, dest=f"verbose{suffix}",
                       help=f"more log output: -v info, -vv debug (default: warnings; ${LEVEL_ENV})")
    group.add_argument("-q", "--quiet", action="count", default=0, dest=f"quiet{suffix}",
                       help="less log output: -q errors only")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rlbind-bench", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"rlbind-bench {__version__}")
    _add_global_flags(parser, "_top")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    for command in sub.choices.values():
        _add_global_flags(command, "")
    return parser


def _globals(args: argparse.Namespace) -> tuple[bool, int, int]:
    debug = args.debug_top or args.debug or os.environ.get(DEBUG_ENV) == "1"
    return debug, args.verbose_top + args.verbose, args.quiet_top + args.quiet


def _fail(code: int, line: str, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(line, file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Known before parsing, so that a failure while parsing can show its traceback too.
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV) == "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help, --version: argparse printed them
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        debug, verbose, quiet = _globals(args)
        with cli_logging(level_from(verbose, quiet, os.environ.get(LEVEL_ENV)), debug):
            log.debug("rlbind-bench %s, python %s, argv %s", __version__, sys.version.split()[0], argv)
            return args.func(args)
    except UserError as exc:
        return _fail(EXIT_USAGE, f"rlbind-bench: error: {exc}", debug)
    except KeyboardInterrupt:
        return _fail(EXIT_INTERRUPTED, "rlbind-bench: interrupted; rerun the same command to resume", debug)
    except BrokenPipeError:
        # The reader of stdout left (`| head`): not an error of ours. Python would report the closed pipe
        # again when it flushes stdout at exit, unless stdout points elsewhere.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE
    except Exception as exc:
        first = next((x for x in str(exc).splitlines() if x.strip()), "")
        where = "" if debug else "; rerun with --debug for the traceback"
        return _fail(EXIT_INTERNAL, f"rlbind-bench: internal error: {type(exc).__name__}: {first}{where}", debug)
