"""The target set of `crossmodal-pgd` with `target: modality:M`: samples of a catalogue dataset of modality M,
embedded once per attacked dataset by the evaluated model's own M tower.

Classes are matched by class id (the folder name, `DatasetIndex.classnames`), never by index: every class of
the attacked dataset must be one of the target dataset's (it may have more; those are left out). Which samples:
per attacked class, the `per_class` samples of that class with the smallest sha256 of their sample id (the rule
of --n-samples: independent of listing order, of the run seed and of the attacked data), in that order;
unreadable files are skipped (a class with none left is refused). The target dataset is read with its catalogue
split and input hints (audio: clip length), as a run on it would read it. Embeddings are computed without
gradients in float32, outside --precision's autocast.

Per attacked sample the target is one sample of its target class: index k in [0, n_class) of that class's list,
drawn from (seed, sample_id) — so it does not depend on the batch; rows record its sample id (`target_sample`).
Success (`target_hit`): the nearest of all target-set embeddings (cosine) to the attacked embedding is of the
target class. `true_rank`: the rank of the true class when classes are scored by the cosine to the mean of
their normalised target-set embeddings (1 = top).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlbind_bench.data.readers import InputSpaceDataset, stable_order_key
from rlbind_bench.errors import ConfigError
from rlbind_bench.hashing import config_hash
from rlbind_bench.modalities import get_handler
from rlbind_bench.seeding import seeded_generator
from rlbind_bench.threats.base import AttackSetup, true_ranks

EMBED_BATCH = 32  # target samples embedded per forward


@dataclass
class TargetSet:
    dataset: str
    modality: str
    classnames: list[str]  # the attacked dataset's class ids, label order
    sample_ids: list[str]  # per row of `embeddings`
    labels: torch.Tensor  # [N] int64: each row's class, in the attacked dataset's labels
    embeddings: torch.Tensor  # [N, D] L2-normalised
    by_class: list[list[int]]  # per attacked class, its rows in id-hash order

    @property
    def prototypes(self) -> torch.Tensor:
        """[C, D] the normalised mean of each class's normalised embeddings."""
        return F.normalize(torch.stack([self.embeddings[rows].mean(0) for rows in self.by_class]), dim=-1)

    def identity(self) -> dict:
        """What the cells' config_hash covers: the dataset, the classes matched and the samples kept."""
        return {"target_dataset": self.dataset, "target_modality": self.modality, "classes": self.classnames,
                "target_ids": config_hash({"ids": self.sample_ids})}

    def pick(self, target: torch.Tensor, ids: list[str], seed: int) -> list[int]:
        """Per sample, the row of its target embedding: one of its target class's rows, drawn from (seed, id)."""
        rows = []
        for t, sid in zip(target.tolist(), ids, strict=True):
            choices = self.by_class[t]
            k = int(torch.randint(len(choices), (), generator=seeded_generator(seed, sid, "crossmodal-target-sample")))
            rows.append(choices[k])
        return rows

    def similarities(self, emb: torch.Tensor) -> torch.Tensor:
        return F.normalize(emb.float(), dim=-1) @ self.embeddings.T

    def hits(self, emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The nearest target-set embedding is of the target class."""
        return self.labels[self.similarities(emb).argmax(1)] == target

    def true_ranks(self, emb: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return true_ranks(F.normalize(emb.float(), dim=-1) @ self.prototypes.T, y)


def build_target_set(setup: AttackSetup, dataset: str, modality: str, per_class: int, where: str) -> TargetSet:
    """Index, check, select and embed the target dataset (see the module's docstring); refusals are one line."""
    encoder = setup.encoder
    if encoder is None or setup.index_named is None:
        raise RuntimeError("target modality:M needs AttackSetup.encoder and index_named (the runner gives them)")
    if modality == setup.modality:
        raise ConfigError(f"{where}: target modality:{modality} on a {modality} dataset: the target must be "
                          "another modality")
    if modality not in encoder.modalities:
        raise ConfigError(f"{where}: the model has no {modality} tower for target modality:{modality} (it has: "
                          f"{', '.join(encoder.modalities)})")
    index = setup.index_named(dataset)
    if index.spec.modality != modality:
        raise ConfigError(f"{where}: target_dataset {dataset} is a {index.spec.modality} dataset, target "
                          f"modality:{modality} needs a {modality} one")
    missing = [c for c in setup.classnames if c not in index.classnames]
    if missing:
        raise ConfigError(f"{where}: target_dataset {dataset} lacks {len(missing)} of the attacked dataset's "
                          f"classes, e.g. {missing[0]!r} (classes are matched by name; it has: "
                          f"{', '.join(index.classnames[:12])}{'...' if len(index.classnames) > 12 else ''})")
    ours = {name: c for c, name in enumerate(setup.classnames)}
    per_label: dict[int, list] = {c: [] for c in range(len(setup.classnames))}
    for s in sorted(index.samples, key=lambda s: stable_order_key(s.sample_id)):
        label = ours.get(index.classnames[s.label])
        if label is not None:
            per_label[label].append(s)
    chosen = [s for c in per_label for s in per_label[c][:per_class]]
    hints = get_handler(modality).input_hints(index)
    loader = InputSpaceDataset(dataclasses.replace(index, samples=chosen), encoder.preprocess_config(modality), hints)
    ids, labels, chunks, batch = [], [], [], []
    for i in range(len(chosen)):
        _, x, _ = loader[i]
        if x is not None:  # unreadable: skipped
            batch.append(x)
            ids.append(chosen[i].sample_id)
            labels.append(ours[index.classnames[chosen[i].label]])
        if batch and (len(batch) == EMBED_BATCH or i == len(chosen) - 1):
            with torch.no_grad():
                chunks.append(encoder.encode(modality, torch.stack(batch).to(setup.device)).float())
            batch = []
    by_class = [[r for r, c in enumerate(labels) if c == label] for label in range(len(setup.classnames))]
    empty = [setup.classnames[c] for c, rows in enumerate(by_class) if not rows]
    if empty:
        raise ConfigError(f"{where}: target_dataset {dataset} has no readable sample of class {empty[0]!r}")
    return TargetSet(dataset, modality, list(setup.classnames), ids, torch.tensor(labels, device=setup.device),
                     F.normalize(torch.cat(chunks), dim=-1), by_class)
