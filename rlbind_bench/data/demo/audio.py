"""``demo-digits-audio``: spoken digits, 16 kHz mono 16-bit WAV, 1 s.

Each clip is trimmed of silence (energy gate), centred, given 5 ms fades and peak-normalised to -1 dBFS
(:func:`to_clip`). Per class (``scale="full"``; ``"tiny"`` keeps a seeded subset of the TTS clips):

- train 277 TTS clips: espeak-ng English accents (en-us, en-gb, en-gb-scotland, en-gb-x-rp, en-029,
  en-gb-x-gbclan) x variants m1-m7, f1-f4, two seeded speed/pitch draws each (132); espeak-ng saying the
  digit in the languages of the real test set (es, es-419, fr-fr, fr-be, it, ru) x 18 variants (m1-m7,
  f1-f4, klatt2, klatt3, Alicia, Andrea, Denis, boris, pablo), seeded speed/pitch (108); flite voices awb,
  rms, slt, kal16 x 3 duration stretches, seeded pitch (12); the five Festival voices x 5 duration stretches
  0.8-1.3 (25; the unit-selection Russian and the HTS English voice ignore Duration_Stretch, so their 5 clips
  per class are one clip 5 times: 17 distinct Festival clips per class, 80 exact duplicates in all, kept
  so that the zoo's training data stays what it was trained on; 3 espeak-ng settings also coincide).
- val 23 clips: 20 from TTS voices held out of train: espeak-ng accents en-us-nyc, en-gb-x-gbcwmd x variants
  m8, f5, klatt, Andy, Annie, michel, steph, Alex (16); es-419+m8 and fr-be+f5 (2); flite kal (8 kHz) x 2
  (2); and 3 REAL human clips, one per validation speaker (es-co, fr-armelle, it-menardi).
- test 5 REAL human clips: one per Asterisk voice (en, es, fr, it, ru).
"""

from __future__ import annotations

import hashlib
import math
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from rlbind_bench.data.demo.sources import (
    ASTERISK_VOICES,
    FESTIVAL_VOICES,
    HUMAN_VAL_VOICES,
    TOOL_PACKAGES,
    package_version,
    tool_version,
)
from rlbind_bench.data.demo.spec import CLASS_NAMES, BuildContext, Row, Scale
from rlbind_bench.errors import DatasetError
from rlbind_bench.seeding import seeded_numpy_generator

DESCRIPTION = ("spoken digits, 16 kHz 1 s WAV: TTS (espeak-ng, flite, Festival) train/val plus three real "
               "human speakers (es-co, fr, it) in val; real human Asterisk prompts in en/es/fr/it/ru: test")

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # 1 s

FESTIVAL_WORDS: dict[str, tuple[str, ...]] = {
    "en": CLASS_NAMES,
    "it": ("zero", "uno", "due", "tre", "quattro", "cinque", "sei", "sette", "otto", "nove"),
    "ru": ("ноль", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять"),
}
LICENCE_ESPEAK = "synthetic: espeak-ng output (engine GPL-3.0-or-later)"
LICENCE_FLITE = "synthetic: CMU flite output (engine BSD-style)"
LICENCE_FESTIVAL = "synthetic: Festival output (engine X11-style; voice package licence in its copyright file)"

# The TTS plan of the module docstring; val voices are never train voices, so val measures unseen voices.
EN_TRAIN_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan")
EN_TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4")
EN_TRAIN_DRAWS = 2
# es-419 and fr-be besides es / fr-fr: the human test speakers are Mexican Spanish and Canadian French.
MULTI_TRAIN_LANGS = ("es", "es-419", "fr-fr", "fr-be", "it", "ru")
MULTI_TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "klatt2", "klatt3",
                        "Alicia", "Andrea", "Denis", "boris", "pablo")
FESTIVAL_TRAIN_STRETCH = (0.8, 0.9, 1.0, 1.15, 1.3)
FLITE_TRAIN_VOICES = ("awb", "rms", "slt", "kal16")
FLITE_TRAIN_STRETCH = (0.85, 1.0, 1.2)
EN_VAL_ACCENTS = ("en-us-nyc", "en-gb-x-gbcwmd")
EN_VAL_VARIANTS = ("m8", "f5", "klatt", "Andy", "Annie", "michel", "steph", "Alex")
MULTI_VAL = (("es-419", "m8"), ("fr-be", "f5"))
FLITE_VAL = (("kal", 0.9), ("kal", 1.15))


