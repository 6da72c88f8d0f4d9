"""The cost plan (rlbind_bench/plan, `run --plan`): pass budgets equal the passes the attacks make, FLOPs
equal a hand count, and --plan runs nothing and writes nothing under --out."""

from __future__ import annotations

import json
import time

import pytest
import torch
from torch import nn

from rlbind_bench.cli import main
from rlbind_bench.modalities.base import InputSpace
from rlbind_bench.plan.cost import count_flops
from rlbind_bench.threats.autoattack import AutoAttackThreat
from rlbind_bench.threats.base import AttackContext
from rlbind_bench.threats.checks import probe_budget
from rlbind_bench.threats.corruption_threat import CorruptionThreat
from rlbind_bench.threats.pgd import PGD
from rlbind_bench.threats.probes import run_probes
from rlbind_bench.threats.spec import AutoAttackSpec, CorruptionSpec, PGDSpec

C = 5


class Robust(nn.Module):
    """Class 0 by a margin no small eps can close, with a live input gradient (the margin does not saturate
    float32's softmax: pyautoattack stops on zero gradients): no sample ever breaks, so
    every attack spends its whole budget (the plan's "at most")."""

    num_classes = C

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3 * 32 * 32, 4).requires_grad_(False)
        self.class_embeddings = torch.eye(C)[:, :4]

    def embed(self, x):
        return self.lin(x.flatten(1))

    def logits_from(self, emb):
        bias = torch.zeros(C, device=emb.device)
        bias[0] = 20.0
        return torch.cat([emb.sum(1, keepdim=True), torch.zeros(len(emb), C - 1)], 1) * 0.01 + bias

    def forward(self, x):
        return self.logits_from(self.embed(x))


class Counted(nn.Module):
    """Counts the rows passed through `model` (and its embed): with an input needing a gradient as
    forward+backward passes, else as forwards."""

    def __init__(self, model):
        super().__init__()
        self.inner = model
        self.fwd = self.bwd = 0
        self.num_classes = model.num_classes
        self.class_embeddings = model.class_embeddings
        self.logits_from = model.logits_from

    def _count(self, x):
        if torch.is_grad_enabled() and x.requires_grad:
            self.bwd += len(x)
        else:
            self.fwd += len(x)

    def forward(self, x):
        self._count(x)
        return self.inner(x)

    def embed(self, x):
        self._count(x)
        return self.inner.embed(x)


def _batch(n=3):
    torch.manual_seed(0)
    x = torch.rand(n, 3, 32, 32)
    y = torch.zeros(n, dtype=torch.long)
    return x, y


def _ctx(model, x):
    with torch.no_grad():
        clean = model(x).float()
    return AttackContext("image", 0, [f"s{i}" for i in range(len(x))], clean, 0.0, 1.0, C, torch.device("cpu"))


@pytest.mark.parametrize(("restarts", "eot", "only_correct"), [(1, 1, True), (3, 2, False)])
def test_pgd_budget_equals_passes_made(restarts, eot, only_correct):
    attack = PGD(PGDSpec(name="p", attack="pgd", eps=(4 / 255,), steps=7, restarts=restarts, eot_iter=eot,
                         only_correct=only_correct))
    x, y = _batch()
    model = Counted(Robust())
    ctx = _ctx(Robust.forward.__get__(model.inner), x)
    cell = attack.cells("image")[0]
    result = attack.run(model, x, y, cell, ctx)
    assert not result.broken_by[0]  # nothing broke: the whole budget was spent
    budget = attack.pass_budget(cell, C)
    assert (budget.forward, budget.backward) == (model.fwd / len(x), model.bwd / len(x))


def test_corruption_budget_is_one_forward():
    attack = CorruptionThreat(CorruptionSpec(name="c", attack="corruptions", corruptions=("gaussian_noise",),
                                             severities=(2,)))
    x, y = _batch()
    model = Counted(Robust())
    cell = attack.cells("image")[0]
    attack.run(model, x, y, cell, _ctx(model.inner, x))
    budget = attack.pass_budget(cell, C)
    assert (budget.forward, budget.backward) == (model.fwd / len(x), model.bwd / len(x)) == (1, 0)


