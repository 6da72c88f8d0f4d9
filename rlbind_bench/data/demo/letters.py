"""Held-out audio set ``demo-letters-audio``: the spoken letters a-z (26 classes), 16 kHz mono 16-bit WAV, 1 s.

Same clip processing as ``demo-digits-audio`` (:func:`.audio.to_clip`). Per class (``scale="full"``):

- train 121 TTS clips: espeak-ng English accents (:data:`.audio.EN_TRAIN_ACCENTS`) x variants m1-m7, f1-f4,
  one seeded speed/pitch draw (66); espeak-ng in the languages of the human speakers, es, es-419, fr-fr,
  fr-be, it x :data:`MULTI_VARIANTS` (40; the letter's own name in that language: "be", "bi", "double-v");
  flite awb, rms, slt, kal16 x 2 duration stretches, seeded pitch (8); Festival ked_diphone, lp_diphone,
  pc_diphone x 2 stretches and cmu_us_slt_arctic_hts once (it ignores the stretch) (7).
- val 2 REAL human clips: the digits' validation speakers who also recorded letters, fr-armelle
  (asterisk-prompt-fr-armelle, .gsm) and it-menardi (asterisk-prompt-it-menardi-wav).
- test 5 REAL human clips: the digits' test voices, asterisk-core-sounds-{en,es,fr,it,ru}-wav
  (``<voice>/letters/<x>.wav``).

Val and test share no speaker, and each speaker is on the same side as in ``demo-digits-audio``. Festival's
Russian voice is left out (it reads a Latin letter as a bare consonant), and so is espeak-ng ``ru`` (it reads
Latin letters with its English voice, which the English accents already cover).
"""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from rlbind_bench.data.demo.audio import (
    EN_TRAIN_ACCENTS,
    EN_TRAIN_VARIANTS,
    FLITE_TRAIN_VOICES,
    TTSJob,
    read_speech,
    synthesise_all,
    to_clip,
    write_wav,
)
from rlbind_bench.data.demo.sources import ASTERISK_VOICES, HUMAN_VAL_VOICES, LETTER_VAL_VOICES
from rlbind_bench.data.demo.spec import LETTER_CLASSES, BuildContext, Row, Scale
from rlbind_bench.seeding import seeded_numpy_generator

DESCRIPTION = ("spoken letters a-z, 16 kHz 1 s WAV: TTS (espeak-ng, flite, Festival) train; real human "
               "Asterisk prompts: val fr-armelle, it-menardi; test en/es/fr/it/ru core-sounds voices")

MULTI_LANGS = ("es", "es-419", "fr-fr", "fr-be", "it")
MULTI_VARIANTS = ("m1", "m3", "m5", "f1", "f3", "klatt2", "Andrea", "Denis")
STRETCHES = (0.9, 1.15)
# voice -> stretches; the HTS voice ignores Duration_Stretch, so one clip.
FESTIVAL_PLAN: dict[str, tuple[float, ...]] = {"ked_diphone": STRETCHES, "lp_diphone": STRETCHES,
                                               "pc_diphone": STRETCHES, "cmu_us_slt_arctic_hts": (1.0,)}
FESTIVAL_ENGLISH = ("ked_diphone", "cmu_us_slt_arctic_hts")


def festival_text(voice: str, letter: str) -> str:
    # English Festival reads a lone "a" as the article (schwa); "ay" gives the letter's name.
    return "ay" if voice in FESTIVAL_ENGLISH and letter == "a" else letter


def tts_jobs(seed: int, scale: Scale) -> list[TTSJob]:
    """The train split's TTS clips (see the module docstring); ``scale.audio_tts[0]`` caps them per class."""
    jobs: list[TTSJob] = []
    for c, letter in enumerate(LETTER_CLASSES):
        mine: list[TTSJob] = []

        def espeak(voice: str, variant: str, _c: int = c, _x: str = letter, _m=mine) -> None:
            r = seeded_numpy_generator(seed, "letters-espeak", voice, variant, _c)
            _m.append(TTSJob("train", _c, "espeak-ng", voice, variant, int(r.integers(130, 211)),
                             int(r.integers(25, 81)), 0, _x, _x))

        for accent in EN_TRAIN_ACCENTS:
            for variant in EN_TRAIN_VARIANTS:
                espeak(accent, variant)
        for lang in MULTI_LANGS:
            for variant in MULTI_VARIANTS:
                espeak(lang, variant)
        for voice in FLITE_TRAIN_VOICES:
            for stretch in STRETCHES:
                r = seeded_numpy_generator(seed, "letters-flite", voice, stretch, c)
                mine.append(TTSJob("train", c, "flite", voice, "", stretch, int(r.integers(85, 180)), 0, letter,
                                   letter))
        mine += [TTSJob("train", c, "festival", voice, "", stretch, 0, 0, festival_text(voice, letter), letter)
                 for voice, stretches in FESTIVAL_PLAN.items() for stretch in stretches]
        limit = scale.audio_tts[0]
        if limit is not None and limit < len(mine):
            keep = seeded_numpy_generator(seed, "letters-tts-subset", c).choice(len(mine), size=limit, replace=False)
            mine = [mine[i] for i in sorted(int(k) for k in keep)]
        jobs += mine
    return jobs


def human_rows(out: Path, ctx: BuildContext) -> list[Row]:
    """Every letter by every Asterisk speaker: core-sounds voices in test, prompt-package voices in val."""
    rows = []
    for lang, (pkg, voice, licence) in ASTERISK_VOICES.items():
        folder = ctx.sources[f"asterisk-letters-{lang}"]
        for c, x in enumerate(LETTER_CLASSES):
            data, sr = sf.read(str(folder / f"{x}.wav"), dtype="float64", always_2d=True)
            sid = f"test/{x}/asterisk-{lang}-{voice}.wav"
            write_wav(out / sid, to_clip(data[:, 0], sr))
            rows.append(Row(sid, "test", c, f"{pkg}:usr/share/asterisk/sounds/{voice}/letters/{x}.wav", licence))
    for name, (pkg, rel, ext) in LETTER_VAL_VOICES.items():
        folder, licence = ctx.sources[f"human-val-letters-{name}"], HUMAN_VAL_VOICES[name][3]
        for c, x in enumerate(LETTER_CLASSES):
            sid = f"val/{x}/human-{name}.wav"
            write_wav(out / sid, to_clip(*read_speech(folder / f"{x}.{ext}")))
            rows.append(Row(sid, "val", c, f"{pkg}:usr/share/asterisk/sounds/{rel}/{x}.{ext}", licence))
    return rows


def build_letters(out: Path, ctx: BuildContext) -> list[Row]:
    return synthesise_all(out, tts_jobs(ctx.seed, ctx.scale), ctx) + human_rows(out, ctx)
