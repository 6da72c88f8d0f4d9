"""Typed specs and their YAML loaders, with one-line errors for every malformed input.

datasets.yaml (repo root, or --datasets-file) declares datasets; attacks/*.yaml declare threats (threats/);
suites live in rlbind_bench/suites.py.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rlbind_bench.bundled import bundled_path
from rlbind_bench.constants import LOGIT_SCALE, MODALITIES
from rlbind_bench.errors import ConfigError, UserError
from rlbind_bench.paths import default_data_root
from rlbind_bench.standards import STANDARDS, all_subsets

if TYPE_CHECKING:
    from rlbind_bench.encoders.base import BoundEncoder

# Each name has an indexer in data/layouts.py. Layouts with official folds take `fold:`.
LAYOUTS = ("folder", "esc50", "ucf101", "kinetics")
FOLDED_LAYOUTS = ("esc50", "ucf101")


def read_yaml(path: Path) -> Any:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{where}: malformed YAML ({problem})") from exc


def build_dataclass(cls, data: Any, where: str):
    """cls(**data) with unknown and missing keys reported by name."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(names))})")
    required = {f.name for f in dataclasses.fields(cls) if f.init and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING}
    missing = sorted(required - set(data))
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


@cache
def template_sets() -> dict[str, list[str]]:
    text = resources.files("rlbind_bench").joinpath("resources/templates.yaml").read_text()
    return yaml.safe_load(text)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: where it lives under --data-root, how it is laid out, its classes and templates."""

    name: str
    modality: str
    path: str  # relative to --data-root, or absolute
    layout: str = "folder"  # one of LAYOUTS (data/layouts.py documents each)
    split: str | None = None  # sub-folder of `path` to evaluate (e.g. "test"), None: `path` itself
    classes: list[str] | None = None  # None: sorted sub-folder names (or classes.txt when present)
    class_prompts: dict[str, str] | None = None  # folder name -> the text put in the templates
    templates: str | list[str] = "openai_imagenet"  # a template set name or an explicit list
    sample_ids: str | None = None  # a file of sample ids (relative paths), one per line: the fixed subset
    standard: str | None = None  # a standard of standards.py: its class ids and names, its subsets
    subset: str | None = None  # a named subset of the standard (e.g. robustbench-5000), instead of sample_ids
    fold: int | None = None  # esc50 / ucf101: evaluate this official fold (esc50 None: all 2000 clips)
    clip_seconds: float | None = None  # audio: fixed clip length in the input space
    licence: str = "unknown"
    url: str = ""  # where to get the data (shown by `list datasets` and when the data is missing)
    description: str = ""
    simulated: bool = False

    def __post_init__(self):
        if self.modality not in MODALITIES:
            raise ValueError(f"unknown modality {self.modality!r} (known: {', '.join(MODALITIES)})")
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r} (known: {', '.join(LAYOUTS)})")
        if self.clip_seconds is not None and not self.clip_seconds > 0:
            raise ValueError("clip_seconds must be positive")
        if self.standard is not None and self.standard not in STANDARDS:
            raise ValueError(f"unknown standard {self.standard!r} (known: {', '.join(sorted(STANDARDS))})")
        if self.subset is not None:
            offered = (list(STANDARDS[self.standard].subsets) if self.standard else list(all_subsets()))
            if self.subset not in offered:
                raise ValueError(f"unknown subset {self.subset!r} (known: {', '.join(offered) or 'none'})")
            if self.sample_ids:
                raise ValueError("give either subset or sample_ids, not both")
        if self.fold is not None:
            if self.layout not in FOLDED_LAYOUTS:
                raise ValueError(f"fold: layout {self.layout!r} has no folds (layouts with folds: "
                                 f"{', '.join(FOLDED_LAYOUTS)})")
            if isinstance(self.fold, bool) or not isinstance(self.fold, int) or self.fold < 1:
                raise ValueError(f"fold must be a positive integer, got {self.fold!r}")

    def template_list(self) -> list[str]:
        if isinstance(self.templates, list):
            return list(self.templates)
        sets = template_sets()
        if self.templates not in sets:
            raise ConfigError(f"dataset {self.name}: unknown template set {self.templates!r} "
                              f"(known: {', '.join(sets)})")
        return list(sets[self.templates])

    def root(self, data_root: Path) -> Path:
        base = Path(self.path).expanduser()
        base = base if base.is_absolute() else Path(data_root) / base
        return base / self.split if self.split else base


DEFAULT_TEMPLATES = {"image": "openai_imagenet", "thermal": "thermal", "depth": "depth", "video": "video",
                     "audio": "audio"}


# `task:` of a datasets.yaml entry: classification entries are DatasetSpecs (the default); retrieval entries are
# read by rlbind_bench/retrieval/spec.py (caption sets and the demo's cross-modal set).
TASKS = ("classification", "retrieval")


def read_catalogue(path: Path | None = None, task: str = "classification") -> tuple[Path, dict[str, Any]]:
    """(the file, name -> raw entry with `name` set) for the entries of one `task` in the dataset catalogue:
    `path` (--datasets-file), $RLBIND_DATASETS_FILE, the checkout's or the wheel's."""
    path = bundled_path("datasets.yaml", path)
    data = read_yaml(path)
    if data is None:
        return path, {}
    if not isinstance(data, dict) or not isinstance(data.get("datasets", {}), dict):
        raise ConfigError(f"{path}: expected a top-level 'datasets:' mapping of name -> spec")
    unknown = sorted(set(data) - {"datasets"})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(unknown)}")
    entries = {}
    for name, body in (data.get("datasets") or {}).items():
        body = dict(body or {}) if isinstance(body, dict) else body
        if isinstance(body, dict):
            body.setdefault("name", name)
            kind = body.pop("task", "classification")
            if kind not in TASKS:
                raise ConfigError(f"{path}: dataset {name}: unknown task {kind!r} (known: {', '.join(TASKS)})")
            if kind != task:
                continue
        entries[name] = body
    return path, entries


def load_datasets(path: Path | None = None) -> dict[str, DatasetSpec]:
    """The classification datasets of the catalogue (see `read_catalogue`)."""
    path, entries = read_catalogue(path)
    return {name: build_dataclass(DatasetSpec, body, f"{path}: dataset {name}") for name, body in entries.items()}


def adhoc_dataset(modality: str, path: str, templates: list[str] | None = None) -> DatasetSpec:
    """`--dataset-dir MODALITY=PATH`: class names = sorted sub-folders, no YAML needed."""
    name = f"{modality}:{Path(path).name or path}"
    try:
        return DatasetSpec(name=name, modality=modality, path=str(Path(path).expanduser().resolve()),
                           templates=templates or DEFAULT_TEMPLATES.get(modality, "openai_imagenet"))
    except ValueError as exc:
        raise ConfigError(f"--dataset-dir {modality}={path}: {exc}") from exc


@dataclass
class RunConfig:
    """Everything that shapes a run's numbers. Serialised into run.json; its hash goes into every row."""

    model: str
    suite: str = "clean"
    modalities: list[str] | None = None
    datasets: list[str] | None = None
    n_samples: int | None = None
    batch_size: int | str = "auto"  # or "auto": CPU_BATCH on CPU, probed to fill a GPU (rlbind_bench/batching.py)
    device: str = "cpu"
    seed: int = 0
    logit_scale: float | str = LOGIT_SCALE  # or "model": each modality's own (capped) scale (zeroshot.resolve_logit_scale)
    templates: list[str] | None = None
    threats: list[str] | None = None
    eps: list[float] | None = None
    steps: int | None = None
    split: str | None = None  # evaluate this split of the named datasets instead of their default
    subset: str | None = None  # evaluate this named subset of every dataset (standards.py), e.g. robustbench-5000
    deterministic: bool = False  # torch.use_deterministic_algorithms on GPU (slower; see docs/distributed.md)
    workers: int | None = None  # DataLoader worker processes; None: 0 on CPU, else min(8, cores - 1)
    precision: str = "fp32"  # fp32 | bf16 (autocast around the encoder; logits stay float32)
    compile: bool = False  # torch.compile the zero-shot classifier
    allow_large_eps: bool = False  # run eps budgets that cover the input box (refused otherwise)
    transfer_from: str | None = None  # the source model of transfer threats (their spec's `source`)
    autoattack_subset: int | None = None  # AutoAttack cells on this many samples per dataset (threats/subset.py)
    probe_samples: int = 16  # inputs the gradient-masking probes run on per dataset; 0: off (threats/probes.py)


