"""Natural corruptions as a threat: one cell per (corruption, severity), deterministic per sample.

Every sample is evaluated (corruptions are not adversarial, so misclassified clean samples are not
skipped); `attacked` is True for all rows. The corruption list per modality comes from the spec's
`corruptions` (empty: every corruption registered for the modality) or, where the spec's `subset` names
the modality's short list (the quick suite), from that list.

The runner makes the corrupted inputs of image, thermal, depth and audio samples ahead of time, in its
DataLoader workers, and keeps them on disk (corruptions/cache.py); `run` reads them through the context
and makes them itself only when they are not there, to the same values.
"""

from __future__ import annotations

import torch

# Called through the package at call time (as corruptions/cache.py does), so that tests can count the calls.
from rlbind_bench.threats import corruptions
from rlbind_bench.threats.base import (
    Attack,
    AttackContext,
    BatchResult,
    Cell,
    PassCount,
    finite_rows,
    margins,
)
from rlbind_bench.threats.registry import register_attack
from rlbind_bench.threats.spec import SEVERITIES, CorruptionSpec


@register_attack("corruptions")
class CorruptionThreat(Attack):
    spec_type = CorruptionSpec

    def names_for(self, modality: str) -> list[str]:
        available = corruptions.list_corruptions(modality)
        if self.spec.subset:
            wanted = self.spec.subset.get(modality, ())
        else:
            wanted = self.spec.corruptions or available
        return [n for n in wanted if n in available]

    def cells(self, modality: str) -> list[Cell]:
        severities = self.spec.severities or SEVERITIES
        return [Cell(self.spec.name, severity=int(s), variant=n) for n in self.names_for(modality) for s in severities]

    def pass_budget(self, cell: Cell, num_classes: int) -> PassCount:
        return PassCount(forward=1)  # the corrupted input, once

    def run(self, model, x, y, cell: Cell, ctx: AttackContext) -> BatchResult:
        seed = self.spec.seed + ctx.seed
        xc = ctx.corrupted.batch(cell.variant, cell.severity, seed) if ctx.corrupted is not None else None
        if xc is None:  # not prefetched (video, cache off or unwritable): made here, to the same values
            xc = corruptions.corrupt_batch(ctx.modality, cell.variant, cell.severity, x.detach().cpu(), seed=seed,
                               sample_ids=ctx.sample_ids)
        xc = xc.to(x.device)
        with torch.no_grad():
            logits = model(xc).float()
        b = len(x)
        diff = (xc - x).flatten(1)
        return BatchResult(pred=logits.argmax(1).cpu(), margin=margins(logits, y).cpu(),
                           attacked=torch.ones(b, dtype=torch.bool), perturbation_norm=diff.norm(dim=1).cpu(),
                           broken_by=[""] * b, valid=finite_rows(logits).cpu())
