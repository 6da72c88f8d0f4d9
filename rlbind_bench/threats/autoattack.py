"""AutoAttack through the reference implementation (pyautoattack), with its defaults.

- versions standard / plus / rand as the reference sets them; custom runs `attacks_to_run` with the
  reference's constructor defaults (APGD-CE 5 restarts, APGD-T 9 targets, 100 iterations), which is what
  RobustVLM and CLIP_benchmark run on CLIP;
- fewer than 10 classes: APGD-T and FAB-T target counts are cut to classes - 1 (AutoAttack issue 110);
- fewer than 4 classes: the sub-attacks whose loss the class count does not define are left out (APGD-DLR
  needs 3 classes, APGD-T's targeted DLR 4; APGD-CE, FAB, FAB-T and Square run on 2), where pyautoattack
  itself would only warn and then fail with an IndexError; the list that ran is in the cell's config
  (`sub_attacks`, hashed into config_hash), see docs/autoattack.md;
- FAB and Square assume [B,C,H,W] images in [0,1]. Every modality is presented to AutoAttack as such a
  tensor: video [B,T,3,H,W] -> [B,3T,H,W]; audio [B,N] -> [B,1,h,w] with h*w = N (h the largest divisor
  of N not above sqrt(N)), so Square's windows are contiguous blocks of the waveform; the audio box
  [-1,1] is mapped affinely to [0,1] with eps scaled by 1/2 (the reported eps stays in waveform units);
- which sub-attack broke a sample is recorded by wrapping each sub-attack's `perturb` (the reference runs
  them in a fixed order on the still-robust samples in index order).
AutoAttack's own randomness is drawn per call, so its rows depend on the batch a sample is in; the run
records batch_size in its config.
"""

from __future__ import annotations

import functools
import math
import time

import torch
from torch import nn

from rlbind_bench import _compat
from rlbind_bench.batching import sync_device
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
from rlbind_bench.threats.spec import VERSION_SUB_ATTACKS, AutoAttackSpec

SUB_ATTACKS = {"apgd-ce": "apgd", "apgd-dlr": "apgd", "apgd-t": "apgd_targeted", "fab": "fab", "fab-t": "fab",
               "square": "square"}


def grid_shape(n: int) -> tuple[int, int]:
    h = math.isqrt(n)
    while n % h:
        h -= 1
    return h, n // h


class UnitBoxView(nn.Module):
    """The classifier seen as AutoAttack wants it: [B,C,H,W] inputs in [0,1]."""

    def __init__(self, model: nn.Module, sample_shape: tuple[int, ...], low: float, high: float):
        super().__init__()
        self.model = model
        self.sample_shape = tuple(sample_shape)
        self.low, self.high = low, high

    @property
    def scale(self) -> float:
        return self.high - self.low

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        u = (x - self.low) / self.scale
        if len(self.sample_shape) == 3:
            return u
        if len(self.sample_shape) == 4:  # video [T,3,H,W]
            t, c, h, w = self.sample_shape
            return u.reshape(b, t * c, h, w)
        if len(self.sample_shape) == 1:
            h, w = grid_shape(self.sample_shape[0])
            return u.reshape(b, 1, h, w)
        raise ValueError(f"AutoAttack: unsupported input shape {self.sample_shape}")

    def from_unit(self, u: torch.Tensor) -> torch.Tensor:
        return u.reshape(u.shape[0], *self.sample_shape) * self.scale + self.low

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.model(self.from_unit(u))


def make_autoattack(view: UnitBoxView, spec: AutoAttackSpec, *, eps: float, norm: str, n_classes: int, seed: int,
                    device, iterations: int = 0):
    """The reference AutoAttack object as this threat runs it on `n_classes` classes: the version's settings,
    the sub-attacks the class count allows (spec.sub_attacks) and the target count cut to classes - 1."""
    import pyautoattack

    kwargs = {"device": device, "eps": eps / view.scale, "norm": norm, "seed": seed, "version": spec.version}
    if spec.version == "custom":
        kwargs["attacks"] = list(spec.attacks_to_run)
    aa = pyautoattack.AutoAttack(view, **kwargs)
    # Our version lists decide what is stored in config_hash: a pyautoattack that changed them must not
    # run under the old hash.
    if spec.version != "custom" and tuple(aa.attacks_to_run) != VERSION_SUB_ATTACKS[spec.version]:
        raise RuntimeError(f"pyautoattack's {spec.version} version runs {aa.attacks_to_run}, "
                           f"this project expects {list(VERSION_SUB_ATTACKS[spec.version])}")
    aa.attacks_to_run = list(spec.sub_attacks(n_classes))
    targets = spec.target_classes(n_classes)
    aa.apgd_targeted.n_target_classes = targets
    aa.fab.n_target_classes = targets
    if iterations:  # 0 keeps the reference's 100; anything else is a declared, stored deviation
        aa.apgd.n_iter = aa.apgd_targeted.n_iter = aa.fab.n_iter = iterations
    return aa


