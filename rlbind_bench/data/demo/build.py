"""Build the demo datasets under one root: lock, skip what verifies, build the rest, publish each."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from rlbind_bench.data.demo import audio, fashion, image, letters, thermal, video
from rlbind_bench.data.demo.fixed_splits import check_fixed_splits
from rlbind_bench.data.demo.publish import summary_counts, verify_dataset, write_metadata
from rlbind_bench.data.demo.sources import default_sources_cache, ensure_sources
from rlbind_bench.data.demo.spec import (
    AUDIO_DATASET,
    DATASETS,
    FASHION_IMAGE_DATASET,
    FASHION_THERMAL_DATASET,
    FASHION_VIDEO_DATASET,
    IMAGE_DATASET,
    LETTERS_AUDIO_DATASET,
    SCALES,
    THERMAL_DATASET,
    VIDEO_DATASET,
    BuildContext,
    Row,
)
from rlbind_bench.errors import DatasetError
from rlbind_bench.files import staged_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Builder:
    build: Callable[[Path, BuildContext], list[Row]]
    description: str
    simulated: bool = False
    tools: Callable[[dict[str, Path]], dict[str, str]] | None = None  # tool versions recorded in build.json


_BUILDERS: dict[str, _Builder] = {
    IMAGE_DATASET: _Builder(image.build_image, image.DESCRIPTION),
    AUDIO_DATASET: _Builder(audio.build_audio, audio.DESCRIPTION, tools=audio.tool_versions),
    THERMAL_DATASET: _Builder(thermal.build_thermal, thermal.DESCRIPTION, simulated=True),
    VIDEO_DATASET: _Builder(video.build_video, video.DESCRIPTION),
    FASHION_IMAGE_DATASET: _Builder(fashion.build_fashion_image, fashion.IMAGE_DESCRIPTION),
    LETTERS_AUDIO_DATASET: _Builder(letters.build_letters, letters.DESCRIPTION, tools=audio.tool_versions),
    FASHION_THERMAL_DATASET: _Builder(fashion.build_fashion_thermal, fashion.THERMAL_DESCRIPTION, simulated=True),
    FASHION_VIDEO_DATASET: _Builder(fashion.build_fashion_video, fashion.VIDEO_DESCRIPTION),
}


def prepare_demo(root: Path, *, seed: int = 0, sources_cache: Path | None = None, force: bool = False,
                 scale: str = "full", datasets: Iterable[str] | None = None, workers: int | None = None) -> dict:
    """Build the demo benchmark under ``root`` (idempotent, deterministic); see the package docstring.

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
    # The lock serialises concurrent builds into the same root.
    with open(root / ".demo-build.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in root.glob(".demo-*.tmp-*"):  # left by an interrupted build (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        todo = [n for n in names if force or not verify_dataset(root / n, seed=seed, scale=scale)]
        ctx = None
        if todo:
            cache = Path(sources_cache) if sources_cache is not None else default_sources_cache()
            ctx = BuildContext(seed=seed, scale=SCALES[scale], scale_name=scale, sources=ensure_sources(cache),
                               workers=workers or max(2, min(4, 2 * (os.cpu_count() or 1))))
        for name in names:
            final = root / name
            if name not in todo:
                summary["datasets"][name] = {"built": False, "seconds": 0.0, **summary_counts(final)}
                continue
            t0 = time.perf_counter()
            builder = _BUILDERS[name]
            with staged_dir(final, f".demo-{name}") as tmp:
                rows = builder.build(tmp, ctx)
                tools = builder.tools(ctx.sources) if builder.tools else None
                write_metadata(tmp, name, rows, ctx, description=builder.description,
                               simulated=builder.simulated, tools=tools)
                check_fixed_splits(tmp, name, seed, scale)
            seconds = round(time.perf_counter() - t0, 2)
            log.info("built %s in %.1f s", name, seconds)
            summary["datasets"][name] = {"built": True, "seconds": seconds, **summary_counts(final)}
    summary["seconds"] = round(time.perf_counter() - t_start, 2)
    return summary
