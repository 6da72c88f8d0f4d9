"""Depth handler: 16-bit depth maps in millimetres, scaled by max_depth into [0, 1], as 3 channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# PIL, not cv2.imread: once decord is loaded, cv2's PNG decoder fails ("libpng error") in-process.
from PIL import Image, UnidentifiedImageError

from rlbind_bench.modalities.base import InputSpace, PreprocessConfig, UnreadableSample, resize_center_crop
from rlbind_bench.modalities.image import ImageHandler
from rlbind_bench.modalities.registry import register_handler


@register_handler
class DepthHandler(ImageHandler):
    """Depth maps in millimetres (16-bit PNG), as LanguageBind's NYU-D loader reads them."""

    name = "depth"
    file_suffixes = (".png", ".tif", ".tiff")

    def input_space(self, cfg: PreprocessConfig, **hints) -> InputSpace:
        s = cfg.image_size
        return InputSpace(self.name, (3, s, s), 0.0, 1.0,
                          f"depth/max_depth ({cfg.max_depth} m) in [0,1], 3 channels, resize({s}) + crop")

    def load(self, path: Path, cfg: PreprocessConfig, **hints) -> torch.Tensor:
        try:
            with Image.open(path) as img:
                raw = np.array(img)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise UnreadableSample(f"cannot decode depth map {path}: {exc}") from exc
        if raw.ndim == 3:
            raw = raw[..., 0]
        depth = raw.astype("float32") / 1000.0
        depth = depth.clip(min=0.01)
        depth = depth.clip(max=cfg.max_depth) / cfg.max_depth if cfg.max_depth else depth / depth.max()
        x = torch.from_numpy(depth).unsqueeze(0).repeat(3, 1, 1)
        return resize_center_crop(x, cfg.image_size).clamp_(0.0, 1.0)