def _timed_perturb(perturb, free, spent: dict, device, *args, **kwargs):
    """`perturb`, adding its time less the stand-in's forwards, and the stand-in's calls, to `spent`."""
    calls, inside = free.calls, free.seconds
    sync_device(device)
    t0 = time.perf_counter()
    out = perturb(*args, **kwargs)
    sync_device(device)
    spent["seconds"] += time.perf_counter() - t0 - (free.seconds - inside)
    spent["calls"] += free.calls - calls
    return out


class _FreeClassifier(nn.Module):
    """Stands in for the model while AutoAttack's own work is timed: one multiply-add per input value and class,
    class 0 by a margin no eps closes (so every iteration runs), with a dense input gradient (FAB's projections
    cost depend on it; the margin does not saturate float32's softmax: pyautoattack stops on zero gradients)."""

    def __init__(self, dims: int, num_classes: int):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("weight", torch.randn(dims, num_classes, generator=g) / dims)
        bias = torch.zeros(num_classes)
        bias[0] = 20.0
        self.register_buffer("bias", bias)
        self.calls = 0
        self.seconds = 0.0  # in its forwards (the backward, a matmul as small, is left in the sub-attack's time)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        self.calls += 1
        out = x.flatten(1) @ self.weight + self.bias
        self.seconds += time.perf_counter() - t0
        return out


# pyautoattack's run_standard_evaluation forwards outside the sub-attacks: check_randomized (5), check_range_output,
# check_dynamic and the clean accuracy; then one per sub-attack (its robust flags), and the run's own final forward.
_AA_FIXED_FORWARDS = 5 + 1 + 1 + 1 + 1


def _apgd(a) -> PassCount:
    return PassCount(backward=(a.n_iter + 1) * a.eot_iter) * a.n_restarts


# Per sub-attack, from the reference object and the class count: its passes per sample beyond the three
# forwards every sub-attack costs (see autoattack_passes).
SUB_ATTACK_PASSES = {
    "apgd-ce": lambda aa, c: _apgd(aa.apgd),
    "apgd-dlr": lambda aa, c: _apgd(aa.apgd),
    "apgd-t": lambda aa, c: (PassCount(forward=1) + _apgd(aa.apgd_targeted)) * aa.apgd_targeted.n_target_classes,
    # fab-t runs one restart per target (run_standard_evaluation sets it)
    "fab-t": lambda aa, c: PassCount(forward=aa.fab.n_iter + 3, backward=aa.fab.n_iter) * aa.fab.n_target_classes,
    # fab: one forward with the input's graph per iteration, back-propagated once per class (retain_graph):
    # counted as a forward+backward pass per class, an over-count by the forwards the graph saves
    "fab": lambda aa, c: PassCount(forward=aa.fab.n_iter + 2, backward=aa.fab.n_iter * c) * aa.fab.n_restarts,
    "square": lambda aa, c: PassCount(forward=aa.square.n_queries + 2) * aa.square.n_restarts,
}
if set(SUB_ATTACK_PASSES) != set(SUB_ATTACKS):
    raise ImportError(f"pass counts for {sorted(SUB_ATTACK_PASSES)}, sub-attacks {sorted(SUB_ATTACKS)}")


def autoattack_stage_passes(aa, num_classes: int) -> list[PassCount]:
    """autoattack_passes per sub-attack, in the order they run (the fixed forwards with the first): each later
    sub-attack runs only on the samples the earlier ones did not break."""
    stages = [PassCount(forward=3) + SUB_ATTACK_PASSES[name](aa, num_classes) for name in aa.attacks_to_run]
    if stages:
        stages[0] = stages[0] + PassCount(forward=_AA_FIXED_FORWARDS)
    return stages or [PassCount(forward=_AA_FIXED_FORWARDS)]


