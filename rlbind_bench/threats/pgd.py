"""Projected gradient descent, L-inf and L2, for any input-space shape ([B,3,H,W], [B,T,3,H,W], [B,N]).

Follows torchattacks' PGD / PGDL2 update rules (sign step / normalised-gradient step, projection, clamp to
the input box) with three differences that only make it stronger or reproducible:
- the random start is drawn per sample from a generator seeded by (seed, sample_id, cell, restart), so
  rows do not depend on batch composition;
- every iterate is checked: a sample counts as broken if any iterate misclassifies it (the iterate is
  kept), not only the last one;
- restarts keep the first successful one;
- a sample leaves the batch as soon as an iterate breaks it (its later iterates could not change the result).
The loss it ascends is the spec's `loss` (cross-entropy, CW margin or DLR), and with `eot_iter` > 1 the gradient
is the mean over that many forward/backward passes (expectation over transformation, for randomised models;
1 is a single pass, bit for bit the plain update).
Cost: at most steps * eot_iter forward+backward passes plus one forward of the still-unbroken samples per restart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlbind_bench.seeding import seeded_generator
from rlbind_bench.threats.base import (
    Attack,
    AttackContext,
    BatchResult,
    Cell,
    PassCount,
    finite_rows,
    margins,
    per_sample_norm,
)
from rlbind_bench.threats.registry import register_attack
from rlbind_bench.threats.spec import PGD_LOSS_MIN_CLASSES, PGDSpec


def random_start(x: torch.Tensor, eps, norm: str, ids: list[str], seed: int, salt: str) -> torch.Tensor:
    """eps: a float, or a tensor [B] of per-sample budgets (the dB threats)."""
    shape = x.shape[1:]
    deltas = []
    for k, sid in enumerate(ids):
        eps_k = float(eps[k]) if torch.is_tensor(eps) else eps
        g = seeded_generator(seed, sid, salt)  # per sample: rows never depend on the batch
        if norm == "Linf":
            d = (torch.rand(shape, generator=g) * 2 - 1) * eps_k
        else:
            d = torch.randn(shape, generator=g)
            d = d / d.norm().clamp_min(1e-12) * (torch.rand((), generator=g) * eps_k)
        deltas.append(d)
    return torch.stack(deltas).to(x.device, x.dtype)


def per_sample(v, like: torch.Tensor):
    """A float as it is; a per-sample tensor [B] shaped to broadcast over `like`'s sample dimensions."""
    return v.view(-1, *([1] * (like.dim() - 1))).to(like) if torch.is_tensor(v) else v


def _take(v, idx):
    return v[idx] if torch.is_tensor(v) else v


def project(delta: torch.Tensor, eps, norm: str) -> torch.Tensor:
    """Onto the eps ball; eps a float or a tensor [B] of per-sample budgets."""
    if norm == "Linf":
        if torch.is_tensor(eps):
            e = per_sample(eps, delta)
            return torch.maximum(torch.minimum(delta, e), -e)
        return delta.clamp(-eps, eps)
    norms = delta.flatten(1).norm(p=2, dim=1).clamp_min(1e-12)
    factor = torch.clamp(per_sample(eps, norms) / norms, max=1.0)
    return delta * factor.view(-1, *([1] * (delta.dim() - 1)))


def step_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "Linf":
        return grad.sign()
    g = grad.flatten(1).norm(p=2, dim=1).clamp_min(1e-12)
    return grad / g.view(-1, *([1] * (grad.dim() - 1)))


def default_step_size(eps: float, steps: int) -> float:
    return 2.5 * eps / max(steps, 1)


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Croce & Hein (2020)'s DLR loss per sample, -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3), written as
    pyautoattack's APGDAttack.dlr_loss (a test compares): scale-invariant, so a large logit scale cannot
    saturate it the way it saturates cross-entropy's softmax."""
    z_sorted, idx_sorted = logits.sort(dim=1)
    top_is_y = (idx_sorted[:, -1] == y).float()
    u = torch.arange(len(y), device=logits.device)
    return -(logits[u, y] - z_sorted[:, -2] * top_is_y - z_sorted[:, -1] * (1.0 - top_is_y)) / (
        z_sorted[:, -1] - z_sorted[:, -3] + 1e-12)


# Each loss summed over the batch (a sample's gradient is its own: the models are per-sample).
LOSSES = {
    "ce": lambda logits, y: F.cross_entropy(logits, y, reduction="sum"),
    "margin": lambda logits, y: -margins(logits, y).sum(),  # CW: max other logit - true logit
    "dlr": lambda logits, y: dlr_loss(logits, y).sum(),
}
if set(LOSSES) != set(PGD_LOSS_MIN_CLASSES):  # the spec validates names this module must implement
    raise ImportError(f"PGD losses {sorted(LOSSES)} differ from the spec's {sorted(PGD_LOSS_MIN_CLASSES)}")


