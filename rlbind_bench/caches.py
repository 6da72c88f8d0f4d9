"""The user cache's housekeeping: what it holds per kind, a size cap with least-recently-used eviction, pruning.

The cache root (``paths.user_cache_dir()``) holds one folder per kind in CACHE_KINDS; only files matching a
kind's pattern are counted, evicted or cleared, so whatever else shares the root (the Docker image keeps
Hugging Face's cache in /cache/huggingface) is left alone.

The cap: ``rlbind-bench run --cache-max-size``, else RLBIND_CACHE_MAX_SIZE (``5G``, ``500M``; ``0`` or ``none``:
no cap, as in ccache), else DEFAULT_MAX_BYTES. It is enforced when a run opens the corruption cache and again after every cap/20 bytes
that a writer (each DataLoader worker counts its own) adds, so the cache may pass the cap by that much per
writer in between. Eviction removes the least recently used entries first: "used" is the later of a file's
mtime and atime, and the corruption cache touches an entry when it reads it, so that the order does not
depend on the file system's atime policy (noatime, relatime).

Eviction never touches a write in progress: entries are written to a temporary file (``*.tmp``) renamed into
place, and temporary files never match a kind's pattern. An evicted entry that a reader still wanted reads as
absent and is made again. After a write, entries used in the last WRITE_GRACE_S seconds are kept even over the
cap: a worker's fresh entries wait in the prefetch queue until the main process reads them.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from rlbind_bench.errors import ConfigError
from rlbind_bench.paths import user_cache_dir

MAX_SIZE_ENV = "RLBIND_CACHE_MAX_SIZE"
DEFAULT_MAX_BYTES = 5 * 1024**3  # 5 GiB: about 35,000 cached 224x224 image corruptions
WRITE_GRACE_S = 300.0
STALE_TMP_S = 24 * 3600.0  # a temporary file this old is a crashed writer's, not a write in progress


@dataclass(frozen=True)
class CacheKind:
    folder: str  # under the cache root
    pattern: str  # glob, relative to the folder, of complete entries (never a temporary file)
    description: str


# The layouts are defined by the writers: threats/corruptions/cache.py, zeroshot.py, encoders/loading.py,
# threats/probes.py.
CACHE_KINDS: dict[str, CacheKind] = {
    "corruptions": CacheKind("corruptions", "*/*.bin", "corrupted inputs (image, thermal, depth, audio)"),
    "text": CacheKind("text", "classemb-*.pt", "zero-shot class text embeddings"),
    "digests": CacheKind("digests", "*.sha256", "sha256 of checkpoint weights, by path, size and mtime"),
    "probes": CacheKind("probes", "*.json", "gradient-masking probe results, by model, inputs and probe code"),
}

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str, what: str = "") -> int:
    """Bytes from ``5G``, ``512M``, ``1.5GiB``, ``1048576`` (binary units); 0 (no cap) for ``none``."""
    s = str(text).strip().lower()
    if s in ("none", "off", "unlimited"):
        return 0
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", s)
    if not m:
        raise ConfigError(f"{what + ': ' if what else ''}expected a size such as 5G, 500M or none, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse_duration(text: str, what: str = "") -> float:
    """Seconds from ``30d``, ``12h``, ``15m``, ``45s``, ``2w``."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", str(text).strip().lower())
    if not m:
        raise ConfigError(f"{what + ': ' if what else ''}expected a duration such as 30d, 12h or 15m, got {text!r}")
    return float(m.group(1)) * _DURATIONS[m.group(2)]


def format_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def configured_max_bytes(override: int | None = None) -> tuple[int, str]:
    """(cap in bytes, 0 for no cap; where it came from): the override, $RLBIND_CACHE_MAX_SIZE, the default."""
    if override is not None:
        return override, "flag"
    env = os.environ.get(MAX_SIZE_ENV, "").strip()
    if env:
        return parse_size(env, MAX_SIZE_ENV), MAX_SIZE_ENV
    return DEFAULT_MAX_BYTES, "default"


@dataclass(frozen=True)
class Entry:
    kind: str
    path: Path
    size: int
    last_used: float  # the later of mtime and atime