@pytest.mark.parametrize("label_free", [False, True])
def test_probe_budget_equals_passes_made(label_free):
    x, _ = _batch(4)
    model = Counted(Robust())
    run_probes(list(x), model, InputSpace("image", tuple(x.shape[1:]), 0.0, 1.0, ""), "cpu", "Linf", label_free)  # what the runner runs
    budget = probe_budget(label_free)
    assert (budget.forward, budget.backward) == (model.fwd / len(x), model.bwd / len(x))


@pytest.mark.parametrize("runs", [("apgd-ce", "apgd-t", "fab-t"), ("fab",)])
def test_autoattack_budget_equals_passes_made(runs):
    """Custom AutoAttack, 3 iterations, without Square (5000 queries: too slow here; its count is its query
    loop's): the sub-attacks' passes and the reference's own checks, counted. FAB (untargeted) back-propagates
    one graph once per class: the counter sees the graph's forward, the budget a forward+backward per class."""
    spec = AutoAttackSpec(name="aa", attack="autoattack", eps=(1 / 255,), steps=3, version="custom",
                          attacks_to_run=runs, n_target_classes=2)
    attack = AutoAttackThreat(spec)
    x, y = _batch(2)
    model = Counted(Robust())
    cell = attack.cells("image")[0]
    result = attack.run(model, x, y, cell, _ctx(model.inner, x))
    assert not any(result.broken_by)
    budget = attack.pass_budget(cell, C)
    per_graph = C if runs == ("fab",) else 1
    assert (budget.forward, budget.backward) == (model.fwd / len(x), model.bwd / len(x) * per_graph)


def test_flops_equal_a_hand_count():
    lin = nn.Linear(12, 5).requires_grad_(False)
    fwd, both = count_flops(lin, torch.rand(1, 12))
    assert fwd == 2 * 12 * 5  # one multiply-add per weight
    assert both == 2 * fwd  # frozen weights: the backward is the input's gradient only, one more matmul
    conv = nn.Conv2d(3, 4, kernel_size=3).requires_grad_(False)
    fwd, _ = count_flops(conv, torch.rand(1, 3, 5, 5))
    assert fwd == 2 * (4 * 3 * 3) * (3 * 3 * 3)  # outputs x (in-channels x kernel) multiply-adds


def test_plan_writes_nothing_under_out(checkpoints, photo_dir, tmp_path, capsys):
    out, plan = tmp_path / "out", tmp_path / "plan.json"
    rc = main(["run", "--model", str(checkpoints["image"]), "--suite", "clean", "--threats", "linf-pgd",
               "--steps", "2", "--eps", "4/255", "--modalities", "image", "--dataset-dir", f"image={photo_dir}",
               "--n-samples", "4", "--out", str(out), "--plan", "--plan-json", str(plan), "--no-progress"])
    assert rc == 0
    assert not out.exists()
    data = json.loads(plan.read_text())
    assert set(data["totals"]) >= {"compute_bound_s", "worst_case_s", "expected_s"}
    assert data["totals"]["worst_case_s"] > 0
    pgd = [c for c in data["cells"] if c["cell"].startswith("linf-pgd")]
    assert [(c["budget"]["forward"], c["budget"]["backward"]) for c in pgd] == [(1, 2)]
    assert "linf-pgd" in capsys.readouterr().out


def _plan_for(checkpoints, photo_dir, tmp_path, name, *extra):
    rc = main(["run", "--model", str(checkpoints["image"]), "--suite", "clean", "--threats", "linf-pgd",
               "--steps", "3", "--eps", "4/255", "--modalities", "image", "--dataset-dir", f"image={photo_dir}",
               "--out", str(tmp_path / "out"), "--plan-json", str(tmp_path / name), "--no-progress", *extra])
    assert rc == 0
    return json.loads((tmp_path / name).read_text())


