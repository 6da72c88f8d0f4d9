"""Where the harness keeps user-level state (the data root, the caches) and finds the project's files (attacks/,
recipes/, zoo/, datasets.yaml); each overridable by environment."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir as _platform_cache_dir
from platformdirs import user_data_dir as _platform_data_dir


def user_cache_dir() -> Path:
    """Text-embedding and corruption caches: ``$RLBIND_CACHE_DIR`` or the platform's cache folder."""
    return Path(os.environ.get("RLBIND_CACHE_DIR") or _platform_cache_dir("rlbind-bench"))


PROJECT_DIR_ENV = "RLBIND_PROJECT_DIR"


def project_path(name: str, cwd: bool = True) -> Path:
    """A project file or folder beside the package in a checkout (attacks, recipes, zoo, datasets.yaml): the working
    directory's when ``cwd`` (a checkout's own edits), then ``$RLBIND_PROJECT_DIR``'s (a non-editable install, such
    as the Docker image's, keeps them there), then the checkout's this package is imported from. The first that
    exists; else the checkout's path, for the caller's "not found" error."""
    env = os.environ.get(PROJECT_DIR_ENV)
    checkout = Path(__file__).resolve().parents[1]
    candidates = [*([Path.cwd()] if cwd else []), *([Path(env).expanduser()] if env else []), checkout]
    return next((c / name for c in candidates if (c / name).exists()), checkout / name)


def default_data_root() -> Path:
    """Datasets named in datasets.yaml and the demo data: ``$RLBIND_DATA_ROOT`` or the platform's data folder."""
    return Path(os.environ.get("RLBIND_DATA_ROOT") or _platform_data_dir("rlbind-bench"))
