"""Retrieval sets as data: the `task: retrieval` entries of datasets.yaml, typed.

A retrieval set holds items of several modalities (text included) and says which items are relevant to which:
- caption layouts (karpathy, msrvtt, clotho, audiocaps): media files of one modality, each with its own
  captions; a caption is relevant to its media item only (and a media item to its own captions);
- `classes`: classification datasets of several modalities (`members`, modality -> datasets.yaml name) plus one
  text per (class, template); items are not paired across modalities, so every item of the same class is
  relevant (the demo's `demo-digits-retrieval`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from rlbind_bench.config import build_dataclass, read_catalogue
from rlbind_bench.constants import MODALITIES
from rlbind_bench.errors import ConfigError, UserError

# layout -> (the media modality it takes, or None: any; its default caption file; its default media folder).
# `{split}` in a default is filled from the spec's split.
CAPTION_LAYOUTS: dict[str, tuple[str | None, str, str]] = {
    "karpathy": ("image", "dataset.json", "images"),
    "msrvtt": ("video", "test_videodatainfo.json", "videos"),
    "clotho": ("audio", "clotho_captions_{split}.csv", "{split}"),
    "audiocaps": ("audio", "{split}.csv", "{split}"),
}
RETRIEVAL_LAYOUTS = (*CAPTION_LAYOUTS, "classes")
DEFAULT_SPLITS = {"karpathy": "test", "msrvtt": "test", "clotho": "evaluation", "audiocaps": "test"}
TEXT = "text"


@dataclass(frozen=True)
class RetrievalSpec:
    name: str
    layout: str  # one of RETRIEVAL_LAYOUTS
    modality: str | None = None  # caption layouts: the media modality (default: the layout's)
    path: str = ""  # relative to --data-root, or absolute (caption layouts)
    split: str | None = None  # caption layouts: the split to read (default: DEFAULT_SPLITS)
    captions: str | None = None  # caption file, relative to path (default: the layout's)
    media: str | None = None  # media folder, relative to path (default: the layout's)
    members: dict[str, str] | None = None  # classes: modality -> classification dataset of datasets.yaml
    templates: list[str] | None = None  # classes: the text items, one per (class, template)
    clip_seconds: float | None = None  # audio: fixed clip length (None: the longest of the first files)
    licence: str = "unknown"
    url: str = ""
    description: str = ""

    def __post_init__(self):
        if self.layout not in RETRIEVAL_LAYOUTS:
            raise ValueError(f"unknown retrieval layout {self.layout!r} (known: {', '.join(RETRIEVAL_LAYOUTS)})")
        if self.layout == "classes":
            if not self.members or not isinstance(self.members, dict):
                raise ValueError("layout classes needs members: {modality: dataset name, ...}")
            for m in self.members:
                if m not in MODALITIES:
                    raise ValueError(f"members: unknown modality {m!r} (known: {', '.join(MODALITIES)})")
            if not self.templates or any("{}" not in t for t in self.templates):
                raise ValueError("layout classes needs templates, each with '{}' where the class name goes")
            return
        if not self.path:
            raise ValueError(f"layout {self.layout} needs path")
        if self.members:
            raise ValueError(f"members is for layout classes, not {self.layout}")
        wanted = CAPTION_LAYOUTS[self.layout][0]
        if self.modality is not None and self.modality not in MODALITIES:
            raise ValueError(f"unknown modality {self.modality!r} (known: {', '.join(MODALITIES)})")
        if self.modality is not None and wanted and self.modality != wanted:
            raise ValueError(f"layout {self.layout} holds {wanted}, not {self.modality}")
        if self.clip_seconds is not None and not self.clip_seconds > 0:
            raise ValueError("clip_seconds must be positive")

    @property
    def relevance(self) -> str:
        """How relevance is decided, as stated in every output."""
        if self.layout == "classes":
            return "class: items are not paired across modalities; every item of the query's class is relevant"
        return "paired: a caption is relevant to its own media item only, a media item to its own captions"

    def media_modality(self) -> str:
        return self.modality or CAPTION_LAYOUTS[self.layout][0]

    def modalities(self) -> tuple[str, ...]:
        """The modalities this set holds, text included."""
        if self.layout == "classes":
            return (TEXT, *self.members)
        return (TEXT, self.media_modality())

    def split_name(self) -> str:
        return self.split or DEFAULT_SPLITS[self.layout]

    def root(self, data_root: Path) -> Path:
        base = Path(self.path).expanduser()
        return base if base.is_absolute() else Path(data_root) / base

    def caption_file(self, data_root: Path) -> Path:
        rel = self.captions or CAPTION_LAYOUTS[self.layout][1]
        return self.root(data_root) / rel.format(split=self.split_name())

    def media_dir(self, data_root: Path) -> Path:
        rel = self.media if self.media is not None else CAPTION_LAYOUTS[self.layout][2]
        return self.root(data_root) / rel.format(split=self.split_name())


def load_retrieval_sets(path: Path | None = None) -> dict[str, RetrievalSpec]:
    """The `task: retrieval` entries of the dataset catalogue (config.read_catalogue)."""
    path, entries = read_catalogue(path, task="retrieval")
    return {name: build_dataclass(RetrievalSpec, body, f"{path}: dataset {name}") for name, body in entries.items()}


def resolve_sets(names: list[str], paths: dict[str, str], datasets_file: Path | None = None) -> list[RetrievalSpec]:
    """The named sets, each read from its `--dataset-path NAME=PATH` copy when given. Paths naming a member of a
    `classes` set are applied by the layout (they are classification datasets)."""
    catalogue = load_retrieval_sets(datasets_file)
    if not names:
        raise UserError(f"give --datasets NAME (retrieval sets: {', '.join(sorted(catalogue)) or 'none'})")
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        raise UserError(f"unknown retrieval set {unknown[0]!r} (known: {', '.join(sorted(catalogue)) or 'none'})")
    specs = []
    for name in names:
        spec = catalogue[name]
        if name in paths:
            if spec.layout == "classes":
                raise ConfigError(f"--dataset-path {name}=...: {name} is made of other datasets; point those at "
                                  f"your copies instead ({', '.join(spec.members.values())})")
            spec = dataclasses.replace(spec, path=str(Path(paths[name]).expanduser().resolve()))
        specs.append(spec)
    return specs
