"""`rlbind-bench cache info|prune|clear`: the user cache's size per kind, its cap, and deleting entries (caches.py)."""

from __future__ import annotations

import os
import sys

from rlbind_bench.cli.console import EXIT_OK, duration, size
from rlbind_bench.errors import UserError

# Flags that only one action reads: given to another, they would be silently ignored.
ONLY_FOR = {"max_size": "prune", "older_than": "prune", "yes": "clear"}


def add_cache(sub) -> None:
    p = sub.add_parser("cache", help="the user cache: info (size per kind, cap), prune (to the cap), clear",
                       description="info: where the cache is, entries and size per kind, the cap. prune: evict "
                                   "least recently used entries down to the cap (or --max-size), and entries "
                                   "unused for --older-than. clear: delete every entry (asks, or --yes).")
    p.add_argument("action", choices=list(ACTIONS))
    p.add_argument("--kind", action="append", default=None, metavar="KIND",
                   help="only this kind (repeatable): corruptions, text, digests (default: all)")
    p.add_argument("--max-size", type=size, default=None, metavar="SIZE",
                   help="prune: cap to enforce, e.g. 2G (default: $RLBIND_CACHE_MAX_SIZE, else 5G)")
    p.add_argument("--older-than", type=duration, default=None, metavar="AGE",
                   help="prune: also delete entries not used for AGE, e.g. 30d, 12h")
    p.add_argument("--yes", action="store_true", help="clear: do not ask for confirmation")
    p.set_defaults(func=cmd_cache)


def _row(name: str, n: int, nbytes: int, where: str) -> str:
    from rlbind_bench.caches import format_size

    return f"{name:<12} {n:>8} {format_size(nbytes):>10}  {where}".rstrip()


def _cap_line(max_bytes: int, source: str) -> str:
    from rlbind_bench.caches import MAX_SIZE_ENV, format_size

    where = {"default": f"default; ${MAX_SIZE_ENV} changes it", "flag": "--max-size"}.get(source, source)
    return f"cap: {format_size(max_bytes) if max_bytes > 0 else 'none'} ({where})"


def _info(root, kinds: list[str], args) -> None:
    from rlbind_bench.caches import CACHE_KINDS, configured_max_bytes, entries

    found = entries(root, kinds)
    source = "RLBIND_CACHE_DIR" if os.environ.get("RLBIND_CACHE_DIR") else "platform default"
    print(f"cache: {root} ({source})")
    print(_cap_line(*configured_max_bytes()))
    print(f"{'kind':<12} {'entries':>8} {'size':>10}  folder")
    for name in kinds:
        mine = [e for e in found if e.kind == name]
        print(_row(name, len(mine), sum(e.size for e in mine), str(root / CACHE_KINDS[name].folder)))
    print(_row("total", len(found), sum(e.size for e in found), ""))


def _prune(root, kinds: list[str], args) -> None:
    from rlbind_bench.caches import (
        configured_max_bytes,
        enforce_cap,
        format_size,
        remove_older_than,
        remove_stale_temporaries,
    )

    removed = remove_older_than(args.older_than, root) if args.older_than is not None else []
    max_bytes, source = configured_max_bytes(args.max_size)
    removed += enforce_cap(max_bytes, root)
    tmp = remove_stale_temporaries(root)
    print(_cap_line(max_bytes, source))
    print(f"pruned {len(removed)} entries ({format_size(sum(e.size for e in removed))})"
          + (f" and {tmp} stale temporary files" if tmp else "") + f" from {root}")


def _clear(root, kinds: list[str], args) -> None:
    from rlbind_bench.caches import clear, entries, format_size

    found = entries(root, kinds)
    what = f"{len(found)} entries ({format_size(sum(e.size for e in found))}) of {', '.join(kinds)} under {root}"
    if found and not args.yes:
        if not sys.stdin.isatty():
            raise UserError(f"cache clear would delete {what}: add --yes to confirm")
        if input(f"delete {what}? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return
    removed = clear(root, kinds)
    print(f"deleted {len(removed)} entries ({format_size(sum(e.size for e in removed))}) from {root}")


ACTIONS = {"info": _info, "prune": _prune, "clear": _clear}


def cmd_cache(args) -> int:
    from rlbind_bench.caches import CACHE_KINDS
    from rlbind_bench.paths import user_cache_dir

    for flag, action in ONLY_FOR.items():
        if getattr(args, flag) not in (None, False) and args.action != action:
            raise UserError(f"--{flag.replace('_', '-')} applies to `cache {action}` only")
    kinds = list(dict.fromkeys(args.kind or CACHE_KINDS))
    unknown = [k for k in kinds if k not in CACHE_KINDS]
    if unknown:
        raise UserError(f"unknown cache kind {unknown[0]!r} (known: {', '.join(CACHE_KINDS)})")
    if args.kind and args.action == "prune":
        raise UserError("--kind applies to `cache info` and `cache clear`: the cap covers every kind")
    ACTIONS[args.action](user_cache_dir(), kinds, args)
    return EXIT_OK
