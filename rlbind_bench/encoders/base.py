"""The interface every bound encoder backend implements.

A backend subclasses `BoundEncoder`, implements the abstract methods, and (to be found by `load_encoder`)
registers a `ModelEntry` or a manifest builder in `encoders.registry`, imported from `encoders/__init__.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch import nn

from rlbind_bench.constants import LOGIT_SCALE
from rlbind_bench.errors import UserError
from rlbind_bench.modalities import InputSpace, PreprocessConfig, get_handler

# InputSpace lives with the modalities, which declare the spaces; re-exported for callers that import it here.
__all__ = ["BoundEncoder", "InputSpace", "model_logit_scale"]


class BoundEncoder(nn.Module, ABC):
    """Encoders of several modalities bound to one text space.

    `encode` and `encode_text` return unnormalised embeddings (FARE trains on those); the zero-shot
    classifier normalises. Inputs to `encode` live in `input_space(modality)`: all preprocessing after that
    space runs inside `encode`, so attacks and corruptions act on the raw space.
    """

    name: str = "encoder"

    @property
    @abstractmethod
    def modalities(self) -> tuple[str, ...]:
        """The modalities this encoder has a tower for, in a stable order."""

    @abstractmethod
    def preprocess_config(self, modality: str) -> PreprocessConfig:
        """The preprocessing of `modality`'s tower (image size, frames, fbank settings...); raises
        UserError (through `require`) for a modality the encoder lacks."""

    def input_space(self, modality: str, **hints) -> InputSpace:
        """The raw space `encode(modality, x)` takes. `hints` carry facts about the data the space depends
        on (audio: `clip_seconds`). Default: the modality handler's space for `preprocess_config(modality)`."""
        return get_handler(modality).input_space(self.preprocess_config(modality), **hints)

    @abstractmethod
    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """[B, *input_space(modality).shape] -> unnormalised embeddings [B, D]; differentiable in `x`."""

    @abstractmethod
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Unnormalised text embeddings [len(texts), D] in the space every modality binds to."""

    @abstractmethod
    def logit_scale(self, modality: str) -> float:
        """exp(learned temperature) of the modality's checkpoint."""

    def temperature(self, modality: str) -> nn.Parameter | None:
        """The parameter holding log(logit scale) of `modality`: what a recipe with `learn_temperature`
        trains and `save` writes. None: the backend's scale cannot be trained."""
        return None

    @abstractmethod
    def fingerprint(self) -> str:
        """A stable id of the weights (for caches and result provenance)."""

    @classmethod
    def from_spec(cls, spec: str) -> BoundEncoder:
        """Build from the text after `PREFIX:` in `--model PREFIX:SPEC`: what a third-party backend registered
        under the entry-point group `rlbind_bench.backends` implements (see encoders/registry.py)."""
        raise NotImplementedError(f"{cls.__name__} does not implement from_spec")

    def tower(self, modality: str) -> nn.Module:
        """The trainable part of a modality (what fine-tuning recipes update)."""
        raise NotImplementedError(f"{self.name}: no trainable tower exposed for {modality!r}")

    def lora_targets(self, modality: str) -> tuple[str, ...]:
        """Default peft `target_modules` inside `tower(modality)` for `trainable: lora`."""
        raise NotImplementedError(f"{self.name}: no default LoRA targets; set lora.target_modules in the recipe")

    def save(self, folder: str | Path) -> Path:
        """Write the encoder to `folder` so that `load_encoder(str(folder))` rebuilds it (what training
        checkpoints and final models use); return the folder."""
        raise NotImplementedError(f"{self.name}: this backend cannot save itself")

    def require(self, modality: str) -> None:
        """Raise UserError unless the encoder has a tower for `modality`."""
        if modality not in self.modalities:
            raise UserError(f"model {self.name!r} has no {modality!r} tower (it has: {', '.join(self.modalities)})")


def model_logit_scale(encoder: BoundEncoder, modality: str, differentiable: bool = False) -> float | torch.Tensor:
    """The model's own logit scale for `modality`, capped at LOGIT_SCALE as CLIP and LanguageBind clamp it: the
    one scale every training loss and `--logit-scale model` use. `differentiable`: a tensor through the
    temperature parameter, for training with `learn_temperature` (the number is the same)."""
    if differentiable:
        p = encoder.temperature(modality)
        if p is None:
            raise UserError(f"model {encoder.name!r} has no trainable temperature for {modality!r}")
        return p.exp().clamp(max=LOGIT_SCALE)
    return min(LOGIT_SCALE, float(encoder.logit_scale(modality)))