def to_clip(wave: np.ndarray, sr: int) -> np.ndarray:
    """Mono float wave -> 1 s int16 at 16 kHz: resampled, silence-trimmed, centred, faded, peak -1 dBFS."""
    wave = np.asarray(wave, dtype=np.float64)
    if sr != SAMPLE_RATE:
        g = math.gcd(int(sr), SAMPLE_RATE)
        wave = resample_poly(wave, SAMPLE_RATE // g, int(sr) // g)
    wave = wave - wave.mean()
    hop = SAMPLE_RATE // 100
    n = len(wave) // hop
    if n == 0:
        raise DatasetError("empty audio")
    rms = np.sqrt(np.mean(wave[:n * hop].reshape(n, hop) ** 2, axis=1))
    active = np.flatnonzero(rms > rms.max() * 10 ** (-35 / 20))
    start = max(0, (int(active[0]) - 2) * hop)
    stop = min(len(wave), (int(active[-1]) + 3) * hop)
    seg = wave[start:stop]
    if len(seg) > CLIP_SAMPLES:
        cut = (len(seg) - CLIP_SAMPLES) // 2
        seg = seg[cut:cut + CLIP_SAMPLES]
    fade = min(SAMPLE_RATE // 200, len(seg) // 2)
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, fade))
        seg = seg.copy()
        seg[:fade] *= ramp
        seg[-fade:] *= ramp[::-1]
    clip = np.zeros(CLIP_SAMPLES)
    at = (CLIP_SAMPLES - len(seg)) // 2
    clip[at:at + len(seg)] = seg
    peak = float(np.abs(clip).max())
    if peak > 0:
        clip *= 10 ** (-1 / 20) / peak
    return np.round(clip * 32767.0).clip(-32768, 32767).astype(np.int16)


def write_wav(path: Path, clip: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), clip, SAMPLE_RATE, subtype="PCM_16", format="WAV")


@dataclass(frozen=True)
class TTSJob:
    split: str
    label: int
    engine: str  # espeak-ng | flite | festival
    voice: str
    variant: str  # espeak variant, "" for flite and festival
    rate: float  # espeak words per minute, or flite / festival duration stretch
    pitch: int  # espeak pitch 0-99, flite mean F0 in Hz, 0 for festival (the voice's own)
    draw: int
    text: str  # what the engine is given to say
    class_name: str

    @property
    def sample_id(self) -> str:
        cls = self.class_name
        if self.engine == "espeak-ng":
            name = f"espeak-{self.voice}+{self.variant}-{self.draw}-s{int(self.rate)}-p{self.pitch}"
        elif self.engine == "festival":
            name = f"festival-{self.voice}-d{round(self.rate * 100)}"
        else:
            name = f"flite-{self.voice}-d{round(self.rate * 100)}-f{self.pitch}"
        return f"{self.split}/{cls}/{name}.wav"

    @property
    def source(self) -> str:
        if self.engine == "espeak-ng":
            return f"espeak-ng:-v {self.voice}+{self.variant} -s {int(self.rate)} -p {self.pitch}"
        if self.engine == "festival":
            return f"festival:voice_{self.voice} Duration_Stretch={self.rate:g}"
        return f"flite:-voice {self.voice} duration_stretch={self.rate:g} int_f0_target_mean={self.pitch}"

    @property
    def licence(self) -> str:
        return {"espeak-ng": LICENCE_ESPEAK, "festival": LICENCE_FESTIVAL}.get(self.engine, LICENCE_FLITE)


def _tts_jobs(seed: int, scale: Scale) -> list[TTSJob]:
    jobs: list[TTSJob] = []
    for c in range(10):
        per_split: dict[str, list[TTSJob]] = {"train": [], "val": []}

        def espeak(split: str, voice: str, variant: str, draw: int, _c: int = c, _d=per_split) -> None:
            r = seeded_numpy_generator(seed, "espeak", split, voice, variant, draw, _c)
            # The digit character makes espeak-ng say it in the voice's language ("siete", "sept", ...).
            _d[split].append(TTSJob(split, _c, "espeak-ng", voice, variant, int(r.integers(130, 211)),
                                     int(r.integers(25, 81)), draw, str(_c), CLASS_NAMES[_c]))

        def flite(split: str, voice: str, stretch: float, _c: int = c, _d=per_split) -> None:
            r = seeded_numpy_generator(seed, "flite", split, voice, stretch, _c)
            _d[split].append(TTSJob(split, _c, "flite", voice, "", stretch, int(r.integers(85, 180)), 0,
                                     CLASS_NAMES[_c], CLASS_NAMES[_c]))

        for accent in EN_TRAIN_ACCENTS:
            for variant in EN_TRAIN_VARIANTS:
                for draw in range(EN_TRAIN_DRAWS):
                    espeak("train", accent, variant, draw)
        for lang in MULTI_TRAIN_LANGS:
            for variant in MULTI_TRAIN_VARIANTS:
                espeak("train", lang, variant, 0)
        for voice in FESTIVAL_VOICES:
            for stretch in FESTIVAL_TRAIN_STRETCH:
                word = FESTIVAL_WORDS[FESTIVAL_VOICES[voice][1]][c]
                per_split["train"].append(TTSJob("train", c, "festival", voice, "", stretch, 0, 0, word,
                                                  CLASS_NAMES[c]))
        for voice in FLITE_TRAIN_VOICES:
            for stretch in FLITE_TRAIN_STRETCH:
                flite("train", voice, stretch)
        for accent in EN_VAL_ACCENTS:
            for variant in EN_VAL_VARIANTS:
                espeak("val", accent, variant, 0)
        for voice, variant in MULTI_VAL:
            espeak("val", voice, variant, 0)
        for voice, stretch in FLITE_VAL:
            flite("val", voice, stretch)
        for split, limit in zip(("train", "val"), scale.audio_tts, strict=True):
            chosen = per_split[split]
            if limit is not None and limit < len(chosen):
                r = seeded_numpy_generator(seed, "tts-subset", split, c)
                keep = r.choice(len(chosen), size=limit, replace=False)
                chosen = [chosen[i] for i in sorted(int(k) for k in keep)]
            jobs += chosen
    return jobs


