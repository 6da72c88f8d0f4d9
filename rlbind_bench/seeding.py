"""Seeds derived from (seed, key...), identical in every process, rank and batch split.

Python's ``hash()`` is salted per process, so keys are hashed with sha256; results never depend on the
order in which samples, steps or towers are visited.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def derived_seed(seed: int, *key: object) -> int:
    """A 63-bit seed from ``seed`` and ``key``: sha256 of ``"seed|k1|k2..."``."""
    digest = hashlib.sha256("|".join(str(part) for part in (seed, *key)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def seeded_generator(seed: int, *key: object) -> torch.Generator:
    """A CPU torch generator that depends only on ``seed`` and ``key``."""
    return torch.Generator().manual_seed(derived_seed(seed, *key))


def seeded_numpy_generator(seed: int, *key: object) -> np.random.Generator:
    """A NumPy generator that depends only on ``seed`` and ``key`` (the demo data builders' scheme:
    sha256 of the tuple's repr, four 32-bit words; kept as it is so that the demo data stay bit-identical)."""
    digest = hashlib.sha256(repr((int(seed), *key)).encode()).digest()
    return np.random.default_rng([int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)])
