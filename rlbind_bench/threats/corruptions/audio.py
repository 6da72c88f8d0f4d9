"""Waveform corruptions for audio: mono float [N] in [-1, 1] at 16 kHz in, same length out, clipped to [-1, 1].

Every corruption keeps the clip length, because LanguageBind's audio tower sees a fixed-length fbank and
a length change would be a second, unintended corruption. All randomness comes from the sample's generator.

- white_noise      Gaussian noise at SNR 30, 20, 10, 5, 0 dB.
- colored_noise    pink (1/f) noise at SNR 20, 15, 10, 5, 0 dB, synthesised (no recorded background noise
                   ships with the project or this machine; the name says it is synthetic).
- clipping         hard clipping at the 99, 95, 90, 80, 60th percentile of |x| (1..40 % of samples clipped).
- time_shift       shift by 5, 10, 20, 30, 40 % of the clip, direction drawn, zero-filled (a late/early
                   onset; wrapping around would splice the end onto the start).
- telephone        Butterworth band-pass, 300-3400 Hz (the telephone band) at severity 1, narrowing to
                   800-1800 Hz; zero-phase, so it adds no delay.
- speed            resampling by 1.05 .. 1.5 (tempo and pitch together), faster or slower as drawn;
                   a faster clip is zero-padded at the end, a slower one is cut.
- pitch_shift      +-1, 2, 3, 4, 6 semitones (sign drawn) at constant duration (phase-locked
                   phase-vocoder time stretch, then polyphase resampling).
- reverb           convolution with a synthetic room response: a direct path plus an exponentially
                   decaying noise tail (RT60 0.15 .. 1.2 s, direct-to-reverberant ratio 6 .. -6 dB), scaled
                   to unit energy so loudness is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np
import torch
from scipy import signal

from rlbind_bench.threats.corruptions.base import register

SAMPLE_RATE = 16_000
AUDIO_MODALITIES = ("audio",)
# Below -50 dBFS a clip is treated as -50 dBFS when sizing additive noise, so a digitally silent clip
# still gets audible noise instead of none at all.
MIN_SIGNAL_POWER = 1e-5

WHITE_SNR_DB = (30.0, 20.0, 10.0, 5.0, 0.0)
COLORED_SNR_DB = (20.0, 15.0, 10.0, 5.0, 0.0)
CLIP_PERCENTILE = (99.0, 95.0, 90.0, 80.0, 60.0)
SHIFT_FRACTION = (0.05, 0.10, 0.20, 0.30, 0.40)
TELEPHONE_BAND_HZ = ((300.0, 3400.0), (400.0, 3000.0), (500.0, 2600.0), (650.0, 2200.0), (800.0, 1800.0))
SPEED_FACTOR = (1.05, 1.10, 1.20, 1.30, 1.50)
PITCH_SEMITONES = (1, 2, 3, 4, 6)
REVERB_RT60_S = (0.15, 0.30, 0.50, 0.80, 1.20)
REVERB_DRR_DB = (6.0, 3.0, 0.0, -3.0, -6.0)

AudioFn = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def _audio(name: str, description: str) -> Callable[[AudioFn], AudioFn]:
    """Register a float64 numpy waveform function as a tensor corruption with length and range kept."""

    def deco(fn: AudioFn) -> AudioFn:
        def corruption(x: torch.Tensor, severity: int, rng: np.random.Generator, modality: str) -> torch.Tensor:
            if x.ndim != 1:
                raise ValueError(f"audio corruptions expect a mono waveform [N], got shape {tuple(x.shape)}")
            if x.numel() == 0:
                return x.detach().to(torch.float32).clone()
            wave = x.detach().to("cpu", torch.float64).numpy()
            out = np.asarray(fn(wave, severity, rng), dtype=np.float64)
            if out.shape != wave.shape:
                raise AssertionError(f"{name} changed the length {wave.shape} -> {out.shape}")
            out = np.clip(np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
            return torch.from_numpy(out.astype(np.float32)).to(x.device)

        corruption.__name__ = name
        register(name, AUDIO_MODALITIES, "audio", description)(corruption)
        return fn

    return deco


def _signal_power(x: np.ndarray) -> float:
    return max(float(np.mean(x**2)), MIN_SIGNAL_POWER)


def _scaled_to_snr(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    noise_power = float(np.mean(noise**2))
    if noise_power == 0.0:
        return np.zeros_like(x)
    target = _signal_power(x) / 10.0 ** (snr_db / 10.0)
    return noise * np.sqrt(target / noise_power)


@_audio("white_noise", "additive white Gaussian noise, SNR 30/20/10/5/0 dB")
def white_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return x + _scaled_to_snr(x, rng.standard_normal(x.shape), WHITE_SNR_DB[severity - 1])


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) noise of length n, by shaping white noise's spectrum."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    shaping = np.zeros_like(freqs)
    shaping[1:] = 1.0 / np.sqrt(freqs[1:])  # DC removed: an offset is not noise
    return np.fft.irfft(spectrum * shaping, n=n)


@_audio("colored_noise", "additive synthetic pink (1/f) noise, SNR 20/15/10/5/0 dB")
def colored_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return x + _scaled_to_snr(x, pink_noise(x.size, rng), COLORED_SNR_DB[severity - 1])


@_audio("clipping", "hard clipping at the 99/95/90/80/60th percentile of |x|")
def clipping(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    level = float(np.percentile(np.abs(x), CLIP_PERCENTILE[severity - 1]))
    return np.clip(x, -level, level)


@_audio("time_shift", "zero-filled shift by 5/10/20/30/40 % of the clip, direction drawn")
def time_shift(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    n = x.size
    shift = round(SHIFT_FRACTION[severity - 1] * n)
    out = np.zeros_like(x)
    if shift >= n:
        return out
    if rng.integers(2):  # later onset
        out[shift:] = x[: n - shift]
    else:
        out[: n - shift] = x[shift:]
    return out


@_audio("telephone", "band-pass 300-3400 Hz narrowing to 800-1800 Hz")
def telephone(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    low, high = TELEPHONE_BAND_HZ[severity - 1]
    sos = signal.butter(4, [low, high], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    # sosfiltfilt pads by 3x the filter length; very short clips get the causal filter instead.
    if x.size <= 3 * (2 * sos.shape[0] + 1):
        return signal.sosfilt(sos, x)
    return signal.sosfiltfilt(sos, x)


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    if y.size >= n:
        return y[:n]
    return np.concatenate([y, np.zeros(n - y.size)])


@_audio("speed", "resampled playback x1.05..x1.5 faster or slower (drawn), length kept")
def speed(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    factor = SPEED_FACTOR[severity - 1]
    if rng.integers(2):
        factor = 1.0 / factor
    ratio = Fraction(factor).limit_denominator(100)
    # A playback `factor` times faster is the waveform resampled to 1/factor of its length.
    y = signal.resample_poly(x, up=ratio.denominator, down=ratio.numerator)
    return _fit_length(y, x.size)


PITCH_N_FFT = 512
PITCH_HOP = 128


def _princarg(phase: np.ndarray) -> np.ndarray:
    return phase - 2.0 * np.pi * np.round(phase / (2.0 * np.pi))


def time_stretch(spec: np.ndarray, rate: float, hop: int, n_fft: int) -> np.ndarray:
    """Phase-vocoder time stretch of a one-sided STFT [F, frames] (rate < 1: longer), identity phase-locked.

    torchaudio's (and librosa's) plain phase vocoder carries the bin-to-bin phase relations of the first,
    reflect-padded frame into every later frame when it stretches, which cancels partials: a steady tone
    comes out 4-5 dB quieter. Locking every bin's phase to its nearest spectral peak's (Laroche & Dolson,
    1999) keeps the analysis frame's phase relations and the loudness.
    """
    n_freq, n_frames = spec.shape
    steps = np.arange(0.0, n_frames, rate)
    padded = np.pad(spec, ((0, 0), (0, 2)))
    magnitude, angle = np.abs(padded), np.angle(padded)
    omega = 2.0 * np.pi * hop * np.arange(n_freq) / n_fft
    bins = np.arange(n_freq)
    phase = angle[:, 0].copy()
    out = np.empty((n_freq, steps.size), dtype=np.complex128)
    for i, step in enumerate(steps):
        k, frac = int(step), step - int(step)
        frame = magnitude[:, k]
        peaks = np.flatnonzero((frame[1:-1] > frame[:-2]) & (frame[1:-1] >= frame[2:])) + 1
        if peaks.size:
            right_pos = np.clip(np.searchsorted(peaks, bins), 1, peaks.size)
            left, right = peaks[right_pos - 1], peaks[np.minimum(right_pos, peaks.size - 1)]
            owner = np.where(np.abs(bins - left) <= np.abs(right - bins), left, right)
            phase = phase[owner] + angle[:, k] - angle[owner, k]
        out[:, i] = ((1.0 - frac) * frame + frac * magnitude[:, k + 1]) * np.exp(1j * phase)
        phase = phase + omega + _princarg(angle[:, k + 1] - angle[:, k] - omega)
    return out


@_audio("pitch_shift", "+-1/2/3/4/6 semitones (sign drawn), duration kept")
def pitch_shift(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    # torchaudio.functional.pitch_shift resamples 16000 * 2**(k/12) Hz -> 16000 Hz with an exact integer
    # ratio whose gcd is tiny: minutes per second of audio. Here the pitch ratio is rounded to a fraction
    # with denominator <= 100 (< 0.02 semitone off), which resample_poly does in milliseconds.
    steps = PITCH_SEMITONES[severity - 1] * (1 if rng.integers(2) else -1)
    if x.size < PITCH_N_FFT:  # shorter than one STFT frame: nothing to shift
        return x.copy()
    ratio = Fraction(2.0 ** (steps / 12.0)).limit_denominator(100)
    window = torch.hann_window(PITCH_N_FFT, dtype=torch.float64)
    spec = torch.stft(torch.from_numpy(x), PITCH_N_FFT, PITCH_HOP, window=window, return_complex=True)
    # Stretch to `ratio` times the duration at the same pitch, then resample back to the duration:
    # the pitch moves by `ratio`.
    stretched = time_stretch(spec.numpy(), 1.0 / float(ratio), PITCH_HOP, PITCH_N_FFT)
    longer = torch.istft(torch.from_numpy(stretched), PITCH_N_FFT, PITCH_HOP, window=window,
                         length=round(x.size * float(ratio))).numpy()
    y = signal.resample_poly(longer, up=ratio.denominator, down=ratio.numerator)
    return _fit_length(y, x.size)


def room_impulse_response(rt60_s: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Direct path + exponentially decaying Gaussian tail (-60 dB at rt60_s), unit energy."""
    n = max(int(rt60_s * SAMPLE_RATE), 2)
    t = np.arange(1, n) / SAMPLE_RATE
    tail = rng.standard_normal(n - 1) * 10.0 ** (-3.0 * t / rt60_s)
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail**2))
    ir = np.concatenate([[1.0], tail])
    return ir / np.sqrt(np.sum(ir**2))


@_audio("reverb", "synthetic room reverberation, RT60 0.15-1.2 s, DRR 6 to -6 dB")
def reverb(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    ir = room_impulse_response(REVERB_RT60_S[severity - 1], REVERB_DRR_DB[severity - 1], rng)
    return signal.fftconvolve(x, ir)[: x.size]
