"""Rows do not depend on the batch a sample is evaluated in: real batches of 1, 7 and 32 through the runner, and
PGD's early exit (broken samples leave the batch) against a plain full-length PGD loop written here.

Both use the committed demo backbone on real handwritten digits: it is right on almost every sample, so PGD
has something to break, and the chosen eps leave a mix of samples broken early, broken late and never broken.
"""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from digit_folders import DEMO_MODEL, TEMPLATE, write_digit_folders

from rlbind_bench.config import RunConfig
from rlbind_bench.encoders.registry import load_encoder
from rlbind_bench.modalities import get_handler
from rlbind_bench.runner import RunRequest, run_evaluation
from rlbind_bench.threats.base import AttackContext
from rlbind_bench.threats.pgd import PGD
from rlbind_bench.threats.spec import PGDSpec
from rlbind_bench.zeroshot import ZeroShotClassifier, build_class_embeddings


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digit_folders(tmp_path_factory.mktemp("digits"), per_class=4)  # 40 samples, 10 classes


# ---------------------------------------------------------------------------------------------------------------
# Real batches of 1, 7 and 32 through the runner

# The PGD settings of the early-exit test below: small steps from the random start, so that the second restart
# breaks samples the first did not.
THREATS = {
    "bi-linf": "attack: pgd\nnorm: Linf\neps: [20/255]\nsteps: 3\nstep_size: 4/255\nrestarts: 2\n",
    "bi-l2": "attack: pgd\nnorm: L2\neps: [2.0]\nsteps: 2\nstep_size: 0.5\nrestarts: 2\n",
    "bi-corruptions": "attack: corruptions\ncorruptions: [gaussian_noise, defocus_blur, jpeg_compression]\n"
                      "severities: [2, 4]\n",
}
COMMON = "random_start: true\nseed: 0\nmodalities: [image]\n"
FLOATS = {"margin": 5e-3, "perturbation_norm": 2e-3}  # absolute tolerances, see the test's docstring


@pytest.fixture(scope="module")
def batch_runs(digits, tmp_path_factory):
    """The same run at batch sizes 32, 7 and 1 (40 samples, one shard), each with fresh caches."""
    root = tmp_path_factory.mktemp("batches")
    (root / "attacks").mkdir()
    for name, text in THREATS.items():
        extra = COMMON if "pgd" in text else "seed: 0\nmodalities: [image]\n"
        (root / "attacks" / f"{name}.yaml").write_text(text + extra)
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLBIND_ATTACKS_DIR", str(root / "attacks"))  # the bundled attacks/ replaced (bundled.py)
        for batch in (32, 7, 1):
            mp.setenv("RLBIND_CACHE_DIR", str(root / f"cache-{batch}"))
            cfg = RunConfig(model=str(DEMO_MODEL), threats=list(THREATS), templates=[TEMPLATE], batch_size=batch)
            runs[batch] = run_evaluation(RunRequest(config=cfg, out=root / f"out-{batch}",
                                                    dataset_dirs={"image": str(digits)}, progress=False))
    return runs


