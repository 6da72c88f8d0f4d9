"""The modality handlers: image, thermal, depth, audio, video.

Loading reproduces LanguageBind's processors up to the input space; what LanguageBind does after it
(normalisation, fbank, chunking) is in `preprocess`. Deviations, each for determinism or for a bounded
input space, are listed in docs/architecture.md ("Input spaces"):
- images are clamped to [0, 1] after the bicubic resize (bicubic overshoots by up to a few 1e-2);
- video frames are not randomly flipped; normalisation runs after the resize (bilinear interpolation is
  affine-invariant, so the two orders agree to float precision);
- audio chunks longer than target_length take the first start index of each third (LanguageBind draws
  them with np.random.choice), and the clip length is fixed per dataset.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from rlbind_bench.encoders.base import InputSpace
from rlbind_bench.errors import DatasetError
from rlbind_bench.modalities.base import ModalityHandler, Normalize, PreprocessConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class UnreadableSample(DatasetError):
    """One file could not be decoded: the runner skips and counts it."""


def _resize_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    x = TF.resize(x, size, interpolation=InterpolationMode.BICUBIC, antialias=True)
    return TF.center_crop(x, [size, size])


class ImageHandler(ModalityHandler):
    name = "image"
    file_suffixes = IMAGE_SUFFIXES

    def input_space(self, cfg: PreprocessConfig, **hints) -> InputSpace:
        s = cfg.image_size
        return InputSpace(self.name, (3, s, s), 0.0, 1.0,
                          f"RGB in [0,1] after resize({s}, bicubic) + center crop; normalisation inside")

    def _read_rgb(self, path: Path) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                return TF.to_tensor(img)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise UnreadableSample(f"cannot decode image {path}: {exc}") from exc

    def load(self, path: Path, cfg: PreprocessConfig, **hints) -> torch.Tensor:
        return _resize_center_crop(self._read_rgb(path), cfg.image_size).clamp_(0.0, 1.0)

    def preprocess(self, cfg: PreprocessConfig) -> nn.Module:
        return Normalize(cfg.mean, cfg.std, channel_dim=-3)


class ThermalHandler(ImageHandler):
    """Thermal frames are 3-channel images to LanguageBind (its eval loader converts to RGB)."""

    name = "thermal"

    def input_space(self, cfg: PreprocessConfig, **hints) -> InputSpace:
        s = cfg.image_size
        return InputSpace(self.name, (3, s, s), 0.0, 1.0,
                          f"thermal frame as RGB in [0,1] after resize({s}) + center crop; normalisation inside")


class DepthHandler(ImageHandler):
    """Depth maps in millimetres (16-bit PNG), as LanguageBind's NYU-D loader reads them."""

    name = "depth"
    file_suffixes = (".png", ".tif", ".tiff")

    def input_space(self, cfg: PreprocessConfig, **hints) -> InputSpace:
        s = cfg.image_size
        return InputSpace(self.name, (3, s, s), 0.0, 1.0,
                          f"depth/max_depth ({cfg.max_depth} m) in [0,1], 3 channels, resize({s}) + crop")

    def load(self, path: Path, cfg: PreprocessConfig, **hints) -> torch.Tensor:
        # PIL, not cv2.imread: once decord is loaded, cv2's PNG decoder fails ("libpng error") in-process.
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                raw = np.array(img)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise UnreadableSample(f"cannot decode depth map {path}: {exc}") from exc
        if raw.ndim == 3:
            raw = raw[..., 0]
        depth = raw.astype("float32") / 1000.0
        depth = depth.clip(min=0.01)
        if cfg.max_depth:
            depth = depth.clip(max=cfg.max_depth) / cfg.max_depth
        else:
            depth = depth / depth.max()
        x = torch.from_numpy(depth).unsqueeze(0).repeat(3, 1, 1)
        return _resize_center_crop(x, cfg.image_size).clamp_(0.0, 1.0)


class KaldiFbank(nn.Module):
    """Waveform [B, N] in [-1, 1] -> LanguageBind's normalised 3-chunk fbank [B, 3, mel_bins, target_length]."""

    def __init__(self, cfg: PreprocessConfig):
        super().__init__()
        self.cfg = cfg

    def _one(self, wave: torch.Tensor) -> torch.Tensor:
        import torchaudio

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
    return int(round(clip_seconds * cfg.sample_rate))


