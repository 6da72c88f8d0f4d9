"""Batch size chosen to fill the device (`--batch-size auto`).

Per-sample seeding makes evaluation rows independent of the batch size (AutoAttack aside, whose rows record
the batch size they ran with), so the choice is a speed decision only. On CPU the forward already uses every
core and bigger batches buy nothing, so auto is a fixed CPU_BATCH. On CUDA two probe steps at batch p and 2p
(forward + backward when the plan attacks, forward only for clean or corruption-only plans) measure the peak
memory; their difference is the cost of p more samples, which separates the per-sample cost from the fixed
one (weights, workspace). The batch is the largest power of two whose predicted peak fits `budget` of the
memory free at the start, capped at `cap` and at the number of samples. The OOM back-off in the runner still
guards the prediction.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from rlbind_bench.errors import ConfigError

AUTO = "auto"
CPU_BATCH = 32
PROBE = 4
BUDGET = 0.7
CAP = 1024


def parse_batch_size(value: int | str) -> int | str:
    """An int >= 1 or "auto" (CLI and config); anything else is a ConfigError."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--batch-size must be a positive integer or 'auto', got {value!r}") from None
    if isinstance(value, bool) or n < 1 or str(n) != str(value).strip():
        raise ConfigError(f"--batch-size must be a positive integer or 'auto', got {value!r}")
    return n


def fit_batch_size(peak_bytes: Callable[[int], int], free_bytes: int, *, probe: int = PROBE,
                   budget: float = BUDGET, cap: int = CAP) -> int:
    """The largest power of two b <= cap with fixed + b * per_sample <= budget * free_bytes, where the fixed and
    per-sample costs come from ``peak_bytes`` at batch ``probe`` and ``2 * probe``. At least 1."""
    p1, p2 = peak_bytes(probe), peak_bytes(2 * probe)
    per_sample = max(p2 - p1, 1) / probe
    fixed = max(p1 - probe * per_sample, 0.0)
    room = budget * free_bytes - fixed
    if room < per_sample:
        return 1
    fit = int(room // per_sample)
    return max(1, min(cap, 2 ** int(math.log2(fit))))


def auto_batch_size(classifier: torch.nn.Module, example: torch.Tensor, device: torch.device, *,
                    needs_grad: bool, n_samples: int) -> int:
    """Batch size for ``classifier`` on inputs shaped like ``example`` (one sample, no batch dim)."""
    if device.type != "cuda":
        return max(1, min(CPU_BATCH, n_samples))

    def peak(b: int) -> int:
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        x = example.unsqueeze(0).expand(b, *example.shape).contiguous().to(device)
        if needs_grad:
            x.requires_grad_(True)
            torch.autograd.grad(classifier(x).float().logsumexp(1).sum(), x)
        else:
            with torch.no_grad():
                classifier(x)
        torch.cuda.synchronize(device)
        used = torch.cuda.max_memory_allocated(device) - start
        del x
        return int(used)

    free, _ = torch.cuda.mem_get_info(device)
    try:
        b = fit_batch_size(peak, free)
    except torch.cuda.OutOfMemoryError:
        b = 1
    finally:
        torch.cuda.empty_cache()
    return max(1, min(b, n_samples))


def resolve_batch_size(requested: int | str, classifier: torch.nn.Module, example: torch.Tensor | None,
                       device: torch.device, *, needs_grad: bool, n_samples: int) -> int:
    if requested != AUTO:
        return int(requested)
    if example is None:
        return CPU_BATCH
    return auto_batch_size(classifier, example, device, needs_grad=needs_grad, n_samples=n_samples)
