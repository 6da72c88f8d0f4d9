"""The corruption registry and the per-sample random generator every corruption draws from.

A corruption is a pure function of (input, severity, generator, modality). The generator is derived from
(seed, sample_id, corruption name, severity) alone, so a sample's corrupted version does not depend on
which other samples share its batch, on the order they are processed in, or on any global RNG state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

FAMILIES = ("noise", "blur", "weather", "digital", "temporal", "audio")
SEVERITIES = (1, 2, 3, 4, 5)

# fn(x, severity, rng, modality) -> corrupted x, same shape, float32, same device.
CorruptionFn = Callable[[torch.Tensor, int, np.random.Generator, str], torch.Tensor]


@dataclass(frozen=True)
class Corruption:
    name: str
    modalities: tuple[str, ...]
    fn: CorruptionFn
    family: str
    description: str = ""


CORRUPTIONS: dict[str, Corruption] = {}


def register(name: str, modalities: tuple[str, ...], family: str,
             description: str = "") -> Callable[[CorruptionFn], CorruptionFn]:
    if family not in FAMILIES:
        raise ValueError(f"corruption {name!r}: unknown family {family!r} (known: {', '.join(FAMILIES)})")

    def deco(fn: CorruptionFn) -> CorruptionFn:
        # Names are the keys of results tables: a silent overwrite would mix two corruptions in one column.
        if name in CORRUPTIONS:
            raise ValueError(f"corruption {name!r} is registered twice")
        CORRUPTIONS[name] = Corruption(name, tuple(modalities), fn, family, description)
        return fn

    return deco


def stable_hash(text: str) -> int:
    """A 64-bit hash of `text` that is the same in every process (Python's hash() is salted per run)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def rng_for(seed: int, sample_id: str, corruption: str, severity: int) -> np.random.Generator:
    """The generator for one (seed, sample, corruption, severity) cell."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    entropy = [int(seed), stable_hash(str(sample_id)), stable_hash(corruption), int(severity)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def child_seed(rng: np.random.Generator) -> int:
    """A 64-bit seed drawn from `rng`, for sub-generators (per-frame, per-library state)."""
    return int(rng.integers(0, 2**63, dtype=np.int64))
