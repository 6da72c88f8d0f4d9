"""open_clip backend (image modality): `open_clip:ARCH[@PRETRAINED]` and `hf-hub:ORG/NAME` specs.

- ARCH is an open_clip architecture name (`open_clip.list_models()`) or a model-config `.json` file in
  open_clip's format (`embed_dim`, `vision_cfg`, `text_cfg`), registered under its file stem.
- PRETRAINED is an open_clip pretrained tag (`open_clip.list_pretrained_tags_by_model(ARCH)`), a local
  checkpoint file (.safetensors, or a pickle read with `weights_only=True`), or absent: random init, drawn
  under a fixed seed so that `open_clip:ARCH` is the same model in every run.
- `hf-hub:ORG/NAME` is an open_clip model on the Hugging Face hub (config and weights from the hub or its
  cache).

open_clip is optional: it is imported inside the loaders. The model's own preprocessing
(`model.visual.preprocess_cfg`: size, mean/std, resize mode, interpolation, fill) maps onto the image
handler's `PreprocessConfig` with PIL resampling, so a run's loader makes the pixels open_clip's eval
transform makes, and `encode` normalises inside the forward (attacks act in [0, 1] pixel space).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from torch import nn

from rlbind_bench.encoders.base import BoundEncoder
from rlbind_bench.encoders.registry import register_scheme
from rlbind_bench.errors import CheckpointError, ConfigError, UserError
from rlbind_bench.modalities import PreprocessConfig, get_handler
from rlbind_bench.modalities.resize import INTERPOLATIONS, RESIZE_MODES

SCHEME = "open_clip"
HUB_SCHEME = "hf-hub"
RANDOM_INIT_SEED = 0
INSTALL_HINT = "pip install 'rlbind-bench[open_clip]' (or: pip install open_clip_torch)"


def import_open_clip():
    try:
        import open_clip
    except ImportError as exc:
        raise UserError(f"the open_clip backend needs the open_clip package ({exc}): {INSTALL_HINT}") from exc
    return open_clip


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:300] if text else type(exc).__name__)


def preprocess_from_open_clip(pp: dict) -> PreprocessConfig:
    """open_clip's preprocess_cfg (dict) -> PreprocessConfig with PIL resampling (open_clip's transform
    resizes the PIL image)."""
    size = pp.get("size", 224)
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            raise CheckpointError(f"open_clip image size {tuple(size)} is not square; only square inputs are supported")
        size = size[0]

    def triple(v):
        return tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else (float(v),) * 3

    # open_clip maps 'random' (a training setting) to bicubic at inference; so do we.
    interpolation = {"random": "bicubic"}.get(pp.get("interpolation") or "bicubic", pp.get("interpolation"))
    resize_mode = pp.get("resize_mode") or "shortest"
    if interpolation not in INTERPOLATIONS or resize_mode not in RESIZE_MODES:
        raise CheckpointError(f"open_clip preprocessing not supported: interpolation={interpolation!r}, "
                              f"resize_mode={resize_mode!r} (supported: {', '.join(INTERPOLATIONS)}; "
                              f"{', '.join(RESIZE_MODES)})")
    if pp.get("mode", "RGB") != "RGB":
        raise CheckpointError(f"open_clip image mode {pp['mode']!r} not supported (RGB only)")
    return PreprocessConfig(image_size=int(size), mean=triple(pp["mean"]), std=triple(pp["std"]),
                            resize_mode=resize_mode, interpolation=interpolation, resize_backend="pil",
                            fill_color=int(pp.get("fill_color", 0) or 0))


class OpenClipEncoder(BoundEncoder):
    """One open_clip CLIP model: its image tower bound to its own text tower."""

    def __init__(self, model: nn.Module, tokenizer, name: str, identity: dict):
        super().__init__()
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self._cfg = preprocess_from_open_clip(dict(model.visual.preprocess_cfg))
        self.normalize = get_handler("image").preprocess(self._cfg)
        self._scale = float(model.logit_scale.detach().float().exp())
        self._identity = {**identity, "preprocess": dataclasses.asdict(self._cfg)}
        self._fingerprint: tuple[tuple, str] | None = None
        self.eval()

    @property
    def modalities(self) -> tuple[str, ...]:
        return ("image",)

    def preprocess_config(self, modality: str) -> PreprocessConfig:
        self.require(modality)
        return self._cfg

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        self.require(modality)
        return self.model.encode_image(self.normalize(x))

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        device = self.model.logit_scale.device
        return self.model.encode_text(self.tokenizer(texts).to(device))

    def logit_scale(self, modality: str) -> float:
        self.require(modality)
        return self._scale

    def tower(self, modality: str) -> nn.Module:
        self.require(modality)
        return self.model.visual

    def fingerprint(self) -> str:
        """sha256 (16 hex) of the architecture, preprocessing and every weight's bytes. Content, not path:
        a tag, a copied file and the hub give the same fingerprint for the same weights. Cached until a
        tensor changes (in-place updates bump a tensor's version counter), since big models hash slowly."""
        tensors = sorted(self.model.state_dict(keep_vars=True).items())
        key = tuple((k, id(t), t._version, t.device.type) for k, t in tensors)
        if self._fingerprint is not None and self._fingerprint[0] == key:
            return self._fingerprint[1]
        h = hashlib.sha256(json.dumps(self._identity, sort_keys=True).encode())
        for k, t in tensors:
            t = t.detach().to("cpu").contiguous()
            h.update(f"{k}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        self._fingerprint = (key, h.hexdigest()[:16])
        return self._fingerprint[1]


def _arch_name(open_clip, arch: str) -> tuple[str, dict]:
    """A built-in name, or a model-config JSON registered under its stem; returns (name, model config)."""
    path = Path(arch).expanduser()
    if arch.endswith(".json"):
        if not path.is_file():
            raise ConfigError(f"open_clip model config {arch} does not exist")
        try:
            cfg = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"open_clip model config {arch} is not valid JSON ({exc})") from exc
        if not isinstance(cfg, dict) or not all(k in cfg for k in ("embed_dim", "vision_cfg", "text_cfg")):
            raise ConfigError(f"open_clip model config {arch} needs embed_dim, vision_cfg and text_cfg")
        known = open_clip.get_model_config(path.stem)
        if known is not None and known != cfg:
            raise ConfigError(f"open_clip model config {arch}: its name {path.stem!r} is already an open_clip "
                              "architecture with another config; rename the file")
        open_clip.add_model_config(path)
        return path.stem, cfg
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise ConfigError(f"unknown open_clip architecture {arch!r} (open_clip.list_models(), e.g. ViT-B-32), "
                          "and not a model-config .json file")
    return arch, cfg


@contextlib.contextmanager
def _quiet_upstream_logs():
    """open_clip logs an error before raising it, huggingface_hub a warning per retry: each failure becomes our
    one-line CheckpointError, and their log lines would only repeat it over several lines (--debug keeps the
    traceback, which names the upstream error)."""
    previous = logging.root.manager.disable
    logging.disable(logging.ERROR)
    try:
        yield
    finally:
        logging.disable(previous)


def _create(open_clip, model_name: str, what: str, **kwargs) -> nn.Module:
    try:
        with _quiet_upstream_logs():
            return open_clip.create_model(model_name, device="cpu", weights_only=True, pretrained_image=False,
                                          pretrained_text=False, **kwargs)
    except Exception as exc:  # download, unpickling refusal, shape/key mismatch: all "this checkpoint fails"
        raise CheckpointError(f"cannot load open_clip model {what}: {type(exc).__name__}: {_first_line(exc)}") from exc


def _tokenizer(open_clip, model_name: str, what: str):
    try:
        with _quiet_upstream_logs():
            return open_clip.get_tokenizer(model_name)
    except Exception as exc:
        raise CheckpointError(f"cannot load the tokenizer of open_clip model {what}: {_first_line(exc)}") from exc


def load_open_clip(rest: str) -> OpenClipEncoder:
    """`open_clip:ARCH[@PRETRAINED]` (the part after the colon)."""
    arch, sep, pretrained = rest.partition("@")
    if not arch or (sep and not pretrained):
        raise ConfigError(f"bad open_clip spec {SCHEME}:{rest}: expected {SCHEME}:ARCH[@PRETRAINED], "
                          f"e.g. {SCHEME}:ViT-B-32@laion2b_s34b_b79k or {SCHEME}:ViT-B-32@/path/weights.safetensors")
    open_clip = import_open_clip()
    name, model_cfg = _arch_name(open_clip, arch)
    identity = {"backend": SCHEME, "architecture": model_cfg}
    if not pretrained:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model = _create(open_clip, name, f"{SCHEME}:{arch}")
        return OpenClipEncoder(model, _tokenizer(open_clip, name, arch), f"{SCHEME}:{name}", identity)
    file = Path(pretrained).expanduser()
    if open_clip.get_pretrained_cfg(name, pretrained):
        label = pretrained
    elif file.is_file():
        label, pretrained = file.name, str(file)
    else:
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise ConfigError(f"open_clip {name}: {pretrained!r} is neither a pretrained tag "
                          f"({', '.join(tags) or 'none for this architecture'}) nor an existing checkpoint file")
    model = _create(open_clip, name, f"{name}@{label}", pretrained=pretrained, require_pretrained=True)
    return OpenClipEncoder(model, _tokenizer(open_clip, name, arch), f"{SCHEME}:{name}@{label}", identity)


def load_hf_hub(rest: str) -> OpenClipEncoder:
    """`hf-hub:ORG/NAME`: an open_clip model (open_clip_config.json + weights) on the Hugging Face hub."""
    if rest.count("/") != 1 or not all(rest.split("/")):
        raise ConfigError(f"bad spec {HUB_SCHEME}:{rest}: expected {HUB_SCHEME}:ORG/NAME")
    open_clip = import_open_clip()
    what = f"{HUB_SCHEME}:{rest}"
    try:
        with _quiet_upstream_logs():
            model = open_clip.create_model(what, device="cpu", weights_only=True, require_pretrained=True)
    except Exception as exc:
        offline = " (HF_HUB_OFFLINE=1)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise CheckpointError(f"cannot load {what}: not reachable on the Hugging Face hub{offline} and not in its "
                              f"local cache, or not an open_clip model ({_first_line(exc)})") from exc
    with _quiet_upstream_logs():  # the config is in the hub cache now: create_model fetched it
        identity = {"backend": HUB_SCHEME, "architecture": open_clip.get_model_config(what) or {}}
    return OpenClipEncoder(model, _tokenizer(open_clip, what, what), what, identity)


register_scheme(SCHEME, load_open_clip)
register_scheme(HUB_SCHEME, load_hf_hub)
