"""Image and thermal handlers: RGB files resized and center-cropped into [0, 1].

The geometry (resize mode, interpolation, tensor or PIL resampling) is the encoder's `PreprocessConfig`,
applied by `resize.to_input_space`. Tensor resizes are clamped to [0, 1] (bicubic overshoots by up to a few
1e-2), so the input space is bounded; see docs/architecture.md ("Input spaces").
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from rlbind_bench.modalities.base import (
    IMAGE_SUFFIXES,
    InputSpace,
    ModalityHandler,
    Normalize,
    PreprocessConfig,
    UnreadableSample,
)
from rlbind_bench.modalities.registry import register_handler
from rlbind_bench.modalities.resize import describe, to_input_space


@register_handler
class ImageHandler(ModalityHandler):
    name = "image"
    file_suffixes = IMAGE_SUFFIXES

    def input_space(self, cfg: PreprocessConfig, **hints) -> InputSpace:
        s = cfg.image_size
        return InputSpace(self.name, (3, s, s), 0.0, 1.0, f"RGB in [0,1] after {describe(cfg)}; normalisation inside")

    def _read_rgb(self, path: Path) -> Image.Image:
        # Converted to RGB before any resize, as torchvision's ImageFolder (and so CLIP_benchmark) loads photos;
        # for grey and RGB files this is also open_clip's order (resize, then convert) to the pixel.
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise UnreadableSample(f"cannot decode image {path}: {exc}") from exc

    def load(self, path: Path, cfg: PreprocessConfig, **hints) -> torch.Tensor:
        return to_input_space(self._read_rgb(path), cfg)

    def preprocess(self, cfg: PreprocessConfig) -> nn.Module:
        return Normalize(cfg.mean, cfg.std, channel_dim=-3)


@register_handler
class ThermalHandler(ImageHandler):
    """Thermal frames are 3-channel images to LanguageBind (its eval loader converts to RGB)."""

    name = "thermal"

    def input_space(self, cfg: PreprocessConfig, **hints) -> InputSpace:
        s = cfg.image_size
        if cfg.resize_backend == "tensor" and cfg.resize_mode == "shortest":
            # the historical (hashed) words of LanguageBind's thermal space: kept byte-identical
            return InputSpace(self.name, (3, s, s), 0.0, 1.0,
                              f"thermal frame as RGB in [0,1] after resize({s}) + center crop; normalisation inside")
        return InputSpace(self.name, (3, s, s), 0.0, 1.0,
                          f"thermal frame as RGB in [0,1] after {describe(cfg)}; normalisation inside")