@dataclass
class RunRequest:
    config: RunConfig
    out: Path
    data_root: Path | None = None
    datasets_file: Path | None = None
    attacks_dir: Path | None = None  # the user's own threat YAMLs instead of the bundled attacks/
    dataset_dirs: dict[str, str] = field(default_factory=dict)
    dataset_paths: dict[str, str] = field(default_factory=dict)  # dataset name -> its local copy (overrides path)
    progress: bool = True
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    encoder: BoundEncoder | None = None  # pre-built (tests, the trainer); else built from config.model
    corruption_cache: bool = True  # corrupted inputs made in the loader's workers, kept under the user cache
    cache_max_size: int | None = None  # bytes, 0 = no cap; None: $RLBIND_CACHE_MAX_SIZE or caches.DEFAULT_MAX_BYTES


def named_datasets(catalogue: dict[str, DatasetSpec], names: list[str]) -> list[DatasetSpec]:
    """The catalogue's specs for `names`, in order; an unknown name is a user mistake naming the known ones."""
    unknown = [d for d in names if d not in catalogue]
    if unknown:
        raise UserError(f"unknown dataset {unknown[0]!r} (known: {', '.join(sorted(catalogue)) or 'none'})")
    return [catalogue[d] for d in names]


def located_datasets(catalogue: dict[str, DatasetSpec], paths: dict[str, str]) -> dict[str, DatasetSpec]:
    """`--dataset-path NAME=PATH`: the named dataset read from the user's own copy (its split still applies)."""
    named_datasets(catalogue, list(paths))
    return {name: dataclasses.replace(s, path=str(Path(paths[name]).expanduser().resolve())) if name in paths else s
            for name, s in catalogue.items()}