def autoattack_passes(aa, num_classes: int) -> PassCount:
    """Passes per sample of the reference object `aa` (make_autoattack), at most: counted from pyautoattack's
    loops with the object's own settings (iterations, restarts, target counts, queries, EOT), every sub-attack
    on every sample. Per restart/target: APGD (n_iter + 1) * eot_iter forward+backward; FAB-T n_iter
    forward+backward and n_iter + 3 forwards; FAB untargeted n_iter + 2 forwards and one backward per class
    each iteration (counted as a forward+backward pass per class); Square n_queries + 2 forwards. Each sub-attack costs three forwards
    more: its `perturb`'s first prediction, the robust-flag update after it, and our broken_by wrapper."""
    total = PassCount()
    for stage in autoattack_stage_passes(aa, num_classes):
        total += stage
    return total


@register_attack("autoattack")
class AutoAttackThreat(Attack):
    strength = 2  # an ensemble of parameter-free attacks: ranks above any single PGD
    spec_type = AutoAttackSpec
    adversarial = True
    batch_dependent = True  # the reference draws its randomness per call
    on_fixed_subset = True  # thousands of passes per sample: --autoattack-subset narrows it

    def cells(self, modality: str) -> list[Cell]:
        return [Cell(self.spec.name, norm=self.spec.norm, eps=float(e)) for e in self.spec.eps]

    def cell_config(self, cell: Cell, num_classes: int | None = None) -> dict:
        """With the dataset's class count: the sub-attacks that run (in order) and the target count, which
        the spec alone does not say (they depend on the classes); a count no sub-attack runs on is refused
        here, before the first batch."""
        config = super().cell_config(cell, num_classes)
        if num_classes is None:
            return config
        runs = self.spec.sub_attacks(num_classes)
        config["sub_attacks"] = list(runs)
        if {"apgd-t", "fab-t"} & set(runs):
            config["effective_n_target_classes"] = self.spec.target_classes(num_classes)
        return config

    def pass_budget(self, cell: Cell, num_classes: int) -> PassCount:
        """Read from the reference object this cell runs (version settings, sub-attacks and target counts for
        `num_classes`, `steps`), built around a stand-in model that is never called."""
        return autoattack_passes(self._reference(cell, num_classes), num_classes)

    def stage_budgets(self, cell: Cell, num_classes: int) -> list[PassCount]:
        return autoattack_stage_passes(self._reference(cell, num_classes), num_classes)

    def stage_outside_seconds(self, cell: Cell, num_classes: int, x: torch.Tensor, low: float, high: float,
                              device, rows: int) -> list[float]:
        """Each sub-attack run through the reference's own dispatch (run_standard_evaluation) on `rows` copies
        of x, around a classifier that costs next to nothing and is never fooled, with few iterations (APGD and
        FAB 3, one target, Square 30 queries): the time inside the sub-attack's perturb, less the stand-in's own,
        per model call, is the sub-attack's own work (FAB's projections, Square's windows and margins, APGD's
        step-size bookkeeping), which grows with the input's size, not the model's. On the demo's 8-frame 64x64
        videos FAB-T's projection sorts 98,304 values a row every iteration: more time than the model's calls."""
        _compat.apply("autoattack_module")
        free = _FreeClassifier(x[0].numel(), num_classes).to(device)
        view = UnitBoxView(free, tuple(x.shape[1:]), low, high)
        one = view.to_unit(x[:1].to(device))
        u = one.expand(rows, *one.shape[1:]).contiguous()
        y = torch.zeros(rows, dtype=torch.long, device=device)
        seconds = []
        for name in self.spec.sub_attacks(num_classes):
            aa = make_autoattack(view, self.spec, eps=cell.eps, norm=cell.norm, n_classes=num_classes, seed=0,
                                 device=device, iterations=3)
            aa.attacks_to_run = [name]
            aa.apgd_targeted.n_target_classes = aa.fab.n_target_classes = 1
            aa.square.n_queries = 30
            aa.verbose = False
            obj = getattr(aa, SUB_ATTACKS[name])
            spent = {"seconds": 0.0, "calls": 0}
            obj.perturb = functools.partial(_timed_perturb, obj.perturb, free, spent, device)
            aa.run_standard_evaluation(u, y, batch_size=rows)
            seconds.append(spent["seconds"] / max(1, spent["calls"]))
        return seconds

    def _reference(self, cell: Cell, num_classes: int):
        view = UnitBoxView(nn.Identity(), (1,), 0.0, 1.0)
        return make_autoattack(view, self.spec, eps=0.0, norm=cell.norm or self.spec.norm, n_classes=num_classes,
                               seed=0, device="cpu", iterations=self.spec.steps)

    def run(self, model, x, y, cell: Cell, ctx: AttackContext) -> BatchResult:
        x_adv, broken_by = self.craft(model, x, y, cell, ctx)
        robust = (ctx.clean_logits.argmax(1) == y) & finite_rows(ctx.clean_logits)
        with torch.no_grad():
            logits = model(x_adv).float()
        return BatchResult(pred=logits.argmax(1).cpu(), margin=margins(logits, y).cpu(), attacked=robust.cpu(),
                           perturbation_norm=per_sample_norm(x_adv - x, cell.norm).cpu(), broken_by=broken_by,
                           valid=finite_rows(logits).cpu())

    def craft(self, model, x, y, cell: Cell, ctx: AttackContext) -> tuple[torch.Tensor, list[str]]:
        """(x_adv, the sub-attack that broke each sample) of the reference AutoAttack on `model`."""
        _compat.apply("autoattack_module")
        view = UnitBoxView(model, tuple(x.shape[1:]), ctx.low, ctx.high)
        aa = make_autoattack(view, self.spec, eps=cell.eps, norm=cell.norm, n_classes=ctx.num_classes,
                             seed=self.spec.seed + ctx.seed, device=ctx.device, iterations=self.spec.steps)
        clean = ctx.clean_logits
        robust = (clean.argmax(1) == y) & finite_rows(clean)
        broken_by = [""] * len(x)
        self._record_sub_attacks(aa, view, robust.clone(), y, broken_by)
        u = view.to_unit(x)
        u_adv, _ = aa.run_standard_evaluation(u, y, batch_size=len(x))
        return view.from_unit(u_adv).detach(), broken_by

    @staticmethod
    def _record_sub_attacks(aa, view, robust: torch.Tensor, y, broken_by: list[str]) -> None:
        """Wrap each sub-attack's perturb to learn which samples it broke."""
        state = {"attack": None, "pending": [], "robust": robust}

        def wrap(name: str, obj):
            original = obj.perturb

            def perturb(x_u, y_u, *args, **kwargs):
                if state["attack"] != name:  # a new sub-attack starts on the still-robust set, index order
                    state["attack"] = name
                    state["pending"] = state["robust"].nonzero().squeeze(1).tolist()
                adv = original(x_u, y_u, *args, **kwargs)
                idx = state["pending"][:len(x_u)]
                state["pending"] = state["pending"][len(x_u):]
                with torch.no_grad():
                    wrong = (view(adv).argmax(1) != y_u).tolist()
                for i, w in zip(idx, wrong, strict=True):
                    if w and not broken_by[i]:
                        broken_by[i] = name
                        state["robust"][i] = False
                return adv

            return perturb

        originals = {}
        for name in aa.attacks_to_run:
            obj = getattr(aa, SUB_ATTACKS[name])
            originals.setdefault(id(obj), (obj, obj.perturb))
        # Sub-attacks sharing an object (apgd-ce/apgd-dlr, fab/fab-t) are told apart by AutoAttack's own flags.
        for obj, _ in originals.values():
            names = [n for n in aa.attacks_to_run if getattr(aa, SUB_ATTACKS[n]) is obj]
            if len(names) == 1:
                obj.perturb = wrap(names[0], obj)
            else:
                obj.perturb = _dispatch(obj, {n: wrap(n, obj) for n in names})


def _dispatch(obj, wrapped: dict):
    def perturb(x_u, y_u, *args, **kwargs):
        if "fab" in wrapped and "fab-t" in wrapped:
            name = "fab-t" if obj.targeted else "fab"
        else:
            name = "apgd-dlr" if getattr(obj, "loss", "ce") == "dlr" else "apgd-ce"
        return wrapped[name](x_u, y_u, *args, **kwargs)

    return perturb
