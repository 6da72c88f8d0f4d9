"""Atomic writes: every file appears whole (temp file in the same folder, fsync, rename) or not at all."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rlbind_bench.errors import UserError
from rlbind_bench.results.schema import METADATA_KEY, SCHEMA_VERSION


def _atomic(path: Path, write) -> None:
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
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    _atomic(path, lambda fh: fh.write(data))


def write_json_atomic(path: Path, obj) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def write_table_atomic(path: Path, frame: pd.DataFrame, schema: pa.Schema) -> None:
    table = pa.Table.from_pandas(frame[[f.name for f in schema]], schema=schema, preserve_index=False)
    _atomic(path, lambda fh: pq.write_table(table, fh))


def read_table(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path} is not a readable Parquet file ({exc})") from exc
    version = (table.schema.metadata or {}).get(METADATA_KEY, b"").decode()
    if version != SCHEMA_VERSION:
        raise UserError(f"{path}: results schema version {version or 'missing'}, this rlbind-bench reads "
                        f"{SCHEMA_VERSION}")
    return table.to_pandas()


def check_writable(folder: Path) -> None:
    """Fail early, before hours of compute, when the output folder cannot take files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise UserError(f"output folder {folder} is not writable ({exc.strerror or exc})") from exc
