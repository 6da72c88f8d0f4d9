"""Training data: decoded once into memory, and sampled statelessly per step.

The batch of step t is drawn from a generator seeded by (seed, t, salt) (`rlbind_bench.seeding`), never
from a running RNG, so a run resumed from a checkpoint at step t draws the same batches as an
uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from rlbind_bench.config import DatasetSpec
from rlbind_bench.data.readers import InputSpaceDataset, index_dataset
from rlbind_bench.encoders.base import BoundEncoder
from rlbind_bench.errors import UserError
from rlbind_bench.modalities import get_handler
from rlbind_bench.zeroshot import build_class_embeddings


@dataclass
class TrainData:
    """Per modality: decoded training tensors in the input space, labels, class text embeddings."""

    x: dict[str, torch.Tensor] = field(default_factory=dict)
    y: dict[str, torch.Tensor] = field(default_factory=dict)
    class_text: dict[str, torch.Tensor] = field(default_factory=dict)
    low_high: dict[str, tuple[float, float]] = field(default_factory=dict)
    datasets: dict[str, str] = field(default_factory=dict)
    classes: dict[str, list[str]] = field(default_factory=dict)


def load_training_data(encoder: BoundEncoder, specs: list[DatasetSpec], data_root: Path, cache_dir: Path | None,
                       max_per_modality: int | None = None) -> TrainData:
    """Decode every training sample once (small demo-scale sets); unreadable files are skipped."""
    data = TrainData()
    for spec in specs:
        encoder.require(spec.modality)
        index = index_dataset(spec, data_root, max_per_modality)
        hints = get_handler(spec.modality).input_hints(index)
        ds = InputSpaceDataset(index, encoder.preprocess_config(spec.modality), hints)
        xs, ys = [], []
        for i in range(len(ds)):
            _, x, _ = ds[i]
            if x is not None:
                xs.append(x)
                ys.append(index.samples[i].label)
        if not xs:
            raise UserError(f"training dataset {spec.name}: no readable samples")
        space = encoder.input_space(spec.modality, **hints)
        data.x[spec.modality] = torch.stack(xs)
        data.y[spec.modality] = torch.tensor(ys)
        data.class_text[spec.modality] = build_class_embeddings(encoder, index.prompts, spec.template_list(),
                                                                cache_dir=cache_dir)
        data.low_high[spec.modality] = (space.low, space.high)
        data.datasets[spec.modality] = spec.name
        data.classes[spec.modality] = index.prompts
    return data


def sample_batch(y: torch.Tensor, batch_size: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(len(y), (batch_size,), generator=g)


def class_balanced_batches(ys: dict[str, torch.Tensor], batch_size: int, classes_per_batch: int,
                           g: torch.Generator) -> dict[str, torch.Tensor]:
    """The same classes in every modality's batch (stage 2): draw K shared classes, then batch_size / K
    samples of each class per modality (with replacement when a class is small)."""
    shared = set.intersection(*(set(y.tolist()) for y in ys.values()))
    if not shared:
        raise UserError("class-balanced batches need classes shared by the modalities' training sets")
    shared = sorted(shared)
    k = min(classes_per_batch, len(shared))
    chosen = [shared[i] for i in torch.randperm(len(shared), generator=g)[:k].tolist()]
    per_class = max(1, batch_size // k)
    out = {}
    for m, y in ys.items():
        idx = []
        for c in chosen:
            pool = (y == c).nonzero().squeeze(1)
            idx.append(pool[torch.randint(len(pool), (per_class,), generator=g)])
        out[m] = torch.cat(idx)
    return out
