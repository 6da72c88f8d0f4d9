"""The contracts every modality shares: input spaces, preprocessing configs, the handler base class.

Nothing here imports an encoder: encoders depend on modalities (they declare their input spaces through
them), never the other way round.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from rlbind_bench.errors import DatasetError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class UnreadableSample(DatasetError):
    """One file could not be decoded: the runner skips and counts it."""


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


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything a modality's preprocessing needs, read from a checkpoint's vision_config.

    Defaults are LanguageBind's (processors hard-code 224, the OpenAI mean/std, bicubic resize on tensors).
    - `video_clips`: 0 takes `num_frames` frames uniformly over the whole video (LanguageBind); K > 0 takes K
      clips of `video_clip_seconds` evenly spread over the video (pytorchvideo's ConstantClipsPerVideoSampler),
      `num_frames // K` frames each (UniformTemporalSubsample), and the center crop of pytorchvideo's
      `uniform_crop` (offsets rounded up), as ImageBind's video loader does.
    """

    image_size: int = 224
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    num_frames: int = 8
    sample_rate: int = 16000
    num_mel_bins: int = 112
    target_length: int = 1036
    audio_mean: float = -4.2677393
    audio_std: float = 4.5689974
    max_depth: float = 10.0
    # Image geometry (modalities/resize.py); the defaults are LanguageBind's. open_clip models set their own.
    resize_mode: str = "shortest"
    interpolation: str = "bicubic"
    resize_backend: str = "tensor"
    fill_color: int = 0
    # Video clip sampling (ImageBind's); 0: LanguageBind's uniform frames over the whole video
    video_clips: int = 0
    video_clip_seconds: float = 2.0

    def __post_init__(self):
        if self.video_clips < 0 or (self.video_clips and self.num_frames % self.video_clips):
            raise ValueError(f"num_frames ({self.num_frames}) must be a multiple of video_clips ({self.video_clips})")


class Normalize(nn.Module):
    """Per-channel (x - mean) / std over dim `channel_dim` (from the end)."""

    def __init__(self, mean, std, channel_dim: int = -3):
        super().__init__()
        shape = [1] * (-channel_dim)
        shape[0] = 3
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(*shape), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(*shape), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def resize_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """LanguageBind's image transform up to normalisation: bicubic resize of the short side, center crop."""
    x = TF.resize(x, size, interpolation=InterpolationMode.BICUBIC, antialias=True)
    return TF.center_crop(x, [size, size])


class ModalityHandler(ABC):
    """One modality: its input space, its file loader, its in-forward preprocessing.

    A concrete handler names its modality in `name` and is made known with `registry.register_handler`.
    """

    name: ClassVar[str]
    file_suffixes: ClassVar[tuple[str, ...]]

    @abstractmethod
    def input_space(self, cfg: PreprocessConfig, **hints) -> InputSpace: ...

    def input_hints(self, index) -> dict:
        """What the input space depends on besides the model, read off a dataset index (audio: the clip
        length); passed as ``**hints`` to `input_space` and `load`. Default: nothing."""
        return {}

    @abstractmethod
    def load(self, path: Path, cfg: PreprocessConfig, **hints) -> torch.Tensor:
        """Decode one file into the input space (no batch dim). Deterministic."""

    @abstractmethod
    def preprocess(self, cfg: PreprocessConfig) -> nn.Module:
        """Differentiable map from a batch in the input space to the tower's pixel_values."""
