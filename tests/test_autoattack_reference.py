"""The AutoAttack threat against pyautoattack itself, on tiny classifiers of real handwritten digits.

The references are built here from pyautoattack's own API (`pyautoattack.AutoAttack`, `APGDAttack`), never
through the project's `make_autoattack`, so a change in how the threat configures the reference shows up as
a difference. The classifier is one Gaussian per class fitted to scikit-learn's 8x8 digits (real
handwriting, 10 classes, or the first 2-4 of them): closed form, so it is the same on every machine, and
small enough that AutoAttack's 100 iterations, FAB-T and Square's 5000 queries take seconds on a CPU.
"""

from __future__ import annotations

import pyautoattack
import pytest
import torch
from pyautoattack.autopgd_base import APGDAttack
from sklearn.datasets import load_digits
from torch import nn

from rlbind_bench.errors import ConfigError
from rlbind_bench.threats.autoattack import AutoAttackThreat
from rlbind_bench.threats.base import AttackContext, margins
from rlbind_bench.threats.spec import VERSION_SUB_ATTACKS, AutoAttackSpec

SEED = 0  # spec.seed + the run's seed: what the threat hands pyautoattack


pytestmark = pytest.mark.usefixtures("one_thread")


class GaussianClasses(nn.Module):
    """logits_c = log N(x; mu_c, var_c I) up to a constant: one isotropic Gaussian per class. Its decision
    boundaries are curved (the variances differ), so where an attack ends up depends on its random start and
    a change of seed shows; the logits are large (tens), so cross-entropy saturates as with CLIP's logit
    scale and the scale-invariant DLR attacks matter."""

    def __init__(self, means: torch.Tensor, variances: torch.Tensor):
        super().__init__()
        self.register_buffer("means", means.flatten(1))
        self.register_buffer("variances", variances)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d2 = ((x.flatten(1)[:, None, :] - self.means[None]) ** 2).sum(-1)
        return -d2 / (2 * self.variances) - 0.5 * self.means.shape[1] * torch.log(self.variances)


def digits_classifier(n_classes: int, n_samples: int, skip: int = 0):
    """(model, x [n,1,8,8] in [0,1], y): class means and variances from the first 1000 digits (closed form,
    in float64), test samples after them that the model classifies correctly (the ones an attack starts
    on), `skip` of those left out first."""
    d = load_digits()
    x_all = torch.tensor(d.images / 16.0, dtype=torch.float64).unsqueeze(1)
    y_all = torch.tensor(d.target)
    fit = [x_all[:1000][y_all[:1000] == c] for c in range(n_classes)]
    means = torch.stack([f.mean(0) for f in fit])
    variances = torch.stack([((f - m) ** 2).mean() for f, m in zip(fit, means, strict=True)])
    model = GaussianClasses(means.float(), variances.float()).eval()
    x, y = x_all[1000:].float(), y_all[1000:]
    x, y = x[y < n_classes], y[y < n_classes]
    with torch.no_grad():
        right = model(x).argmax(1) == y
    return model, x[right][skip:skip + n_samples], y[right][skip:skip + n_samples]


def run_threat(model, x, y, spec: AutoAttackSpec, n_classes: int):
    with torch.no_grad():
        logits = model(x)
    ctx = AttackContext("image", 0, [str(i) for i in range(len(x))], logits, 0.0, 1.0, n_classes,
                        torch.device("cpu"))
    threat = AutoAttackThreat(spec)
    cell = threat.cells("image")[0]
    return threat.run(model, x, y, cell, ctx), threat.cell_config(cell, n_classes)


def count_calls(aa) -> dict[str, int]:
    """How many samples each of the reference's attack objects was handed (wraps their perturb)."""
    seen: dict[str, int] = {}
    for name in ("apgd", "apgd_targeted", "fab", "square"):
        obj = getattr(aa, name)

        def perturb(x, y, *args, _orig=obj.perturb, _name=name, **kwargs):
            seen[_name] = seen.get(_name, 0) + len(x)
            return _orig(x, y, *args, **kwargs)

        obj.perturb = perturb
    return seen


