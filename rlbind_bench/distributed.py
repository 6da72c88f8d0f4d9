"""torchrun support: which rank this process is, a barrier before rank 0 merges the parts, and which ranks wrote
each part."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

from rlbind_bench.files import slugify


def distributed_context() -> tuple[int, int]:
    """(rank, world size). Under torchrun (WORLD_SIZE > 1) joins the process group: gloo on CPU, NCCL on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("RLBIND_DIST_BACKEND") != "gloo" else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def part_writers(parts_dir: Path, datasets: list) -> dict[str, list[int]]:
    """For each part (its path under parts/), the ranks that wrote it, from the `.rank-<r>.json` sidecars:
    one rank per part, unless a shard was computed twice."""
    writers = {}
    for spec in datasets:
        folder = parts_dir / slugify(spec.name)
        for part in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
            writers[part.relative_to(parts_dir).as_posix()] = sorted(
                json.loads(s.read_text())["rank"] for s in folder.glob(f"{part.stem}.rank-*.json"))
    return writers
