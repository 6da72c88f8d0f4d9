"""Batch size chosen to fill the device (`--batch-size auto`), and how a run lays its samples out in shards and
batches (the runner evaluates them; the cost plan prices them).

Per-sample seeding makes evaluation rows independent of the batch size (AutoAttack aside, whose rows record
the batch size they ran with), so the choice is a speed decision only. On CPU the forward already uses every
core and bigger batches buy nothing, so auto is a fixed CPU_BATCH. On CUDA two probe steps at batch p and 2p
(forward + backward when the plan attacks, forward only for clean or corruption-only plans) measure the peak
memory; their difference is the cost of p more samples, which separates the per-sample cost from the fixed
one (weights, workspace). The batch is the largest power of two whose predicted peak fits `budget` of the
memory free at the start (the allocator's cache emptied first), capped at `cap`, at the number of samples and
at what the host can hold in flight (the loader's prefetched batches). A flat probe (allocator rounding)
falls back to the larger probe's whole peak per sample; an OOM in the second probe keeps the first. The
runner's OOM back-off still guards the prediction, and remembers the size that fitted.

A batch-dependent attack's rows (AutoAttack's) depend on its batch, so a plan with one keeps the fixed CPU_BATCH
under auto: its rows must not depend on how much memory a machine has free.
"""

from __future__ import annotations

import math
import os
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
    p1 = peak_bytes(probe)
    try:
        p2 = peak_bytes(2 * probe)
    except torch.cuda.OutOfMemoryError:
        return probe
    if p2 > p1:
        per_sample = (p2 - p1) / probe
        fixed = max(p1 - probe * per_sample, 0.0)
    else:  # no measurable growth: assume the whole peak scales with the batch (the cautious reading)
        per_sample, fixed = max(p2, 1) / (2 * probe), 0.0
    room = budget * free_bytes - fixed
    if room < per_sample:
        return 1
    fit = int(room // per_sample)
    return max(1, min(cap, 2 ** int(math.log2(fit))))


def available_host_bytes() -> int | None:
    """Host memory available now, or None where the OS does not say."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def host_batch_cap(example: torch.Tensor, in_flight_batches: int, fraction: float = 0.25) -> int:
    """The largest batch of which ``in_flight_batches`` copies fit ``fraction`` of the host memory available."""
    available = available_host_bytes()
    if available is None:
        return CAP
    per_batch_sample = example.numel() * example.element_size() * max(1, in_flight_batches)
    return max(1, int(available * fraction // per_batch_sample))


def auto_batch_size(classifier: torch.nn.Module, example: torch.Tensor, device: torch.device, *,
                    needs_grad: bool, n_samples: int, in_flight_batches: int = 2) -> int:
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

    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()  # memory the allocator caches from earlier work is free for this run
    free, _ = torch.cuda.mem_get_info(device)
    try:
        b = fit_batch_size(peak, free)
    except torch.cuda.OutOfMemoryError:
        b = 1
    finally:
        torch.cuda.empty_cache()
    return max(1, min(b, n_samples, host_batch_cap(example, in_flight_batches)))


def resolve_batch_size(requested: int | str, classifier: torch.nn.Module, example: Callable[[], torch.Tensor | None],
                       device: torch.device, *, needs_grad: bool, n_samples: int, batch_dependent: bool = False,
                       in_flight_batches: int = 2) -> int:
    """``requested`` as an int; for auto, ``example()`` (one decoded input) is called only on a GPU."""
    if requested != AUTO:
        return int(requested)
    if device.type != "cuda" or batch_dependent:
        return max(1, min(CPU_BATCH, n_samples))
    x = example()
    if x is None:
        return max(1, min(CPU_BATCH, n_samples))
    return auto_batch_size(classifier, x, device, needs_grad=needs_grad, n_samples=n_samples,
                           in_flight_batches=in_flight_batches)


PREFETCH_FACTOR = 2
IN_MEMORY_PREFETCH_BYTES = 4 << 30


def in_memory_prefetch_fits(example: torch.Tensor | None, n_variants: int, batch_size: int, workers: int) -> bool:
    """Whether the corrupted inputs of the batches in flight (workers x prefetch factor) fit the budget:
    min(4 GiB, a quarter of the memory available now)."""
    if example is None:
        return False
    available = available_host_bytes()
    budget = IN_MEMORY_PREFETCH_BYTES if available is None else min(IN_MEMORY_PREFETCH_BYTES, available // 4)
    in_flight = workers * PREFETCH_FACTOR * batch_size * n_variants * example.numel() * example.element_size()
    return in_flight <= budget


def resolve_workers(requested: int | None, device: torch.device) -> int:
    """DataLoader worker processes: the requested number, or 0 on CPU and min(8, cores - 1) on a GPU."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
            raise ConfigError(f"--workers must be a non-negative integer, got {requested!r}")
        return requested
    if device.type == "cpu":
        # The model's forward already uses every core: decoding in other processes would only take turns with it.
        return 0
    return max(0, min(8, (os.cpu_count() or 1) - 1))


# A dataset's samples are written in shards of this many (one part file each, the unit of resume and of a rank's
# share); RLBIND_SHARD_SIZE overrides it (the tests use small shards).
SHARD_SIZE = 256


def configured_shard_size() -> int:
    return int(os.environ.get("RLBIND_SHARD_SIZE", SHARD_SIZE))


def shard_ranges(n: int, shard_size: int) -> list[range]:
    """The dataset's shards: consecutive index ranges of shard_size, each written as one part file."""
    return [range(lo, min(n, lo + shard_size)) for lo in range(0, n, shard_size)]


def shard_batches(indices: range, batch_size: int) -> list[range]:
    """A shard's batches, in order (no batch spans two shards)."""
    return [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]


def run_batches(n: int, batch_size: int) -> list[range]:
    """Every batch a run over n samples evaluates (one process; the cost plan's layout of the run)."""
    return [b for shard in shard_ranges(n, configured_shard_size()) for b in shard_batches(shard, batch_size)]


def sync_device(device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously: a timer must not stop before it ends)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