def entries(root: Path | None = None, kinds: list[str] | None = None) -> list[Entry]:
    """Every complete entry of the given kinds (default: all) under the cache root."""
    root = Path(root) if root is not None else user_cache_dir()
    out = []
    for name in kinds or CACHE_KINDS:
        kind = CACHE_KINDS[name]
        for path in (root / kind.folder).glob(kind.pattern):
            try:
                st = path.stat()
            except OSError:  # evicted by another process meanwhile
                continue
            out.append(Entry(name, path, st.st_size, max(st.st_mtime, st.st_atime)))
    return out


def _remove(victims: list[Entry]) -> list[Entry]:
    removed = []
    for e in victims:
        try:
            e.path.unlink()
            removed.append(e)
        except FileNotFoundError:  # another writer evicted it first
            continue
        except OSError:  # read-only cache: nothing to be done, and never a reason to stop a run
            continue
    return removed


def enforce_cap(max_bytes: int, root: Path | None = None, keep_newer_than: float = 0.0,
                now: float | None = None) -> list[Entry]:
    """Evict least recently used entries until the cache's entries total at most max_bytes; the removed ones.

    0 is no cap. Entries used less than keep_newer_than seconds ago are never evicted (the cache may then stay
    over the cap)."""
    if max_bytes <= 0:
        return []
    found = sorted(entries(root), key=lambda e: (e.last_used, str(e.path)))
    total = sum(e.size for e in found)
    now = time.time() if now is None else now
    victims = []
    for e in found:
        if total <= max_bytes:
            break
        if now - e.last_used < keep_newer_than:
            break  # sorted: every later entry is newer still
        victims.append(e)
        total -= e.size
    return _remove(victims)


def remove_older_than(seconds: float, root: Path | None = None, now: float | None = None) -> list[Entry]:
    now = time.time() if now is None else now
    return _remove([e for e in entries(root) if now - e.last_used > seconds])


def remove_stale_temporaries(root: Path | None = None, now: float | None = None,
                             older_than: float = STALE_TMP_S) -> int:
    """Temporary files left by crashed writers (a live write is far younger than STALE_TMP_S)."""
    root = Path(root) if root is not None else user_cache_dir()
    now = time.time() if now is None else now
    n = 0
    for kind in CACHE_KINDS.values():
        for path in (root / kind.folder).rglob("*.tmp"):
            try:
                if now - path.stat().st_mtime > older_than:
                    path.unlink()
                    n += 1
            except OSError:
                continue
    return n


def clear(root: Path | None = None, kinds: list[str] | None = None) -> list[Entry]:
    """Delete every entry of the given kinds (default: all), and the folders they leave empty."""
    root = Path(root) if root is not None else user_cache_dir()
    removed = _remove(entries(root, kinds))
    for name in kinds or CACHE_KINDS:
        folder = root / CACHE_KINDS[name].folder
        for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            try:
                sub.rmdir()
            except OSError:  # not empty: a write in progress, or files that are not ours
                continue
    return removed


class SizeCap:
    """The cap as a writer applies it: counts the bytes it wrote and enforces the cap every max_bytes/20.

    Pickled into each DataLoader worker with the corruption cache; each copy counts its own writes."""

    def __init__(self, max_bytes: int, root: Path, grace_s: float = WRITE_GRACE_S):
        self.max_bytes = int(max_bytes)
        self.root = Path(root)
        self.grace_s = grace_s
        self.check_every = max(self.max_bytes // 20, 1)
        self._written = 0

    def enforce(self) -> list[Entry]:
        self._written = 0
        return enforce_cap(self.max_bytes, self.root, keep_newer_than=self.grace_s)

    def wrote(self, n: int) -> None:
        self._written += n
        if self._written >= self.check_every:
            self.enforce()


def size_cap(override: int | None = None, root: Path | None = None) -> SizeCap | None:
    """The configured cap for writers under the cache root, or None when the cache is uncapped."""
    max_bytes, _ = configured_max_bytes(override)
    return None if max_bytes <= 0 else SizeCap(max_bytes, Path(root) if root is not None else user_cache_dir())