def assert_equal_to_reference(model, res, x, y, x_ref, y_ref, norm: str) -> None:
    """Predictions, margins (which tell apart two adversarial points that both fool the model: an L-inf
    attack puts most at the same norm, eps) and perturbation norms, per sample."""
    assert torch.equal(res.pred, y_ref), "per-sample predictions differ from pyautoattack's"
    with torch.no_grad():
        assert torch.allclose(res.margin, margins(model(x_ref), y), atol=1e-5), "adversarial points differ"
        diff = (x_ref - x).flatten(1)
    ref_norm = diff.abs().amax(1) if norm == "Linf" else diff.norm(dim=1)
    assert torch.allclose(res.perturbation_norm, ref_norm, atol=1e-6)
    broken = (res.pred != y).tolist()
    assert [bool(b) for b in res.broken_by] == broken  # every broken sample names its sub-attack, no other does


def test_version_lists_are_pyautoattacks():
    """The lists that decide what is stored as `sub_attacks` are pyautoattack's own _set_version lists.

    Break seen caught: "apgd-t" removed from VERSION_SUB_ATTACKS["standard"]."""
    for version, expected in VERSION_SUB_ATTACKS.items():
        assert tuple(pyautoattack.AutoAttack(nn.Identity(), version=version).attacks_to_run) == expected


@pytest.mark.parametrize(("version", "attacks", "classes", "runs", "targets"), [
    ("standard", (), 10, ["apgd-ce", "apgd-t", "fab-t", "square"], 9),
    ("standard", (), 4, ["apgd-ce", "apgd-t", "fab-t", "square"], 3),
    ("standard", (), 3, ["apgd-ce", "fab-t", "square"], 2),
    ("standard", (), 2, ["apgd-ce", "fab-t", "square"], 1),
    ("plus", (), 3, ["apgd-ce", "apgd-dlr", "fab", "square", "fab-t"], 2),
    ("plus", (), 2, ["apgd-ce", "fab", "square", "fab-t"], 1),
    ("rand", (), 3, ["apgd-ce", "apgd-dlr"], None),
    ("rand", (), 2, ["apgd-ce"], None),
    ("custom", ("apgd-ce", "apgd-t"), 3, ["apgd-ce"], None),
])
def test_sub_attacks_by_class_count_are_in_the_cell_config(version, attacks, classes, runs, targets):
    """The rule (DLR >= 3 classes, targeted DLR >= 4, the rest >= 2) and the record of what ran.

    Break seen caught: SUB_ATTACK_MIN_CLASSES["apgd-dlr"] set to 2 (plus/rand rows fail)."""
    spec = AutoAttackSpec(name="aa", attack="autoattack", eps=(0.1,), version=version, attacks_to_run=attacks)
    threat = AutoAttackThreat(spec)
    config = threat.cell_config(threat.cells("image")[0], classes)
    assert config["sub_attacks"] == runs
    assert config.get("effective_n_target_classes") == targets
    assert "sub_attacks" not in threat.cell_config(threat.cells("image")[0])  # class count unknown: not claimed


def test_custom_list_that_cannot_run_is_refused():
    """A custom list of DLR attacks on 2 classes is refused by name instead of reporting clean accuracy.

    Break seen caught: sub_attacks() returning an empty tuple without raising (the run reported clean accuracy)."""
    spec = AutoAttackSpec(name="aa", attack="autoattack", eps=(0.1,), version="custom",
                          attacks_to_run=("apgd-dlr", "apgd-t"))
    threat = AutoAttackThreat(spec)
    with pytest.raises(ConfigError, match="apgd-dlr needs >= 3"):
        threat.cell_config(threat.cells("image")[0], 2)


