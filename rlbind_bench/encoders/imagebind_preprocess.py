"""ImageBind's preprocessing after the project's input spaces, as differentiable modules run inside `encode`.

Written from ImageBind's documented settings (its `imagebind.data` loaders), not copied from it: the package
is CC BY-NC-SA and stays a user-installed extra. tests/test_imagebind_backend.py checks each module against
the package's own functions on the same real files. What ImageBind publishes no transform for (depth,
thermal) follows `ImageBindSettings`, whose defaults docs/backends-imagebind.md explains.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from rlbind_bench.modalities import Normalize
from rlbind_bench.modalities.base import OPENAI_MEAN, OPENAI_STD

# PIL's convert("L") weights (ITU-R 601-2 luma): how a 3-channel thermal frame becomes ImageBind's 1 channel.
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ImageBindSettings:
    """What the in-forward preprocessing reads besides the model's own sizes (the "preprocess" block of an
    ImageBind config file). Audio and video defaults are imagebind.data's loaders' defaults."""

    audio_clips: int = 3
    audio_clip_seconds: float = 2.0
    audio_mean: float = -4.268
    audio_std: float = 9.138
    video_clips: int = 5
    video_clip_seconds: float = 2.0
    # Depth: the input space holds depth / max_depth; ImageBind's depth tower was trained on disparity
    # (baseline * focal / depth, Omnivore's convention), standardised. NYU-D's Kinect v1 by default.
    max_depth: float = 10.0
    depth_baseline: float = 0.075
    depth_focal_length: float = 518.857901
    depth_mean: float = 0.0418
    depth_std: float = 0.0295
    # Thermal: luma of the RGB frame, standardised with these (none by default).
    thermal_mean: float = 0.0
    thermal_std: float = 1.0

    @classmethod
    def from_dict(cls, raw: dict) -> ImageBindSettings:
        """Raises ValueError for an unknown key or a non-numeric value (the caller words the error)."""
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise ValueError(f"unknown preprocess settings {unknown} (known: {', '.join(fields)})")
        values = {}
        for key, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"preprocess setting {key} must be a number, not {value!r}")
            values[key] = int(value) if fields[key] == "int" else float(value)
        settings = cls(**values)
        if settings.audio_clips < 1 or settings.video_clips < 1:
            raise ValueError("audio_clips and video_clips must be at least 1")
        if min(settings.audio_std, settings.depth_std, settings.thermal_std, settings.max_depth) <= 0:
            raise ValueError("standard deviations and max_depth must be positive")
        return settings


def audio_clip_bounds(n: int, sample_rate: int, clips: int, clip_seconds: float) -> list[tuple[int, int]]:
    """Sample ranges of ImageBind's audio clips in a waveform of `n` samples: pytorchvideo's
    ConstantClipsPerVideoSampler (clip k starts at k * max(duration - clip_seconds, 0) / clips), cut at
    int(t * sample_rate) as imagebind.data does (float and Fraction arithmetic kept as there)."""
    duration = n / sample_rate
    step = Fraction(max(duration - clip_seconds, 0)) / clips
    length = Fraction(clip_seconds)
    return [(int(step * k * sample_rate), min(int((step * k + length) * sample_rate), n)) for k in range(clips)]


class AudioClips(nn.Module):
    """Waveforms [B, N] in [-1, 1] at `sample_rate` -> ImageBind's audio input [B, clips, 1, mel_bins, target].

    Per clip: the waveform's mean removed, kaldi fbank (AST's settings, as imagebind.data), frames cut or
    zero-padded to `target_length`, then (x - mean) / std. imagebind.data removes each clip's mean in place
    from a view of the whole waveform, so a later clip that overlaps an earlier one starts from the already
    shifted samples; reproduced here, out of place.
    """

    def __init__(self, sample_rate: int, num_mel_bins: int, target_length: int, settings: ImageBindSettings):
        super().__init__()
        self.sample_rate = sample_rate
        self.num_mel_bins = num_mel_bins
        self.target_length = target_length
        self.clips = settings.audio_clips
        self.clip_seconds = settings.audio_clip_seconds
        self.mean = settings.audio_mean
        self.std = settings.audio_std

    def melspec(self, clip: torch.Tensor) -> torch.Tensor:
        """One clip [n] (its mean already removed) -> [1, mel_bins, target_length], unnormalised."""
        import torchaudio  # slow to import: only audio needs it

        fbank = torchaudio.compliance.kaldi.fbank(
            clip.unsqueeze(0), htk_compat=True, sample_frequency=self.sample_rate, use_energy=False,
            window_type="hanning", num_mel_bins=self.num_mel_bins, dither=0.0, frame_length=25, frame_shift=10)
        fbank = fbank.transpose(0, 1)
        missing = self.target_length - fbank.shape[1]
        fbank = F.pad(fbank, (0, missing)) if missing > 0 else fbank[:, :self.target_length]
        return fbank.unsqueeze(0)

    def _one(self, wave: torch.Tensor) -> torch.Tensor:
        out = []
        for a, b in audio_clip_bounds(wave.shape[0], self.sample_rate, self.clips, self.clip_seconds):
            mean = wave[a:b].mean()
            out.append(self.melspec(wave[a:b] - mean))
            wave = torch.cat([wave[:a], wave[a:b] - mean, wave[b:]])
        return (torch.stack(out) - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._one(w) for w in x])


class VideoClips(nn.Module):
    """[B, clips * frames, 3, H, W] in [0,1] (the frames of each clip in turn) -> normalised
    [B, clips, 3, frames, H, W], ImageBind's video layout (the model averages the clip embeddings)."""

    def __init__(self, clips: int):
        super().__init__()
        self.clips = clips
        self.norm = Normalize(OPENAI_MEAN, OPENAI_STD, channel_dim=-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        return self.norm(x).view(b, self.clips, t // self.clips, c, h, w).permute(0, 1, 3, 2, 4, 5)


class DepthToDisparity(nn.Module):
    """[B, 3, H, W] holding depth / max_depth -> standardised disparity [B, 1, H, W]."""

    def __init__(self, settings: ImageBindSettings):
        super().__init__()
        self.s = settings

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.s
        # The loader clips depth at 1 cm; the resize can undershoot that, and disparity must stay finite.
        metres = (x[:, :1] * s.max_depth).clamp(min=0.01)
        disparity = s.depth_baseline * s.depth_focal_length / metres
        return (disparity - s.depth_mean) / s.depth_std


class ThermalToLuma(nn.Module):
    """[B, 3, H, W] in [0,1] -> [B, 1, H, W]: luma, standardised."""

    def __init__(self, settings: ImageBindSettings):
        super().__init__()
        self.mean = settings.thermal_mean
        self.std = settings.thermal_std
        self.register_buffer("weights", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x * self.weights).sum(dim=1, keepdim=True) - self.mean) / self.std


def build_preprocessors(settings: ImageBindSettings, num_mel_bins: int, target_length: int,
                        sample_rate: int) -> nn.ModuleDict:
    """Modality -> the module from its input space to the ImageBind tower's input."""
    return nn.ModuleDict({
        "image": Normalize(OPENAI_MEAN, OPENAI_STD, channel_dim=-3),
        "thermal": ThermalToLuma(settings),
        "depth": DepthToDisparity(settings),
        "audio": AudioClips(sample_rate, num_mel_bins, target_length, settings),
        "video": VideoClips(settings.video_clips),
    })
