"""Where the harness keeps user-level state: the data root and the caches (overridable by environment). The
project's own files (attacks/, recipes/, zoo/, datasets.yaml) are found by bundled.py."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir as _platform_cache_dir
from platformdirs import user_data_dir as _platform_data_dir


def user_cache_dir() -> Path:
    """Text-embedding and corruption caches: ``$RLBIND_CACHE_DIR`` or the platform's cache folder."""
    return Path(os.environ.get("RLBIND_CACHE_DIR") or _platform_cache_dir("rlbind-bench"))


def default_data_root() -> Path:
    """Datasets named in datasets.yaml and the demo data: ``$RLBIND_DATA_ROOT`` or the platform's data folder."""
    return Path(os.environ.get("RLBIND_DATA_ROOT") or _platform_data_dir("rlbind-bench"))
