"""Seeded training-time augmentation (inputs stay in their input space).

audio: random gain, telephone-band low-pass (real test speech is often 8 kHz telephone audio upsampled),
additive noise at a random SNR, and a random circular time shift. Settings per modality in the recipe's
`augment` mapping, e.g. `augment: {audio: {p_lowpass: 0.5, snr_db: [10, 40], gain_db: [-6, 6], shift_s: 0.1}}`.
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
    return out.clamp(-1.0, 1.0)


AUGMENTERS = {"audio": augment_audio}


def augment(modality: str, x: torch.Tensor, settings: dict | None, g: torch.Generator) -> torch.Tensor:
    if not settings or modality not in AUGMENTERS:
        return x
    return AUGMENTERS[modality](x, settings, g)
