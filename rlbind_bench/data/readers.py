"""Dataset indexing (which files, which labels) and a torch Dataset that decodes them into input spaces."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from rlbind_bench.config import DatasetSpec, load_datasets, located_datasets, named_datasets
from rlbind_bench.data.layouts import INDEXERS, Sample
from rlbind_bench.errors import DatasetError
from rlbind_bench.modalities import PreprocessConfig, UnreadableSample, get_handler
from rlbind_bench.standards import Standard, all_subsets, get_standard, read_id_lines, recognise_standard

__all__ = ["INDEXERS", "DatasetIndex", "InputSpaceDataset", "Sample", "index_dataset", "index_named",
           "stable_order_key"]


@dataclass
class DatasetIndex:
    spec: DatasetSpec
    root: Path
    classnames: list[str]  # folder/class ids, index order
    prompts: list[str]  # the text that fills the templates, index order
    samples: list[Sample]

    @property
    def num_classes(self) -> int:
        return len(self.classnames)


def stable_order_key(sample_id: str) -> str:
    return hashlib.sha256(sample_id.encode()).hexdigest()


def missing_data_hint(spec: DatasetSpec) -> str:
    if not spec.url:
        return ""
    return (f"; get it from {spec.url} ({spec.licence}), then give --data-root (the folder that holds {spec.path}) "
            f"or --dataset-path {spec.name}=PATH")


def _wanted_ids(spec: DatasetSpec, data_root: Path, standard: Standard | None) -> list[str] | None:
    """The fixed subset's sample ids, in list order: a named subset of the standard, or a sample_ids file."""
    if spec.subset:
        if standard is None or spec.subset not in standard.subsets:
            owner = all_subsets().get(spec.subset, "no standard")
            raise DatasetError(f"dataset {spec.name}: subset {spec.subset} is {owner}'s, and the classes of "
                               f"{spec.root(data_root)} are not {owner}'s class ids")
        return standard.subset_ids(spec.subset)
    if spec.sample_ids:
        ids_file = Path(spec.sample_ids)
        ids_file = ids_file if ids_file.is_absolute() else Path(data_root) / ids_file
        if not ids_file.is_file():
            raise DatasetError(f"dataset {spec.name}: sample id list {ids_file} not found")
        return read_id_lines(ids_file)
    return None


def index_dataset(spec: DatasetSpec, data_root: Path, n_samples: int | None = None) -> DatasetIndex:
    root = spec.root(data_root)
    if not root.is_dir():
        raise DatasetError(f"dataset {spec.name}: folder {root} does not exist{missing_data_hint(spec)}")
    indexed = INDEXERS[spec.layout](spec, root)
    classes, samples = indexed.classes, indexed.samples
    # A folder of ImageNet wnids names its classes through the standard even when the spec does not say so.
    standard = get_standard(spec.standard) if spec.standard else recognise_standard(classes)
    wanted = _wanted_ids(spec, data_root, standard)
    if wanted is not None:
        by_id = {s.sample_id: s for s in samples}
        absent = [i for i in wanted if i not in by_id]
        if absent:
            raise DatasetError(f"dataset {spec.name}: {len(absent)} listed sample ids are not on disk, e.g. {absent[0]}")
        samples = [by_id[i] for i in wanted]
    if n_samples is not None and n_samples < len(samples):
        # A subset that does not depend on listing order or on the run seed: the n smallest id hashes.
        chosen = set(sorted((s.sample_id for s in samples), key=stable_order_key)[:n_samples])
        samples = [s for s in samples if s.sample_id in chosen]
    # The text in the templates: the spec's own words, else the standard's names, else the layout's, else the id.
    names = {**indexed.names, **(standard.class_names() if standard else {}), **(spec.class_prompts or {})}
    prompts = [names.get(c, c.replace("_", " ")) for c in classes]
    return DatasetIndex(spec, root, classes, prompts, samples)


def index_named(name: str, data_root: Path, datasets_file: Path | None = None,
                dataset_paths: dict[str, str] | None = None) -> DatasetIndex:
    """The catalogue's dataset `name` (--datasets-file, --dataset-path applied), every sample, with its split."""
    catalogue = located_datasets(load_datasets(datasets_file), dataset_paths or {})
    return index_dataset(named_datasets(catalogue, [name])[0], data_root)


class InputSpaceDataset(Dataset):
    """Decodes samples into the input space. Unreadable files come back as None (skipped and counted)."""

    def __init__(self, index: DatasetIndex, cfg: PreprocessConfig, hints: dict | None = None):
        self.index = index
        self.cfg = cfg
        self.hints = hints or {}
        self.handler = get_handler(index.spec.modality)

    def __len__(self) -> int:
        return len(self.index.samples)

    def __getitem__(self, i: int):
        sample = self.index.samples[i]
        try:
            x = self.handler.load(sample.path, self.cfg, **self.hints)
        except UnreadableSample as exc:
            return i, None, str(exc)
        return i, x, None
