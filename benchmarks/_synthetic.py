"""Class-folder datasets of image, thermal, audio and video files for the device benchmark's cost plan, made
from nothing but the photos inside scikit-image (the device machine has no demo data and no network).

Each class gets a few distinct files (photo crops; their greyscale for thermal; a tone per class with noise
for audio; a pan over the photo for video), and hard links to them up to the sample count asked for: the plan
prices passes per sample and scales them to the dataset's sample count, so 1,000 samples cost 1,000 entries in
the index, not 1,000 decoded files. Only the probe samples (8 spread over the dataset) are decoded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

AUDIO_RATE = 16000
AUDIO_SECONDS = 5.0
VIDEO_FPS = 8
VIDEO_SECONDS = 2.0
VIDEO_SIZE = 224


def _photos(root: Path) -> dict[str, list[Path]]:
    from rlbind_bench.data.photos import MORE_PHOTOS, prepare_photos

    prepare_photos(root, MORE_PHOTOS)
    return {cls: sorted((root / cls).glob("*.png")) for cls in MORE_PHOTOS}


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def _thermal(src: Path, dst: Path) -> None:
    from PIL import Image

    Image.open(src).convert("L").save(dst)


def _audio(label: int, k: int, dst: Path) -> None:
    import soundfile as sf

    t = np.arange(int(AUDIO_RATE * AUDIO_SECONDS)) / AUDIO_RATE
    rng = np.random.default_rng(1000 * label + k)
    wave = 0.3 * np.sin(2 * np.pi * (220.0 * (label + 1) + 10 * k) * t) + 0.02 * rng.standard_normal(len(t))
    sf.write(str(dst), wave.astype(np.float32), AUDIO_RATE)


def _video(src: Path, dst: Path) -> None:
    import cv2

    img = _rgb(src)
    side = min(img.shape[:2])
    frames = int(VIDEO_FPS * VIDEO_SECONDS)
    crop = max(side * 3 // 4, 1)
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (VIDEO_SIZE, VIDEO_SIZE))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {dst} (no mp4v encoder)")
    for f in range(frames):
        off = (side - crop) * f // max(frames - 1, 1)  # a pan across the photo
        frame = cv2.resize(np.ascontiguousarray(img[off:off + crop, off:off + crop]), (VIDEO_SIZE, VIDEO_SIZE))
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def _link(src: Path, label: int, k: int, dst: Path) -> None:
    os.link(src, dst)


# modality -> (file suffix, writer(photo, class index, file index, destination))
WRITERS = {
    "image": (".png", _link),
    "thermal": (".png", lambda src, label, k, dst: _thermal(src, dst)),
    "audio": (".wav", lambda src, label, k, dst: _audio(label, k, dst)),
    "video": (".mp4", lambda src, label, k, dst: _video(src, dst)),
}


def make_dataset(root: Path, modality: str, n_samples: int, photos_dir: Path) -> Path:
    """ROOT/<class>/<class><k><suffix>, n_samples files in all spread evenly over the 10 classes: a few distinct
    files per class (one per photo crop), the rest hard links to them."""
    suffix, write = WRITERS[modality]
    photos = _photos(photos_dir)
    classes = sorted(photos)
    for label, cls in enumerate(classes):
        folder = root / cls
        folder.mkdir(parents=True, exist_ok=True)
        count = n_samples // len(classes) + (label < n_samples % len(classes))
        distinct = photos[cls][:count]
        for k in range(count):
            dst = folder / f"{cls}{k}{suffix}"
            if dst.exists():
                continue
            if k < len(distinct):
                write(distinct[k], label, k, dst)
            else:
                os.link(folder / f"{cls}{k % len(distinct)}{suffix}", dst)
    return root
