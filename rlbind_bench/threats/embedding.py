"""The embedding-space threat (label-free): PGD that moves f(x+δ) away from f(x), f the modality's tower.

Bound encoders are used through their embeddings (retrieval, generation, other modalities' heads), not only
through one zero-shot head: this threat measures how far a budget moves the embedding itself, as FARE
(Schlarmann et al., 2024) trains against. Loss `cosine` ascends 1 - cos(f(x+δ), f(x)); loss `l2` ascends
||f(x+δ) - f(x)||² on the unnormalised embeddings (FARE's). Both are flat at δ = 0 (their gradient there is
zero), so the attack always starts from a random point of the ball, drawn per sample from (seed, sample_id,
cell) as PGD's is: rows do not depend on the batch. The iteration is `pgd.pgd_maximise`, every step, last
iterate kept.

Rows record the cosine kept, cos(f(x_final), f(x)), the zero-shot prediction at x_final (pred, correct,
margin) and the true class's rank there; every finite sample is attacked (no label is needed).
Cost: steps forward+backward passes, plus two forwards (the clean embedding and the final one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlbind_bench.errors import ConfigError
from rlbind_bench.threats.base import (
    Attack,
    AttackContext,
    BatchResult,
    Cell,
    Measure,
    PassCount,
    finite_rows,
    margins,
    per_sample_norm,
    true_ranks,
)
from rlbind_bench.threats.pgd import default_step_size, pgd_maximise, random_start
from rlbind_bench.threats.registry import register_attack
from rlbind_bench.threats.spec import AdversarialSpec

# Each loss summed over the batch (a sample's gradient is its own), from (embedding at x+δ, clean embedding).
EMBEDDING_LOSSES = {
    "cosine": lambda emb, ref: (1 - F.cosine_similarity(emb, ref, dim=-1)).sum(),
    "l2": lambda emb, ref: (emb - ref).pow(2).sum(),
}


@dataclass(frozen=True)
class EmbeddingPGDSpec(AdversarialSpec):
    """Label-free PGD in the input box, maximising the distance of the embedding from the clean one."""

    loss: str = "cosine"  # cosine: 1 - cos(f(x+δ), f(x)); l2: ||f(x+δ) - f(x)||², unnormalised (FARE's)
    step_size: float | None = None  # absolute; None: 2.5 * eps / steps

    def __post_init__(self):
        super().__post_init__()
        if self.loss not in EMBEDDING_LOSSES:
            raise ConfigError(f"threat {self.name}: loss {self.loss!r} is not implemented "
                              f"(known: {', '.join(EMBEDDING_LOSSES)})")

    def summary(self) -> str:
        return f"{super().summary()} loss={self.loss}"


def embedder(model):
    """The model's raw embedding and its zero-shot head (zeroshot.ZeroShotClassifier's `embed`, `logits_from`)."""
    if not (hasattr(model, "embed") and hasattr(model, "logits_from")):
        raise TypeError(f"embedding-space threats need a model with embed() and logits_from() (a "
                        f"ZeroShotClassifier), got {type(model).__name__}")
    return model.embed, model.logits_from


def attack_embedding(model, x: torch.Tensor, loss_fn, *, eps: float, norm: str, steps: int, step_size: float,
                     low: float, high: float, ids: list[str], seed: int, salt: str, random_init: bool = True):
    """x_adv in the ball and box maximising `loss_fn(embedding at x_adv)` (summed over the batch), from a
    random start drawn per sample; the shared core of the embedding-space threats."""
    embed, _ = embedder(model)
    start = random_start(x, eps, norm, ids, seed, salt) if random_init else torch.zeros_like(x)
    return pgd_maximise(lambda z: loss_fn(embed(z)), x, eps=eps, steps=steps, step_size=step_size, low=low,
                        high=high, norm=norm, start=start)


def final_point(model, x_adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(embedding, logits) at x_adv, one forward."""
    embed, head = embedder(model)
    with torch.no_grad():
        emb = embed(x_adv)
        return emb, head(emb).float()


def step_size_for(spec, eps: float) -> float:
    return spec.step_size if spec.step_size is not None else default_step_size(eps, spec.steps)


@register_attack("embedding-pgd")
class EmbeddingPGD(Attack):
    spec_type = EmbeddingPGDSpec
    adversarial = True
    label_free = True
    measure = Measure("mean_cosine")  # a stronger attack keeps less cosine

    def cells(self, modality: str) -> list[Cell]:
        return [Cell(self.spec.name, norm=self.spec.norm, eps=float(e)) for e in self.spec.eps]

    def cell_config(self, cell: Cell, num_classes: int | None = None) -> dict:
        return {**super().cell_config(cell, num_classes), "effective_step_size": step_size_for(self.spec, cell.eps)}

    def pass_budget(self, cell: Cell, num_classes: int) -> PassCount:
        """The clean embedding and the final point (forwards), and `steps` forward+backward passes (every step
        runs: the last iterate is kept)."""
        return PassCount(forward=2, backward=self.spec.steps if cell.eps > 0 else 0)

    def run(self, model, x, y, cell: Cell, ctx: AttackContext) -> BatchResult:
        embed, _ = embedder(model)
        todo = finite_rows(ctx.clean_logits)
        with torch.no_grad():
            ref = embed(x)
        x_final = x.clone()
        if todo.any() and cell.eps > 0:
            ids = [i for i, t in zip(ctx.sample_ids, todo.tolist(), strict=True) if t]
            sub_ref = ref[todo]
            x_final[todo] = attack_embedding(
                model, x[todo], lambda emb: EMBEDDING_LOSSES[self.spec.loss](emb, sub_ref), eps=cell.eps,
                norm=cell.norm, steps=self.spec.steps, step_size=step_size_for(self.spec, cell.eps), low=ctx.low,
                high=ctx.high, ids=ids, seed=self.spec.seed + ctx.seed, salt=cell.key)
        emb, logits = final_point(model, x_final)
        pred = logits.argmax(1)
        flipped = (ctx.clean_logits.argmax(1) == y) & (pred != y) & todo
        return BatchResult(
            pred=pred.cpu(), margin=margins(logits, y).cpu(), attacked=todo.cpu(),
            perturbation_norm=per_sample_norm(x_final - x, cell.norm).cpu(),
            broken_by=[self.name if b else "" for b in flipped.tolist()], valid=finite_rows(logits).cpu(),
            embedding_cosine=F.cosine_similarity(emb, ref, dim=-1).cpu(), true_rank=true_ranks(logits, y).cpu())
