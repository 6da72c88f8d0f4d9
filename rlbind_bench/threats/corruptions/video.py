"""Video corruptions: float [T, 3, H, W] in [0, 1] in, same shape out.

Per-frame corruptions ``frame_<name>`` reuse the image corruptions on every frame, for every ImageNet-C
corruption except glass_blur (its per-pixel Python loop takes ~1.7 s per 224x224 frame, ~14 s per
8-frame clip, which would dominate a benchmark run). Which frames share a random draw:
- the noise family (gaussian/shot/impulse/speckle) draws independently per frame: sensor noise is
  temporally independent;
- every other corruption draws once per clip and applies that draw to all frames: a fog bank, frost on
  the lens, a blur direction or a water splash does not change from one frame to the next, and flicker
  would be a second, unintended corruption.
Frame t's generator is derived from the clip's generator, so the result depends only on
(seed, sample_id, corruption, severity).

Temporal corruptions (no pixel changes, only which frame is shown where), for a clip of T frames:
- frame_drop     ceil(T * 12.5/25/37.5/50/62.5 %) frames (never the first) are lost and the previous
                 kept frame is held in their place, as a player does on a decode failure;
- frame_jitter   each frame shows, with probability 0.2/0.4/0.6/0.6/0.8, a neighbour up to 1/1/1/2/2
                 frames away (timestamp jitter, repeated and skipped frames);
- frame_shuffle  frames are permuted within consecutive windows of 2/3/4/6/8 frames.
And a codec corruption:
- blockiness     every frame JPEG-encoded at quality 6/4/3/2/1 with 4:2:0 chroma subsampling: the 8x8 block
                 and chroma artefacts of a video stream starved of bits (frame_jpeg_compression stops at
                 ImageNet-C's quality 7).
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image

from rlbind_bench.threats.corruptions.base import child_seed, register
from rlbind_bench.threats.corruptions.image import IMAGE_CORRUPTIONS, apply_image_corruption

VIDEO_MODALITIES = ("video",)
FRAME_EXCLUDED = frozenset({"glass_blur"})
FRAME_CORRUPTIONS = tuple(f"frame_{n}" for n in IMAGE_CORRUPTIONS if n not in FRAME_EXCLUDED)

DROP_FRACTION = (0.125, 0.25, 0.375, 0.5, 0.625)
JITTER_PROB = (0.2, 0.4, 0.6, 0.6, 0.8)
JITTER_MAX = (1, 1, 1, 2, 2)
SHUFFLE_WINDOW = (2, 3, 4, 6, 8)
BLOCK_JPEG_QUALITY = (6, 4, 3, 2, 1)


def _check_video(x: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"video corruptions expect [T, 3, H, W], got shape {tuple(x.shape)}")


def _frame_corruption(image_name: str):
    independent = IMAGE_CORRUPTIONS[image_name] == "noise"

    def fn(x: torch.Tensor, severity: int, rng: np.random.Generator, modality: str) -> torch.Tensor:
        _check_video(x)
        n_frames = x.shape[0]
        seeds = [child_seed(rng) for _ in range(n_frames)] if independent else [child_seed(rng)] * n_frames
        frames = [apply_image_corruption(x[t], image_name, severity, np.random.default_rng(seeds[t]))
                  for t in range(n_frames)]
        if not frames:
            return x.detach().to(torch.float32).clone()
        return torch.stack(frames)

    fn.__name__ = f"frame_{image_name}"
    return fn


for _name, _family in IMAGE_CORRUPTIONS.items():
    if _name not in FRAME_EXCLUDED:
        register(f"frame_{_name}", VIDEO_MODALITIES, _family,
                 f"imagecorruptions {_name} on every frame")(_frame_corruption(_name))


def _reindex(x: torch.Tensor, index: np.ndarray) -> torch.Tensor:
    return x.detach().to(torch.float32)[torch.as_tensor(index, dtype=torch.long, device=x.device)].clone()


def drop_index(n_frames: int, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Source frame of each output frame when frames are dropped and the last kept one is held."""
    index = np.arange(n_frames)
    if n_frames < 2:
        return index
    n_drop = min(n_frames - 1, math.ceil(DROP_FRACTION[severity - 1] * n_frames - 1e-9))
    dropped = set(rng.choice(np.arange(1, n_frames), size=n_drop, replace=False).tolist())
    for t in range(1, n_frames):
        if t in dropped:
            index[t] = index[t - 1]
    return index


@register("frame_drop", VIDEO_MODALITIES, "temporal", "lost frames replaced by the last kept frame")
def frame_drop(x: torch.Tensor, severity: int, rng: np.random.Generator, modality: str) -> torch.Tensor:
    _check_video(x)
    return _reindex(x, drop_index(x.shape[0], severity, rng))


def jitter_index(n_frames: int, severity: int, rng: np.random.Generator) -> np.ndarray:
    reach = JITTER_MAX[severity - 1]
    moved = rng.random(n_frames) < JITTER_PROB[severity - 1]
    offsets = rng.integers(1, reach + 1, size=n_frames) * rng.choice([-1, 1], size=n_frames)
    index = np.arange(n_frames) + np.where(moved, offsets, 0)
    return np.clip(index, 0, max(n_frames - 1, 0))


@register("frame_jitter", VIDEO_MODALITIES, "temporal", "frames replaced by near neighbours (timing jitter)")
def frame_jitter(x: torch.Tensor, severity: int, rng: np.random.Generator, modality: str) -> torch.Tensor:
    _check_video(x)
    return _reindex(x, jitter_index(x.shape[0], severity, rng))


def shuffle_index(n_frames: int, severity: int, rng: np.random.Generator) -> np.ndarray:
    window = SHUFFLE_WINDOW[severity - 1]
    return np.concatenate([start + rng.permutation(min(window, n_frames - start))
                           for start in range(0, n_frames, window)] or [np.arange(0)])


@register("frame_shuffle", VIDEO_MODALITIES, "temporal", "frames permuted within local windows")
def frame_shuffle(x: torch.Tensor, severity: int, rng: np.random.Generator, modality: str) -> torch.Tensor:
    _check_video(x)
    return _reindex(x, shuffle_index(x.shape[0], severity, rng))


def _jpeg(frame: torch.Tensor, quality: int) -> torch.Tensor:
    array = frame.detach().to("cpu", torch.float32).clamp(0, 1).mul(255).round().to(torch.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array.permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=quality, subsampling=2)
    decoded = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(decoded).permute(2, 0, 1).contiguous().to(frame.device)


@register("blockiness", VIDEO_MODALITIES, "digital", "JPEG at quality 6/4/3/2/1 on every frame")
def blockiness(x: torch.Tensor, severity: int, rng: np.random.Generator, modality: str) -> torch.Tensor:
    _check_video(x)
    if x.shape[0] == 0:
        return x.detach().to(torch.float32).clone()
    return torch.stack([_jpeg(frame, BLOCK_JPEG_QUALITY[severity - 1]) for frame in x])