def test_plan_for_a_card_prices_passes_at_its_datasheet_peak(checkpoints, photo_dir, tmp_path, one_thread):
    fp32 = _plan_for(checkpoints, photo_dir, tmp_path, "a.json", "--plan-for", "H100")
    bf16 = _plan_for(checkpoints, photo_dir, tmp_path, "b.json", "--plan-for", "h100", "--precision", "bf16")
    assert (fp32["peak_flops"], bf16["peak_flops"]) == (67e12, 989e12)  # NVIDIA's dense H100 SXM figures
    for plan in (fp32, bf16):
        t = plan["totals"]
        assert t["compute_bound_s"] == pytest.approx(t["flops"] / plan["peak_flops"])
        assert t["worst_case_s"] == pytest.approx(t["compute_bound_s"])  # at the peak: nothing else to wait for
        assert 0 < t["expected_s"] <= t["worst_case_s"]
        assert plan["target"] == "H100"
        pgd = [c for c in plan["cells"] if c["cell"].startswith("linf-pgd")]
        assert [c["expected_method"] for c in pgd] == ["scaled"]  # nothing probed for another card
    assert fp32["totals"]["flops"] == bf16["totals"]["flops"]


def test_plan_samples_prices_that_many_samples(checkpoints, photo_dir, tmp_path, one_thread):
    small = _plan_for(checkpoints, photo_dir, tmp_path, "a.json", "--plan-for", "A100", "--plan-samples", "500")
    large = _plan_for(checkpoints, photo_dir, tmp_path, "b.json", "--plan-for", "A100", "--plan-samples", "1000")
    cells = [c for c in large["cells"] if "probes" not in c["cell"]]
    assert {c["samples"] for c in cells} == {1000}
    no_probes = [sum(c["flops"] for c in p["cells"] if "probes" not in c["cell"]) for p in (small, large)]
    assert no_probes[1] == pytest.approx(2 * no_probes[0])


