"""`rlbind-bench data prepare NAME` and `rlbind-bench checkpoint build`: offline inputs for tests and demos."""

from __future__ import annotations

import importlib
from pathlib import Path

from rlbind_bench.cli.console import EXIT_OK, console
from rlbind_bench.errors import UserError
from rlbind_bench.paths import default_data_root

# "module:function" strings: a builder's module (and torch with it) is imported only when it is asked for.
DATA_BUILDERS: dict[str, str] = {
    "photos": "rlbind_bench.data.photos:prepare_photos",
    "demo": "rlbind_bench.data.demo:prepare_demo",
}


def add_data(sub) -> None:
    p = sub.add_parser("data", help="build offline datasets from packaged sources")
    p.add_argument("action", choices=["prepare"])
    p.add_argument("name", choices=sorted(DATA_BUILDERS))
    p.add_argument("--data-root", type=Path, default=None, help="default: $RLBIND_DATA_ROOT or the user data dir")
    p.set_defaults(func=cmd_data)


def cmd_data(args) -> int:
    module, fn = DATA_BUILDERS[args.name].split(":")
    root = (args.data_root or default_data_root()) / ("photos" if args.name == "photos" else "")
    result = getattr(importlib.import_module(module), fn)(root)
    console().print(f"{args.name}: ready under {root}")
    if isinstance(result, dict):
        console().print(result)
    return EXIT_OK


def add_checkpoint(sub) -> None:
    p = sub.add_parser("checkpoint", help="build a random-init LanguageBind-format checkpoint (tests, demos)")
    p.add_argument("action", choices=["build"])
    p.add_argument("--modality", default="image")
    p.add_argument("--size", default="tiny", help="tiny | small | vit-b | vit-l")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_checkpoint)


def cmd_checkpoint(args) -> int:
    from rlbind_bench.encoders.checkpoint_factory import TOWER_SIZES, build_languagebind_checkpoint
    from rlbind_bench.modalities import get_handler

    get_handler(args.modality)
    if args.size not in TOWER_SIZES:
        raise UserError(f"unknown size {args.size!r} (known: {', '.join(TOWER_SIZES)})")
    if (args.out / "config.json").is_file():
        console().print(f"checkpoint exists: {args.out}")
        return EXIT_OK
    path = build_languagebind_checkpoint(args.out, args.modality, size=args.size, seed=args.seed)
    console().print(f"LanguageBind-format {args.modality} checkpoint ({args.size}): {path}")
    return EXIT_OK
