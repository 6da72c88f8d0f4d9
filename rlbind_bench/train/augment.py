"""Seeded training-time augmentation (inputs stay in their input space).

audio: random gain; speed perturbation (resampling by a factor, Ko et al. 2015: tempo and pitch change
together, the cheapest way to widen a few TTS voices); telephone band (real test speech is often 8 kHz
telephone audio upsampled: either a 2nd-order low-pass or an exact 16k -> 8k -> 16k resampling, which removes
everything above 4 kHz as the real channel does); additive noise at a random SNR; a random circular time
shift; and time masking (SpecAugment's time mask, applied to the waveform). Settings per modality in the
recipe's `augment` mapping, e.g.
`augment: {audio: {p_telephone: 0.8, speed: [0.85, 1.15], snr_db: [10, 40], gain_db: [-6, 6], shift_s: 0.1}}`.

video (and image/thermal): random zoom in/out and translation of the whole frame (one draw per clip, same
for every frame so the motion is kept) and random horizontal flip is NOT offered (digits are not
flip-invariant). `augment: {video: {zoom: [0.7, 1.1], translate: 0.1}}`.
"""

from __future__ import annotations

import torch


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def augment_audio(x: torch.Tensor, settings: dict, g: torch.Generator, sample_rate: int = 16000) -> torch.Tensor:
    import torchaudio

    b, n = x.shape
    out = x.clone()
    if "gain_db" in settings:
        lo, hi = settings["gain_db"]
        out = out * (10 ** (_uniform(g, b, lo, hi) / 20)).to(out)[:, None]
    p_low = float(settings.get("p_lowpass", 0.0))
    if p_low:
        pick = torch.rand(b, generator=g) < p_low
        if pick.any():
            cutoff = float(settings.get("lowpass_hz", 3400.0))
            out[pick] = torchaudio.functional.lowpass_biquad(out[pick], sample_rate, cutoff)
    p_tel = float(settings.get("p_telephone", 0.0))
    if p_tel:
        pick = torch.rand(b, generator=g) < p_tel
        if pick.any():
            narrow = torchaudio.functional.resample(out[pick], sample_rate, 8000)
            out[pick] = _fit(torchaudio.functional.resample(narrow, 8000, sample_rate), n)
    if "speed" in settings:
        lo, hi = settings["speed"]
        factors = _uniform(g, b, lo, hi).tolist()
        out = torch.stack([_change_speed(w, f, sample_rate) for w, f in zip(out, factors, strict=True)])
    if "snr_db" in settings:
        lo, hi = settings["snr_db"]
        snr = _uniform(g, b, lo, hi)
        power = out.pow(2).mean(dim=1).clamp_min(1e-10)
        noise = torch.randn(out.shape, generator=g).to(out)
        out = out + noise * (power / 10 ** (snr.to(out) / 10)).sqrt()[:, None]
    if "shift_s" in settings:
        max_shift = int(float(settings["shift_s"]) * sample_rate)
        shifts = torch.randint(-max_shift, max_shift + 1, (b,), generator=g).tolist()
        out = torch.stack([torch.roll(w, s) for w, s in zip(out, shifts, strict=True)])
    if "time_mask_s" in settings:
        width = int(float(settings["time_mask_s"]) * sample_rate)
        lengths = torch.randint(0, width + 1, (b,), generator=g)
        starts = (torch.rand(b, generator=g) * (n - lengths).clamp_min(0)).long()
        pos = torch.arange(n)[None, :]
        keep = (pos < starts[:, None]) | (pos >= (starts + lengths)[:, None])
        out = out * keep.to(out)
    return out.clamp(-1.0, 1.0)


def _fit(x: torch.Tensor, n: int) -> torch.Tensor:
    """Crop or zero-pad the last dimension to n samples (centred)."""
    length = x.shape[-1]
    if length >= n:
        start = (length - n) // 2
        return x[..., start:start + n]
    left = (n - length) // 2
    return torch.nn.functional.pad(x, (left, n - length - left))


def _change_speed(w: torch.Tensor, factor: float, sample_rate: int) -> torch.Tensor:
    """Play `w` `factor` times faster (factor > 1: shorter, higher), same length out."""
    import torchaudio

    new_rate = max(1000, round(sample_rate / factor / 100) * 100)
    if new_rate == sample_rate:
        return w
    return _fit(torchaudio.functional.resample(w, sample_rate, new_rate), w.shape[-1])


def augment_frames(x: torch.Tensor, settings: dict, g: torch.Generator) -> torch.Tensor:
    """Zoom and translate [B, 3, H, W] or [B, T, 3, H, W] in [0, 1]; one draw per sample, shared over T.

    Pixels that come from outside the frame take the edge value (border padding), so no black bars appear
    that the clean data never has.
    """
    video = x.dim() == 5
    b = x.shape[0]
    lo, hi = settings.get("zoom", [1.0, 1.0])
    scale = _uniform(g, b, lo, hi)
    shift = float(settings.get("translate", 0.0))
    tx, ty = _uniform(g, b, -shift, shift), _uniform(g, b, -shift, shift)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = 1.0 / scale
    theta[:, 1, 1] = 1.0 / scale
    theta[:, 0, 2], theta[:, 1, 2] = tx * 2, ty * 2
    frames = x.flatten(0, 1) if video else x
    if video:
        theta = theta.repeat_interleave(x.shape[1], dim=0)
    grid = torch.nn.functional.affine_grid(theta.to(frames), list(frames.shape), align_corners=False)
    out = torch.nn.functional.grid_sample(frames, grid, padding_mode="border", align_corners=False)
    return out.view_as(x).clamp(0.0, 1.0)


AUGMENTERS = {"audio": augment_audio, "video": augment_frames, "image": augment_frames,
              "thermal": augment_frames}


def augment(modality: str, x: torch.Tensor, settings: dict | None, g: torch.Generator) -> torch.Tensor:
    if not settings or modality not in AUGMENTERS:
        return x
    return AUGMENTERS[modality](x, settings, g)
