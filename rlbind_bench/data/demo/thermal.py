"""``demo-digits-thermal-sim``: SIMULATED thermal (no real thermal data is packaged anywhere).

Rendered from opencv digits.png images that the image test split does not use: train 300, val 30, test 50
per class. Each random draw of :func:`_render_thermal` comes from a per-sample seeded generator: the digit's
ink, bicubic-upscaled to 64x64, is blurred (Gaussian sigma 1.0-2.2 px, heat diffusion) and taken as the
object's excess temperature (contrast 0.35-0.60) over a background temperature field (level 0.15-0.35,
linear gradient of slope 0.05-0.25 in a random direction, plus low-frequency structure from a 4x4 normal grid
upscaled bicubically, amplitude 0.02-0.06); multiplicative vignetting ``1 - v r^2`` (v 0.1-0.3); a
fixed-pattern column offset (N(0, 0.012) per column, drawn once per dataset: one simulated sensor); temporal
Gaussian noise (sigma 0.008-0.025); a camera-style automatic gain control (0.5-99.5 percentile stretch) and
8-bit quantisation. The grey frame is replicated to 3 channels (white-hot).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from rlbind_bench.data.demo.image import Glyph, digit_glyphs, grey_rgb, write_png
from rlbind_bench.data.demo.spec import CLASS_NAMES, IMAGE_SIZE, BuildContext, Row
from rlbind_bench.seeding import seeded_numpy_generator

DESCRIPTION = "SIMULATED pseudo-thermal renderings of real digits (OpenCV digits.png), 64x64 grey PNG"


def _render_thermal(d28: np.ndarray, rng: np.random.Generator, column_fpn: np.ndarray) -> np.ndarray:
    """Pseudo-thermal 64x64 uint8 frame of a digit (see the module docstring)."""
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


def write_thermal_set(out: Path, ctx: BuildContext, glyphs: Iterable[Glyph], classes: tuple[str, ...]) -> list[Row]:
    """A pseudo-thermal PNG of each glyph; one simulated sensor (column pattern) per seed."""
    fpn = seeded_numpy_generator(ctx.seed, "thermal", "column-fpn").normal(0.0, 0.012, IMAGE_SIZE)
    rows = []
    for g in glyphs:
        sid = g.sample_id(classes, ".png")
        grey = _render_thermal(g.pixels, seeded_numpy_generator(ctx.seed, "thermal", g.source.name, g.index), fpn)
        write_png(out / sid, grey_rgb(grey))
        src, lic = g.source.ref(g.index)
        rows.append(Row(sid, g.split, g.label, f"simulated-thermal({src})", lic))
    return rows


def build_thermal(out: Path, ctx: BuildContext) -> list[Row]:
    return write_thermal_set(out, ctx, digit_glyphs(ctx, "thermal", ctx.scale.thermal), CLASS_NAMES)
