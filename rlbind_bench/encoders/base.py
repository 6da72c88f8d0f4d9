"""The interface every bound encoder backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class InputSpace:
    """The raw space attacks and corruptions act on, for one modality of one encoder.

    `shape` is the per-sample shape (no batch dim). Everything after this space (normalisation, fbank,
    layout changes) happens inside `BoundEncoder.encode`, so perturbations are measured here.
    """

    modality: str
    shape: tuple[int, ...]
    low: float
    high: float
    description: str

    def check(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"{self.modality}: expected input [B, {', '.join(map(str, self.shape))}], "
                             f"got {list(x.shape)}")


class BoundEncoder(nn.Module, ABC):
    """Encoders of several modalities bound to one text space.

    `encode` and `encode_text` return unnormalised embeddings (FARE trains on those); the zero-shot
    classifier normalises.
    """

    name: str = "encoder"

    @property
    @abstractmethod
    def modalities(self) -> tuple[str, ...]: ...

    @abstractmethod
    def input_space(self, modality: str) -> InputSpace: ...

    @abstractmethod
    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def encode_text(self, texts: list[str]) -> torch.Tensor: ...

    @abstractmethod
    def logit_scale(self, modality: str) -> float:
        """exp(learned temperature) of the modality's checkpoint."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A stable id of the weights (for caches and result provenance)."""

    def tower(self, modality: str) -> nn.Module:
        """The trainable part of a modality (what fine-tuning recipes update)."""
        raise NotImplementedError

    def lora_targets(self, modality: str) -> tuple[str, ...]:
        """Default peft `target_modules` inside `tower(modality)` for `trainable: lora`."""
        raise NotImplementedError(f"{self.name}: no default LoRA targets; set lora.target_modules in the recipe")

    def require(self, modality: str) -> None:
        if modality not in self.modalities:
            from rlbind_bench.errors import UserError

            raise UserError(f"model {self.name!r} has no {modality!r} tower (it has: {', '.join(self.modalities)})")
