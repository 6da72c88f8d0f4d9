"""rlbind-bench: robustness benchmark and trainer for bound multimodal encoders.

The public API is loaded on first use (a module `__getattr__`), so `import rlbind_bench` stays cheap (no torch)
and `rlbind_bench.cli` starts fast:

    rlbind_bench.evaluate(model, data, suite=..., threats=..., out=None) -> Results
    rlbind_bench.load_encoder(spec) -> BoundEncoder
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# The one place the version is written: pyproject.toml reads it from here (dynamic version), and
# `rlbind-bench --version`, run.json provenance and the wheel's metadata follow it.
__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "evaluate": "rlbind_bench.api",
    "Results": "rlbind_bench.api",
    "load_encoder": "rlbind_bench.encoders.registry",
    "BoundEncoder": "rlbind_bench.encoders.base",
}
__all__ = ["BoundEncoder", "Results", "__version__", "evaluate", "load_encoder"]

if TYPE_CHECKING:
    from rlbind_bench.api import Results, evaluate
    from rlbind_bench.encoders.base import BoundEncoder
    from rlbind_bench.encoders.registry import load_encoder


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rlbind_bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
