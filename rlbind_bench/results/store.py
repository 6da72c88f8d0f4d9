"""Result tables on disk: atomic Parquet writes carrying the schema version, and version-checked reads."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rlbind_bench.errors import UserError
from rlbind_bench.files import atomic_write, slugify, write_bytes_atomic, write_json_atomic
from rlbind_bench.results.schema import METADATA_KEY, SAMPLE_COLUMNS, SCHEMA_VERSION, UPGRADES


def write_table_atomic(path: Path, frame: pd.DataFrame, schema: pa.Schema) -> None:
    table = pa.Table.from_pandas(frame[[f.name for f in schema]], schema=schema, preserve_index=False)
    atomic_write(path, lambda fh: pq.write_table(table, fh))


def read_table(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path} is not a readable Parquet file ({exc})") from exc
    version = _version_of(table.schema)
    frame = table.to_pandas()
    # Older files stay readable: each upgrade step brings a frame one schema version forward.
    while version in UPGRADES and version != SCHEMA_VERSION:
        version, upgrade = UPGRADES[version]
        frame = upgrade(frame)
    if version != SCHEMA_VERSION:
        raise UserError(f"{path}: results schema version {version or 'missing'}, this rlbind-bench reads "
                        f"{SCHEMA_VERSION} and the older versions {', '.join(sorted(UPGRADES))}")
    return frame

if TYPE_CHECKING:
    from rlbind_bench.config import DatasetSpec


def _version_of(schema: pa.Schema) -> str:
    return (schema.metadata or {}).get(METADATA_KEY, b"").decode()


def table_schema_version(path: Path) -> str:
    """The results schema version a Parquet file was written with ('' when it carries none)."""
    try:
        return _version_of(pq.read_schema(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path} is not a readable Parquet file ({exc})") from exc


def check_writable(folder: Path) -> None:
    """Fail early, before hours of compute, when the output folder cannot take files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise UserError(f"output folder {folder} is not writable ({exc.strerror or exc})") from exc


def collect_skipped(parts_dir: Path, datasets: list[DatasetSpec]) -> dict[str, list[str]]:
    """Unreadable files, from every part's sidecar (written by whichever rank ran the shard)."""
    out: dict[str, list[str]] = {}
    for spec in datasets:
        folder = parts_dir / slugify(spec.name)
        for sidecar in sorted(folder.glob("*.skipped.json")) if folder.is_dir() else []:
            out.setdefault(spec.name, []).extend(json.loads(sidecar.read_text()))
    return out


def merge_parts(parts_dir: Path, datasets: list[DatasetSpec]) -> pd.DataFrame:
    folders = [parts_dir / slugify(spec.name) for spec in datasets]
    frames = [read_table(part) for folder in folders if folder.is_dir() for part in sorted(folder.glob("*.parquet"))]
    if not frames:
        return pd.DataFrame(columns=SAMPLE_COLUMNS)
    merged = pd.concat(frames, ignore_index=True)
    return merged.sort_values(["dataset", "threat", "norm", "eps", "severity", "sample_id"],
                              kind="stable").reset_index(drop=True)


__all__ = ["atomic_write", "check_writable", "collect_skipped", "merge_parts", "read_table", "table_schema_version", "write_bytes_atomic",
           "write_json_atomic", "write_table_atomic"]
