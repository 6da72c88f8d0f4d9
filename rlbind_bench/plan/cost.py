"""Measurements the plan costs passes with: FLOPs per pass, time per pass, and passes actually made.

FLOPs are counted on one sample with torch's FlopCounterMode (matmuls and convolutions; elementwise work is
not counted), forward alone and forward+backward with respect to the input (the attacks' pass: the weights
are frozen, so there is no weight gradient). Times are the median of a few passes on the run's device, dtype
and batch size. `PassCounter` counts the sample-passes an attack makes, by running it (the expected cost).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from rlbind_bench.threats.base import PassCount


@dataclass(frozen=True)
class PassCost:
    """FLOPs per sample and seconds per batch of one forward and one forward+backward pass, at the run's batch
    size, and the same split into a fixed cost per call and a cost per sample (a line through two batch sizes):
    early exit leaves attacks with small batches, whose per-sample cost is not the full batch's."""

    flops_forward: int
    flops_backward: int
    seconds_forward: float
    seconds_backward: float
    batch_size: int
    call_forward: float = 0.0  # seconds per call, whatever its rows
    call_backward: float = 0.0
    row_forward: float = 0.0  # seconds per row
    row_backward: float = 0.0


def _line(small: float, large: float, b_small: int, b_large: int) -> tuple[float, float]:
    """(per call, per row) through the times of two batch sizes; a line falling with the batch (timing noise)
    is read as all per-row cost."""
    if b_large <= b_small:
        return large, 0.0
    per_row = max(0.0, (large - small) / (b_large - b_small))
    return max(0.0, large - per_row * b_large), per_row if per_row > 0 else large / b_large


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, device: torch.device, reps: int) -> float:
    fn()  # warm-up (allocator, kernels, autotuning)
    times = []
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_passes(model, x: torch.Tensor, batch_size: int, device: torch.device, reps: int = 3) -> PassCost:
    """FLOPs on one sample of `x`; time per pass on a batch of `batch_size` copies of it and on a quarter of
    that, for the per-call and per-row split."""
    one = x[:1].to(device)
    f_fwd, f_both = count_flops(model, one)
    small = max(1, batch_size // 4)

    def forward(b):
        with torch.no_grad():
            model(b)

    times = {}
    for size in sorted({small, batch_size}):
        batch = one.expand(size, *one.shape[1:]).contiguous()
        times[size] = (median_seconds(lambda batch=batch: forward(batch), device, reps),
                       median_seconds(lambda batch=batch: _grad_pass(model, batch), device, reps))
    (fwd_s, bwd_s), (fwd_l, bwd_l) = times[small], times[batch_size]
    call_f, row_f = _line(fwd_s, fwd_l, small, batch_size)
    call_b, row_b = _line(bwd_s, bwd_l, small, batch_size)
    return PassCost(f_fwd, f_both, fwd_l, bwd_l, batch_size, call_f, call_b, row_f, row_b)


def bound_passes(model, x: torch.Tensor, batch_size: int, peak_flops: float) -> PassCost:
    """FLOPs on one sample of `x`, and the seconds per batch a device of `peak_flops` would need at its peak:
    the cost of planning for a card this machine does not have (nothing is timed)."""
    f_fwd, f_both = count_flops(model, x[:1])
    return PassCost(f_fwd, f_both, f_fwd * batch_size / peak_flops, f_both * batch_size / peak_flops, batch_size,
                    row_forward=f_fwd / peak_flops, row_backward=f_both / peak_flops)


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


def cost_seconds(passes: PassCount | tuple[float, float], n: int, cost: PassCost,
                 calls: tuple[float, float] | None = None) -> float:
    """Seconds for `passes` per sample on n samples (source passes priced as the evaluated model's). Without
    `calls`: full batches of the measured size throughout (the worst case, and cells not probed). With `calls`
    (model calls per batch, counted on the probe): each of the ceil(n / batch) batches pays the fixed cost per
    call, and every row its per-row cost, so shrinking batches are priced as they run."""
    if isinstance(passes, PassCount):
        fwd, bwd = passes.forward + passes.source_forward, passes.backward + passes.source_backward
    else:
        fwd, bwd = passes
    if calls is None:
        return n / cost.batch_size * (fwd * cost.seconds_forward + bwd * cost.seconds_backward)
    batches = math.ceil(n / cost.batch_size)
    return (batches * (calls[0] * cost.call_forward + calls[1] * cost.call_backward)
            + n * (fwd * cost.row_forward + bwd * cost.row_backward))


def cost_flops(passes: PassCount, n: int, cost: PassCost) -> float:
    fwd, bwd = passes.forward + passes.source_forward, passes.backward + passes.source_backward
    return n * (fwd * cost.flops_forward + bwd * cost.flops_backward)
