"""Transfer (black-box) threat: adversarial inputs crafted on a source model, evaluated on the target.

The source is any model spec `load_encoder` takes (`source:` in the YAML, or `rlbind-bench run
--transfer-from SPEC`), with a tower for the dataset's modality and the same input space as the target
(shape and box; anything else is refused before the first batch). Its zero-shot classifier uses the
dataset's own classes and templates. Crafting:
- `craft: pgd`: the evaluation PGD of threats/pgd.py on the source (per-sample seeded starts, the first
  iterate that fools the *source* is kept), on the samples the target classifies correctly (only_correct):
  with source == target the rows equal the white-box PGD rows of the same settings;
- `craft: autoattack`: the reference AutoAttack on the source (threats/autoattack.py; it leaves the samples
  the source already misclassifies unperturbed).
The target sees the crafted input once; a sample counts as broken ("transfer") when the target misclassifies it.
The source spec and its weights' fingerprint are in the cell's config (config_hash); rows carry the source in
`source_model`, and the threat label reads "<threat> from <source>", so transfers from different sources
never merge into one leaderboard column. Transfer numbers are upper bounds on robustness that no
white-box sanity check can judge (the gradients used are the source's), and they never rank models
(`strength` 0).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from rlbind_bench.errors import ConfigError
from rlbind_bench.threats.autoattack import AutoAttackThreat
from rlbind_bench.threats.base import (
    AttackContext,
    AttackSetup,
    BatchResult,
    Cell,
    PassCount,
    finite_rows,
    margins,
    per_sample_norm,
)
from rlbind_bench.threats.pgd import PGD
from rlbind_bench.threats.registry import register_attack
from rlbind_bench.threats.spec import AutoAttackSpec, PGDSpec

CRAFTS = ("pgd", "autoattack")
# The AutoAttack settings a transfer spec carries, with their defaults: read only by craft: autoattack.
_AA_FIELDS = {"version": "standard", "n_target_classes": 9}
# The PGD settings read only by craft: pgd (AutoAttack runs with the reference's own).
_PGD_FIELDS = {"step_size": None, "restarts": 1, "random_start": True, "loss": "ce", "eot_iter": 1,
               "only_correct": True}


@dataclass(frozen=True)
class TransferSpec(PGDSpec):
    """Inputs crafted on `source` with `craft` (pgd: the PGD settings; autoattack: version, n_target_classes)."""

    source: str = ""  # a model spec (load_encoder); --transfer-from overrides it
    craft: str = "pgd"
    version: str = "standard"
    n_target_classes: int = 9

    def __post_init__(self):
        super().__post_init__()
        if self.craft not in CRAFTS:
            raise ConfigError(f"threat {self.name}: craft must be one of {', '.join(CRAFTS)}, got {self.craft!r}")
        unread = _AA_FIELDS if self.craft == "pgd" else _PGD_FIELDS
        for key, default in unread.items():
            if getattr(self, key) != default:
                raise ConfigError(f"threat {self.name}: {key} is not read by craft: {self.craft}")
        if self.craft == "autoattack":
            self.autoattack_spec()  # validates version and n_target_classes

    def autoattack_spec(self) -> AutoAttackSpec:
        return AutoAttackSpec(name=self.name, attack="autoattack", modalities=self.modalities, norm=self.norm,
                              eps=self.eps, steps=self.steps, seed=self.seed, version=self.version,
                              n_target_classes=self.n_target_classes)

    def summary(self) -> str:
        return (f"{self.attack} from {self.source or '(--transfer-from)'} via {self.craft} {self.norm} "
                f"eps={[round(e, 6) for e in self.eps]} steps={self.steps}")


@register_attack("transfer")
class Transfer(PGD):
    spec_type = TransferSpec
    adversarial = True  # crafting needs input gradients (of the source); --eps/--steps apply
    white_box = False
    strength = 0
    batch_dependent = False

    def __init__(self, spec: TransferSpec):
        super().__init__(spec)
        self.source_classifier = None
        self.source_fingerprint = ""
        self.crafter = AutoAttackThreat(spec.autoattack_spec()) if spec.craft == "autoattack" else None
        if self.crafter is not None:
            self.batch_dependent = True  # the reference draws its randomness per call

    @property
    def source_model(self) -> str:
        return self.spec.source

    def prepare(self, setup: AttackSetup) -> None:
        where = f"threat {self.spec.name}"
        if not self.spec.source:
            raise ConfigError(f"{where}: no source model (rlbind-bench run --transfer-from SPEC, or source: in "
                              "the threat's YAML)")
        encoder, self.source_fingerprint = setup.load_model(self.spec.source)
        if setup.modality not in encoder.modalities:
            raise ConfigError(f"{where}: source {self.spec.source} has no {setup.modality} tower (it has: "
                              f"{', '.join(encoder.modalities)})")
        space, target = encoder.input_space(setup.modality, **setup.hints), setup.space
        if (tuple(space.shape), space.low, space.high) != (tuple(target.shape), target.low, target.high):
            raise ConfigError(f"{where}: source {self.spec.source} takes {setup.modality} inputs of shape "
                              f"{list(space.shape)} in [{space.low:g}, {space.high:g}], the target "
                              f"{list(target.shape)} in [{target.low:g}, {target.high:g}]: a transfer needs one "
                              "input space")
        self.source_classifier = setup.classifier_for(encoder)

    def cells(self, modality: str) -> list[Cell]:
        return [Cell(f"{self.spec.name} from {self.spec.source}", norm=self.spec.norm, eps=float(e))
                for e in self.spec.eps]

    def cell_config(self, cell: Cell, num_classes: int | None = None) -> dict:
        if self.source_classifier is None:
            raise RuntimeError("Transfer.prepare must run before cell_config (the source's fingerprint is hashed)")
        crafter = self.crafter.cell_config(cell, num_classes) if self.crafter else super().cell_config(cell, num_classes)
        return {**crafter, "threat": self.spec.to_dict(), "source_fingerprint": self.source_fingerprint}

    def pass_budget(self, cell: Cell, num_classes: int) -> PassCount:
        """The crafting passes on the source (PGD's, or AutoAttack's after the source's clean forward), then one
        forward of the crafted input on the evaluated model."""
        if self.crafter is None:
            crafted = super().pass_budget(cell, num_classes)
        else:
            crafted = PassCount(forward=1) + self.crafter.pass_budget(cell, num_classes)
        return crafted.on_source() + PassCount(forward=1)

    def run(self, model, x, y, cell: Cell, ctx: AttackContext) -> BatchResult:
        source = self.source_classifier
        if self.crafter is None:
            # Seeded as the white-box PGD threat of the same name and settings (its cell has no source in its
            # key), so a transfer from the target itself gives that threat's rows.
            white_box_cell = dataclasses.replace(cell, threat=self.spec.name)
            x_adv, todo, _, _ = self.craft(source, x, y, white_box_cell, ctx, cell.eps, self.step_size(cell.eps))
        else:
            with torch.no_grad():
                source_clean = source(x).float()
            crafted, _ = self.crafter.craft(source, x, y, cell, dataclasses.replace(ctx, clean_logits=source_clean))
            todo = (ctx.clean_logits.argmax(1) == y) & finite_rows(ctx.clean_logits)
            x_adv = torch.where(todo.view(-1, *([1] * (x.dim() - 1))), crafted, x)
        with torch.no_grad():
            logits = ctx.clean_logits.clone()
            if todo.any():
                logits[todo] = model(x_adv[todo]).float()
        broken = todo & (logits.argmax(1) != y)
        return BatchResult(pred=logits.argmax(1).cpu(), margin=margins(logits, y).cpu(), attacked=todo.cpu(),
                           perturbation_norm=per_sample_norm(x_adv - x, cell.norm).cpu(),
                           broken_by=["transfer" if b else "" for b in broken.tolist()],
                           valid=finite_rows(logits).cpu())
