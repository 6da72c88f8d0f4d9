"""`run --autoattack-subset N`: the attacks too costly for the whole set run on a fixed, documented subset.

RobustBench evaluates AutoAttack on a fixed list of test images (the first n of its own order) when the whole
set is out of reach. Dataset folders here are read class by class, so "the first n" would be a few classes:
the subset is instead the n evaluated sample ids with the smallest sha256 of the id, a rule that needs no list,
keeps a sample in the subset whatever else the dataset holds, and mixes classes. Only attacks whose class sets
`on_fixed_subset` (AutoAttack and its dB variant) are narrowed: every other cell keeps every sample. The subset
size and rule enter those cells' config_hash and the run_id, and their rows exist only for the subset's samples
(the summary's n says so).
"""

from __future__ import annotations

import dataclasses
import hashlib

import torch

from rlbind_bench.threats.base import AttackContext

SUBSET_RULE = "the n evaluated sample ids with the smallest sha256(sample_id), hex order"


def fixed_subset(sample_ids: list[str], n: int) -> frozenset[str]:
    ranked = sorted(sample_ids, key=lambda s: hashlib.sha256(s.encode()).hexdigest())
    return frozenset(ranked[:n])


def subset_config(n: int) -> dict:
    """What a narrowed cell adds to its config (and so to its config_hash)."""
    return {"subset": {"n": n, "rule": SUBSET_RULE}}


def narrow_context(ctx: AttackContext, keep: list[int]) -> AttackContext:
    """The context of the batch's rows `keep` (corrupted inputs are never needed by the narrowed attacks)."""
    index = torch.tensor(keep, device=ctx.clean_logits.device)
    return dataclasses.replace(ctx, sample_ids=[ctx.sample_ids[j] for j in keep],
                               clean_logits=ctx.clean_logits[index], corrupted=None)
