"""The cross-modal targeted threat: perturb one modality so that its embedding lands on a chosen target.

In a bound encoder every modality shares the text space, so an attacker who controls an audio clip (or an
image, a depth map...) can make it "mean" another class's text to everything downstream. `target: text`
aims at another class's text embedding (the dataset's zero-shot class embedding, templates averaged): the
class is (label + 1 + offset) mod C with offset drawn per sample from (seed, sample_id) in [0, C-2], so it is
never the true class and does not depend on the batch.

Loss `cosine` ascends cos(f(x+δ), t_target) (the embedding moves towards the target); `ce` descends the
cross-entropy of the zero-shot logits towards the target class (a targeted PGD). The iteration is
`pgd.pgd_maximise` from a random start drawn per sample; every finite sample is attacked, last iterate kept.
Success: the attacked embedding's nearest class text is the target (pred == target; the summary's
target_success). Rows record the target and the rank of the true class at the attacked point.

`target: modality:M` (a sample of another modality's dataset, of another class, as the target) is refused for
now: the runner evaluates one dataset at a time, and it would need M's dataset indexed and embedded (one
target embedding per class, e.g. the mean of that class's M embeddings, cached like the class texts) and
passed to the attack through `AttackContext`, with M's dataset in the cell's config_hash.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlbind_bench.errors import ConfigError
from rlbind_bench.seeding import seeded_generator
from rlbind_bench.threats.base import (
    Attack,
    AttackContext,
    BatchResult,
    Cell,
    Measure,
    finite_rows,
    margins,
    per_sample_norm,
    true_ranks,
)
from rlbind_bench.threats.embedding import attack_embedding, embedder, final_point, step_size_for
from rlbind_bench.threats.registry import register_attack
from rlbind_bench.threats.spec import AdversarialSpec, parse_number

TARGETS = ("text",)
# (embedding at x+δ, target class text embeddings [B, D], the model's zero-shot head, target classes) -> loss
CROSSMODAL_LOSSES = {
    "cosine": lambda emb, text, head, t: F.cosine_similarity(emb, text, dim=-1).sum(),
    "ce": lambda emb, text, head, t: -F.cross_entropy(head(emb), t, reduction="sum"),
}


@dataclass(frozen=True)
class CrossModalSpec(AdversarialSpec):
    """Targeted PGD in the input box towards another class's text embedding."""

    target: str = "text"  # text: another class's text embedding (modality:M is not implemented yet)
    loss: str = "cosine"  # cosine: ascend cos(f(x+δ), target); ce: targeted cross-entropy on the zero-shot logits
    step_size: float | None = None  # absolute; None: 2.5 * eps / steps
    random_start: bool = True

    def __post_init__(self):
        super().__post_init__()
        if self.target.startswith("modality:"):
            raise ConfigError(f"threat {self.name}: target {self.target!r}: targets from another modality's "
                              "dataset are not implemented yet (use target: text)")
        if self.target not in TARGETS:
            raise ConfigError(f"threat {self.name}: target must be text, got {self.target!r}")
        if self.loss not in CROSSMODAL_LOSSES:
            raise ConfigError(f"threat {self.name}: loss {self.loss!r} is not implemented "
                              f"(known: {', '.join(CROSSMODAL_LOSSES)})")

    def summary(self) -> str:
        return f"{super().summary()} target={self.target} loss={self.loss}"

    @classmethod
    def coerce(cls, data: dict, where: str) -> dict:
        data = super().coerce(data, where)
        if data.get("step_size") is not None:
            data["step_size"] = parse_number(data["step_size"], f"{where}: step_size")
        return data


def target_classes(y: torch.Tensor, ids: list[str], num_classes: int, seed: int) -> torch.Tensor:
    """Per sample, a class other than its label: (label + 1 + offset) mod C, offset in [0, C-2] drawn from
    (seed, sample_id)."""
    offsets = [int(torch.randint(num_classes - 1, (), generator=seeded_generator(seed, sid, "crossmodal-target")))
               for sid in ids]
    return (y.cpu() + 1 + torch.tensor(offsets, dtype=torch.long)) % num_classes


@register_attack("crossmodal-pgd")
class CrossModalPGD(Attack):
    spec_type = CrossModalSpec
    adversarial = True
    measure = Measure("target_success", lower_is_stronger=False)

    def cells(self, modality: str) -> list[Cell]:
        return [Cell(self.spec.name, norm=self.spec.norm, eps=float(e)) for e in self.spec.eps]

    def cell_config(self, cell: Cell, num_classes: int | None = None) -> dict:
        if num_classes is not None and num_classes < 2:
            raise ConfigError(f"threat {self.spec.name}: a target other than the true class needs >= 2 classes")
        return {**super().cell_config(cell, num_classes), "effective_step_size": step_size_for(self.spec, cell.eps)}

    def run(self, model, x, y, cell: Cell, ctx: AttackContext) -> BatchResult:
        _, head = embedder(model)
        texts = model.class_embeddings
        seed = self.spec.seed + ctx.seed
        target = target_classes(y, ctx.sample_ids, ctx.num_classes, seed).to(y.device)
        todo = finite_rows(ctx.clean_logits)
        x_final = x.clone()
        if todo.any() and cell.eps > 0:
            ids = [i for i, t in zip(ctx.sample_ids, todo.tolist(), strict=True) if t]
            t = target[todo]
            loss = CROSSMODAL_LOSSES[self.spec.loss]
            x_final[todo] = attack_embedding(
                model, x[todo], lambda emb: loss(emb, texts[t], head, t), eps=cell.eps, norm=cell.norm,
                steps=self.spec.steps, step_size=step_size_for(self.spec, cell.eps), low=ctx.low, high=ctx.high,
                ids=ids, seed=seed, salt=cell.key, random_init=self.spec.random_start)
        _, logits = final_point(model, x_final)
        pred = logits.argmax(1)
        flipped = (ctx.clean_logits.argmax(1) == y) & (pred != y) & todo
        return BatchResult(
            pred=pred.cpu(), margin=margins(logits, y).cpu(), attacked=todo.cpu(),
            perturbation_norm=per_sample_norm(x_final - x, cell.norm).cpu(),
            broken_by=[self.name if b else "" for b in flipped.tolist()], valid=finite_rows(logits).cpu(),
            target=target.cpu(), true_rank=true_ranks(logits, y).cpu())