def test_rows_do_not_depend_on_the_batch_size(batch_runs):
    """Batches of 1, 7 (five full batches and one of 5) and 32 (one full batch and one of 8) give the same rows
    for clean inputs, L-inf and L2 PGD (random start, 2 restarts) and three corruptions at two severities: every
    column exactly, run_id and config_hash included (the batch size is not part of them), except the two float
    columns, which agree to 5e-3 (margin, a difference of logits of magnitude up to ~40) and 2e-3
    (perturbation_norm; eps 20/255 ~ 0.078 and 2.0), absolute: the model itself is not bit-identical across batch
    sizes on CPU (its kernels round differently for 1, 7 and 32 rows), and the kernels differ by processor: one
    machine showed 3e-5 and 2e-6, another, at batch 1, 1.3e-3 on the margin of one L-inf PGD row and 5.6e-4 on the
    perturbation norm of one L2 PGD row (rounding that PGD's steps carry forward; pred, correct and broken_by
    still equal). The breaks below show in the exact columns.

    Seen to catch (each made the test fail): PGD random starts seeded by position in the batch instead of sample
    id (`for sid in map(str, range(len(ids)))` in `pgd.random_start`: 0.6% of pred differ), and a batch's
    corrupted inputs all read from its first sample's cache entry (`PrefetchedCorruptions.batch`)."""
    first = batch_runs[32].samples
    assert set(first["threat"].str.split(":").str[0]) == {"clean", *THREATS}
    assert len(first) == 40 * (1 + 1 + 1 + 3 * 2)
    pgd_rows = first[first["attack"] == "pgd"]
    assert 0 < (pgd_rows["broken_by"] == "pgd").sum() < pgd_rows["attacked"].sum()  # PGD breaks some, not all
    assert [list(r.run["batch_sizes"].values()) for r in batch_runs.values()] == [[32], [7], [1]]
    for batch in (7, 1):
        run = batch_runs[batch]
        other = run.samples
        assert run.run["run_id"] == batch_runs[32].run["run_id"]
        assert list(other.columns) == list(first.columns)
        exact = [c for c in first.columns if c not in FLOATS]
        pd.testing.assert_frame_equal(other[exact], first[exact], check_exact=True)
        for column, tol in FLOATS.items():
            a, b = first[column].to_numpy(), other[column].to_numpy()
            assert (pd.isna(a) == pd.isna(b)).all(), column
            diff = abs(a - b)[~pd.isna(a)]
            worst = first[~pd.isna(a)].iloc[int(diff.argmax())]
            assert diff.max() <= tol, (column, batch, diff.max(), worst["threat"], worst["sample_id"])
        pd.testing.assert_frame_equal(run.summary, batch_runs[32].summary, check_exact=False, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# PGD early exit == a full-length loop


class PerSample(torch.nn.Module):
    """The classifier applied to one sample at a time, counting the rows it sees.

    CPU kernels round differently for different batch sizes (a sample's logits at batch 1 and batch 32 differ in
    the last bits), so a batch that shrinks would drift from a full batch by rounding alone. Run one sample at a
    time, every sample's logits and gradient are bit-identical whichever samples share its batch, and the two
    implementations can be compared exactly: what is left is the early-exit logic itself."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows = model, []

    def forward(self, x):
        self.rows.append(len(x))
        return torch.cat([self.model(x[i:i + 1]) for i in range(len(x))])


def _start(x, eps, norm, sample_id, seed, salt):
    """The documented random start: drawn per sample from a generator seeded by (seed, sample id, cell, restart)."""
    digest = hashlib.sha256(f"{seed}|{sample_id}|{salt}".encode()).digest()
    g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    if norm == "Linf":
        d = (torch.rand(x.shape, generator=g) * 2 - 1) * eps
    else:
        d = torch.randn(x.shape, generator=g)
        d = d / d.norm().clamp_min(1e-12) * (torch.rand((), generator=g) * eps)
    return (x + d).clamp(0, 1)


def _full_length_pgd(model, x, y, ids, *, eps, norm, steps, step_size, restarts, seed, salt):
    """Plain PGD: in every restart every sample is iterated for all steps. A sample's result is its first
    misclassified iterate (of the first restart that has one), else the last iterate of the last restart.
    Returns (logits of the result, (restart, step) it broke at or None) per sample."""
    n, view = len(x), (-1,) + (1,) * (x.dim() - 1)
    result, broke = [None] * n, [None] * n
    for r in range(restarts):
        cur = torch.stack([_start(x[i], eps, norm, ids[i], seed, f"{salt}|r{r}") for i in range(n)])
        first = [None] * n
        for t in range(steps + 1):  # step `steps` only evaluates the last iterate
            cur = cur.detach().requires_grad_(t < steps)
            logits = model(cur).float()
            for i in range(n):
                if first[i] is None and int(logits[i].argmax()) != int(y[i]):
                    first[i] = (t, logits[i].detach().clone())
            if t == steps:
                break
            grad, = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), cur)
            with torch.no_grad():
                if norm == "Linf":
                    direction = grad.sign()
                    delta = (cur + step_size * direction - x).clamp(-eps, eps)
                else:
                    direction = grad / grad.flatten(1).norm(p=2, dim=1).clamp_min(1e-12).view(view)
                    delta = cur + step_size * direction - x
                    delta = delta * torch.clamp(eps / delta.flatten(1).norm(p=2, dim=1).clamp_min(1e-12),
                                                max=1.0).view(view)
                cur = (x + delta).clamp(0, 1)
        for i in range(n):
            if broke[i] is not None:
                continue
            if first[i] is not None:
                broke[i], result[i] = (r, first[i][0]), first[i][1]
            else:
                result[i] = logits[i].detach().clone()
    return torch.stack(result), broke


@pytest.fixture(scope="module")
def digit_classifier(digits):
    enc = load_encoder(str(DEMO_MODEL)).eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    names = sorted(p.name for p in digits.iterdir())
    files = sorted(digits.rglob("*.png"))
    x = torch.stack([get_handler("image").load(f, enc.preprocess_config("image")) for f in files])
    y = torch.tensor([names.index(f.parent.name) for f in files])
    ids = [f.relative_to(digits).as_posix() for f in files]
    clf = ZeroShotClassifier(enc, "image", build_class_embeddings(enc, names, [TEMPLATE])).eval()
    return clf, x, y, ids


# Small steps from the random start, so that the start matters and the second restart breaks samples too.
@pytest.mark.parametrize(("norm", "eps", "steps", "step_size"), [("Linf", 20 / 255, 3, 4 / 255), ("L2", 2.0, 2, 0.5)])
def test_pgd_early_exit_equals_full_length_loop(digit_classifier, norm, eps, steps, step_size):
    """`_attack_until_broken` (a sample leaves the batch at its first misclassified iterate) gives, with random
    start and 2 restarts, the rows of plain full-length PGD: pred, correct and broken_by exactly, and the margin
    exactly too (tolerance 0: the per-sample model makes both bit-identical; see PerSample).

    Seen to catch (each made the test fail): a restart drawing its starts for the wrong samples
    (`sub_ids = ids[: int(todo.sum())]` in `pgd`), every restart re-attacking every sample so that a later restart
    overwrites an earlier success (`todo = torch.ones_like(broken)`), and the last iterate never checked
    (`found[active] = False` after the final forward)."""
    clf, x, y, ids = digit_classifier
    restarts, seed = 2, 0
    spec = PGDSpec(name="t", attack="pgd", norm=norm, eps=(eps,), steps=steps, step_size=step_size,
                   restarts=restarts, random_start=True, only_correct=False, seed=seed)
    attack = PGD(spec)
    cell = attack.cells("image")[0]
    model = PerSample(clf)
    with torch.no_grad():
        clean = model(x)
    model.rows.clear()
    ctx = AttackContext("image", 0, ids, clean, 0.0, 1.0, clean.shape[1], torch.device("cpu"))
    res = attack.run(model, x, y, cell, ctx)
    early_rows = sum(model.rows)

    model.rows.clear()
    ref_logits, broke = _full_length_pgd(model, x, y, ids, eps=eps, norm=norm, steps=steps,
                                         step_size=step_size, restarts=restarts, seed=seed, salt=cell.key)
    ref_pred = ref_logits.argmax(1)
    true = ref_logits.gather(1, y[:, None]).squeeze(1)
    ref_margin = true - ref_logits.scatter(1, y[:, None], float("-inf")).max(1).values

    # The cases the early exit must get right all occur here.
    assert any(b == (0, 0) for b in broke), "no sample misclassified at the random start"
    assert any(b is not None and b[0] == 0 and b[1] > 0 for b in broke), "none broken by a later step of restart 1"
    assert any(b is not None and b[0] == 1 for b in broke), "none broken only by the second restart"
    assert any(b is None for b in broke), "every sample broken: eps too large to test the survivors"

    assert res.attacked.all()
    assert res.valid.all()
    assert torch.equal(res.pred, ref_pred)
    assert torch.equal(res.pred == y, ref_pred == y)  # correct
    assert res.broken_by == ["pgd" if b is not None else "" for b in broke]
    assert torch.equal(res.margin, ref_margin)
    # Broken samples left the batch: each was evaluated up to the iterate that broke it, no further.
    expected_rows = sum(restarts * (steps + 1) if b is None else b[0] * (steps + 1) + b[1] + 1 for b in broke)
    assert early_rows == expected_rows < sum(model.rows) == restarts * (steps + 1) * len(x)
