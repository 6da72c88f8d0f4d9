"""Items -> normalised embeddings (clean, and after an attack on one side), batch by batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlbind_bench.modalities import InputSpace, UnreadableSample, get_handler
from rlbind_bench.retrieval.layouts import Item
from rlbind_bench.retrieval.spec import TEXT
from rlbind_bench.threats.base import per_sample_norm


@dataclass
class Side:
    """The items of one modality of a set, ready to embed: the readable ones, their space and hints."""

    modality: str
    items: list[Item]
    space: InputSpace | None  # None for text
    hints: dict
    embeddings: torch.Tensor | None = None  # [N, D] clean, normalised (embed_clean)

    @property
    def ids(self) -> list[str]:
        return [i.item_id for i in self.items]

    @property
    def groups(self) -> torch.Tensor:
        return torch.tensor([i.group for i in self.items], dtype=torch.long)


def load_inputs(encoder, side: Side, items: list[Item]) -> torch.Tensor:
    cfg = encoder.preprocess_config(side.modality)
    handler = get_handler(side.modality)
    return torch.stack([handler.load(i.path, cfg, **side.hints) for i in items])


def batches(n: int, size: int) -> Iterator[range]:
    for lo in range(0, n, size):
        yield range(lo, min(n, lo + size))


@torch.no_grad()
def embed_clean(encoder, side: Side, batch_size: int, device: torch.device) -> list[str]:
    """Set `side.embeddings` ([N, D] normalised float32 on the CPU) and drop the items that do not decode from
    `side.items`; return one line per dropped item (they are skipped and listed, as `run` does)."""
    out, kept, bad = [], [], []
    cfg = None if side.modality == TEXT else encoder.preprocess_config(side.modality)
    for idx in batches(len(side.items), batch_size):
        chunk = [side.items[i] for i in idx]
        if side.modality == TEXT:
            z = encoder.encode_text([i.text for i in chunk])
        else:
            xs = []
            for item in chunk:
                try:
                    xs.append(get_handler(side.modality).load(item.path, cfg, **side.hints))
                except UnreadableSample as exc:
                    bad.append(f"{item.item_id}: {exc}")
                    continue
                kept.append(item)
            if not xs:
                continue
            z = encoder.encode(side.modality, torch.stack(xs).to(device))
        out.append(F.normalize(z.float(), dim=-1).cpu())
    if side.modality != TEXT:
        side.items = kept
    side.embeddings = torch.cat(out) if out else torch.empty(0)
    return bad


def embed_attacked(encoder, side: Side, batch_size: int, device: torch.device, norm: str,
                   perturb_batch: Callable[[torch.Tensor, list[int]], torch.Tensor]) -> tuple[torch.Tensor, float]:
    """([N, D] normalised embeddings of the perturbed items, the largest `norm` of a perturbation applied).

    perturb_batch(x, indices) returns the perturbed inputs of the items at `indices`."""
    out, largest = [], 0.0
    for idx in batches(len(side.items), batch_size):
        x = load_inputs(encoder, side, [side.items[i] for i in idx]).to(device)
        x_adv = perturb_batch(x, list(idx))
        side.space.check(x_adv)
        largest = max(largest, float(per_sample_norm(x_adv - x, norm).max()))
        with torch.no_grad():
            out.append(F.normalize(encoder.encode(side.modality, x_adv).float(), dim=-1).cpu())
    return torch.cat(out), largest
