"""Dataset layouts: each indexer turns a dataset root into its classes (index order) and labelled samples.

folder    ROOT/CLASS/FILE; classes from the spec, its standard's ids (ImageNet wnids), classes.txt, or
          the sorted folder names
esc50     ROOT/meta/esc50.csv + ROOT/audio/*.wav (the ESC-50 repository as cloned); `fold` picks one fold
ucf101    ROOT/<Class>/v_<Class>_gNN_cNN.avi (UCF101.rar as extracted) + classInd.txt and testlistNN.txt
          (UCF101TrainTestSplits-RecognitionTask.zip) in ROOT, ROOT/ucfTrainTestlist or next to ROOT
kinetics  ROOT = <copy>/<split>: either ROOT/<label>/*.mp4, or clips <youtube_id>_<start>_<end>.mp4 under ROOT
          with the official <copy>/annotations/<split>.csv (the cvdfoundation/kinetics-dataset layout)
"""

from __future__ import annotations

import csv
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from rlbind_bench.config import DatasetSpec
from rlbind_bench.errors import DatasetError
from rlbind_bench.modalities import get_handler
from rlbind_bench.standards import get_standard, read_id_lines


@dataclass(frozen=True)
class Sample:
    sample_id: str  # path relative to the dataset root
    path: Path
    label: int


@dataclass
class Indexed:
    classes: list[str]  # class ids in index order
    samples: list[Sample]
    names: dict[str, str] = field(default_factory=dict)  # class id -> name the layout's own files give


def _media_files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


# ------------------------------------------------------------------------------------------------ folder
def _folder_classes(spec: DatasetSpec, root: Path) -> list[str]:
    if spec.classes:
        return list(spec.classes)
    if spec.standard:
        return get_standard(spec.standard).class_ids()
    for candidate in (root / "classes.txt", root.parent / "classes.txt"):
        if candidate.is_file():
            return read_id_lines(candidate)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def index_folder(spec: DatasetSpec, root: Path) -> Indexed:
    classes = _folder_classes(spec, root)
    if not classes:
        raise DatasetError(f"dataset {spec.name}: no class folders in {root}")
    missing = [c for c in classes if not (root / c).is_dir()]
    if missing:
        whose = f" (a {spec.standard} copy has one folder per class id)" if spec.standard else ""
        raise DatasetError(f"dataset {spec.name}: {len(missing)} of {len(classes)} class folders missing under "
                           f"{root}, e.g. {missing[0]}{whose}")
    suffixes = get_handler(spec.modality).file_suffixes
    samples: list[Sample] = []
    empty = []
    for label, cls in enumerate(classes):
        files = _media_files(root / cls, suffixes)
        if not files:
            empty.append(cls)
        samples += [Sample(p.relative_to(root).as_posix(), p, label) for p in files]
    if not samples:
        raise DatasetError(f"dataset {spec.name}: no {spec.modality} files ({', '.join(suffixes)}) under {root}")
    if empty:
        warnings.warn(f"dataset {spec.name}: class(es) with no files: {', '.join(empty[:5])}", stacklevel=2)
    return Indexed(classes, samples)


# ------------------------------------------------------------------------------------------------ ESC-50
def index_esc50(spec: DatasetSpec, root: Path) -> Indexed:
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
            if spec.fold is None or int(row["fold"]) == spec.fold:
                samples.append(Sample(f"audio/{row['filename']}", root / "audio" / row["filename"], target))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"dataset {spec.name}: malformed row in {meta}: {row}") from exc
    if sorted(names) != list(range(len(names))):
        raise DatasetError(f"dataset {spec.name}: {meta}: targets are not 0..{len(names) - 1}")
    if not samples:
        raise DatasetError(f"dataset {spec.name}: no clip of fold {spec.fold} in {meta}")
    # Classes are taken from every row, so that one fold is still a 50-way problem.
    return Indexed([names[i] for i in range(len(names))], sorted(samples, key=lambda s: s.sample_id))


# ------------------------------------------------------------------------------------------------ UCF-101
UCF_LIST_DIRS = (".", "ucfTrainTestlist")


def _ucf_lists(spec: DatasetSpec, root: Path) -> Path:
    for base in (root, root.parent):
        for sub in UCF_LIST_DIRS:
            if (base / sub / "classInd.txt").is_file():
                return base / sub
    raise DatasetError(f"dataset {spec.name}: classInd.txt not found in {root}, {root / 'ucfTrainTestlist'} or next "
                       f"to {root} (UCF-101 layout: <Class>/*.avi + ucfTrainTestlist/classInd.txt, testlist01.txt)")


