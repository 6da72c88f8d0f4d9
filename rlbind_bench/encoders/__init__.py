"""Bound encoder backends and the registry `load_encoder` looks models up in.

Importing the package registers every built-in backend: each module below registers its models
(`registry.register_model`) and manifest builders (`registry.register_backend`) when imported, so any
caller that imports `rlbind_bench.encoders.registry` (which runs this file first) finds all of them. A new
backend is one more line here; `registry` itself never imports a backend.
"""

from __future__ import annotations

# The import list of backends: registration happens on import (languagebind is imported by the registry).
from rlbind_bench.encoders import demo, imagebind_backend, open_clip_backend, zoo

__all__ = ["demo", "imagebind_backend", "open_clip_backend", "zoo"]