def synthesise(job: TTSJob, tools: dict[str, Path], tmpdir: Path) -> np.ndarray:
    """One TTS clip, as :func:`to_clip` gives it."""
    wav = tmpdir / f"{hashlib.sha1(job.sample_id.encode()).hexdigest()}.wav"
    if job.engine == "espeak-ng":
        cmd = [str(tools["espeak-ng"]), "-v", f"{job.voice}+{job.variant}", "-s", str(int(job.rate)),
               "-p", str(job.pitch), "-w", str(wav), job.text]
        text = None
    elif job.engine == "festival":
        text2wave = Path(tools["festival"]).with_name("text2wave")
        cmd = [str(text2wave), "-eval", f"(voice_{job.voice})", "-eval",
               f"(Parameter.set 'Duration_Stretch {job.rate:g})", "-o", str(wav)]
        text = job.text.encode()
    else:
        cmd = [str(tools["flite"]), "-voice", job.voice, "--setf", f"duration_stretch={job.rate:g}",
               "--setf", f"int_f0_target_mean={job.pitch}", "-t", job.text, "-o", str(wav)]
        text = None
    res = subprocess.run(cmd, input=text, capture_output=True, timeout=60)
    if res.returncode != 0 or not wav.is_file():
        raise DatasetError(f"{job.engine} failed ({' '.join(cmd)}): {res.stderr.decode(errors='replace')[-200:]}")
    data, sr = sf.read(str(wav), dtype="float64", always_2d=True)
    wav.unlink()
    if data.shape[0] == 0 or not np.abs(data).max() > 0:
        raise DatasetError(f"{job.engine} produced silence for {job.source}")
    return to_clip(data[:, 0], sr)


def synthesise_all(out: Path, jobs: list[TTSJob], ctx: BuildContext) -> list[Row]:
    """Synthesise ``jobs`` into ``out`` (``ctx.workers`` engines at a time); their manifest rows, in job order."""
    with tempfile.TemporaryDirectory(prefix="rlbind-tts-") as tmp:
        def work(job: TTSJob) -> Row:
            write_wav(out / job.sample_id, synthesise(job, ctx.sources, Path(tmp)))
            return Row(job.sample_id, job.split, job.label, job.source, job.licence)

        with ThreadPoolExecutor(max_workers=ctx.workers) as pool:
            return list(pool.map(work, jobs))


def build_audio(out: Path, ctx: BuildContext) -> list[Row]:
    rows = synthesise_all(out, _tts_jobs(ctx.seed, ctx.scale), ctx)
    for lang, (pkg, voice, licence) in ASTERISK_VOICES.items():
        folder = ctx.sources[f"asterisk-{lang}"]
        for c in range(10):
            data, sr = sf.read(str(folder / f"{c}.wav"), dtype="float64", always_2d=True)
            sid = f"test/{CLASS_NAMES[c]}/asterisk-{lang}-{voice}.wav"
            write_wav(out / sid, to_clip(data[:, 0], sr))
            rows.append(Row(sid, "test", c, f"{pkg}:usr/share/asterisk/sounds/{voice}/digits/{c}.wav", licence))
    for name, (pkg, rel, ext, licence) in HUMAN_VAL_VOICES.items():
        folder = ctx.sources[f"human-val-{name}"]
        for c in range(10):
            sid = f"val/{CLASS_NAMES[c]}/human-{name}.wav"
            write_wav(out / sid, to_clip(*read_speech(folder / f"{c}.{ext}")))
            rows.append(Row(sid, "val", c, f"{pkg}:usr/share/asterisk/sounds/{rel}/{c}.{ext}", licence))
    return rows


def read_speech(path: Path) -> tuple[np.ndarray, int]:
    """(mono float wave, sample rate) of a WAV, or of a raw GSM 06.10 file (.gsm, 8 kHz) decoded by PyAV."""
    if path.suffix == ".gsm":
        try:
            with av.open(str(path), format="gsm") as container:
                frames = [f.to_ndarray() for f in container.decode(audio=0)]
        except (av.error.FFmpegError, OSError) as exc:
            raise DatasetError(f"cannot decode {path}: {exc}") from exc
        if not frames:
            raise DatasetError(f"{path} holds no audio")
        wave = np.concatenate(frames, axis=-1)[0]
        return wave.astype(np.float64) / 32768.0, 8000
    data, sr = sf.read(str(path), dtype="float64", always_2d=True)
    return data[:, 0], sr


def tool_versions(sources: dict[str, Path]) -> dict[str, str]:
    """Versions of the TTS engines and the Festival voice packages, for build.json."""
    versions = {t: tool_version(sources[t]) for t in TOOL_PACKAGES}
    versions.update({pkg: package_version(pkg) for pkg, _ in FESTIVAL_VOICES.values()})
    return versions
