"""rlbind-bench command line: parse, call the library, render. No logic of its own.

One module per command group (run, lists, data, train, leaderboard); each has ``add_<command>(sub)``,
which declares the flags, and ``cmd_<command>(args) -> exit code``. Command functions import the
torch-, pandas- and matplotlib-backed parts of the library inside their bodies, and only those: building
the parser must stay cheap, so that ``rlbind-bench --help`` and ``list suites`` answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from rlbind_bench.cli.console import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from rlbind_bench.cli.data import add_checkpoint, add_data
from rlbind_bench.cli.leaderboard import add_check, add_leaderboard
from rlbind_bench.cli.lists import add_list
from rlbind_bench.cli.run import add_run
from rlbind_bench.cli.train import add_train
from rlbind_bench.errors import UserError

DESCRIPTION = "rlbind-bench command line: parse, call the library, render. No logic of its own."
COMMANDS = [add_run, add_list, add_data, add_checkpoint, add_train, add_leaderboard, add_check]

__all__ = ["COMMANDS", "EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other user mistake
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rlbind-bench", description=DESCRIPTION)
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("RLBIND_DEBUG") == "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not debug:
        warnings.filterwarnings("ignore")
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UserError as exc:
        if debug:
            raise
        print(f"rlbind-bench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rlbind-bench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
