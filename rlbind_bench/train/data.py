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
    classes: dict[str, list[str]] = field(default_factory=dict)  # label -> the name the zero-shot prompts use

    def shared_label_ids(self, modalities) -> dict[str, torch.Tensor]:
        """Per modality, label -> an id shared across modalities by class NAME (stage 2 pairs classes by it,
        never by label: two datasets may list their classes in another order). Ids are numbered by first
        appearance, modalities in the given order, so with one class list everywhere the id is the label."""
        ids: dict[str, int] = {}
        out = {}
        for m in modalities:
            if m not in self.classes:
                raise UserError(f"stage 2 pairs classes by name, but the {m} training data has no class names")
            out[m] = torch.tensor([ids.setdefault(name, len(ids)) for name in self.classes[m]], dtype=torch.long)
        return out

    def check_shared_classes(self, modalities) -> None:
        """One error line when two modalities' training sets share no class name (nothing to pair)."""
        present = {m: {self.classes[m][i] for i in self.y[m].unique().tolist()} for m in modalities
                   if m in self.classes}
        names = list(present)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if not present[a] & present[b]:
                    raise UserError(f"stage 2 pairs classes across modalities by name, but the {a} training set "
                                    f"({self.datasets.get(a, a)}: {_some(present[a])}) and the {b} one "
                                    f"({self.datasets.get(b, b)}: {_some(present[b])}) share no class")


def load_training_data(encoder: BoundEncoder, specs: list[DatasetSpec], data_root: Path, cache_dir: Path | None,
                       max_per_modality: int | None = None) -> TrainData:
    """Decode every training sample once (small demo-scale sets); unreadable files are skipped.

    Several datasets of one modality (the backbone's "pretraining" mix) become one training set whose classes
    are the union of their class names: the labels are renumbered by name and each class keeps the text
    embedding of the first dataset (in the order given) that names it, with that dataset's templates."""
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
        text = build_class_embeddings(encoder, index.prompts, spec.template_list(), cache_dir=cache_dir)
        _add(data, spec, torch.stack(xs), torch.tensor(ys), text, list(index.prompts), (space.low, space.high))
    return data


def _add(data: TrainData, spec: DatasetSpec, x: torch.Tensor, y: torch.Tensor, text: torch.Tensor,
         names: list[str], low_high: tuple[float, float]) -> None:
    m = spec.modality
    if m not in data.x:
        data.x[m], data.y[m], data.class_text[m], data.classes[m] = x, y, text, names
        data.low_high[m], data.datasets[m] = low_high, spec.name
        return
    if x.shape[1:] != data.x[m].shape[1:]:
        raise UserError(f"training datasets {data.datasets[m]} and {spec.name} ({m}) decode to different input "
                        f"shapes {tuple(data.x[m].shape[1:])} and {tuple(x.shape[1:])}: they cannot share a batch")
    if low_high != data.low_high[m]:
        raise UserError(f"training datasets {data.datasets[m]} and {spec.name} ({m}) have different input ranges "
                        f"{data.low_high[m]} and {low_high}")
    known = {name: i for i, name in enumerate(data.classes[m])}
    new_rows = [i for i, name in enumerate(names) if name not in known]
    for i in new_rows:
        known[names[i]] = len(known)
    relabel = torch.tensor([known[name] for name in names], dtype=torch.long)
    data.x[m] = torch.cat([data.x[m], x])
    data.y[m] = torch.cat([data.y[m], relabel[y]])
    data.class_text[m] = torch.cat([data.class_text[m], text[new_rows]])
    data.classes[m] = data.classes[m] + [names[i] for i in new_rows]
    data.datasets[m] = f"{data.datasets[m]}+{spec.name}"


def sample_batch(y: torch.Tensor, batch_size: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(len(y), (batch_size,), generator=g)


def class_balanced_batches(ys: dict[str, torch.Tensor], batch_size: int, classes_per_batch: int,
                           g: torch.Generator) -> dict[str, torch.Tensor]:
    """Class-balanced multi-modal batches (stage 2). `ys`: each modality's labels as ids shared by class name
    (`TrainData.shared_label_ids`). Draw K classes among those any modality has, then batch_size / K samples
    of each (with replacement when a class is small) in every modality that has it; a class one modality
    lacks is drawn for the others only, and a modality holding none of the K sits the step out."""
    present = {m: set(y.tolist()) for m, y in ys.items()}
    pool = sorted(set().union(*present.values()))
    if not pool:
        raise UserError("class-balanced batches need labelled training samples")
    k = min(classes_per_batch, len(pool))
    chosen = [pool[i] for i in torch.randperm(len(pool), generator=g)[:k].tolist()]
    per_class = max(1, batch_size // k)
    out = {}
    for m, y in ys.items():
        idx = []
        for c in chosen:
            if c not in present[m]:
                continue
            pool_c = (y == c).nonzero().squeeze(1)
            idx.append(pool_c[torch.randint(len(pool_c), (per_class,), generator=g)])
        if idx:
            out[m] = torch.cat(idx)
    return out


def _some(names: set[str], n: int = 4) -> str:
    shown = sorted(names)
    return ", ".join(shown[:n]) + (", ..." if len(shown) > n else "")
