"""The project's own data files: attack YAMLs, training recipes, the dataset catalogue and the demo zoo.

They live at the top of the repository (`attacks/`, `recipes/`, `datasets.yaml`, `zoo/`), where people edit
them, and the wheel carries them as the package data of `rlbind_bench._bundled` (the mapping is
`[tool.setuptools.package-dir]` in pyproject.toml). A source checkout reads its own files, so an edit is
seen without reinstalling; an installed wheel reads its copies through `importlib.resources`. A user's own
files override either: by flag (`--attacks-dir`, `--datasets-file`, a recipe's path) or by the
environment variable named in `OVERRIDES`.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from rlbind_bench.errors import ConfigError

BUNDLE_PACKAGE = "rlbind_bench._bundled"
# bundled item -> the environment variable that replaces it
OVERRIDES = {
    "attacks": "RLBIND_ATTACKS_DIR",
    "recipes": "RLBIND_RECIPES_DIR",
    "datasets.yaml": "RLBIND_DATASETS_FILE",
    "zoo": "RLBIND_ZOO_DIR",
}
_CHECKOUT = Path(__file__).resolve().parents[1]


def _from_checkout(name: str) -> Path | None:
    # pyproject.toml beside the package marks a source checkout (an editable install, or PYTHONPATH=.)
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / name).exists():
        return _CHECKOUT / name
    return None


def _from_wheel(name: str) -> Path | None:
    try:
        item = importlib.resources.files(BUNDLE_PACKAGE) / name
    except ModuleNotFoundError:
        return None
    # pip unpacks wheels to disk, so the resource is a real file; a zipped install would need extraction
    if isinstance(item, Path) and item.exists():
        return item
    return None


def bundled_path(name: str, override: str | Path | None = None) -> Path:
    """Where `name` (a key of OVERRIDES) is read from: the override, else $OVERRIDES[name], else the
    checkout's copy, else the wheel's. A missing override is a user mistake, named."""
    if name not in OVERRIDES:
        raise KeyError(f"{name!r} is not a bundled item (known: {', '.join(OVERRIDES)})")
    chosen = override or os.environ.get(OVERRIDES[name])
    if chosen:
        path = Path(chosen).expanduser()
        if not path.exists():
            source = "given" if override else f"${OVERRIDES[name]}"
            raise ConfigError(f"{name}: {path} ({source}) does not exist")
        return path
    path = _from_checkout(name) or _from_wheel(name)
    if path is None:
        raise ConfigError(f"{name} not found in the checkout or the installed package; reinstall rlbind-bench "
                          f"or set ${OVERRIDES[name]}")
    return path