class AudioHandler(ModalityHandler):
    name = "audio"
    file_suffixes = (".wav", ".flac", ".ogg", ".mp3")

    def input_space(self, cfg: PreprocessConfig, clip_seconds: float = 5.0, **hints) -> InputSpace:
        n = clip_samples(cfg, clip_seconds)
        return InputSpace(self.name, (n,), -1.0, 1.0,
                          f"mono waveform in [-1,1] at {cfg.sample_rate} Hz, {clip_seconds:g} s; kaldi fbank "
                          f"({cfg.num_mel_bins} mel, {cfg.target_length} frames) and normalisation inside")

    def load(self, path: Path, cfg: PreprocessConfig, clip_seconds: float = 5.0, **hints) -> torch.Tensor:
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
        if wave.numel() >= n:
            wave = wave[:n]
        else:
            wave = F.pad(wave, (0, n - wave.numel()))
        return wave.clamp_(-1.0, 1.0).contiguous()

    def preprocess(self, cfg: PreprocessConfig) -> nn.Module:
        return KaldiFbank(cfg)


class VideoPreprocess(nn.Module):
    """[B, T, 3, H, W] in [0,1] -> normalised [B, 3, T, H, W] (LanguageBind's layout)."""

    def __init__(self, cfg: PreprocessConfig):
        super().__init__()
        self.norm = Normalize(cfg.mean, cfg.std, channel_dim=-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x).permute(0, 2, 1, 3, 4)


def short_side_scale_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """pytorchvideo's ShortSideScale (bilinear, floor) + CenterCropVideo on [C, T, H, W]."""
    c, t, h, w = frames.shape
    if w < h:
        new_h, new_w = int(math.floor(h / w * size)), size
    else:
        new_h, new_w = size, int(math.floor(w / h * size))
    frames = F.interpolate(frames, size=(new_h, new_w), mode="bilinear", align_corners=False)
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    return frames[..., top:top + size, left:left + size]


class VideoHandler(ModalityHandler):
    name = "video"
    file_suffixes = (".mp4", ".avi", ".mkv", ".webm", ".mov")

    def input_space(self, cfg: PreprocessConfig, **hints) -> InputSpace:
        s = cfg.image_size
        return InputSpace(self.name, (cfg.num_frames, 3, s, s), 0.0, 1.0,
                          f"{cfg.num_frames} uniformly sampled RGB frames in [0,1], short side {s} + center "
                          "crop; normalisation inside; no random flip")

    def load(self, path: Path, cfg: PreprocessConfig, **hints) -> torch.Tensor:
        import decord

        try:
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
            n = len(reader)
            if n == 0:
                raise UnreadableSample(f"video {path} has no frames")
            ids = np.linspace(0, n - 1, cfg.num_frames, dtype=int)
            batch = reader.get_batch(list(ids))
            # languagebind switches decord's global bridge to torch on import; accept either.
            frames = batch.asnumpy() if hasattr(batch, "asnumpy") else batch.numpy()
        except UnreadableSample:
            raise
        except Exception as exc:  # decord raises DECORDError / RuntimeError for broken files
            raise UnreadableSample(f"cannot decode video {path}: {exc}") from exc
        x = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255.0  # [C, T, H, W]
        x = short_side_scale_crop(x, cfg.image_size)
        return x.permute(1, 0, 2, 3).contiguous()  # [T, C, H, W]

    def preprocess(self, cfg: PreprocessConfig) -> nn.Module:
        return VideoPreprocess(cfg)


MODALITIES: dict[str, ModalityHandler] = {
    h.name: h for h in (ImageHandler(), ThermalHandler(), DepthHandler(), AudioHandler(), VideoHandler())
}


def get_handler(modality: str) -> ModalityHandler:
    try:
        return MODALITIES[modality]
    except KeyError:
        from rlbind_bench.errors import UserError

        raise UserError(f"unknown modality {modality!r} (known: {', '.join(MODALITIES)})") from None
