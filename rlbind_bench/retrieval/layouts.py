"""Retrieval set layouts: each indexer turns a set on disk into items per modality, with relevance groups.

karpathy   ROOT/dataset.json (Karpathy's split file: {"images": [{"filename", "filepath"?, "split",
           "sentences": [{"raw"}]}]}) + ROOT/images/[filepath/]filename (COCO, Flickr30k, Flickr8k)
msrvtt     ROOT/test_videodatainfo.json ({"videos": [{"video_id", "split"?}], "sentences": [{"video_id",
           "caption"}]}) or a CSV with video_id and sentence (the 1k-A test list) + ROOT/videos/**/<video_id>.mp4
clotho     ROOT/clotho_captions_<split>.csv (file_name, caption_1..caption_5) + ROOT/<split>/<file_name>
audiocaps  ROOT/<split>.csv (audiocap_id, youtube_id, start_time, caption; several rows per clip) + ROOT/<split>/
           with clips named <youtube_id>_<start_time>, Y<youtube_id>, <youtube_id> or <audiocap_id> (any audio suffix)
classes    the test splits of classification datasets (`members`) + one text per (class, template)

Two items are relevant to each other when their `group` is the same: a media item and its captions share
one group; in `classes`, the group is the class.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rlbind_bench.config import DatasetSpec, load_datasets, located_datasets, named_datasets
from rlbind_bench.data.layouts import Sample
from rlbind_bench.data.readers import DatasetIndex, index_dataset, stable_order_key
from rlbind_bench.errors import DatasetError
from rlbind_bench.modalities import get_handler
from rlbind_bench.retrieval.spec import TEXT, RetrievalSpec


@dataclass(frozen=True)
class Item:
    item_id: str  # media: path relative to its folder; text: "<group id>#<k>"
    group: int  # relevance key
    path: Path | None = None  # media items
    text: str | None = None  # text items


@dataclass
class RetrievalIndex:
    spec: RetrievalSpec
    items: dict[str, list[Item]]  # modality (text: "text") -> items
    hints: dict[str, dict] = field(default_factory=dict)  # media modality -> input hints (audio clip length)
    group_names: list[str] = field(default_factory=list)  # group -> the media id or class name


@dataclass(frozen=True)
class Where:
    """Where members of a `classes` set are read from: --dataset-path copies and --datasets-file."""

    paths: dict[str, str] = field(default_factory=dict)
    datasets_file: Path | None = None


# ------------------------------------------------------------------------------------------------ helpers
def _need_file(spec: RetrievalSpec, path: Path, what: str) -> Path:
    if not path.is_file():
        hint = f"; get it from {spec.url} ({spec.licence}), then give --data-root or --dataset-path " \
               f"{spec.name}=PATH" if spec.url else ""
        raise DatasetError(f"retrieval set {spec.name}: {what} {path} not found{hint}")
    return path


def _read_json(spec: RetrievalSpec, path: Path):
    try:
        return json.loads(_need_file(spec, path, "caption file").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"retrieval set {spec.name}: {path} is not readable JSON ({exc})") from exc


def _read_csv(spec: RetrievalSpec, path: Path, needed: tuple[str, ...]) -> list[dict]:
    try:
        with open(_need_file(spec, path, "caption file"), newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"retrieval set {spec.name}: {path} is not a readable CSV ({exc})") from exc
    if not rows or any(c not in rows[0] for c in needed):
        raise DatasetError(f"retrieval set {spec.name}: {path} needs the columns {', '.join(needed)}")
    return rows


def _media_by_stem(spec: RetrievalSpec, media: Path) -> dict[str, Path]:
    if not media.is_dir():
        raise DatasetError(f"retrieval set {spec.name}: media folder {media} does not exist")
    suffixes = get_handler(spec.media_modality()).file_suffixes
    return {p.stem: p for p in sorted(media.rglob("*")) if p.is_file() and p.suffix.lower() in suffixes}


def _paired(spec: RetrievalSpec, media: Path, entries: list[tuple[Path | None, str, list[str]]],
            missing_ok: bool = False) -> RetrievalIndex:
    """entries: (file or None when absent, media id, captions) in file order -> items with one group per file."""
    missing = [mid for path, mid, _ in entries if path is None or not path.is_file()]
    if missing and (not missing_ok or len(missing) == len(entries)):
        raise DatasetError(f"retrieval set {spec.name}: {len(missing)} of {len(entries)} listed media files are "
                           f"missing under {media}, e.g. {missing[0]}")
    if missing:  # AudioCaps copies lack the clips that left YouTube: evaluate what the copy has
        warnings.warn(f"retrieval set {spec.name}: {len(missing)} of {len(entries)} listed clips are not under "
                      f"{media}", stacklevel=3)
    media_items, texts, names = [], [], []
    for path, mid, captions in entries:
        if path is None or not path.is_file():
            continue
        captions = [c.strip() for c in captions if c and c.strip()]
        if not captions:
            raise DatasetError(f"retrieval set {spec.name}: media item {mid} has no caption")
        g = len(names)
        names.append(mid)
        media_items.append(Item(path.relative_to(media).as_posix(), g, path=path))
        texts += [Item(f"{mid}#{k}", g, text=c) for k, c in enumerate(captions)]
    if not media_items:
        raise DatasetError(f"retrieval set {spec.name}: no item of split {spec.split_name()!r}")
    return RetrievalIndex(spec, {TEXT: texts, spec.media_modality(): media_items}, group_names=names)


# ------------------------------------------------------------------------------------------------ layouts
def index_karpathy(spec: RetrievalSpec, data_root: Path, where: Where) -> RetrievalIndex:
    file = spec.caption_file(data_root)
    data = _read_json(spec, file)
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise DatasetError(f"retrieval set {spec.name}: {file} has no 'images' list (Karpathy split format)")
    media, entries = spec.media_dir(data_root), []
    for n, img in enumerate(images):
        try:
            if img.get("split") != spec.split_name():
                continue
            name, sub = img["filename"], img.get("filepath", "")
            captions = [s["raw"] if isinstance(s, dict) else s for s in img["sentences"]]
        except (AttributeError, KeyError, TypeError) as exc:
            raise DatasetError(f"retrieval set {spec.name}: {file}: image {n} lacks filename or sentences "
                               "[{raw}]") from exc
        path = media / sub / name
        entries.append((path if path.is_file() else media / name, f"{sub}/{name}" if sub else name, captions))
    return _paired(spec, media, entries)


def index_msrvtt(spec: RetrievalSpec, data_root: Path, where: Where) -> RetrievalIndex:
    file = spec.caption_file(data_root)
    captions: dict[str, list[str]] = {}
    if file.suffix.lower() == ".csv":
        rows = _read_csv(spec, file, ("video_id",))
        column = "sentence" if "sentence" in rows[0] else "caption"
        if column not in rows[0]:
            raise DatasetError(f"retrieval set {spec.name}: {file} needs a sentence or caption column")
        for row in rows:
            captions.setdefault(row["video_id"], []).append(row[column])
    else:
        data = _read_json(spec, file)
        try:
            videos = [v["video_id"] for v in data["videos"] if v.get("split", spec.split_name()) == spec.split_name()]
            for s in data["sentences"]:
                captions.setdefault(s["video_id"], []).append(s["caption"])
        except (AttributeError, KeyError, TypeError) as exc:
            raise DatasetError(f"retrieval set {spec.name}: {file} is not MSR-VTT's videodatainfo format "
                               "(videos: [{video_id}], sentences: [{video_id, caption}])") from exc
        captions = {v: captions.get(v, []) for v in videos}
    media = spec.media_dir(data_root)
    on_disk = _media_by_stem(spec, media)
    return _paired(spec, media, [(on_disk.get(v), v, c) for v, c in captions.items()])


def index_clotho(spec: RetrievalSpec, data_root: Path, where: Where) -> RetrievalIndex:
    file = spec.caption_file(data_root)
    rows = _read_csv(spec, file, ("file_name", "caption_1"))
    media = spec.media_dir(data_root)
    entries = [(media / r["file_name"], r["file_name"],
                [r[f"caption_{k}"] for k in range(1, 6) if r.get(f"caption_{k}")]) for r in rows]
    return _paired(spec, media, entries)


def index_audiocaps(spec: RetrievalSpec, data_root: Path, where: Where) -> RetrievalIndex:
    file = spec.caption_file(data_root)
    rows = _read_csv(spec, file, ("audiocap_id", "youtube_id", "start_time", "caption"))
    media = spec.media_dir(data_root)
    on_disk = _media_by_stem(spec, media)
    clips: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        clips.setdefault((r["youtube_id"], r["start_time"]), []).append(r)
    entries = []
    for (yid, start), group in clips.items():
        stems = [f"{yid}_{start}", f"Y{yid}_{start}", f"Y{yid}", yid, *(r["audiocap_id"] for r in group)]
        path = next((on_disk[s] for s in stems if s in on_disk), None)
        entries.append((path, f"{yid}_{start}", [r["caption"] for r in group]))
    return _paired(spec, media, entries, missing_ok=True)


def index_classes(spec: RetrievalSpec, data_root: Path, where: Where) -> RetrievalIndex:
    own = {k: v for k, v in where.paths.items() if k in spec.members.values()}
    catalogue = located_datasets(load_datasets(where.datasets_file), own)
    members: list[DatasetSpec] = named_datasets(catalogue, list(spec.members.values()))
    items: dict[str, list[Item]] = {}
    hints: dict[str, dict] = {}
    prompts: list[str] | None = None
    for modality, member in zip(spec.members, members, strict=True):
        if member.modality != modality:
            raise DatasetError(f"retrieval set {spec.name}: member {member.name} is {member.modality}, not {modality}")
        index = index_dataset(member, data_root)
        if prompts is not None and index.prompts != prompts:
            raise DatasetError(f"retrieval set {spec.name}: member {member.name}'s classes differ from the others'")
        prompts = index.prompts
        items[modality] = [Item(s.sample_id, s.label, path=s.path) for s in index.samples]
        hints[modality] = get_handler(modality).input_hints(index)
    texts = [Item(f"{c}#{k}", c, text=t.format(p)) for c, p in enumerate(prompts) for k, t in enumerate(spec.templates)]
    return RetrievalIndex(spec, {TEXT: texts, **items}, hints, group_names=list(prompts))


INDEXERS: dict[str, Callable[[RetrievalSpec, Path, Where], RetrievalIndex]] = {
    "karpathy": index_karpathy, "msrvtt": index_msrvtt, "clotho": index_clotho, "audiocaps": index_audiocaps,
    "classes": index_classes}


def _media_hints(index: RetrievalIndex, data_root: Path) -> dict[str, dict]:
    """Input hints of a caption set's media (audio: clip length), read as for a classification dataset."""
    spec = index.spec
    m = spec.media_modality()
    proxy = DatasetSpec(name=spec.name, modality=m, path=str(spec.media_dir(data_root)), clip_seconds=spec.clip_seconds)
    samples = [Sample(i.item_id, i.path, i.group) for i in index.items[m]]
    return {m: get_handler(m).input_hints(DatasetIndex(proxy, proxy.root(data_root), [], [], samples))}


def index_retrieval(spec: RetrievalSpec, data_root: Path, where: Where | None = None,
                    n_items: int | None = None) -> RetrievalIndex:
    """The set's items; n_items keeps, per media modality, the n items with the smallest id hashes (a subset that
    does not depend on listing order), and of a caption set only the captions of the kept items."""
    index = INDEXERS[spec.layout](spec, Path(data_root), where or Where())
    if n_items is not None:
        for m, items in index.items.items():
            if m != TEXT and n_items < len(items):
                chosen = set(sorted((i.item_id for i in items), key=stable_order_key)[:n_items])
                index.items[m] = [i for i in items if i.item_id in chosen]
        if spec.layout != "classes":
            kept = {i.group for i in index.items[spec.media_modality()]}
            index.items[TEXT] = [t for t in index.items[TEXT] if t.group in kept]
    if spec.layout != "classes":
        index.hints = _media_hints(index, Path(data_root))
    return index
