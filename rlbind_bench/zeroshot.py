"""Zero-shot classification: template ensembles -> class embeddings -> a classifier on the raw input space."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rlbind_bench.constants import LOGIT_SCALE
from rlbind_bench.encoders.base import BoundEncoder, model_logit_scale
from rlbind_bench.errors import ConfigError
from rlbind_bench.files import atomic_write

# `--logit-scale model`: every classifier uses its encoder's own scale for its modality.
MODEL_SCALE = "model"


def parse_logit_scale(value) -> float | str:
    """A run's `logit_scale` setting: a finite number > 0, or "model"."""
    if isinstance(value, str) and value.strip().lower() == MODEL_SCALE:
        return MODEL_SCALE
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ConfigError(f"--logit-scale must be a number > 0 or 'model', got {value!r}")
    return number


def resolve_logit_scale(setting: float | str, encoder: BoundEncoder, modality: str) -> float:
    """The number a classifier uses: the setting, or under "model" the encoder's own, capped as in training."""
    return model_logit_scale(encoder, modality) if setting == MODEL_SCALE else float(setting)


def class_embedding_key(encoder: BoundEncoder, classnames: list[str], templates: list[str]) -> str:
    payload = json.dumps({"model": encoder.fingerprint(), "classes": classnames, "templates": templates})
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


@torch.no_grad()
def build_class_embeddings(encoder: BoundEncoder, classnames: list[str], templates: list[str],
                           cache_dir: Path | None = None, batch_size: int = 256) -> torch.Tensor:
    """[C, D]: per class, the renormalised mean of the normalised template embeddings (CLIP's recipe)."""
    if not templates or any("{}" not in t for t in templates):
        raise ConfigError("every template must contain '{}' where the class name goes")
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"classemb-{class_embedding_key(encoder, classnames, templates)}.pt"
        if cache_file.is_file():
            try:
                cached = torch.load(cache_file, map_location="cpu", weights_only=True)
                if isinstance(cached, torch.Tensor) and cached.shape[0] == len(classnames):
                    return cached
            except Exception:  # a broken cache entry is recomputed, never trusted
                pass
    texts = [t.format(c) for c in classnames for t in templates]
    chunks = [encoder.encode_text(texts[i:i + batch_size]).float().cpu() for i in range(0, len(texts), batch_size)]
    emb = F.normalize(torch.cat(chunks), dim=-1).view(len(classnames), len(templates), -1)
    weights = F.normalize(emb.mean(dim=1), dim=-1)
    if cache_file is not None:
        atomic_write(cache_file, lambda fh: torch.save(weights, fh))
    return weights


class ZeroShotClassifier(nn.Module):
    """Raw input (the modality's input space) -> logits = scale * <normalised embedding, class embedding>."""

    def __init__(self, encoder: BoundEncoder, modality: str, class_embeddings: torch.Tensor,
                 logit_scale: float = LOGIT_SCALE, autocast_dtype: torch.dtype | None = None):
        super().__init__()
        self.encoder = encoder
        self.modality = modality
        self.logit_scale = float(logit_scale)
        self.autocast_dtype = autocast_dtype  # e.g. torch.bfloat16: the encoder's forward under autocast
        self.register_buffer("class_embeddings", class_embeddings.float(), persistent=False)

    @property
    def num_classes(self) -> int:
        return self.class_embeddings.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_from(self.embed(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The modality tower's raw (unnormalised) embedding, float32: what embedding-space threats attack."""
        if self.autocast_dtype is None:
            return self.encoder.encode(self.modality, x).float()
        with torch.autocast(x.device.type, dtype=self.autocast_dtype):
            emb = self.encoder.encode(self.modality, x)
        return emb.float()

    def logits_from(self, emb: torch.Tensor) -> torch.Tensor:
        # Outside autocast: cosines scaled by 100 in bf16 (8 bits of mantissa) would tie close classes and
        # give attacks a quantised loss.
        feats = F.normalize(emb.float(), dim=-1)
        return self.logit_scale * feats @ self.class_embeddings.T