def loss_gradient(model, cur: torch.Tensor, y: torch.Tensor, loss: str, eot_iter: int):
    """(gradient of the summed loss at cur, logits of the last pass). With eot_iter > 1 the gradient is the
    mean over eot_iter passes, as pyautoattack's APGD does for randomised models; 1 is the single pass."""
    grad = logits = None
    for _ in range(eot_iter):
        logits = model(cur)
        g, = torch.autograd.grad(LOSSES[loss](logits.float(), y), cur)
        grad = g if grad is None else grad + g
    return (grad if eot_iter == 1 else grad / eot_iter), logits


def _attack_until_broken(model, xs, ys, x_adv, *, eps, norm, steps, step_size, low, high, loss, eot_iter):
    """PGD iterations from x_adv; a sample leaves the batch at the first iterate that misclassifies it.

    The result is the same as iterating every sample for all steps and keeping its first misclassified
    iterate (what counts), but broken samples cost nothing more: on a model that breaks half the samples
    early this is where the speed over a plain PGD loop comes from.
    """
    n = len(xs)
    kept, found = x_adv.clone(), torch.zeros(n, dtype=torch.bool, device=xs.device)
    kept_logits = None
    active = torch.arange(n, device=xs.device)
    cur = x_adv
    eps_all, step_all = eps, step_size  # floats, or per-sample tensors [n] (narrowed with `active`)
    for _ in range(steps):
        if not len(active):
            break
        cur = cur.detach().requires_grad_(True)
        grad, logits = loss_gradient(model, cur, ys[active], loss, eot_iter)
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
            eps, step_size = _take(eps_all, active), per_sample(_take(step_all, active), cur)
            cur = (base + project(cur + step_size * step_direction(grad, norm) - base, eps, norm)).clamp(low, high)
    if len(active):
        with torch.no_grad():
            final = model(cur).float()
        if kept_logits is None:
            kept_logits = final.new_empty((n, final.shape[1]))
        kept[active], kept_logits[active] = cur, final
        found[active] = final.argmax(1) != ys[active]
    return kept, kept_logits, found


def pgd(model, x: torch.Tensor, y: torch.Tensor, *, eps, norm: str, steps: int, step_size,
        low: float, high: float, ids: list[str], seed: int, salt: str, restarts: int = 1,
        random_init: bool = True, return_logits: bool = False, loss: str = "ce", eot_iter: int = 1):
    """Return (x_adv, broken[, logits]): broken[i] says an iterate misclassified sample i; logits are the model's
    at x_adv (kept from the step that found it), so callers need no extra forward. `loss` names one of LOSSES.
    eps and step_size: floats, or tensors [B] of per-sample values (the dB threats' per-clip budgets)."""
    best = x.clone()
    broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    best_logits = None
    for r in range(restarts):
        todo = ~broken
        if not todo.any():
            break
        xs, ys = x[todo], y[todo]
        sub_ids = [i for i, t in zip(ids, todo.tolist(), strict=True) if t]
        eps_r, step_r = _take(eps, todo), _take(step_size, todo)
        delta = random_start(xs, eps_r, norm, sub_ids, seed, f"{salt}|r{r}") if random_init else torch.zeros_like(xs)
        kept, kept_logits, found = _attack_until_broken(model, xs, ys, (xs + delta).clamp(low, high), eps=eps_r,
                                                        norm=norm, steps=steps, step_size=step_r, low=low,
                                                        high=high, loss=loss, eot_iter=eot_iter)
        idx = todo.nonzero().squeeze(1)
        best[idx] = kept
        broken[idx] = found
        if best_logits is None:
            best_logits = torch.zeros(len(x), kept_logits.shape[1], device=x.device)
        best_logits[idx] = kept_logits
    if return_logits:
        return best.detach(), broken, best_logits
    return best.detach(), broken


