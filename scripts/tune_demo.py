"""The demo's tuning, on the VAL split only (docs/tuning-demo.md; issue: equal tuning budgets).

Every robust fine-tune gets the same budget: four configurations, each a short run (80 optimizer steps, half of
the final 160) from demo/backbone on the digits train split, seed 0, evaluated on the digits val split (clean and
L-inf PGD-10 at 1/255 and 4/255, model's own logit scale). The grids:
  fare, tecoa, pmg-aft: learning rate 3e-5, 1e-4, 3e-4, 1e-3 (every other setting as in the recipe);
  rlbind: the stage-2 search, from one stage-1 run (40 steps) then 40 stage-2 steps:
    cos      today's cosine pull to the true class's text (recipes/demo/rlbind-stage2.yaml);
    ce       the contrastive anchor instead (cross-entropy over the class texts);
    stay     the better of cos / ce plus the stay-near-stage-1 term (L2-SP, weight 5);
    visual   the better of cos / ce after a stage 1 on the visual towers only (image, thermal, video).
Selection rule, fixed before any run: the configuration with the highest val score, S = mean over the four
modalities of (clean accuracy + robust accuracy at the modality's training eps) / 2, on the digits val split
(eps 4/255 image and thermal, 1/255 audio and video). Held-out val sets are evaluated too but never used to choose.
Stage 1 alone is evaluated as the reference a stage 2 must beat.

Resumable: a finished training (training.json) or evaluation (summary.parquet) is kept. Jobs run two at a time,
one thread each. The evidence (training.json, train_log.csv, the eval folders) is copied to OUT_EVIDENCE, from
which `scripts/tuning_table.py` writes the tables.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin" / "rlbind-bench"
DIGITS = "demo-digits-image,demo-digits-audio,demo-digits-thermal-sim,demo-digits-video"
HELD_OUT = "demo-fashion-image,demo-letters-audio,demo-fashion-thermal-sim,demo-fashion-video"
LRS = ("3e-5", "1e-4", "3e-4", "1e-3")
BASELINES = ("fare", "tecoa", "pmg-aft")
SHORT_STEPS = 80
ANCHORS = {"cos": [], "ce": ["--weight", "anchor=0", "--weight", "contrastive=1"]}
STAY = ["--weight", "stay=5"]


def run(cmd: list[str], log: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    print(f"[{time.strftime('%H:%M:%S')}] rc={rc} {time.time() - started:6.0f}s {log.stem}", flush=True)
    if rc:
        raise SystemExit(f"failed: {' '.join(cmd)} (log {log})")


def train(out: Path, recipe: str, init: str, steps: int, extra: list[str]) -> None:
    if (out / "training.json").is_file():
        return
    run([str(BIN), "train", "--recipe", recipe, "--init", init, "--datasets", DIGITS, "--out", str(out),
         "--steps", str(steps), "--seed", "0", "--no-progress", *extra], out.parent / "logs" / f"{out.name}.log")


def evaluate(model: Path) -> None:
    out = model.parent / f"{model.name}-eval"
    if (out / "summary.parquet").is_file():
        return
    run([str(BIN), "run", "--model", str(model), "--datasets", f"{DIGITS},{HELD_OUT}", "--split", "val",
         "--n-samples", "200", "--threats", "linf-pgd", "--eps", "1/255,4/255", "--steps", "10",
         "--logit-scale", "model", "--out", str(out), "--no-progress"],
        model.parent / "logs" / f"{out.name}.log")


def train_and_eval(out: Path, recipe: str, init: str, steps: int, extra: list[str]) -> None:
    train(out, recipe, init, steps, extra)
    evaluate(out)


def better_anchor(out: Path) -> str:
    sys.path.insert(0, str(ROOT / "scripts"))
    from tuning_table import val_score

    scores = {a: val_score(out / f"rlbind-{a}-eval") for a in ANCHORS}
    return max(scores, key=lambda a: (scores[a], a == "cos"))  # a tie keeps today's anchor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="zoo/demo-next/backbone")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "tune-demo")
    ap.add_argument("--evidence", type=Path, default=ROOT / "experiments" / "demo-tuning")
    args = ap.parse_args()
    out, bb = args.out, args.backbone
    half = SHORT_STEPS // 2
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [pool.submit(train_and_eval, out / "rlbind-stage1", "demo/rlbind-stage1", bb, half, []),
                pool.submit(train_and_eval, out / "rlbind-stage1-visual", "demo/rlbind-stage1-visual", bb, half, [])]
        jobs += [pool.submit(train_and_eval, out / f"{m}-lr{lr}", f"demo/{m}", bb, SHORT_STEPS, ["--lr", lr])
                 for m in BASELINES for lr in LRS]
        jobs[0].result()
        stage1 = str(out / "rlbind-stage1")
        jobs += [pool.submit(train_and_eval, out / f"rlbind-{a}", "demo/rlbind-stage2", stage1, half, flags)
                 for a, flags in ANCHORS.items()]
        for j in jobs:
            j.result()
        best = better_anchor(out)
        (out / "rlbind-best-anchor.txt").write_text(best + "\n")
        jobs = [pool.submit(train_and_eval, out / "rlbind-stay", "demo/rlbind-stage2", stage1, half,
                            ANCHORS[best] + STAY),
                pool.submit(train_and_eval, out / "rlbind-visual", "demo/rlbind-stage2",
                            str(out / "rlbind-stage1-visual"), half, ANCHORS[best])]
        for j in jobs:
            j.result()
    copy_evidence(out, args.evidence)


def copy_evidence(out: Path, evidence: Path) -> None:
    """The small files that the tables are written from (models stay in OUT, not committed)."""
    for d in sorted(p for p in out.iterdir() if p.is_dir() and p.name != "logs"):
        dest = evidence / d.name
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("training.json", "train_log.csv", "run.json", "summary.parquet", "samples.parquet"):
            if (d / name).is_file():
                shutil.copy2(d / name, dest / name)
    if (out / "rlbind-best-anchor.txt").is_file():
        shutil.copy2(out / "rlbind-best-anchor.txt", evidence / "rlbind-best-anchor.txt")


if __name__ == "__main__":
    main()
