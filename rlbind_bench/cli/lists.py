"""`rlbind-bench list WHAT`: one lister per WHAT in LISTERS, each returning (name, description) rows."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from rlbind_bench.cli.console import EXIT_OK, console
from rlbind_bench.config import load_datasets
from rlbind_bench.standards import STANDARDS
from rlbind_bench.suites import SUITES


def _list_models(args):
    from rlbind_bench.encoders.registry import MODELS

    return [(m.name, m.description) for m in MODELS.values()]


def _list_datasets(args):
    from rlbind_bench.retrieval.spec import load_retrieval_sets

    return ([(s.name, _dataset_line(s)) for s in load_datasets(args.datasets_file).values()]
            + [(s.name, _retrieval_line(s)) for s in load_retrieval_sets(args.datasets_file).values()])


def _retrieval_line(s) -> str:
    """A `task: retrieval` set (rlbind-bench retrieve)."""
    where = f"members {', '.join(s.members.values())}" if s.members else f"path {s.path}"
    parts = [f"retrieval ({', '.join(s.modalities())}): {s.description}", f"layout {s.layout}", where,
             f"licence: {s.licence}"]
    return "; ".join(parts + ([f"get it: {s.url}"] if s.url else []))


def _dataset_line(s) -> str:
    parts = [f"{s.modality}: {s.description}", f"layout {s.layout}", f"path {s.path}"]
    if s.standard:
        subsets = ", ".join(STANDARDS[s.standard].subsets)
        parts.append(f"standard {s.standard}" + (f" (subsets: {subsets})" if subsets and not s.subset else ""))
    if s.subset:
        parts.append(f"subset {s.subset}")
    parts.append(f"licence: {s.licence}")
    if s.url:
        parts.append(f"get it: {s.url}")
    return "; ".join(parts)


def _list_threats(args):
    from rlbind_bench.threats.registry import load_threats

    return [(t.name, t.summary()) for t in load_threats(args.attacks_dir).values()]


def _list_suites(args):
    return [(s.name, s.description) for s in SUITES.values()]


LISTERS: dict[str, Callable[[argparse.Namespace], list[tuple[str, str]]]] = {
    "models": _list_models,
    "datasets": _list_datasets,
    "threats": _list_threats,
    "suites": _list_suites,
}


def add_list(sub) -> None:
    p = sub.add_parser("list", help="list models, datasets, threats or suites")
    p.add_argument("what", choices=sorted(LISTERS))
    p.add_argument("--datasets-file", type=Path, default=None)
    p.add_argument("--attacks-dir", type=Path, default=None)
    p.set_defaults(func=cmd_list)


def cmd_list(args) -> int:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=args.what)
    table.add_column("name")
    table.add_column("description")
    for name, desc in LISTERS[args.what](args):
        table.add_row(escape(name), escape(desc))
    console().print(table)
    return EXIT_OK
