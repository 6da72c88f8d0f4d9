"""Natural corruptions for image, thermal, depth, audio and video inputs, five severities each.

``corrupt(modality, name, severity, x, seed=..., sample_id=...)`` corrupts one sample. The result is a
function of (x, modality, name, severity, seed, sample_id) only: the random draws come from a generator
seeded by (seed, sample_id, name, severity) (`base.rng_for`), never from numpy's or torch's global state,
so it does not depend on batch composition, order, process or thread, and it leaves global RNGs untouched.

Corruptions per modality (see the module docstrings of image.py, audio.py and video.py):
- image, thermal, depth: the 19 corruptions of `imagecorruptions` (ImageNet-C's 15 and its 4 validation
  ones; vendored in ic/); thermal and depth are corrupted as grey maps and stay grey;
- audio: white_noise, colored_noise, clipping, time_shift, telephone, speed, pitch_shift, reverb;
- video: frame_<name> for the image corruptions except glass_blur, and frame_drop, frame_jitter,
  frame_shuffle, blockiness.
"""

from __future__ import annotations

import numpy as np
import torch

from rlbind_bench.constants import MODALITIES
from rlbind_bench.errors import ConfigError
from rlbind_bench.threats.corruptions import audio, image, video  # noqa: F401  (they register)
from rlbind_bench.threats.corruptions.base import CORRUPTIONS, SEVERITIES, Corruption, rng_for

__all__ = ["CORRUPTIONS", "MODALITIES", "Corruption", "corrupt", "corrupt_batch", "list_corruptions", "rng_for"]



def list_corruptions(modality: str) -> list[str]:
    """The corruption names defined for `modality`, in registration order."""
    _check_modality(modality)
    return [name for name, c in CORRUPTIONS.items() if modality in c.modalities]


def _check_modality(modality: str) -> None:
    if modality not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r} for corruptions (known: {', '.join(MODALITIES)})")


def _lookup(modality: str, name: str, severity: int) -> Corruption:
    _check_modality(modality)
    corruption = CORRUPTIONS.get(name)
    if corruption is None:
        raise ConfigError(f"unknown corruption {name!r} for {modality} "
                          f"(known: {', '.join(list_corruptions(modality))})")
    if modality not in corruption.modalities:
        raise ConfigError(f"corruption {name!r} does not apply to {modality} (it applies to "
                          f"{', '.join(corruption.modalities)}; {modality} has: "
                          f"{', '.join(list_corruptions(modality))})")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise ConfigError(f"corruption {name!r}: severity must be an integer from 1 to 5, got {severity!r}")
    return corruption


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"corruption seed must be a non-negative integer, got {seed!r}")


def _check_sample_id(sample_id: str) -> None:
    # Strict: an int id and its string would otherwise silently share one random draw.
    if not isinstance(sample_id, str):
        raise TypeError(f"sample_id must be a str, got {type(sample_id).__name__} {sample_id!r}")


def corrupt(modality: str, name: str, severity: int, x: torch.Tensor, *, seed: int,
            sample_id: str) -> torch.Tensor:
    """One sample corrupted: image/thermal/depth [3,H,W], audio [N], video [T,3,H,W]; float32, same shape."""
    corruption = _lookup(modality, name, severity)
    _check_seed(seed)
    _check_sample_id(sample_id)
    if not torch.is_floating_point(x):
        raise ValueError(f"corrupt() expects a floating-point tensor, got {x.dtype}")
    out = corruption.fn(x, int(severity), rng_for(int(seed), sample_id, name, int(severity)), modality)
    if out.shape != x.shape:
        raise AssertionError(f"corruption {name!r} changed the shape {tuple(x.shape)} -> {tuple(out.shape)}")
    return out


def corrupt_batch(modality: str, name: str, severity: int, x_batch: torch.Tensor, *, seed: int,
                  sample_ids: list[str]) -> torch.Tensor:
    """`corrupt` on every sample of x_batch [B, ...], each with its own sample id."""
    _lookup(modality, name, severity)
    if len(sample_ids) != x_batch.shape[0]:
        raise ValueError(f"corrupt_batch: {len(sample_ids)} sample ids for a batch of {x_batch.shape[0]}")
    if x_batch.shape[0] == 0:
        return x_batch.detach().to(torch.float32).clone()
    return torch.stack([corrupt(modality, name, severity, x, seed=seed, sample_id=sid)
                        for x, sid in zip(x_batch, sample_ids, strict=True)])
