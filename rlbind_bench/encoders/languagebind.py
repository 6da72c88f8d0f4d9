"""LanguageBind backend: HF folders or hub ids for image, audio, thermal, depth and video.

Built with languagebind's own classes from their config, then weights loaded by `loading` (never
`from_pretrained`, which would unpickle). Several modality checkpoints share one text tower, as
languagebind's `LanguageBind` class does: by default the text tower of the last checkpoint given.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rlbind_bench import _compat
from rlbind_bench.encoders.base import BoundEncoder
from rlbind_bench.encoders.loading import (
    load_state_dict,
    read_config,
    resolve_checkpoint,
    tower_fingerprint,
    weights_file,
)
from rlbind_bench.errors import CheckpointError
from rlbind_bench.files import write_json_atomic
from rlbind_bench.modalities import PreprocessConfig, get_handler

MODEL_TYPE_TO_MODALITY = {
    "LanguageBindImage": "image", "LanguageBindAudio": "audio", "LanguageBindThermal": "thermal",
    "LanguageBindDepth": "depth", "LanguageBindVideo": "video",
}

HUB_IDS = {
    "image": "LanguageBind/LanguageBind_Image",
    "audio": "LanguageBind/LanguageBind_Audio_FT",
    "thermal": "LanguageBind/LanguageBind_Thermal",
    "depth": "LanguageBind/LanguageBind_Depth",
    "video": "LanguageBind/LanguageBind_Video_FT",
}


def preprocess_config(vision_config) -> PreprocessConfig:
    get = lambda k, d: getattr(vision_config, k, d) or d  # noqa: E731 - zero means "unset" in these configs
    return PreprocessConfig(
        num_frames=int(get("num_frames", 8)), sample_rate=int(get("audio_sample_rate", 16000)),
        num_mel_bins=int(get("num_mel_bins", 112)), target_length=int(get("target_length", 1036)),
        audio_mean=float(get("audio_mean", -4.2677393)), audio_std=float(get("audio_std", 4.5689974)),
        max_depth=float(get("max_depth", 10.0)),
    )


@dataclass
class LoadedTower:
    modality: str
    folder: Path
    model: nn.Module  # the whole LanguageBind<Modality> model (vision + text towers)
    preprocess_cfg: PreprocessConfig
    fingerprint: str


def load_languagebind_tower(ref: str, modality: str | None = None) -> LoadedTower:
    lb = _compat.import_languagebind()
    folder = resolve_checkpoint(ref)
    raw = read_config(folder)
    detected = MODEL_TYPE_TO_MODALITY.get(raw.get("model_type", ""))
    if modality is None:
        if detected is None:
            raise CheckpointError(f"{ref}: config.json model_type {raw.get('model_type')!r} is not a LanguageBind "
                                  f"tower ({', '.join(MODEL_TYPE_TO_MODALITY)}); name the modality: MODALITY=PATH")
        modality = detected
    elif detected is not None and detected != modality:
        raise CheckpointError(f"{ref} is a {detected} checkpoint, given as {modality}")
    config_cls, model_cls = lb.config_dict[modality], lb.model_dict[modality]
    try:
        config = config_cls.from_dict(raw)
        model = model_cls(config)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{ref}: config.json does not describe a valid {modality} model ({exc})") from exc
    state = load_state_dict(weights_file(folder))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{ref}: weights do not match the config "
                              f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                              f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''})")
    bad = [k for k, v in state.items() if v.shape != own[k].shape]
    if bad:
        raise CheckpointError(f"{ref}: tensor shapes do not match the config for {bad[:3]}")
    model.load_state_dict(state, strict=True)
    model.eval()
    return LoadedTower(modality, folder, model, preprocess_config(config.vision_config), tower_fingerprint(folder))


class LanguageBindEncoder(BoundEncoder):
    """Towers of several LanguageBind checkpoints bound to one (frozen) text tower."""

    def __init__(self, towers: dict[str, LoadedTower], text_from: str | None = None, name: str = "languagebind"):
        super().__init__()
        if not towers:
            raise CheckpointError("no LanguageBind checkpoint given")
        self.name = name
        text_from = text_from or list(towers)[-1]
        self._towers = towers
        self.vision = nn.ModuleDict({m: t.model.vision_model for m, t in towers.items()})
        self.projection = nn.ModuleDict({m: t.model.visual_projection for m, t in towers.items()})
        self.preprocessors = nn.ModuleDict({m: get_handler(m).preprocess(t.preprocess_cfg) for m, t in towers.items()})
        # The HF models' own log-scale parameters (the same objects): moved with the encoder, trained by
        # `learn_temperature`, and written back by `save_pretrained`.
        self.log_scales = nn.ParameterDict({m: t.model.logit_scale for m, t in towers.items()})
        text_model = towers[text_from].model
        self.text_model = text_model.text_model
        self.text_projection = text_model.text_projection
        self.tokenizer = _load_tokenizer(towers[text_from].folder)
        self.text_source = text_from
        self.eval()

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self._towers)

    def preprocess_config(self, modality: str) -> PreprocessConfig:
        self.require(modality)
        return self._towers[modality].preprocess_cfg

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        self.require(modality)
        pixel_values = self.preprocessors[modality](x)
        pooled = self.vision[modality](pixel_values=pixel_values)[1]
        return self.projection[modality](pooled)

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        device = self.text_projection.weight.device
        enc = self.tokenizer(texts, max_length=77, padding="max_length", truncation=True, return_tensors="pt")
        out = self.text_model(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device))
        return self.text_projection(out[1])

    def logit_scale(self, modality: str) -> float:
        self.require(modality)
        return float(self.log_scales[modality].detach().float().exp())

    def temperature(self, modality: str) -> nn.Parameter:
        self.require(modality)
        return self.log_scales[modality]

    def tower(self, modality: str) -> nn.Module:
        self.require(modality)
        return nn.ModuleDict({"vision": self.vision[modality], "projection": self.projection[modality]})

    def lora_targets(self, modality: str) -> tuple[str, ...]:
        # The attention projections, as LanguageBind's own LoRA checkpoints (`convert_to_lora`); in video
        # towers this also matches the temporal attention's projections.
        self.require(modality)
        return ("q_proj", "k_proj", "v_proj", "out_proj")

    def fingerprint(self) -> str:
        parts = [f"{m}:{t.fingerprint}" for m, t in sorted(self._towers.items())] + [f"text:{self.text_source}"]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def save(self, folder: str | Path) -> Path:
        """One LanguageBind HF folder per tower (with its tokenizer files) + rlbind-model.json binding them."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for m, tower in self._towers.items():
            target = folder / m
            tower.model.save_pretrained(target, safe_serialization=True)
            for name in ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                         "special_tokens_map.json"):
                src = tower.folder / name
                if src.is_file() and src.resolve() != (target / name).resolve():
                    shutil.copyfile(src, target / name)
        write_json_atomic(folder / "rlbind-model.json", {"backend": "languagebind", "name": self.name,
                                                          "towers": {m: m for m in self._towers},
                                                          "text_from": self.text_source})
        return folder


def _load_tokenizer(folder: Path):
    lb = _compat.import_languagebind()
    try:
        return lb.LanguageBindImageTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {folder}: cannot load the CLIP tokenizer files "
                              f"(vocab.json, merges.txt): {exc}") from exc
