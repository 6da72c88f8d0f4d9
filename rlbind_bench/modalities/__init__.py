"""Modalities: each declares its raw input space, how a file becomes a tensor in that space, and the
differentiable preprocessing that runs inside the encoder's forward (so attacks see the raw space).

Handlers register by name in `registry.HANDLERS` when their module is imported; the imports below are that
list for the built-in ones (image, thermal, depth, audio, video, in table order). Backends pick a handler
with `get_handler` and describe their preprocessing with a `PreprocessConfig`.
"""

from __future__ import annotations

from rlbind_bench.modalities.audio import AudioHandler, KaldiFbank, audio_clip_seconds, clip_samples
from rlbind_bench.modalities.base import (
    IMAGE_SUFFIXES,
    InputSpace,
    ModalityHandler,
    Normalize,
    PreprocessConfig,
    UnreadableSample,
    resize_center_crop,
)
from rlbind_bench.modalities.depth import DepthHandler
from rlbind_bench.modalities.image import ImageHandler, ThermalHandler
from rlbind_bench.modalities.registry import HANDLERS, get_handler, register_handler
from rlbind_bench.modalities.video import VideoHandler, VideoPreprocess, short_side_scale_crop

# The handler registry under its historical name (config.py and older callers check membership in it).
MODALITIES = HANDLERS

__all__ = [
    "HANDLERS",
    "IMAGE_SUFFIXES",
    "MODALITIES",
    "AudioHandler",
    "DepthHandler",
    "ImageHandler",
    "InputSpace",
    "KaldiFbank",
    "ModalityHandler",
    "Normalize",
    "PreprocessConfig",
    "ThermalHandler",
    "UnreadableSample",
    "VideoHandler",
    "VideoPreprocess",
    "audio_clip_seconds",
    "clip_samples",
    "get_handler",
    "register_handler",
    "resize_center_crop",
    "short_side_scale_crop",
]
