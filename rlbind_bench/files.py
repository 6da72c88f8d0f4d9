"""File helpers every layer uses: atomic writes (files and whole folders), content digests, file-name-safe slugs.

Atomic means: a reader sees the old file or the whole new one, never a half-written one (temp file in the
same folder, fsync, ``os.replace``), so a crash never leaves a truncated result or checkpoint behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(fh)`` on a temporary file beside ``path``, then move it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (weights files are large)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def slugify(text: str, fallback: str = "x") -> str:
    """A file-name-safe stem: [A-Za-z0-9._-] only, no leading dots, at most 80 characters."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._")[:80]
    return slug or fallback


@contextmanager
def staged_dir(final: Path, stem: str) -> Iterator[Path]:
    """A fresh folder ``<stem>.tmp-<pid>`` beside ``final`` to fill; when the block succeeds it replaces
    ``final`` by renames (readers see the old folder or the whole new one, never a half-built one); when the
    block fails it is removed and ``final`` is left as it was."""
    tmp = final.parent / f"{stem}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if final.exists() or final.is_symlink():
            old = final.parent / f"{stem}.tmp-old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
