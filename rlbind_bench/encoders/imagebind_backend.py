"""ImageBind backend: `imagebind:PATH` specs and `"backend": "imagebind"` folders.

PATH is an ImageBind checkpoint file (imagebind_huge.pth's format: the state dict of the package's
`ImageBindModel`), read with torch.load(weights_only=True) or as safetensors. Its architecture is
imagebind_huge's unless a JSON file beside it with the same stem (`tiny.pth` + `tiny.json`) says otherwise:
`{"model": {ImageBindModel keyword arguments}, "preprocess": {ImageBindSettings fields}}`. The model is built
with the user-installed `imagebind` package (the optional extra; CC BY-NC-SA, never vendored), imported only
here, inside the loader. Every preprocessing step after the project's input spaces runs inside `encode`
(`imagebind_preprocess`); docs/backends-imagebind.md lists where the input spaces differ from imagebind.data.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from rlbind_bench import _compat
from rlbind_bench.constants import MODALITIES
from rlbind_bench.encoders.base import BoundEncoder
from rlbind_bench.encoders.imagebind_preprocess import ImageBindSettings, build_preprocessors
from rlbind_bench.encoders.loading import cached_file_sha256, load_state_dict
from rlbind_bench.encoders.registry import MANIFEST, register_backend, register_scheme
from rlbind_bench.errors import CheckpointError
from rlbind_bench.files import write_json_atomic
from rlbind_bench.modalities import PreprocessConfig

# imagebind_huge()'s arguments to ImageBindModel (the released checkpoint's architecture).
HUGE = {"vision_embed_dim": 1280, "vision_num_blocks": 32, "vision_num_heads": 16, "text_embed_dim": 1024,
        "text_num_blocks": 24, "text_num_heads": 16, "out_embed_dim": 1024, "audio_drop_path": 0.1,
        "imu_drop_path": 0.7}
# Our modality -> ImageBind's ModalityType value (video runs through the vision tower, as in ImageBind).
TOWER_KEY = {"image": "vision", "thermal": "thermal", "depth": "depth", "audio": "audio", "video": "vision"}
IMAGE_SIZE = 224  # ImageBind's image preprocessors have fixed 224 x 224 position grids
SAMPLE_RATE = 16000
WEIGHTS = "model.safetensors"


def _model_kwargs(ib, raw: dict, source: str) -> dict:
    allowed = inspect.signature(ib.models.imagebind_model.ImageBindModel.__init__).parameters
    # Every argument spelled out (the class's defaults, then huge's, then the file's), so that _precheck and
    # preprocess_config read complete settings.
    kwargs = {k: p.default for k, p in allowed.items() if p.default is not inspect.Parameter.empty}
    kwargs.update(HUGE)
    for key, value in raw.items():
        if key == "self" or key not in allowed:
            raise CheckpointError(f"{source}: unknown ImageBindModel argument {key!r}")
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok or (isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
        if not ok:
            raise CheckpointError(f"{source}: ImageBindModel argument {key} must be a number or a list of ints")
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    return kwargs


def read_config(path: Path | None) -> dict:
    """The config file beside a checkpoint (data only), or {} for imagebind_huge."""
    if path is None or not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from exc
    return _validated(config, path)


def _validated(config, source: Path) -> dict:
    if (not isinstance(config, dict) or set(config) - {"model", "preprocess"}
            or not all(isinstance(config.get(k, {}), dict) for k in ("model", "preprocess"))):
        raise CheckpointError(f"{source}: the ImageBind config must be a JSON object holding only the objects "
                              "'model' and 'preprocess'")
    return config


def load_imagebind(weights: Path, config: dict, name: str) -> ImageBindEncoder:
    """Build ImageBindModel from `config` with the imagebind package and load `weights` strictly."""
    if not weights.is_file():
        raise CheckpointError(f"ImageBind checkpoint {weights} not found (give a checkpoint file, e.g. "
                              "imagebind_huge.pth)")
    ib = _compat.import_imagebind()
    source = str(weights)
    kwargs = _model_kwargs(ib, config.get("model", {}), source)
    try:
        settings = ImageBindSettings.from_dict(config.get("preprocess", {}))
    except ValueError as exc:
        raise CheckpointError(f"{source}: {exc}") from exc
    state = load_state_dict(weights)
    _precheck(state, kwargs, source)
    try:
        model = ib.models.imagebind_model.ImageBindModel(**kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{source}: the config does not describe a valid ImageBind model ({exc})") from exc
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{source}: weights do not match the ImageBind architecture (missing "
                              f"{missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected "
                              f"{unexpected[:3]}{'...' if len(unexpected) > 3 else ''}); a non-huge checkpoint "
                              "needs its config JSON beside it")
    bad = [k for k, v in state.items() if v.shape != own[k].shape]
    if bad:
        raise CheckpointError(f"{source}: tensor shapes do not match the ImageBind config for {bad[:3]}")
    model.load_state_dict(state, strict=True)
    fingerprint = hashlib.sha256(f"{cached_file_sha256(weights)}|{json.dumps(config, sort_keys=True)}".encode())
    return ImageBindEncoder(model, kwargs, settings, config, fingerprint.hexdigest()[:16], name, ib)


def _precheck(state: dict[str, torch.Tensor], kwargs: dict, source: str) -> None:
    """Compare each trunk's width and depth with the config before building the model: building
    imagebind_huge takes many seconds and gigabytes, wasted on a checkpoint of another size."""
    for tower in ("vision", "text", "audio", "depth", "thermal", "imu"):
        prefix = f"modality_trunks.{tower}.blocks."
        blocks = {k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)}
        width = state.get(f"{prefix}0.norm_1.weight")
        expected = (kwargs.get(f"{tower}_num_blocks"), kwargs.get(f"{tower}_embed_dim"))
        found = (len(blocks), None if width is None else width.shape[0])
        if None not in expected and found != expected:
            raise CheckpointError(f"{source}: the {tower} trunk has {found[0]} blocks of width {found[1]}, the "
                                  f"config says {expected[0]} of {expected[1]}; a non-huge checkpoint needs its "
                                  "config JSON beside it")


class ImageBindEncoder(BoundEncoder):
    """One ImageBindModel: image, thermal, depth, audio and video towers bound to its text tower."""

    def __init__(self, model: nn.Module, kwargs: dict, settings: ImageBindSettings, config: dict,
                 fingerprint: str, name: str, ib):
        super().__init__()
        self.name = name
        self.model = model
        self.settings = settings
        self._config = config
        self._fingerprint = fingerprint
        self._kwargs = kwargs
        self.preprocessors = build_preprocessors(settings, int(kwargs.get("audio_num_mel_bins", 128)),
                                                 int(kwargs.get("audio_target_len", 204)), SAMPLE_RATE)
        tokenizer_cls = ib.models.multimodal_preprocessors.SimpleTokenizer
        self.tokenizer = tokenizer_cls(bpe_path=ib.data.return_bpe_path())
        self.eval()

    @property
    def modalities(self) -> tuple[str, ...]:
        return MODALITIES

    def preprocess_config(self, modality: str) -> PreprocessConfig:
        self.require(modality)
        s = self.settings
        if modality in ("image", "thermal"):
            return PreprocessConfig(image_size=IMAGE_SIZE, resize_backend="pil")
        if modality == "depth":
            return PreprocessConfig(image_size=IMAGE_SIZE, max_depth=s.max_depth)
        if modality == "audio":
            return PreprocessConfig(sample_rate=SAMPLE_RATE, num_mel_bins=int(self._kwargs.get("audio_num_mel_bins", 128)),
                                    target_length=int(self._kwargs.get("audio_target_len", 204)),
                                    audio_mean=s.audio_mean, audio_std=s.audio_std)
        frames = int(self._kwargs.get("video_frames", 2))
        return PreprocessConfig(image_size=IMAGE_SIZE, num_frames=s.video_clips * frames,
                                video_clips=s.video_clips, video_clip_seconds=s.video_clip_seconds)

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """ImageBindModel's output for the modality: the (scaled) unit embedding, averaged over the clips of
        audio and video as the model does."""
        self.require(modality)
        key = TOWER_KEY[modality]
        return self.model({key: self.preprocessors[modality](x)})[key]

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return torch.stack([self.tokenizer(t) for t in texts])

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        return self.model({"text": self.tokenize(texts).to(device)})["text"]

    def logit_scale(self, modality: str) -> float:
        """ImageBind's zero-shot logits are <modality embedding, text embedding>: the text tower's learned
        scale (capped at 100) times the modality's fixed one (audio 20, depth 5, thermal 10, vision 1)."""
        self.require(modality)
        post = self.model.modality_postprocessors
        scale = float(post["text"][1](torch.ones(())))
        tower = post[TOWER_KEY[modality]]
        return scale * (float(tower[1](torch.ones(()))) if isinstance(tower, nn.Sequential) else 1.0)

    def fingerprint(self) -> str:
        return self._fingerprint

    def tower(self, modality: str) -> nn.Module:
        self.require(modality)
        key = TOWER_KEY[modality]
        m = self.model
        return nn.ModuleDict({"preprocessor": m.modality_preprocessors[key], "trunk": m.modality_trunks[key],
                              "head": m.modality_heads[key]})

    def lora_targets(self, modality: str) -> tuple[str, ...]:
        # The blocks' MLPs: attention is torch's nn.MultiheadAttention, whose forward reads out_proj's weight
        # directly, so a LoRA wrapper on it would never run.
        self.require(modality)
        return ("fc1", "fc2")

    def save(self, folder: str | Path) -> Path:
        """model.safetensors + rlbind-model.json (backend, config): loads back through the manifest."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.model.state_dict().items()},
                  str(folder / WEIGHTS))
        write_json_atomic(folder / MANIFEST, {"backend": "imagebind", "name": self.name, "weights": WEIGHTS,
                                              "config": self._config})
        return folder


def load_imagebind_spec(ref: str) -> ImageBindEncoder:
    """`imagebind:PATH`: a checkpoint file (config JSON beside it, same stem) or a saved folder."""
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / MANIFEST).is_file():
            raise CheckpointError(f"imagebind:{ref} is a folder without {MANIFEST}; give the checkpoint file")
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path / MANIFEST} is malformed ({exc})") from exc
        if not isinstance(manifest, dict):
            raise CheckpointError(f"{path / MANIFEST} is not a JSON object")
        return _from_manifest(path, manifest)
    config_path = path.with_suffix(".json")
    return load_imagebind(path, read_config(config_path if config_path != path else None), path.stem)


def _from_manifest(folder: Path, manifest: dict) -> ImageBindEncoder:
    config = _validated(manifest.get("config", {}), folder / MANIFEST)
    weights = (folder / str(manifest.get("weights", WEIGHTS))).resolve()
    if folder.resolve() not in weights.parents:
        raise CheckpointError(f"{folder / MANIFEST}: weights must lie inside the folder")
    return load_imagebind(weights, config, str(manifest.get("name", folder.name)))


register_scheme("imagebind", load_imagebind_spec)
register_backend("imagebind", _from_manifest)
