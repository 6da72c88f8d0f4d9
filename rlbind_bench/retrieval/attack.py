"""PGD against retrieval: perturb one side of a pair (the queries, or the gallery items) in its raw input space.

The attacked item's embedding is scored against the other side's clean, normalised embeddings ("others"), and
`threats/pgd.pgd_maximise` ascends a loss that is high when the item's relevant counterparts score low:
- ce:  the multi-positive contrastive loss, -log(sum over relevant of softmax(scale * cosines)): a query
       moves away from its relevant gallery items and towards the rest (a gallery item, likewise, away from
       its relevant queries and towards the others');
- sim: the mean cosine to the relevant counterparts, negated (only pushes away).
Each item's loss depends on its own input only (encoders run in eval mode), so the batch sum gives every
item its own gradient, and the random start is drawn per item from (seed, item id, salt): rows never depend
on the batch an item is in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlbind_bench.constants import LOGIT_SCALE
from rlbind_bench.threats.pgd import default_step_size, pgd_maximise, random_start

NORMS = ("Linf", "L2")
SIDES = ("query", "gallery")


def ce_loss(logits: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """Per row: logsumexp over all - logsumexp over the relevant (0 for a row without relevant items)."""
    has = relevant.any(1)
    rel = torch.logsumexp(logits.masked_fill(~relevant, float("-inf")), 1)
    return torch.where(has, torch.logsumexp(logits, 1) - rel.masked_fill(~has, 0.0), torch.zeros_like(rel)).sum()


def sim_loss(logits: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """Per row: minus the mean scaled cosine to the relevant items (0 for a row without relevant items)."""
    rel = relevant.float()
    return -((logits * rel).sum(1) / rel.sum(1).clamp_min(1.0)).sum()


LOSSES = {"ce": ce_loss, "sim": sim_loss}


@dataclass(frozen=True)
class RetrievalAttack:
    """The settings of one attacked cell; every field is stored in the outputs and hashed."""

    eps: float
    norm: str = "Linf"
    steps: int = 10
    step_size: float | None = None  # None: 2.5 * eps / steps (the classification PGD's default)
    loss: str = "ce"
    seed: int = 0
    random_start: bool = True
    logit_scale: float = LOGIT_SCALE

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0, got {self.eps}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.step_size is not None and not self.step_size > 0:
            raise ValueError(f"step size must be positive, got {self.step_size}")

    @property
    def effective_step_size(self) -> float:
        return self.step_size if self.step_size is not None else default_step_size(self.eps, self.steps)


def perturb(encoder, modality: str, x: torch.Tensor, ids: list[str], relevant: torch.Tensor, others: torch.Tensor,
            attack: RetrievalAttack, low: float, high: float, salt: str) -> torch.Tensor:
    """x [B, *space] of `modality` -> x_adv in the eps ball around x and in [low, high].

    relevant [B, N] bool: which of the N `others` (clean normalised embeddings [N, D]) each item must lose.
    """
    if attack.eps == 0:
        return x
    others = others.to(x.device, torch.float32)
    relevant = relevant.to(x.device)
    loss = LOSSES[attack.loss]

    def objective(x_adv: torch.Tensor) -> torch.Tensor:
        z = F.normalize(encoder.encode(modality, x_adv).float(), dim=-1)
        return loss(attack.logit_scale * z @ others.T, relevant)

    start = random_start(x, attack.eps, attack.norm, ids, attack.seed, salt) if attack.random_start else None
    return pgd_maximise(objective, x, eps=attack.eps, steps=attack.steps, step_size=attack.effective_step_size,
                        low=low, high=high, random_init=False, g=None, norm=attack.norm, start=start)
