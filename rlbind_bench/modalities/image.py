"""Image and thermal handlers: RGB files resized and center-cropped into [0, 1].

Images are clamped to [0, 1] after the bicubic resize (bicubic overshoots by up to a few 1e-2), so the
input space is bounded; see docs/architecture.md ("Input spaces").
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from torchvision.transforms import functional as TF

from rlbind_bench.modalities.base import (
    IMAGE_SUFFIXES,
    InputSpace,
    ModalityHandler,
    Normalize,
    PreprocessConfig,
    UnreadableSample,
    resize_center_crop,
)
from rlbind_bench.modalities.registry import register_handler


@register_handler
class ImageHandler(ModalityHandler):
    name = "image"
    file_suffixes = IMAGE_SUFFIXES

    def input_space(self, cfg: PreprocessConfig, **hints) -> InputSpace:
        s = cfg.image_size
        return InputSpace(self.name, (3, s, s), 0.0, 1.0,
                          f"RGB in [0,1] after resize({s}, bicubic) + center crop; normalisation inside")

    def _read_rgb(self, path: Path) -> torch.Tensor:
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                return TF.to_tensor(img)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise UnreadableSample(f"cannot decode image {path}: {exc}") from exc

    def load(self, path: Path, cfg: PreprocessConfig, **hints) -> torch.Tensor:
        return resize_center_crop(self._read_rgb(path), cfg.image_size).clamp_(0.0, 1.0)

    def preprocess(self, cfg: PreprocessConfig) -> nn.Module:
        return Normalize(cfg.mean, cfg.std, channel_dim=-3)


@register_handler
class ThermalHandler(ImageHandler):
    """Thermal frames are 3-channel images to LanguageBind (its eval loader converts to RGB)."""

    name = "thermal"

    def input_space(self, cfg: PreprocessConfig, **hints) -> InputSpace:
        s = cfg.image_size
        return InputSpace(self.name, (3, s, s), 0.0, 1.0,
                          f"thermal frame as RGB in [0,1] after resize({s}) + center crop; normalisation inside")
