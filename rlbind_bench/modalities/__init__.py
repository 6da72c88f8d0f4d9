"""Modalities: each declares its raw input space, how a file becomes a tensor in that space, and the
differentiable preprocessing that runs inside the encoder's forward (so attacks see the raw space).

The registry is keyed by modality name; backends pick a handler and a `PreprocessConfig`.
"""

from __future__ import annotations

from rlbind_bench.modalities.base import ModalityHandler, PreprocessConfig
from rlbind_bench.modalities.registry import MODALITIES, get_handler

__all__ = ["MODALITIES", "ModalityHandler", "PreprocessConfig", "get_handler"]
