"""The clean 'threat': the unperturbed input, computed once per sample and shared by every threat."""

from __future__ import annotations

import torch

from rlbind_bench.threats.base import Attack, AttackContext, BatchResult, Cell, finite_rows, margins


class Clean(Attack):
    def cells(self) -> list[Cell]:
        return [Cell(self.spec.name)]

    def run(self, model, x, y, cell, ctx: AttackContext) -> BatchResult:
        logits = ctx.clean_logits
        b = len(y)
        return BatchResult(pred=logits.argmax(1), margin=margins(logits, y), attacked=torch.zeros(b, dtype=torch.bool),
                           perturbation_norm=torch.full((b,), float("nan")), broken_by=[""] * b,
                           valid=finite_rows(logits))
