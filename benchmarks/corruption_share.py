"""How much of a `rlbind-bench run` is spent making corrupted inputs, per modality, on the demo.

    .venv/bin/python benchmarks/corruption_share.py [--model demo/rlbind-s0] [--append docs/benchmarks.md]

Per modality, whole processes, one after the other: (1) the quick suite (clean + PGD + corruptions) with a cold
corruption cache, (2) the corruption threat alone with a cold cache (the corruptions are made), (3) the same
again with the now warm cache (they are read back), (4) the clean threat alone. Making the corruptions costs
(2) - (3); its share of the whole quick-suite run is ((2) - (3)) / (1). Interpreter start and model load are in
every process, so the differences cancel them. Workers: 0 (the CPU default), so the corruptions run serially
with the model here; on a GPU with workers they overlap with it instead.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _report  # benchmarks/_report.py: these scripts run as `python benchmarks/X.py`

ROOT = Path(__file__).resolve().parents[1]
MODALITIES = ("image", "thermal", "audio", "video")


def timed_run(model: str, modality: str, threats: str | None, cache: Path, out: Path) -> float:
    cmd = [sys.executable, "-m", "rlbind_bench", "run", "--model", model, "--suite", "quick", "--modalities", modality,
           "--out", str(out), "--no-progress"]
    if threats:
        cmd += ["--threats", threats]
    env = dict(os.environ, RLBIND_CACHE_DIR=str(cache))
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="demo/rlbind-s0")
    ap.add_argument("--append", type=Path, default=None)
    args = ap.parse_args()
    import torch

    lines = ["| modality | quick suite, cold cache (s) | corruptions, cold (s) | corruptions, warm (s) | clean only (s) "
             "| making corruptions (s) | share of the quick suite |", "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="rlbind-share-") as tmp:
        tmp = Path(tmp)
        for m in MODALITIES:
            # Warm the text-embedding cache and the page cache first, so that only corruptions differ.
            timed_run(args.model, m, "clean", tmp / "cache-text", tmp / f"{m}-warmup")
            text_cache = tmp / "cache-text" / "text"
            caches = {}
            for name in ("suite", "corr"):
                caches[name] = tmp / f"cache-{m}-{name}"
                caches[name].mkdir()
                (caches[name] / "text").symlink_to(text_cache)
            suite = timed_run(args.model, m, None, caches["suite"], tmp / f"{m}-suite")
            cold = timed_run(args.model, m, "corruptions", caches["corr"], tmp / f"{m}-cold")
            warm = timed_run(args.model, m, "corruptions", caches["corr"], tmp / f"{m}-warm")
            clean = timed_run(args.model, m, "clean", caches["corr"], tmp / f"{m}-clean")
            making = max(cold - warm, 0.0)
            lines.append(f"| {m} | {suite:.1f} | {cold:.1f} | {warm:.1f} | {clean:.1f} | {making:.1f} | "
                         f"{making / suite:.0%} |")
            print(lines[-1], flush=True)
    commit = _report.commit()
    head = (f"### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: corruption share of a run, "
            f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, commit {commit}\n\n"
            f"model {args.model}, demo test split, quick suite (64 samples per dataset, 50 for audio), workers 0\n")
    text = head + "\n" + "\n".join(lines) + "\n"
    _report.emit(text, args.append)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
