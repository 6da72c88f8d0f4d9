"""Held-out sets from Fashion-MNIST: ``demo-fashion-image``, ``demo-fashion-thermal-sim``, ``demo-fashion-video``.

The same renderers as the digit sets (:func:`.image.write_image_set`, :func:`.thermal.write_thermal_set`,
:func:`.video.write_video_set`), fed Fashion-MNIST garments instead of digits; ten classes, in the dataset's
label order (:data:`.spec.FASHION_CLASSES`). Train and val come from Fashion-MNIST's own training file, test
from its test file (``t10k``), so the test images are the ones Fashion-MNIST holds out too.

Which image goes where follows the digits' scheme (:func:`.image.allocated_glyphs`): a seeded permutation of
each class's images in each file, and fixed, non-overlapping ranges of positions per (modality, split)
(:data:`TRAIN_RANGES`, :data:`TEST_RANGES`), so no Fashion-MNIST image is used twice across the three sets.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np

from rlbind_bench.data.demo.image import GlyphSource, allocated_glyphs, write_image_set
from rlbind_bench.data.demo.sources import FASHION_PACKAGE, default_sources_cache
from rlbind_bench.data.demo.spec import FASHION_CLASSES, BuildContext, Row
from rlbind_bench.data.demo.thermal import write_thermal_set
from rlbind_bench.data.demo.video import write_video_set
from rlbind_bench.errors import DatasetError

LICENCE = "MIT (Fashion-MNIST, Zalando SE; Debian dataset-fashion-mnist)"
IMAGE_DESCRIPTION = "Fashion-MNIST garments (train/val: its training file; test: its t10k file), 64x64 RGB PNG"
THERMAL_DESCRIPTION = "SIMULATED pseudo-thermal renderings of Fashion-MNIST garments, 64x64 grey PNG"
VIDEO_DESCRIPTION = "8-frame 64x64 MP4 (mp4v) clips of Fashion-MNIST garments moving over a seeded background"

# Positions in the seeded per-class permutation of each file (6000 per class in train, 1000 in t10k).
TRAIN_RANGES = {("image", "train"): (0, 300), ("image", "val"): (300, 330),
                ("thermal", "train"): (330, 630), ("thermal", "val"): (630, 660),
                ("video", "train"): (660, 760), ("video", "val"): (760, 780)}
TEST_RANGES = {("image", "test"): (0, 50), ("thermal", "test"): (50, 100), ("video", "test"): (100, 140)}
_COUNTS = {"train": 60000, "t10k": 10000}


def _read_idx(path: Path, magic: int, shape: tuple[int, ...]) -> np.ndarray:
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"cannot read {path}: {exc} (delete the {FASHION_PACKAGE} folder of the sources "
                           f"cache {default_sources_cache()} and retry)") from exc
    ndim = len(shape)
    header = np.frombuffer(raw[:4 + 4 * ndim], dtype=">u4")
    if int(header[0]) != magic or tuple(int(d) for d in header[1:]) != shape:
        raise DatasetError(f"{path} is not a Fashion-MNIST idx file of shape {shape}")
    return np.frombuffer(raw[4 + 4 * ndim:], dtype=np.uint8).reshape(shape)


@functools.lru_cache(maxsize=2)
def load_fashion(folder: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    """One Fashion-MNIST file pair (``part`` train or t10k): uint8 [n,28,28] images, int64 labels."""
    n = _COUNTS[part]
    images = _read_idx(Path(folder) / f"{part}-images-idx3-ubyte.gz", 2051, (n, 28, 28))
    labels = _read_idx(Path(folder) / f"{part}-labels-idx1-ubyte.gz", 2049, (n,)).astype(np.int64)
    if np.bincount(labels, minlength=10).tolist() != [n // 10] * 10:
        raise DatasetError(f"unexpected class counts in Fashion-MNIST {part} under {folder}")
    return images, labels


def _source(part: str, ranges: dict) -> GlyphSource:
    def ref(index: int) -> tuple[str, str]:
        return f"{FASHION_PACKAGE}:{part}-images-idx3-ubyte.gz#{index}", LICENCE

    return GlyphSource(f"fmnist-{part}", ranges, lambda ctx: load_fashion(str(ctx.sources["fashion-mnist"]), part),
                       ref, width=5)


FASHION_SOURCES: tuple[GlyphSource, ...] = (_source("train", TRAIN_RANGES), _source("t10k", TEST_RANGES))


def build_fashion_image(out: Path, ctx: BuildContext) -> list[Row]:
    return write_image_set(out, allocated_glyphs(ctx, "image", ctx.scale.image, FASHION_SOURCES), FASHION_CLASSES)


def build_fashion_thermal(out: Path, ctx: BuildContext) -> list[Row]:
    glyphs = allocated_glyphs(ctx, "thermal", ctx.scale.thermal, FASHION_SOURCES)
    return write_thermal_set(out, ctx, glyphs, FASHION_CLASSES)


def build_fashion_video(out: Path, ctx: BuildContext) -> list[Row]:
    return write_video_set(out, ctx, allocated_glyphs(ctx, "video", ctx.scale.video, FASHION_SOURCES),
                           FASHION_CLASSES)