def test_standard_linf_equals_pyautoattack_per_sample():
    """AutoAttack standard, L-inf, reference defaults (100 iterations, 9 targets, Square 5000 queries) on a
    10-class model: every sample's prediction and perturbation equal pyautoattack's, and some samples survive
    APGD-CE so that APGD-T, FAB-T and Square all run.

    Break seen caught: make_autoattack passing `seed + 1` to pyautoattack (the adversarial points, and so the
    margins, differ)."""
    eps = 0.12
    model, x, y = digits_classifier(10, 8, skip=8)
    spec = AutoAttackSpec(name="aa", attack="autoattack", norm="Linf", eps=(eps,), version="standard", seed=SEED)
    res, config = run_threat(model, x, y, spec, 10)
    assert config["sub_attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]

    aa = pyautoattack.AutoAttack(model, eps=eps, norm="Linf", version="standard", seed=SEED, device="cpu")
    seen = count_calls(aa)
    x_ref, y_ref = aa.run_standard_evaluation(x, y, batch_size=len(x))
    assert_equal_to_reference(model, res, x, y, x_ref, y_ref, "Linf")
    assert set(seen) == {"apgd", "apgd_targeted", "fab", "square"}, "every sub-attack must have run"
    assert seen['square'] < len(x), 'some samples must survive everything'
    assert (res.pred == y).any(), 'some samples must survive everything'
    assert "apgd-ce" in res.broken_by
    assert "apgd-t" in res.broken_by


@pytest.mark.slow
def test_standard_l2_equals_pyautoattack_per_sample():
    """AutoAttack standard, L2, on the 10-class model.

    Break seen caught: make_autoattack passing eps * 0.99 to pyautoattack."""
    eps = 0.75
    model, x, y = digits_classifier(10, 8, skip=8)
    spec = AutoAttackSpec(name="aa", attack="autoattack", norm="L2", eps=(eps,), version="standard", seed=SEED)
    res, _ = run_threat(model, x, y, spec, 10)
    aa = pyautoattack.AutoAttack(model, eps=eps, norm="L2", version="standard", seed=SEED, device="cpu")
    seen = count_calls(aa)
    x_ref, y_ref = aa.run_standard_evaluation(x, y, batch_size=len(x))
    assert_equal_to_reference(model, res, x, y, x_ref, y_ref, "L2")
    assert set(seen) == {"apgd", "apgd_targeted", "fab", "square"}
    assert (res.pred != y).any()
    assert (res.pred == y).any()


@pytest.mark.slow
def test_standard_on_four_classes_equals_pyautoattack_with_targets_cut():
    """4 classes: APGD-T and FAB-T run 3 target classes (classes - 1), written here, not taken from the project.

    Break seen caught: target_classes() returning n_target_classes uncut (IndexError inside pyautoattack's
    APGD-T)."""
    eps = 0.15
    model, x, y = digits_classifier(4, 8)
    spec = AutoAttackSpec(name="aa", attack="autoattack", norm="Linf", eps=(eps,), version="standard", seed=SEED)
    res, config = run_threat(model, x, y, spec, 4)
    assert config["effective_n_target_classes"] == 3
    aa = pyautoattack.AutoAttack(model, eps=eps, norm="Linf", version="standard", seed=SEED, device="cpu")
    aa.apgd_targeted.n_target_classes = 3
    aa.fab.n_target_classes = 3
    seen = count_calls(aa)
    x_ref, y_ref = aa.run_standard_evaluation(x, y, batch_size=len(x))
    assert_equal_to_reference(model, res, x, y, x_ref, y_ref, "Linf")
    assert set(seen) == {"apgd", "apgd_targeted", "fab", "square"}
    assert (res.pred != y).any()
    assert (res.pred == y).any()


@pytest.mark.parametrize(("classes", "version", "norm", "eps"), [
    (2, "standard", "Linf", 0.25),
    (3, "standard", "Linf", 0.1),
    (2, "standard", "L2", 2.0),
    (3, "custom", "Linf", 0.1),
    (2, "rand", "Linf", 0.25),
    pytest.param(3, "plus", "Linf", 0.1, marks=pytest.mark.slow),
])
def test_few_classes_run_and_are_never_weaker_than_apgd_ce(classes, version, norm, eps):
    """2 and 3 classes: AutoAttack runs (pyautoattack alone dies with an IndexError in its DLR losses) and its
    robust accuracy is at most that of pyautoattack's own APGD-CE (100 iterations) on the same samples, plus one.

    Breaks seen caught: no class-count filter (3 classes: IndexError in pyautoattack's dlr_loss_targeted);
    `steps: 0` applied literally instead of as the reference's 100 iterations (custom and rand: robust accuracy
    8/8, above APGD-CE's)."""
    model, x, y = digits_classifier(classes, 8)
    attacks = ("apgd-ce", "apgd-t") if version == "custom" else ()
    spec = AutoAttackSpec(name="aa", attack="autoattack", norm=norm, eps=(eps,), version=version,
                          attacks_to_run=attacks, seed=SEED)
    res, config = run_threat(model, x, y, spec, classes)
    assert "apgd-t" not in config["sub_attacks"]
    assert ("apgd-dlr" in config["sub_attacks"]) == (classes >= 3 and version in ("plus", "rand"))

    apgd = APGDAttack(model, n_restarts=1, n_iter=100, eps=eps, norm=norm, loss="ce", seed=SEED, device="cpu")
    with torch.no_grad():
        apgd_robust = int((model(apgd.perturb(x, y)).argmax(1) == y).sum())
    ours = int((res.pred == y).sum())
    assert ours <= apgd_robust + 1
    assert apgd_robust < len(x), "eps should let APGD-CE break something, or the comparison says nothing"