def with_subset(spec: DatasetSpec, subset: str) -> DatasetSpec:
    try:
        return dataclasses.replace(spec, subset=subset, sample_ids=None)
    except ValueError as exc:
        raise ConfigError(f"--subset {subset}: dataset {spec.name}: {exc}") from exc


def resolve_datasets(req: RunRequest, encoder: BoundEncoder) -> list[DatasetSpec]:
    cfg = req.config
    wanted_modalities = cfg.modalities or list(encoder.modalities)
    for m in wanted_modalities:
        encoder.require(m)
    if req.dataset_dirs:
        specs = [adhoc_dataset(m, p, cfg.templates) for m, p in req.dataset_dirs.items()]
    else:
        catalogue = located_datasets(load_datasets(req.datasets_file), req.dataset_paths)
        if cfg.datasets or req.dataset_paths:
            specs = named_datasets(catalogue, cfg.datasets or list(req.dataset_paths))
        else:
            root = req.data_root or default_data_root()
            specs = [s for s in catalogue.values() if s.root(root).is_dir()]
            if not specs:
                raise UserError(f"no dataset found under data root {root}: give --datasets NAME, "
                                "--dataset-dir MODALITY=PATH or --data-root")
        if cfg.templates:
            specs = [dataclasses.replace(s, templates=list(cfg.templates)) for s in specs]
        if cfg.split:
            specs = [dataclasses.replace(s, split=cfg.split) for s in specs]
    if cfg.subset:
        specs = [with_subset(s, cfg.subset) for s in specs]
    specs = [s for s in specs if s.modality in wanted_modalities]
    for s in specs:
        encoder.require(s.modality)
    if not specs:
        raise UserError(f"no dataset left for modalities {', '.join(wanted_modalities)}")
    return specs
