"""Peak dense throughput of known accelerators, per dtype, for the plan's compute bound.

From NVIDIA's datasheets (dense figures: the datasheets' tensor-core numbers "with sparsity" are twice
these); docs/benchmarks.md "Cost plan" cites them. A card not in the table has no compute bound (None);
on CPU the peak is a measured matmul throughput, not a datasheet figure.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from rlbind_bench.errors import UserError

# name fragment of torch.cuda.get_device_name -> dtype -> TFLOP/s, dense. Checked in order: the more specific
# names first (an "H100 PCIe" is not an SXM card).
PEAK_TFLOPS: list[tuple[str, dict[str, float]]] = [
    ("H100 PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.0}),
    ("H100", {"bf16": 989.0, "tf32": 495.0, "fp32": 67.0}),  # SXM
    ("H200", {"bf16": 989.0, "tf32": 495.0, "fp32": 67.0}),  # same compute as H100 SXM
    ("A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("L4", {"bf16": 121.0, "tf32": 60.0, "fp32": 30.3}),
]


@dataclass(frozen=True)
class Peak:
    flops: float | None  # FLOP/s; None: unknown card
    dtype: str  # the table's column: bf16, tf32 or fp32
    source: str  # "datasheet <name>", "measured matmul", or "unknown <name>"


def matmul_dtype(device: torch.device, precision: str) -> str:
    """The dtype the encoder's matmuls run in: bf16 under --precision bf16; fp32 runs as TF32 where torch
    allows it (torch.backends.cuda.matmul.allow_tf32, off by default)."""
    if precision == "bf16":
        return "bf16"
    if device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "fp32"


def device_peak(device: torch.device, precision: str) -> Peak:
    dtype = matmul_dtype(device, precision)
    if device.type != "cuda":
        return Peak(measured_matmul_flops(torch.bfloat16 if dtype == "bf16" else torch.float32), dtype,
                    "measured matmul")
    name = torch.cuda.get_device_name(device)
    for fragment, peaks in PEAK_TFLOPS:
        if fragment in name:
            return Peak(peaks[dtype] * 1e12, dtype, f"datasheet {fragment}")
    return Peak(None, dtype, f"unknown {name}")


def datasheet_peak(card: str, precision: str) -> Peak:
    """The peak of a card named by the user (`run --plan-for H100`), for planning on a machine without it: bf16
    under --precision bf16, else fp32 (torch's default keeps TF32 off for matmuls)."""
    dtype = "bf16" if precision == "bf16" else "fp32"
    for fragment, peaks in PEAK_TFLOPS:
        if card.strip().lower() == fragment.lower():
            return Peak(peaks[dtype] * 1e12, dtype, f"datasheet {fragment}")
    known = ", ".join(f for f, _ in PEAK_TFLOPS)
    raise UserError(f"--plan-for {card!r}: no datasheet peak for this card (known: {known})")


def measured_matmul_flops(dtype: torch.dtype, n: int = 512, reps: int = 5) -> float:
    """FLOP/s of an n x n matmul on this CPU (median of `reps`): the CPU's 'peak' for the compute bound."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / max(statistics.median(times), 1e-9)
