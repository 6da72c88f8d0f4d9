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

from rlbind_bench.threats.base import PassCount


@dataclass(frozen=True)
class PassCost:
    """FLOPs per sample and seconds per batch of one forward and one forward+backward pass."""

    flops_forward: int
    flops_backward: int
    seconds_forward: float
    seconds_backward: float
    batch_size: int


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
    """FLOPs on one sample of `x`; time per pass on a batch of `batch_size` copies of it."""
    one = x[:1].to(device)
    f_fwd, f_both = count_flops(model, one)
    batch = one.expand(batch_size, *one.shape[1:]).contiguous()

    def forward():
        with torch.no_grad():
            model(batch)

    return PassCost(f_fwd, f_both, median_seconds(forward, device, reps),
                    median_seconds(lambda: _grad_pass(model, batch), device, reps), batch_size)


def bound_passes(model, x: torch.Tensor, batch_size: int, peak_flops: float) -> PassCost:
    """FLOPs on one sample of `x`, and the seconds per batch a device of `peak_flops` would need at its peak:
    the cost of planning for a card this machine does not have (nothing is timed)."""
    f_fwd, f_both = count_flops(model, x[:1])
    return PassCost(f_fwd, f_both, f_fwd * batch_size / peak_flops, f_both * batch_size / peak_flops, batch_size)


class PassCounter(torch.nn.Module):
    """`model` that counts the sample-passes made through it: rows of a forward with an input that requires a
    gradient are forward+backward passes, the others forwards (the embedding threats' `embed` likewise)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.forward_rows = 0
        self.backward_rows = 0

    def __getattr__(self, name):  # num_classes, class_embeddings, logits_from...: the model's own
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["model"], name)

    def _count(self, x: torch.Tensor) -> None:
        if torch.is_grad_enabled() and x.requires_grad:
            self.backward_rows += x.shape[0]
        else:
            self.forward_rows += x.shape[0]

    def forward(self, x):
        self._count(x)
        return self.model(x)

    def embed(self, x):
        self._count(x)
        return self.model.embed(x)

    def per_sample(self, n: int) -> tuple[float, float]:
        return self.forward_rows / n, self.backward_rows / n


def cost_seconds(passes: PassCount | tuple[float, float], n: int, cost: PassCost) -> float:
    """Seconds for `passes` per sample on n samples, in full batches of the measured size (source passes
    priced as the evaluated model's)."""
    if isinstance(passes, PassCount):
        fwd, bwd = passes.forward + passes.source_forward, passes.backward + passes.source_backward
    else:
        fwd, bwd = passes
    return n / cost.batch_size * (fwd * cost.seconds_forward + bwd * cost.seconds_backward)


def cost_flops(passes: PassCount, n: int, cost: PassCost) -> float:
    fwd, bwd = passes.forward + passes.source_forward, passes.backward + passes.source_backward
    return n * (fwd * cost.flops_forward + bwd * cost.flops_backward)
