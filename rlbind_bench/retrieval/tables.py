"""The retrieval result tables: one row per (query, pair, side, eps) and one summary row per (set, pair, side, eps).

Their own schema version (metadata key `rlbind.retrieval_schema`), apart from the classification tables':
changing the columns or what config_hash covers bumps it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rlbind_bench.errors import UserError

RETRIEVAL_SCHEMA_VERSION = "1"
METADATA_KEY = "rlbind.retrieval_schema"
ROWS_FILE = "retrieval.parquet"
SUMMARY_FILE = "retrieval_summary.parquet"

_CELL = [("run_id", pa.string()), ("model", pa.string()), ("dataset", pa.string()), ("pair", pa.string()),
         ("query_modality", pa.string()), ("gallery_modality", pa.string()),
         ("side", pa.string()),  # none (clean), query or gallery: the side the attack perturbed
         ("norm", pa.string()), ("eps", pa.float64()), ("steps", pa.int64()), ("seed", pa.int64()),
         ("config_hash", pa.string())]


def _schema(fields) -> pa.Schema:
    return pa.schema(fields, metadata={METADATA_KEY: RETRIEVAL_SCHEMA_VERSION})


ROW_SCHEMA = _schema([
    *_CELL,
    ("query_id", pa.string()), ("n_relevant", pa.int64()), ("n_gallery", pa.int64()),
    ("first_rank", pa.int64()),  # 1-based rank of the best-ranked relevant item (ties count against the query)
    ("ap", pa.float64()), ("r1", pa.bool_()), ("r5", pa.bool_()), ("r10", pa.bool_())])
SUMMARY_SCHEMA = _schema([
    *_CELL,
    ("relevance", pa.string()),  # paired | class (run.json states what each means)
    ("n_queries", pa.int64()), ("n_gallery", pa.int64()),
    *[(f"r{k}{s}", pa.float64()) for k in (1, 5, 10) for s in ("", "_low", "_high")],
    ("map", pa.float64()), ("map_low", pa.float64()), ("map_high", pa.float64()),
    ("max_perturbation", pa.float64())])  # the largest norm of a perturbation the cell applied (<= eps)
ROW_COLUMNS = [f.name for f in ROW_SCHEMA]
SUMMARY_COLUMNS = [f.name for f in SUMMARY_SCHEMA]


def read_retrieval_summary(folder: Path) -> pd.DataFrame:
    path = Path(folder) / SUMMARY_FILE
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path} is not a readable Parquet file ({exc})") from exc
    version = (table.schema.metadata or {}).get(METADATA_KEY.encode(), b"").decode()
    if version != RETRIEVAL_SCHEMA_VERSION:
        raise UserError(f"{path}: retrieval schema version {version or 'missing'}, this rlbind-bench reads "
                        f"{RETRIEVAL_SCHEMA_VERSION}")
    return table.to_pandas()
