"""Model specs -> encoders.

A spec is one of:
- a registered name (`rlbind-bench list models`), e.g. `languagebind` (all hub towers) or `languagebind/audio`;
- a LanguageBind HF folder or hub id (the modality comes from config.json's model_type);
- `MODALITY=REF[,MODALITY=REF...][,text=MODALITY]`: several towers sharing the text tower of the last one
  (or of the named one), as languagebind's `LanguageBind` class binds them;
- a folder with `rlbind-model.json` (what `rlbind-bench train` writes): `{"backend": ..., "towers": {...}}`.

LanguageBind is the built-in backend the spec grammar is made of, so it is imported here. Every other backend
registers itself (`register_model`, `register_backend`) when imported, and `encoders/__init__.py` imports
them: this module never imports a backend that imports it back.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rlbind_bench.encoders.base import BoundEncoder
from rlbind_bench.encoders.languagebind import (
    HUB_IDS,
    MODEL_TYPE_TO_MODALITY,
    LanguageBindEncoder,
    load_languagebind_tower,
)
from rlbind_bench.encoders.loading import read_config, resolve_checkpoint
from rlbind_bench.errors import CheckpointError, UserError
from rlbind_bench.modalities import HANDLERS

MANIFEST = "rlbind-model.json"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    build: Callable[[], BoundEncoder]
    source: str = ""
    licence: str = ""


MODELS: dict[str, ModelEntry] = {}


# backend name in rlbind-model.json -> builder(folder, manifest)
BACKENDS: dict[str, Callable[[Path, dict], BoundEncoder]] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    MODELS[entry.name] = entry
    return entry


def register_backend(name: str, builder: Callable[[Path, dict], BoundEncoder]) -> None:
    """Make folders whose manifest says `"backend": name` load through `builder(folder, manifest)`."""
    BACKENDS[name] = builder


# spec prefix (without the colon) -> loader(rest of the spec): `open_clip:ViT-B-32@laion2b_s34b_b79k`
SCHEMES: dict[str, Callable[[str], BoundEncoder]] = {}


def register_scheme(prefix: str, loader: Callable[[str], BoundEncoder]) -> None:
    """Make specs `PREFIX:REST` load through `loader(REST)` (a backend's own spec grammar)."""
    SCHEMES[prefix] = loader


# Third-party backends: a distribution declares, in pyproject.toml,
#   [project.entry-points."rlbind_bench.backends"]
#   mybackend = "my_package.module:MyEncoder"
# where MyEncoder subclasses BoundEncoder and implements the classmethod `from_spec(rest)`; then
# `--model mybackend:REST` builds `MyEncoder.from_spec("REST")`. Loaded on first use of the prefix.
ENTRY_POINT_GROUP = "rlbind_bench.backends"


def _plugin_scheme(prefix: str) -> Callable[[str], BoundEncoder] | None:
    found = [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == prefix]
    if not found:
        return None
    entry = found[0]
    try:
        cls = entry.load()
    except Exception as exc:  # a broken third-party package: name it, in one line
        raise CheckpointError(f"backend {prefix!r} ({entry.value}) failed to import: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, BoundEncoder)):
        raise CheckpointError(f"backend {prefix!r} ({entry.value}) is not a BoundEncoder subclass")
    register_scheme(prefix, cls.from_spec)
    return cls.from_spec


def _scheme_of(spec: str) -> tuple[Callable[[str], BoundEncoder], str] | None:
    prefix, sep, rest = spec.partition(":")
    if not sep or not prefix.replace("-", "_").isidentifier():
        return None
    loader = SCHEMES.get(prefix) or _plugin_scheme(prefix)
    return (loader, rest) if loader is not None else None


def _hub(modalities: tuple[str, ...]) -> Callable[[], BoundEncoder]:
    def build() -> BoundEncoder:
        return load_languagebind({m: HUB_IDS[m] for m in modalities}, name="languagebind")

    return build


def _register_hub_models() -> None:
    register_model(ModelEntry("languagebind", "LanguageBind ViT-L/14 towers for all modalities (hub)",
                              _hub(tuple(HUB_IDS)), source="https://huggingface.co/LanguageBind", licence="MIT"))
    for modality, hub_id in HUB_IDS.items():
        register_model(ModelEntry(f"languagebind/{modality}", f"{hub_id} (hub)", _hub((modality,)),
                                  source=f"https://huggingface.co/{hub_id}", licence="MIT"))


_register_hub_models()


def load_languagebind(towers: dict[str, str], text_from: str | None = None, name: str | None = None) -> BoundEncoder:
    loaded = {m: load_languagebind_tower(ref, m) for m, ref in towers.items()}
    return LanguageBindEncoder(loaded, text_from=text_from, name=name or "+".join(str(r) for r in towers.values()))


def _from_manifest(folder: Path) -> BoundEncoder:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        backend = manifest["backend"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{folder / MANIFEST} is malformed ({exc})") from exc
    builder = BACKENDS.get(backend)
    if builder is None:
        raise CheckpointError(f"{folder / MANIFEST}: unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    return builder(folder, manifest)


def _languagebind_manifest(folder: Path, manifest: dict) -> BoundEncoder:
    towers = {m: str((folder / rel).resolve()) for m, rel in manifest.get("towers", {}).items()}
    return load_languagebind(towers, text_from=manifest.get("text_from"), name=manifest.get("name", folder.name))


register_backend("languagebind", _languagebind_manifest)


def parse_tower_spec(spec: str) -> tuple[dict[str, str], str | None]:
    towers: dict[str, str] = {}
    text_from = None
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UserError(f"bad model spec part {part!r}: expected MODALITY=PATH")
        key, value = key.strip(), value.strip()
        if key == "text":
            text_from = value
            continue
        if key not in HANDLERS:
            raise UserError(f"bad model spec: unknown modality {key!r} (known: {', '.join(HANDLERS)})")
        towers[key] = value
    if text_from is not None and text_from not in towers:
        raise UserError(f"model spec: text={text_from} names no tower of the spec")
    return towers, text_from


def load_encoder(spec: str) -> BoundEncoder:
    """Build the encoder a spec names; user mistakes raise UserError subclasses."""
    if spec in MODELS:
        return MODELS[spec].build()
    path = Path(spec).expanduser()
    scheme = None if path.exists() else _scheme_of(spec)
    if scheme is not None:
        loader, rest = scheme
        return loader(rest)
    # A spec naming an existing path is that path, even with '=' or ',' in it (a folder named "<img src=x>").
    if "=" in spec and not path.exists():
        towers, text_from = parse_tower_spec(spec)
        return load_languagebind(towers, text_from=text_from, name=spec)
    if path.is_dir() and (path / MANIFEST).is_file():
        return _from_manifest(path)
    if path.is_dir() or (not path.exists() and spec.count("/") == 1 and not spec.startswith((".", "/", "~"))):
        return load_languagebind({_detect_modality(spec): spec}, name=path.name or spec)
    raise CheckpointError(f"model {spec!r} not found: not a registered name (rlbind-bench list models), "
                          "not a checkpoint folder, not MODALITY=PATH")


def _detect_modality(ref: str) -> str:
    folder = resolve_checkpoint(ref)
    model_type = read_config(folder).get("model_type", "")
    if model_type not in MODEL_TYPE_TO_MODALITY:
        raise CheckpointError(f"{ref}: config.json model_type {model_type!r} is not a LanguageBind tower; "
                              "give MODALITY=PATH")
    return MODEL_TYPE_TO_MODALITY[model_type]
