"""Measurements the plan costs passes with: FLOPs per pass, time per pass, and passes actually made.

FLOPs are counted on one sample with torch's FlopCounterMode (matmuls and convolutions; elementwise work is
not counted), forward alone and forward+backward with respect to the input (the attacks' pass: the weights
are frozen, so there is no weight gradient). Times are the median of a few passes on the run's device, dtype
and batch size. `PassCounter` counts the sample-passes an attack makes, by running it (the expected cost).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from rlbind_bench.batching import sync_device
from rlbind_bench.threats.base import PassCount


@dataclass(frozen=True)
class PassCost:
    """FLOPs per sample, seconds per batch of one forward and one forward+backward pass at the run's batch size
    (the worst case: full batches throughout), and the seconds of one call at a few row counts (`sizes`, rising):
    early exit leaves attacks with small batches, and AutoAttack's Square and FAB-T run one row per call, whose
    cost is far from a full batch's share (a demo tower's one-row forward costs 1.5x a row of a batch of 32)."""

    flops_forward: int
    flops_backward: int
    seconds_forward: float
    seconds_backward: float
    batch_size: int
    sizes: tuple[int, ...]
    call_seconds_forward: tuple[float, ...]  # one call of sizes[i] rows
    call_seconds_backward: tuple[float, ...]

    def call_seconds(self, backward: bool, rows: float) -> float:
        """Seconds of one call of `rows` rows: piecewise linear through the measured sizes, a call of fewer
        rows than the smallest costing as much as it, beyond the largest along the last segment. One size (a
        card's peak, bound_passes): its rows' share."""
        times = self.call_seconds_backward if backward else self.call_seconds_forward
        if len(self.sizes) == 1:
            return times[0] * rows / self.sizes[0]
        return interpolate(self.sizes, times, rows)


def interpolate(sizes: tuple[int, ...], times: tuple[float, ...], rows: float) -> float:
    """Piecewise linear through (sizes[i], times[i]), sizes rising: fewer rows than the first size cost as much
    as it (a call's fixed cost), more than the last continue its last segment; one size: its time."""
    if len(sizes) == 1 or rows <= sizes[0]:
        return times[0]
    k = next((i for i in range(1, len(sizes)) if rows <= sizes[i]), len(sizes) - 1)
    (r0, r1), (t0, t1) = sizes[k - 1:k + 1], times[k - 1:k + 1]
    return t0 + (t1 - t0) * (rows - r0) / (r1 - r0)


@dataclass(frozen=True)
class CallGroup:
    """Model calls a cell is expected to make over the whole run, and the rows they carry in all (the plan prices
    each call at the mean rows per call of its group)."""

    backward: bool  # forward+backward calls; else forwards
    calls: float
    rows: float
    outside_s: float = 0.0  # seconds per call the attack spends outside the model (Attack.stage_outside_seconds)


def timed_sizes(batch_size: int) -> tuple[int, ...]:
    """The row counts the plan times a call at: one row (Square, FAB-T and late PGD steps), a quarter of the
    batch and the batch."""
    return tuple(sorted({1, max(1, batch_size // 4), batch_size}))


def _grad_pass(model, x: torch.Tensor) -> None:
    # .backward(), not autograd.grad: FlopCounterMode refuses autograd.grad on a leaf (torch 2.x); the weights
    # are frozen, so only the input's gradient is computed either way.
    xg = x.detach().clone().requires_grad_(True)
    model(xg).float().sum().backward()


def count_flops(model, x: torch.Tensor) -> tuple[int, int]:
    """(forward, forward+backward) FLOPs of `model` on the batch `x` (one sample: x[:1])."""
    with FlopCounterMode(display=False) as fwd, torch.no_grad():
        model(x)
    with FlopCounterMode(display=False) as both:
        _grad_pass(model, x)
    return fwd.get_total_flops(), both.get_total_flops()


def median_seconds(fn, device: torch.device, reps: int, min_total_s: float = 0.1, max_reps: int = 25) -> float:
    """Median of at least `reps` timed calls after a warm-up, more (up to max_reps) when a call is short: a
    one-row call of a demo tower takes 3-4 ms, and three of them varied by a third between plans."""
    fn()  # warm-up (allocator, kernels, autotuning)
    times = []
    while len(times) < reps or (sum(times) < min_total_s and len(times) < max_reps):
        sync_device(device)
        t0 = time.perf_counter()
        fn()
        sync_device(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_passes(model, x: torch.Tensor, batch_size: int, device: torch.device, reps: int = 3) -> PassCost:
    """FLOPs on one sample of `x`; seconds of one forward and one forward+backward call on 1 row, a quarter of
    `batch_size` and `batch_size` rows (copies of it)."""
    one = x[:1].to(device)
    f_fwd, f_both = count_flops(model, one)

    def forward(b):
        with torch.no_grad():
            model(b)

    sizes = timed_sizes(batch_size)
    fwd, bwd = [], []
    for size in sizes:
        batch = one.expand(size, *one.shape[1:]).contiguous()
        fwd.append(median_seconds(lambda batch=batch: forward(batch), device, reps))
        bwd.append(median_seconds(lambda batch=batch: _grad_pass(model, batch), device, reps))
    return PassCost(f_fwd, f_both, fwd[-1], bwd[-1], batch_size, sizes, tuple(fwd), tuple(bwd))


def bound_passes(model, x: torch.Tensor, batch_size: int, peak_flops: float) -> PassCost:
    """FLOPs on one sample of `x`, and the seconds per batch a device of `peak_flops` would need at its peak:
    the cost of planning for a card this machine does not have (nothing is timed; a call costs its rows' FLOPs)."""
    f_fwd, f_both = count_flops(model, x[:1])
    return PassCost(f_fwd, f_both, f_fwd * batch_size / peak_flops, f_both * batch_size / peak_flops, batch_size,
                    (batch_size,), (f_fwd * batch_size / peak_flops,), (f_both * batch_size / peak_flops,))


class PassCounter(torch.nn.Module):
    """`model` that counts the sample-passes made through it: rows of a forward with an input that requires a
    gradient are forward+backward passes, the others forwards (the embedding threats' `embed` likewise)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.forward_rows = 0
        self.backward_rows = 0
        self.forward_calls = 0
        self.backward_calls = 0

    def __getattr__(self, name):  # num_classes, class_embeddings, logits_from...: the model's own
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["model"], name)

    def _count(self, x: torch.Tensor) -> None:
        if torch.is_grad_enabled() and x.requires_grad:
            self.backward_rows += x.shape[0]
            self.backward_calls += 1
        else:
            self.forward_rows += x.shape[0]
            self.forward_calls += 1

    def forward(self, x):
        self._count(x)
        return self.model(x)

    def embed(self, x):
        self._count(x)
        return self.model.embed(x)

    def per_sample(self, n: int) -> tuple[float, float]:
        return self.forward_rows / n, self.backward_rows / n

    @property
    def calls(self) -> tuple[int, int]:
        return self.forward_calls, self.backward_calls


def cost_seconds(passes: PassCount, n: int, cost: PassCost) -> float:
    """Seconds for `passes` per sample on n samples in full batches of the measured size (the worst case; source
    passes priced as the evaluated model's)."""
    fwd, bwd = passes.forward + passes.source_forward, passes.backward + passes.source_backward
    return n / cost.batch_size * (fwd * cost.seconds_forward + bwd * cost.seconds_backward)


def groups_seconds(groups: list[CallGroup], cost: PassCost) -> float:
    """Seconds of the expected calls: each group's calls at its mean rows per call, and the attack's own work
    around each call."""
    return sum(g.calls * (cost.call_seconds(g.backward, g.rows / g.calls) + g.outside_s) for g in groups
               if g.calls > 0)


def cost_flops(passes: PassCount, n: int, cost: PassCost) -> float:
    fwd, bwd = passes.forward + passes.source_forward, passes.backward + passes.source_backward
    return n * (fwd * cost.flops_forward + bwd * cost.flops_backward)