def ucf_class_name(class_id: str) -> str:
    """'ApplyEyeMakeup' -> 'Apply Eye Makeup': UCF-101's ids are CamelCase, prompts need words."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", class_id).replace("_", " ")


def index_ucf101(spec: DatasetSpec, root: Path) -> Indexed:
    lists = _ucf_lists(spec, root)
    classes = []
    for n, line in enumerate(read_id_lines(lists / "classInd.txt"), start=1):
        parts = line.split()
        if len(parts) != 2 or parts[0] != str(n):
            raise DatasetError(f"dataset {spec.name}: {lists / 'classInd.txt'}: line {n} is not '{n} ClassName': {line!r}")
        classes.append(parts[1])
    testlist = lists / f"testlist{spec.fold or 1:02d}.txt"
    if not testlist.is_file():
        raise DatasetError(f"dataset {spec.name}: {testlist} not found (UCF-101 has test lists 01, 02, 03)")
    label = {c: i for i, c in enumerate(classes)}
    # Copies re-encoded to another container keep the stem: match on Class/stem, whatever the suffix.
    on_disk = {p.relative_to(root).with_suffix("").as_posix(): p
               for p in _media_files(root, get_handler(spec.modality).file_suffixes)}
    samples, missing = [], []
    for line in read_id_lines(testlist):
        rel = line.split()[0]  # test lists hold "Class/v_Class_gNN_cNN.avi" (train lists add the label)
        cls = rel.split("/")[0]
        if cls not in label:
            raise DatasetError(f"dataset {spec.name}: {testlist}: class {cls!r} is not in classInd.txt")
        path = on_disk.get(str(Path(rel).with_suffix("").as_posix()))
        if path is None:
            missing.append(rel)
            continue
        samples.append(Sample(path.relative_to(root).as_posix(), path, label[cls]))
    if missing:
        raise DatasetError(f"dataset {spec.name}: {len(missing)} of {len(missing) + len(samples)} videos listed in "
                           f"{testlist.name} are missing under {root}, e.g. {missing[0]}")
    return Indexed(classes, samples, {c: ucf_class_name(c) for c in classes})


# ------------------------------------------------------------------------------------------------ Kinetics
def kinetics_key(label: str) -> str:
    """Folder names of Kinetics copies vary ('air drumming', 'air_drumming', '"air drumming"'): compare
    lower-case words without quotes or brackets."""
    return " ".join(re.sub(r"[_\"'()]", " ", label).lower().split())


def index_kinetics(spec: DatasetSpec, root: Path) -> Indexed:
    classes = get_standard(spec.standard or "kinetics-400").class_ids()
    label = {kinetics_key(c): i for i, c in enumerate(classes)}
    files = _media_files(root, get_handler(spec.modality).file_suffixes)
    annotations = root.parent / "annotations" / f"{root.name}.csv"
    samples = (_kinetics_from_csv(spec, root, annotations, label, files) if annotations.is_file()
               else _kinetics_from_folders(spec, root, label, files))
    if not samples:
        raise DatasetError(f"dataset {spec.name}: no video under {root}")
    return Indexed(classes, samples)


def _kinetics_from_csv(spec, root: Path, annotations: Path, label: dict[str, int], files: list[Path]) -> list[Sample]:
    by_stem = {p.stem: p for p in files}
    with open(annotations, newline="") as fh:
        rows = list(csv.DictReader(fh))
    samples, missing = [], 0
    for row in rows:
        try:
            stem = f"{row['youtube_id']}_{int(row['time_start']):06d}_{int(row['time_end']):06d}"
            y = label[kinetics_key(row["label"])]
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"dataset {spec.name}: {annotations}: row without a known label, youtube_id, "
                               f"time_start, time_end: {row}") from exc
        if stem in by_stem:
            samples.append(Sample(by_stem[stem].relative_to(root).as_posix(), by_stem[stem], y))
        else:
            missing += 1
    if missing and samples:
        # Every Kinetics copy lacks clips that left YouTube; the run evaluates what the copy has.
        warnings.warn(f"dataset {spec.name}: {missing} of {len(rows)} annotated clips are not under {root}",
                      stacklevel=2)
    return sorted(samples, key=lambda s: s.sample_id)


def _kinetics_from_folders(spec, root: Path, label: dict[str, int], files: list[Path]) -> list[Sample]:
    samples = []
    for p in files:
        rel = p.relative_to(root)
        if len(rel.parts) < 2:
            raise DatasetError(f"dataset {spec.name}: {p} is not in a class folder and there is no "
                               f"{root.parent / 'annotations' / (root.name + '.csv')}")
        key = kinetics_key(rel.parts[0])
        if key not in label:
            raise DatasetError(f"dataset {spec.name}: folder {rel.parts[0]!r} is not a Kinetics-400 class")
        samples.append(Sample(rel.as_posix(), p, label[key]))
    return samples


INDEXERS = {"folder": index_folder, "esc50": index_esc50, "ucf101": index_ucf101, "kinetics": index_kinetics}
