"""Video handler: uniformly sampled RGB frames in [0, 1]; normalisation and LanguageBind's layout in the forward.

Frames are not randomly flipped, and normalisation runs after the resize (bilinear interpolation is
affine-invariant, so the two orders agree to float precision); see docs/architecture.md ("Input spaces").
With `video_clips=K` the frames are K clips' (`clip_frame_ids`), in clip order: the encoder regroups them.
"""

from __future__ import annotations

import math
from fractions import Fraction
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


def short_side_scale_crop(frames: torch.Tensor, size: int, round_up: bool = False) -> torch.Tensor:
    """pytorchvideo's ShortSideScale (bilinear, floor) + CenterCropVideo on [C, T, H, W]; `round_up`: the
    offsets of pytorchvideo's `uniform_crop` (ceil) instead of CenterCropVideo's (round half to even)."""
    _c, _t, h, w = frames.shape
    if w < h:
        new_h, new_w = math.floor(h / w * size), size
    else:
        new_h, new_w = size, math.floor(w / h * size)
    frames = F.interpolate(frames, size=(new_h, new_w), mode="bilinear", align_corners=False)
    offset = (lambda d: math.ceil(d / 2)) if round_up else (lambda d: round(d / 2.0))
    top, left = offset(new_h - size), offset(new_w - size)
    return frames[..., top:top + size, left:left + size]


def clip_frame_ids(n: int, fps: float, clips: int, clip_seconds: float, per_clip: int) -> list[int]:
    """Frame indices of `clips` clips of `clip_seconds`, evenly spread (pytorchvideo's
    ConstantClipsPerVideoSampler: clip k starts at k * max(duration - clip_seconds, 0) / clips), each clip's
    frames as decord's get_clip reads them (ceil(fps * t), up to the last frame) and `per_clip` of them taken
    by UniformTemporalSubsample (float32 linspace, truncated)."""
    # The same float and Fraction arithmetic as pytorchvideo, so boundary frames round the same way.
    duration = float(n) / float(fps)
    step = Fraction(max(duration - clip_seconds, 0)) / clips
    ids: list[int] = []
    for k in range(clips):
        start = step * k
        first = math.ceil(fps * start)
        last = min(math.ceil(fps * (start + Fraction(clip_seconds))), n) - 1
        first = min(first, last)
        picks = torch.linspace(0, last - first, per_clip).clamp(0, last - first).long()
        ids.extend(first + int(i) for i in picks)
    return ids


@register_handler
class VideoHandler(ModalityHandler):
    name = "video"
    file_suffixes = (".mp4", ".avi", ".mkv", ".webm", ".mov")

    def input_space(self, cfg: PreprocessConfig, **hints) -> InputSpace:
        s = cfg.image_size
        if cfg.video_clips:
            return InputSpace(self.name, (cfg.num_frames, 3, s, s), 0.0, 1.0,
                              f"{cfg.video_clips} clips of {cfg.video_clip_seconds:g} s evenly spread, "
                              f"{cfg.num_frames // cfg.video_clips} frames each, RGB in [0,1], short side {s} + "
                              "center crop (ceil offsets); normalisation inside")
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
            if cfg.video_clips:
                ids = clip_frame_ids(n, reader.get_avg_fps(), cfg.video_clips, cfg.video_clip_seconds,
                                     cfg.num_frames // cfg.video_clips)
            else:
                ids = list(np.linspace(0, n - 1, cfg.num_frames, dtype=int))
            batch = reader.get_batch(ids)
            # languagebind switches decord's global bridge to torch on import; accept either.
            frames = batch.asnumpy() if hasattr(batch, "asnumpy") else batch.numpy()
        except UnreadableSample:
            raise
        except Exception as exc:  # decord raises DECORDError / RuntimeError for broken files
            raise UnreadableSample(f"cannot decode video {path}: {exc}") from exc
        x = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255.0  # [C, T, H, W]
        x = short_side_scale_crop(x, cfg.image_size, round_up=bool(cfg.video_clips))
        return x.permute(1, 0, 2, 3).contiguous()  # [T, C, H, W]

    def preprocess(self, cfg: PreprocessConfig) -> nn.Module:
        return VideoPreprocess(cfg)
