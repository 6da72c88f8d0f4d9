"""Audio handler: mono waveforms of a fixed clip length; LanguageBind's kaldi fbank runs in the forward.

Fbank chunks longer than target_length take the first start index of each third (LanguageBind draws them
with np.random.choice), and the clip length is fixed per dataset; see docs/architecture.md ("Input spaces").

torchaudio and soundfile are imported where they are used: importing them costs about a second, and
runs without audio never need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlbind_bench.modalities.base import InputSpace, ModalityHandler, PreprocessConfig, UnreadableSample
from rlbind_bench.modalities.registry import register_handler

if TYPE_CHECKING:  # annotations only: both modules import this package, so a runtime import would be circular
    from rlbind_bench.data.readers import DatasetIndex

DEFAULT_CLIP_SECONDS = 5.0
# Files probed for their length when a dataset declares no clip length.
_PROBED_FILES = 64


class KaldiFbank(nn.Module):
    """Waveform [B, N] in [-1, 1] -> LanguageBind's normalised 3-chunk fbank [B, 3, mel_bins, target_length]."""

    def __init__(self, cfg: PreprocessConfig):
        super().__init__()
        self.cfg = cfg

    def _one(self, wave: torch.Tensor) -> torch.Tensor:
        import torchaudio  # slow to import; see the module docstring

        cfg = self.cfg
        wave = wave - wave.mean()
        mel = torchaudio.compliance.kaldi.fbank(
            wave.unsqueeze(0), htk_compat=True, sample_frequency=cfg.sample_rate, use_energy=False,
            window_type="hanning", num_mel_bins=cfg.num_mel_bins, dither=0.0, frame_length=25, frame_shift=10)
        length = cfg.target_length
        frames = mel.shape[0]
        if frames > length:
            ranges = np.array_split(np.arange(0, frames - length + 1), 3)
            starts = [int(r[0]) if len(r) else 0 for r in ranges]
            chunks = [mel[s:s + length] for s in starts]
        else:
            if frames < length:
                mel = mel.repeat(length // frames + 1, 1)[:length]
            chunks = [mel, mel, mel]
        fused = torch.stack(chunks, dim=0).transpose(1, 2)
        return (fused - cfg.audio_mean) / (cfg.audio_std * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._one(w) for w in x], dim=0)


def clip_samples(cfg: PreprocessConfig, clip_seconds: float) -> int:
    return round(clip_seconds * cfg.sample_rate)


def audio_clip_seconds(index: DatasetIndex) -> float:
    """The dataset's declared clip length, or the longest of (up to 64 of) its files."""
    if index.spec.clip_seconds:
        return float(index.spec.clip_seconds)
    import soundfile as sf  # see the module docstring

    longest = 0.0
    for sample in index.samples[:_PROBED_FILES]:
        try:
            info = sf.info(str(sample.path))
            longest = max(longest, info.frames / info.samplerate)
        except Exception:  # unreadable files are reported when loaded
            continue
    return round(longest, 3) if longest > 0 else DEFAULT_CLIP_SECONDS


@register_handler
class AudioHandler(ModalityHandler):
    name = "audio"
    file_suffixes = (".wav", ".flac", ".ogg", ".mp3")

    def input_hints(self, index: DatasetIndex) -> dict:
        return {"clip_seconds": audio_clip_seconds(index)}

    def input_space(self, cfg: PreprocessConfig, clip_seconds: float = DEFAULT_CLIP_SECONDS,
                    **hints) -> InputSpace:
        n = clip_samples(cfg, clip_seconds)
        return InputSpace(self.name, (n,), -1.0, 1.0,
                          f"mono waveform in [-1,1] at {cfg.sample_rate} Hz, {clip_seconds:g} s; kaldi fbank "
                          f"({cfg.num_mel_bins} mel, {cfg.target_length} frames) and normalisation inside")

    def load(self, path: Path, cfg: PreprocessConfig, clip_seconds: float = DEFAULT_CLIP_SECONDS,
             **hints) -> torch.Tensor:
        # Slow to import; see the module docstring.
        import soundfile as sf
        import torchaudio

        try:
            data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as exc:  # soundfile raises several types for broken files
            raise UnreadableSample(f"cannot decode audio {path}: {exc}") from exc
        if data.shape[0] == 0:
            raise UnreadableSample(f"empty audio file {path}")
        # kaldi.fbank reads channel 0 of a multi-channel waveform; do the same.
        wave = torch.from_numpy(np.ascontiguousarray(data[:, 0]))
        if sr != cfg.sample_rate:
            wave = torchaudio.functional.resample(wave, orig_freq=sr, new_freq=cfg.sample_rate)
        n = clip_samples(cfg, clip_seconds)
        wave = wave[:n] if wave.numel() >= n else F.pad(wave, (0, n - wave.numel()))
        return wave.clamp_(-1.0, 1.0).contiguous()

    def preprocess(self, cfg: PreprocessConfig) -> nn.Module:
        return KaldiFbank(cfg)
