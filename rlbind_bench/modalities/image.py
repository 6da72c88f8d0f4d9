"""Image and thermal handlers: RGB files resized and center-cropped into [0, 1].

Images are clamped to [0, 1] after the bicubic resize (bicubic overshoots by up to a few 1e-2), so the
input space is bounded; see docs/architecture.md ("Input spaces"). With `image_resize="pil"` the resize is
PIL's on the 8-bit image (CLIP's and ImageBind's transform), which stays in [0, 1] by construction.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from torchvision.transforms import InterpolationMode
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
                          f"RGB in [0,1] after resize({s}, {_resize_name(cfg)}) + center crop; normalisation inside")

    def _read_rgb(self, path: Path, resize: int | None = None) -> torch.Tensor:
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if resize is not None:  # torchvision's Resize + CenterCrop on the PIL image, as CLIP's transform
                    img = TF.center_crop(TF.resize(img, resize, interpolation=InterpolationMode.BICUBIC),
                                         [resize, resize])
                return TF.to_tensor(img)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise UnreadableSample(f"cannot decode image {path}: {exc}") from exc

    def load(self, path: Path, cfg: PreprocessConfig, **hints) -> torch.Tensor:
        if cfg.image_resize == "pil":
            return self._read_rgb(path, resize=cfg.image_size)
        return resize_center_crop(self._read_rgb(path), cfg.image_size).clamp_(0.0, 1.0)

    def preprocess(self, cfg: PreprocessConfig) -> nn.Module:
        return Normalize(cfg.mean, cfg.std, channel_dim=-3)


@register_handler
class ThermalHandler(ImageHandler):
    """Thermal frames are 3-channel images to LanguageBind (its eval loader converts to RGB)."""

    name = "thermal"

    def input_space(self, cfg: PreprocessConfig, **hints) -> InputSpace:
        s = cfg.image_size
        pil = ", PIL bicubic" if cfg.image_resize == "pil" else ""
        return InputSpace(self.name, (3, s, s), 0.0, 1.0,
                          f"thermal frame as RGB in [0,1] after resize({s}{pil}) + center crop; normalisation inside")


def _resize_name(cfg: PreprocessConfig) -> str:
    # "bicubic" alone is the historical (hashed) description of the tensor resize: keep it byte-identical.
    return "PIL bicubic" if cfg.image_resize == "pil" else "bicubic"