def test_plan_for_unknown_card_is_one_line(checkpoints, photo_dir, tmp_path, capsys):
    rc = main(["run", "--model", str(checkpoints["image"]), "--modalities", "image", "--dataset-dir",
               f"image={photo_dir}", "--out", str(tmp_path / "o"), "--plan-for", "GTX 480", "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "GTX 480" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("version", ["standard", "custom"])
def test_autoattack_stages_sum_to_its_budget(version):
    spec = AutoAttackSpec(name="aa", attack="autoattack", eps=(4 / 255,), version=version,
                          attacks_to_run=("apgd-ce", "apgd-t") if version == "custom" else (), n_target_classes=3)
    attack = AutoAttackThreat(spec)
    cell = attack.cells("image")[0]
    stages = attack.stage_budgets(cell, 10)
    assert len(stages) == (2 if version == "custom" else 4)  # one per sub-attack
    total = stages[0]
    for s in stages[1:]:
        total = total + s
    assert total == attack.pass_budget(cell, 10)
    if version == "standard":
        assert stages[-1].backward == 0  # Square, last: forward queries only


def test_plan_prices_later_autoattack_stages_on_the_short_attacks_survivors(checkpoints, photo_dir, tmp_path,
                                                                           one_thread):
    plan = _plan_for(checkpoints, photo_dir, tmp_path, "aa.json", "--threats", "autoattack-custom", "--steps", "60")
    aa = [c for c in plan["cells"] if c["cell"].startswith("autoattack")]
    clean_ok = plan["clean_accuracy"][aa[0]["dataset"]]
    for c in aa:
        assert c["expected_method"] == "scaled"
        stage0 = AutoAttackThreat(AutoAttackSpec(name="aa", attack="autoattack", eps=(4 / 255,), version="custom",
                                                 attacks_to_run=("apgd-ce", "apgd-t"), n_target_classes=9,
                                                 steps=60))
        first = stage0.stage_budgets(stage0.cells("image")[0], 4)[0]
        # at least the first sub-attack on every clean-correct sample, at most everything on them
        assert first.backward * clean_ok - 1e-9 <= c["expected"][1] <= c["budget"]["backward"] * clean_ok + 1e-9
        # PGD-20 at 4/255 breaks this random tower's samples: the later sub-attacks are priced on (almost) none
        assert c["expected"][1] < c["budget"]["backward"] * clean_ok - 1


def test_process_start_row_only_for_a_command_process(checkpoints, photo_dir, tmp_path, one_thread):
    """A `rlbind-bench` process counts its own start-up (interpreter, imports) once; a plan made inside another
    process (this test session) does not count that process's age."""
    from rlbind_bench.plan.measure import run_measured

    args = ["run", "--model", str(checkpoints["image"]), "--modalities", "image", "--dataset-dir",
            f"image={photo_dir}", "--threats", "linf-pgd", "--steps", "2", "--n-samples", "4", "--no-progress",
            "--out", str(tmp_path / "o")]
    measured = run_measured([*args, "--plan-json", str(tmp_path / "sub.json")])
    assert measured.returncode == 0, measured.output
    rows = [c for c in json.loads((tmp_path / "sub.json").read_text())["cells"] if c["cell"].startswith("process")]
    assert len(rows) == 1
    assert 0 < rows[0]["expected_s"] < measured.seconds
    assert main([*args, "--plan-json", str(tmp_path / "here.json")]) == 0
    assert not [c for c in json.loads((tmp_path / "here.json").read_text())["cells"] if c["cell"].startswith("process")]


class _Sleeper(nn.Module):
    """A model whose call costs 40 ms for one row and 2 ms per row from two rows on: far from linear, as a small
    tower's one-row call is next to its batched rows (cache and dispatch costs)."""

    def forward(self, x):
        time.sleep(0.04 if len(x) == 1 else 0.002 * len(x))
        return x.flatten(1)[:, :3] * 1.0


def test_plan_prices_a_call_at_its_own_row_count():
    """AutoAttack's Square and FAB-T call the model with one row at a time: the plan times a one-row call rather
    than extrapolating it from full batches (which priced Square's calls 45% low on a demo tower)."""
    from rlbind_bench.plan.cost import measure_passes

    cost = measure_passes(_Sleeper(), torch.zeros(1, 3, 4, 4), 32, torch.device("cpu"), reps=1)
    assert cost.call_seconds(False, 1) == pytest.approx(0.04, rel=0.25)
    assert cost.call_seconds(True, 1) == pytest.approx(0.04, rel=0.25)
    assert cost.call_seconds(False, 32) == pytest.approx(0.064, rel=0.25)
    between = cost.call_seconds(False, 20)  # between the timed 8 and 32 rows, on their line
    assert cost.call_seconds(False, 8) < between < cost.call_seconds(False, 32)


def test_autoattack_work_outside_the_model_grows_with_the_input():
    """FAB-T's projection sorts every input value each iteration, Square samples windows over the input: their
    time per call outside the model is timed around a stand-in classifier, and grows with the input's size."""
    spec = AutoAttackSpec(name="aa", attack="autoattack", eps=(4 / 255,))
    attack = AutoAttackThreat(spec)
    cell = attack.cells("image")[0]
    small, large = (attack.stage_outside_seconds(cell, 10, torch.rand(1, 3, s, s), 0.0, 1.0, torch.device("cpu"), 4)
                    for s in (16, 160))
    assert list(spec.sub_attacks(10)) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert all(t > 0 for t in small + large)
    assert large[2] > 5 * small[2]  # FAB-T: 100x the values to sort


def test_plan_adds_autoattack_work_outside_the_model(checkpoints, photo_dir, tmp_path, one_thread):
    plan = _plan_for(checkpoints, photo_dir, tmp_path, "aa.json", "--threats", "autoattack-linf", "--n-samples", "4")
    aa = next(c for c in plan["cells"] if c["cell"].startswith("autoattack"))
    outside = sum(g["calls"] * g["outside_s"] for g in aa["call_groups"])
    assert outside > 0
    assert aa["expected_s"] > outside
    card = _plan_for(checkpoints, photo_dir, tmp_path, "h100.json", "--threats", "autoattack-linf", "--n-samples", "4",
                     "--plan-for", "H100")  # another card: nothing timed here
    aa = next(c for c in card["cells"] if c["cell"].startswith("autoattack"))
    assert all(g["outside_s"] == 0 for g in aa["call_groups"])