@register_attack("pgd")
class PGD(Attack):
    strength = 1
    spec_type = PGDSpec
    adversarial = True

    def cells(self, modality: str) -> list[Cell]:
        return [Cell(self.spec.name, norm=self.spec.norm, eps=float(e)) for e in self.spec.eps]

    def step_size(self, eps: float) -> float:
        return self.spec.step_size if self.spec.step_size is not None else default_step_size(eps, self.spec.steps)

    def cell_config(self, cell: Cell, num_classes: int | None = None) -> dict:
        if num_classes is not None:  # refused before the first batch, not halfway through a run
            self.spec.check_classes(num_classes)
        return {**super().cell_config(cell, num_classes), "effective_step_size": self.step_size(cell.eps)}

    def pass_budget(self, cell: Cell, num_classes: int) -> PassCount:
        """Per restart: steps * eot_iter forward+backward passes, then one forward of the samples no iterate
        broke (`_attack_until_broken`'s final check); a zero input-space eps runs nothing (`craft`)."""
        if cell.eps == 0 and not self.eps_unit:
            return PassCount()
        r = self.spec.restarts
        return PassCount(forward=r, backward=r * self.spec.steps * self.spec.eot_iter)

    def run(self, model, x, y, cell: Cell, ctx: AttackContext) -> BatchResult:
        return self.run_with_budget(model, x, y, cell, ctx, cell.eps, self.step_size(cell.eps))

    def run_with_budget(self, model, x, y, cell: Cell, ctx: AttackContext, eps, step_size,
                        name: str = "pgd") -> BatchResult:
        """PGD on the batch within `eps` (a float, or a tensor [B] of per-sample budgets in input units)."""
        x_final, todo, broken, logits = self.craft(model, x, y, cell, ctx, eps, step_size)
        return BatchResult(
            pred=logits.argmax(1).cpu(), margin=margins(logits, y).cpu(), attacked=todo.cpu(),
            perturbation_norm=per_sample_norm(x_final - x, cell.norm).cpu(),
            broken_by=[name if b else "" for b in broken.tolist()], valid=finite_rows(logits).cpu(),
            budget=eps.detach().double().cpu() if torch.is_tensor(eps) else None)

    def craft(self, model, x, y, cell: Cell, ctx: AttackContext, eps, step_size):
        """(x_final, attacked, broken, logits at x_final) of PGD on `model`; the samples attacked are those
        `ctx.clean_logits` classify correctly (only_correct), the others keep x and the clean logits."""
        self.spec.check_classes(ctx.num_classes)
        clean = ctx.clean_logits
        todo = clean.argmax(1) == y if self.spec.only_correct else torch.ones_like(y, dtype=torch.bool)
        todo &= finite_rows(clean)
        x_final = x.clone()
        broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        logits = clean.clone()
        if todo.any() and (eps > 0 if not torch.is_tensor(eps) else bool((eps[todo] > 0).any())):
            ids = [i for i, t in zip(ctx.sample_ids, todo.tolist(), strict=True) if t]
            adv, hit, adv_logits = pgd(model, x[todo], y[todo], eps=_take(eps, todo), norm=cell.norm,
                                       steps=self.spec.steps, step_size=_take(step_size, todo), low=ctx.low,
                                       high=ctx.high, ids=ids, seed=self.spec.seed + ctx.seed, salt=cell.key,
                                       restarts=self.spec.restarts, random_init=self.spec.random_start,
                                       return_logits=True, loss=self.spec.loss, eot_iter=self.spec.eot_iter)
            x_final[todo] = adv
            broken[todo] = hit
            logits[todo] = adv_logits
        return x_final, todo, broken, logits


def pgd_maximise(loss_fn, x: torch.Tensor, *, eps: float, steps: int, step_size: float, low: float, high: float,
                 random_init: bool = True, g: torch.Generator | None = None, norm: str = "Linf",
                 start: torch.Tensor | None = None) -> torch.Tensor:
    """PGD in the `norm` ball (Linf or L2) that maximises the scalar `loss_fn(x_adv)` (a training objective's
    inner loss, or an embedding-space threat's); eps and step_size in input-space units.

    Unlike `pgd` it needs no labels and runs every step (the outer loss is taken at the last iterate, so
    there is nothing to stop early for), and the random start is one draw for the whole batch from `g`: the
    trainer seeds it per step, so a resumed run draws the same starts as an uninterrupted one. `start`, a
    delta the caller drew (the evaluation threats draw it per sample with `random_start`, so that rows do not
    depend on the batch; the retrieval attacks likewise), replaces that draw (projected into the ball).
    """
    if start is not None:
        delta = project(start.to(x), eps, norm)
    else:
        delta = _batch_start(x, eps, norm, g) if random_init else torch.zeros_like(x)
    x_adv = (x + delta).clamp(low, high).detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        grad, = torch.autograd.grad(loss_fn(x_adv), x_adv)
        with torch.no_grad():
            x_adv = (x + project(x_adv + step_size * step_direction(grad, norm) - x, eps, norm)).clamp(low, high)
    return x_adv.detach()


def _batch_start(x: torch.Tensor, eps: float, norm: str, g: torch.Generator) -> torch.Tensor:
    """A random start in the ball for the whole batch, from one generator: uniform in the L-inf cube, or a
    uniform direction with a uniform radius in the L2 ball."""
    if norm == "Linf":
        return (torch.rand(x.shape, generator=g) * 2 - 1).to(x) * eps
    d = torch.randn(x.shape, generator=g)
    d = d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
    radius = torch.rand(x.shape[0], generator=g).view(-1, *([1] * (x.dim() - 1))) * eps
    return (d * radius).to(x)
