"""`--batch-size auto` (rlbind_bench/batching.py): the memory model and the CPU path."""

from __future__ import annotations

import pytest
import torch

from rlbind_bench.batching import AUTO, CPU_BATCH, auto_batch_size, fit_batch_size, parse_batch_size
from rlbind_bench.errors import ConfigError


@pytest.mark.parametrize(("value", "expected"), [("auto", AUTO), ("AUTO", AUTO), ("16", 16), (16, 16), (" 8 ", 8)])
def test_parse_batch_size_accepts(value, expected):
    assert parse_batch_size(value) == expected


@pytest.mark.parametrize("value", ["0", 0, -3, "-1", "1.5", 1.5, "many", "", True, None])
def test_parse_batch_size_refuses(value):
    with pytest.raises(ConfigError, match="positive integer or 'auto'"):
        parse_batch_size(value)


def test_fit_separates_fixed_and_per_sample_cost():
    calls = []

    def peak(b):  # 3 GB of weights and workspace, 50 MB per sample
        calls.append(b)
        return 3_000_000_000 + 50_000_000 * b

    # 70% of 80 GB = 56 GB; (56 - 3) GB / 50 MB = 1060 samples -> 1024
    assert fit_batch_size(peak, 80_000_000_000, cap=4096) == 1024
    assert calls == [4, 8]
    assert fit_batch_size(peak, 80_000_000_000, cap=256) == 256
    # 10 GB free: (7 - 3) GB / 50 MB = 80 -> 64; a naive peak/probe model would give 32 or less
    assert fit_batch_size(peak, 10_000_000_000) == 64
    # the fixed cost alone leaves no room for a sample
    assert fit_batch_size(peak, 4_000_000_000) == 1


def test_fit_never_exceeds_the_budget():
    for per in (1, 7, 1000, 123_457):
        for fixed in (0, 10, 10_000):
            free = 1_000_000
            b = fit_batch_size(lambda n, per=per, fixed=fixed: fixed + per * n, free)
            assert b == 1 or fixed + per * b <= 0.7 * free
            assert b & (b - 1) == 0  # a power of two


def test_cpu_auto_is_the_fixed_cpu_batch():
    model = torch.nn.Linear(4, 3)
    x = torch.zeros(4)
    assert auto_batch_size(model, x, torch.device("cpu"), needs_grad=True, n_samples=1000) == CPU_BATCH
    assert auto_batch_size(model, x, torch.device("cpu"), needs_grad=True, n_samples=5) == 5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_auto_batch_runs_without_oom():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 64 * 64, 10)).cuda()
    b = auto_batch_size(model, torch.rand(3, 64, 64), torch.device("cuda"), needs_grad=True, n_samples=10**9)
    x = torch.rand(b, 3, 64, 64, device="cuda", requires_grad=True)
    torch.autograd.grad(model(x).sum(), x)
    assert b >= 64


def test_flat_probe_is_read_cautiously_and_a_second_probe_oom_keeps_the_first():
    # No growth between the probes: the whole peak of the larger probe is taken as per-sample cost.
    # 0.7 * 1e6 / (8000 / 8) = 700 -> 512; reading the flat probe as "free per sample" would give the cap
    assert fit_batch_size(lambda b: 8_000, 1_000_000) == 512

    def oom_at_8(b):
        if b >= 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return 1000 * b

    assert fit_batch_size(oom_at_8, 10**12) == 4


def test_resolve_auto_on_cpu_and_with_autoattack():
    from rlbind_bench.batching import resolve_batch_size

    model = torch.nn.Linear(4, 3)

    def never():
        raise AssertionError("no input needs decoding on CPU or for AutoAttack")

    cpu = torch.device("cpu")
    assert resolve_batch_size("auto", model, never, cpu, needs_grad=True, n_samples=5) == 5
    assert resolve_batch_size("auto", model, never, cpu, needs_grad=True, n_samples=500) == CPU_BATCH
    assert resolve_batch_size(7, model, never, cpu, needs_grad=True, n_samples=500) == 7
    # AutoAttack's rows depend on its batch: auto never makes them depend on the free memory of a GPU.
    assert resolve_batch_size("auto", model, never, torch.device("cuda"), needs_grad=True, n_samples=500,
                              batch_dependent=True) == CPU_BATCH


def test_oom_backoff_remembers_the_size_that_fits(monkeypatch):
    from rlbind_bench import runner

    tried = []

    def fake_batch(grid, x, idx, refs):
        tried.append(len(idx))
        if len(idx) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return [(i,) for i in idx]

    monkeypatch.setattr(runner, "evaluate_batch", fake_batch)
    grid = runner.DatasetGrid(*(None,) * 10, fits=[8])
    first = runner._evaluate_with_backoff(grid, torch.zeros(8, 1), list(range(8)), [{}] * 8)
    assert [r[0] for r in first] == list(range(8))
    assert grid.fits == [2]
    assert tried == [8, 4, 2, 2, 2, 2]  # the second half (4) is split at once: 2 is known to fit
    tried.clear()
    second = runner._evaluate_with_backoff(grid, torch.zeros(8, 1), list(range(8, 16)), [{}] * 8)
    assert [r[0] for r in second] == list(range(8, 16))
    assert tried == [2, 2, 2, 2]  # no out-of-memory retry: later batches start at the size that fitted
