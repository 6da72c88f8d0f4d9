"""The clean 'threat': the unperturbed input, computed once per sample and shared by every threat."""

from __future__ import annotations

import torch

from rlbind_bench.threats.base import (
    Attack,
    AttackContext,
    BatchResult,
    Cell,
    PassCount,
    finite_rows,
    margins,
)
from rlbind_bench.threats.spec import CleanSpec


class Clean(Attack):
    name = "clean"  # registered by threats/registry.py itself (no decorator: it imports this module)
    spec_type = CleanSpec

    def cells(self, modality: str) -> list[Cell]:
        return [Cell(self.spec.name)]

    def pass_budget(self, cell: Cell, num_classes: int) -> PassCount:
        return PassCount()  # reads the runner's shared clean logits

    def run(self, model, x, y, cell, ctx: AttackContext) -> BatchResult:
        logits = ctx.clean_logits
        b = len(y)
        return BatchResult(pred=logits.argmax(1), margin=margins(logits, y), attacked=torch.zeros(b, dtype=torch.bool),
                           perturbation_norm=torch.full((b,), float("nan")), broken_by=[""] * b,
                           valid=finite_rows(logits))
