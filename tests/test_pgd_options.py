"""PGD's `loss` (ce, margin, dlr) and `eot_iter` settings: each one changes what the attack does.

The models are built by hand so that the expected outcome is known exactly (a linear model whose
cross-entropy and margin gradients point different ways; a model whose gradient is randomised and whose
output is not), and a frozen copy of the PGD loop as it was before these settings existed is the reference for
`loss: ce, eot_iter: 1`.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pyautoattack.autopgd_base import APGDAttack
from torch import nn

from rlbind_bench.errors import ConfigError
from rlbind_bench.threats.base import AttackContext, margins
from rlbind_bench.threats.pgd import LOSSES, PGD, dlr_loss, project, random_start, step_direction
from rlbind_bench.threats.spec import PGDSpec

pytestmark = pytest.mark.usefixtures("one_thread")


def run_pgd(model, x, y, n_classes: int, **settings):
    with torch.no_grad():
        logits = model(x)
    ctx = AttackContext("image", 0, [f"s{i}" for i in range(len(x))], logits, 0.0, 1.0, n_classes,
                        torch.device("cpu"))
    attack = PGD(PGDSpec(name="p", attack="pgd", **settings))
    cell = attack.cells("image")[0]
    return attack.run(model, x, y, cell, ctx), attack, cell


class TwoWays(nn.Module):
    """10 classes on x in [0,1]^2, at x = (0.5, 0.5) with true class 0:
    z0 = 1; z1 = 10 x1 - 4.5 (the runner-up, 0.5); z2..z9 = -2 x1 + x2 + 0.6 (eight classes at 0.4).
    Cross-entropy's gradient is dominated by the eight classes' softmax mass (x1 down, x2 up), a direction
    that cannot reach them within eps 0.1; the margin follows the runner-up (x1 up only) and breaks the
    sample in one step of 0.1; DLR also follows the runner-up, but its denominator z_pi1 - z_pi3 pulls
    x2 down as well."""

    def forward(self, x):
        x1, x2 = x[:, 0], x[:, 1]
        rest = (-2 * x1 + x2 + 0.6)[:, None].expand(-1, 8)
        return torch.cat([torch.ones_like(x1)[:, None], (10 * x1 - 4.5)[:, None], rest], dim=1)


@pytest.mark.parametrize(("loss", "broken", "x_adv"), [
    ("ce", False, (0.4, 0.6)),
    ("margin", True, (0.6, 0.5)),
    ("dlr", True, (0.6, 0.4)),
])
def test_each_loss_changes_what_pgd_does(loss, broken, x_adv):
    """Break seen caught: PGD.run not passing spec.loss on (every loss ran cross-entropy: margin and dlr failed)."""
    x, y = torch.tensor([[0.5, 0.5]]), torch.tensor([0])
    res, _, _ = run_pgd(TwoWays(), x, y, 10, norm="Linf", eps=(0.1,), steps=3, step_size=0.1,
                        random_start=False, loss=loss)
    assert bool(res.pred[0] != 0) == broken
    # The kept iterate's logits give the margin: recompute it from the expected point.
    expected = TwoWays()(torch.tensor([x_adv]))
    assert torch.allclose(res.margin, margins(expected, y), atol=1e-5)


def test_loss_functions_match_their_definitions():
    """DLR equals pyautoattack's APGDAttack.dlr_loss; margin is CW's max other logit - true logit.

    Break seen caught: dlr_loss dividing by z_pi1 - z_pi2 instead of z_pi1 - z_pi3."""
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(32, 5, generator=g) * 3, torch.randint(0, 5, (32,), generator=g)
    reference = APGDAttack(nn.Identity(), eps=0.1, device="cpu").dlr_loss(logits, y)
    assert torch.allclose(dlr_loss(logits, y), reference)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    assert torch.allclose(LOSSES["margin"](logits, y), (other - logits.gather(1, y[:, None]).squeeze(1)).sum())
    assert torch.allclose(LOSSES["ce"](logits, y), F.cross_entropy(logits, y, reduction="sum"))


def test_dlr_on_two_classes_is_refused():
    """Break seen caught: check_classes() not called in run (an IndexError from the sort, not a ConfigError)."""
    spec = PGDSpec(name="p", attack="pgd", eps=(0.1,), steps=2, loss="dlr")
    attack = PGD(spec)
    cell = attack.cells("image")[0]
    with pytest.raises(ConfigError, match="loss dlr needs at least 3 classes"):
        attack.cell_config(cell, 2)  # what the runner calls before the first batch
    x, y = torch.rand(2, 4), torch.tensor([0, 1])
    model = nn.Linear(4, 2)
    with pytest.raises(ConfigError, match="loss dlr needs at least 3 classes"):
        run_pgd(model, x, y, 2, eps=(0.1,), steps=2, loss="dlr")
    attack.cell_config(cell, 3)  # 3 classes are fine
    with pytest.raises(ConfigError, match="loss 'hinge' is not implemented"):
        PGDSpec(name="p", attack="pgd", loss="hinge")


def pgd_before_options(model, x, y, *, eps, norm, steps, step_size, ids, seed, salt, restarts):
    """threats/pgd.py's pgd() as it was before `loss` and `eot_iter` (commit 12eb70a), copied verbatim but for
    names: cross-entropy, one pass per step, the early exit, restarts on the still-unbroken samples."""

    def until_broken(xs, ys, x_adv):
        n = len(xs)
        kept, found = x_adv.clone(), torch.zeros(n, dtype=torch.bool)
        kept_logits = None
        active = torch.arange(n)
        cur = x_adv
        for _ in range(steps):
            if not len(active):
                break
            cur = cur.detach().requires_grad_(True)
            logits = model(cur)
            loss = F.cross_entropy(logits.float(), ys[active], reduction="sum")
            grad, = torch.autograd.grad(loss, cur)
            with torch.no_grad():
                logits = logits.detach().float()
                if kept_logits is None:
                    kept_logits = logits.new_empty((n, logits.shape[1]))
                wrong = logits.argmax(1) != ys[active]
                cur = cur.detach()
                if wrong.any():
                    hit = active[wrong]
                    kept[hit], kept_logits[hit], found[hit] = cur[wrong], logits[wrong], True
                    still = ~wrong
                    active, cur, grad = active[still], cur[still], grad[still]
                base = xs[active]
                cur = (base + project(cur + step_size * step_direction(grad, norm) - base, eps, norm)).clamp(0, 1)
        if len(active):
            with torch.no_grad():
                final = model(cur).float()
            if kept_logits is None:
                kept_logits = final.new_empty((n, final.shape[1]))
            kept[active], kept_logits[active] = cur, final
            found[active] = final.argmax(1) != ys[active]
        return kept, kept_logits, found

    best, broken, best_logits = x.clone(), torch.zeros(len(x), dtype=torch.bool), None
    for r in range(restarts):
        todo = ~broken
        if not todo.any():
            break
        xs, ys = x[todo], y[todo]
        sub_ids = [i for i, t in zip(ids, todo.tolist(), strict=True) if t]
        delta = random_start(xs, eps, norm, sub_ids, seed, f"{salt}|r{r}")
        kept, kept_logits, found = until_broken(xs, ys, (xs + delta).clamp(0, 1))
        idx = todo.nonzero().squeeze(1)
        best[idx], broken[idx] = kept, found
        if best_logits is None:
            best_logits = torch.zeros(len(x), kept_logits.shape[1])
        best_logits[idx] = kept_logits
    return best, broken, best_logits


class SmallConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 5)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).flatten(1))


@pytest.mark.parametrize(("norm", "eps"), [("Linf", 4 / 255), ("L2", 0.3)])
def test_eot_iter_one_and_ce_are_the_plain_pgd_rows_exactly(norm, eps):
    """eot_iter 1 with loss ce is the update as it was, bit for bit (random start, 2 restarts, early exit).

    Breaks seen caught: cross-entropy averaged over the batch (reduction "mean") instead of summed (the L2 rows
    differed in the last bits); no sample ever marked broken before the last iterate (both norms)."""
    model = SmallConvNet().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(12, 3, 8, 8, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    res, attack, cell = run_pgd(model, x, y, 5, norm=norm, eps=(eps,), steps=6, restarts=2)
    ref, ref_broken, ref_logits = pgd_before_options(model, x, y, eps=eps, norm=norm, steps=6,
                                                    step_size=attack.step_size(eps), ids=[f"s{i}" for i in range(12)],
                                                    seed=0, salt=cell.key, restarts=2)
    assert 0 < int(ref_broken.sum()) < len(x)
    assert torch.equal(res.pred, ref_logits.argmax(1))
    assert torch.equal(res.margin, margins(ref_logits, y))
    assert torch.equal(res.perturbation_norm, (ref - x).flatten(1).abs().amax(1) if norm == "Linf"
                       else (ref - x).flatten(1).norm(dim=1))


class NoisyGradient(nn.Module):
    """Output deterministic, gradient randomised: d logits / dx = (1 + r) W with r = +-1.9 per input entry and
    pass (mean 1). One pass gives a sign step that is a coin flip per entry; the mean over many passes
    points along W. A stand-in for a randomised defence whose randomness hides the gradient direction."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("weight", torch.stack([torch.zeros(dim), torch.ones(dim)]))
        self.register_buffer("bias", torch.tensor([3.0, 0.0]))

    def forward(self, x):
        r = 1.9 * (torch.randint(0, 2, x.shape) * 2 - 1)
        x = x + r * (x - x.detach())  # value x, gradient (1 + r)
        return (x - 0.5) @ self.weight.T + self.bias


def test_eot_averages_the_gradient_of_a_randomised_model():
    """One pass cannot break a sample whose gradient is randomised; 16 passes per step (EOT) can.

    Break seen caught: loss_gradient ignoring eot_iter (one pass: the sample was not broken)."""
    torch.manual_seed(0)
    x, y = torch.full((1, 64), 0.5), torch.tensor([0])
    settings = {"norm": "Linf", "eps": (0.1,), "steps": 10, "step_size": 0.025, "random_start": False}
    one, _, _ = run_pgd(NoisyGradient(64), x, y, 2, **settings)
    eot, _, _ = run_pgd(NoisyGradient(64), x, y, 2, eot_iter=16, **settings)
    assert bool(one.pred[0] == 0), "a single noisy pass per step should not get across (random walk)"
    assert bool(eot.pred[0] == 1), "the EOT mean gradient should break it (margin 3 < 64 * 0.1)"
