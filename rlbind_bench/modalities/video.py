"""Video handler: uniformly sampled RGB frames in [0, 1]; normalisation and LanguageBind's layout in the forward.

Frames are not randomly flipped, and normalisation runs after the resize (bilinear interpolation is
affine-invariant, so the two orders agree to float precision); see docs/architecture.md ("Input spaces").
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlbind_bench.modalities.base import (
    InputSpace,
    ModalityHandler,
    Normalize,
    PreprocessConfig,
    UnreadableSample,
)
from rlbind_bench.modalities.registry import register_handler


class VideoPreprocess(nn.Module):
    """[B, T, 3, H, W] in [0,1] -> normalised [B, 3, T, H, W] (LanguageBind's layout)."""

    def __init__(self, cfg: PreprocessConfig):
        super().__init__()
        self.norm = Normalize(cfg.mean, cfg.std, channel_dim=-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x).permute(0, 2, 1, 3, 4)


def short_side_scale_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """pytorchvideo's ShortSideScale (bilinear, floor) + CenterCropVideo on [C, T, H, W]."""
    _c, _t, h, w = frames.shape
    if w < h:
        new_h, new_w = math.floor(h / w * size), size
    else:
        new_h, new_w = size, math.floor(w / h * size)
    frames = F.interpolate(frames, size=(new_h, new_w), mode="bilinear", align_corners=False)
    top = round((new_h - size) / 2.0)
    left = round((new_w - size) / 2.0)
    return frames[..., top:top + size, left:left + size]


@register_handler
class VideoHandler(ModalityHandler):
    name = "video"
    file_suffixes = (".mp4", ".avi", ".mkv", ".webm", ".mov")

    def input_space(self, cfg: PreprocessConfig, **hints) -> InputSpace:
        s = cfg.image_size
        return InputSpace(self.name, (cfg.num_frames, 3, s, s), 0.0, 1.0,
                          f"{cfg.num_frames} uniformly sampled RGB frames in [0,1], short side {s} + center "
                          "crop; normalisation inside; no random flip")

    def load(self, path: Path, cfg: PreprocessConfig, **hints) -> torch.Tensor:
        # decord is optional (video extra) and loads native libraries: imported only when a video is read.
        import decord

        try:
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
            n = len(reader)
            if n == 0:
                raise UnreadableSample(f"video {path} has no frames")
            ids = np.linspace(0, n - 1, cfg.num_frames, dtype=int)
            batch = reader.get_batch(list(ids))
            # languagebind switches decord's global bridge to torch on import; accept either.
            frames = batch.asnumpy() if hasattr(batch, "asnumpy") else batch.numpy()
        except UnreadableSample:
            raise
        except Exception as exc:  # decord raises DECORDError / RuntimeError for broken files
            raise UnreadableSample(f"cannot decode video {path}: {exc}") from exc
        x = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255.0  # [C, T, H, W]
        x = short_side_scale_crop(x, cfg.image_size)
        return x.permute(1, 0, 2, 3).contiguous()  # [T, C, H, W]

    def preprocess(self, cfg: PreprocessConfig) -> nn.Module:
        return VideoPreprocess(cfg)
