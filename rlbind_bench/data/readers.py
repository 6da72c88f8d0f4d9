"""Dataset indexing (which files, which labels) and a torch Dataset that decodes them into input spaces."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from rlbind_bench.config import DatasetSpec
from rlbind_bench.errors import DatasetError
from rlbind_bench.modalities import PreprocessConfig, UnreadableSample, get_handler


@dataclass(frozen=True)
class Sample:
    sample_id: str  # path relative to the dataset root
    path: Path
    label: int


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


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _folder_classes(spec: DatasetSpec, root: Path) -> list[str]:
    if spec.classes:
        return list(spec.classes)
    for candidate in (root / "classes.txt", root.parent / "classes.txt"):
        if candidate.is_file():
            return _read_lines(candidate)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _index_folder(spec: DatasetSpec, root: Path) -> tuple[list[str], list[Sample]]:
    classes = _folder_classes(spec, root)
    if not classes:
        raise DatasetError(f"dataset {spec.name}: no class folders in {root}")
    suffixes = get_handler(spec.modality).file_suffixes
    samples: list[Sample] = []
    empty = []
    for label, cls in enumerate(classes):
        folder = root / cls
        if not folder.is_dir():
            raise DatasetError(f"dataset {spec.name}: class folder {folder} is missing")
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            empty.append(cls)
        samples += [Sample(p.relative_to(root).as_posix(), p, label) for p in files]
    if not samples:
        raise DatasetError(f"dataset {spec.name}: no {spec.modality} files ({', '.join(suffixes)}) under {root}")
    if empty:
        import warnings

        warnings.warn(f"dataset {spec.name}: class(es) with no files: {', '.join(empty[:5])}", stacklevel=2)
    return classes, samples


def _index_esc50(spec: DatasetSpec, root: Path) -> tuple[list[str], list[Sample]]:
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise DatasetError(f"dataset {spec.name}: {meta} not found (ESC-50 layout: meta/esc50.csv + audio/)")
    with open(meta, newline="") as fh:
        rows = list(csv.DictReader(fh))
    names: dict[int, str] = {}
    samples = []
    for row in rows:
        try:
            target = int(row["target"])
            names[target] = row["category"].replace("_", " ")
            samples.append(Sample(f"audio/{row['filename']}", root / "audio" / row["filename"], target))
        except (KeyError, ValueError) as exc:
            raise DatasetError(f"dataset {spec.name}: malformed row in {meta}: {row}") from exc
    classes = [names[i] for i in range(len(names))]
    return classes, sorted(samples, key=lambda s: s.sample_id)


INDEXERS = {"folder": _index_folder, "esc50": _index_esc50}


def stable_order_key(sample_id: str) -> str:
    return hashlib.sha256(sample_id.encode()).hexdigest()


def index_dataset(spec: DatasetSpec, data_root: Path, n_samples: int | None = None) -> DatasetIndex:
    root = spec.root(data_root)
    if not root.is_dir():
        raise DatasetError(f"dataset {spec.name}: folder {root} does not exist")
    classes, samples = INDEXERS[spec.layout](spec, root)
    if spec.sample_ids:
        ids_file = Path(spec.sample_ids)
        ids_file = ids_file if ids_file.is_absolute() else Path(data_root) / ids_file
        if not ids_file.is_file():
            raise DatasetError(f"dataset {spec.name}: sample id list {ids_file} not found")
        wanted = _read_lines(ids_file)
        by_id = {s.sample_id: s for s in samples}
        absent = [i for i in wanted if i not in by_id]
        if absent:
            raise DatasetError(f"dataset {spec.name}: {len(absent)} listed sample ids are not on disk, e.g. {absent[0]}")
        samples = [by_id[i] for i in wanted]
    if n_samples is not None and n_samples < len(samples):
        # A subset that does not depend on listing order or on the run seed: the n smallest id hashes.
        chosen = set(sorted((s.sample_id for s in samples), key=stable_order_key)[:n_samples])
        samples = [s for s in samples if s.sample_id in chosen]
    prompts = [(spec.class_prompts or {}).get(c, c.replace("_", " ")) for c in classes]
    return DatasetIndex(spec, root, classes, prompts, samples)


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
