"""The demo's tuning, on the VAL split only (docs/tuning-demo.md; issue: equal tuning budgets).

Every robust fine-tune gets the same budget: seven configurations, each a short run (80 optimizer steps, half of
the final 160) from demo/backbone on the digits train split, seed 0, evaluated on the digits val split (clean and
L-inf PGD-10 at 1/255 and 4/255, model's own logit scale), in two rounds:
  round A, the same for every method: learning rate 3e-5, 1e-4, 3e-4, 1e-3, every other setting as in the recipe
    (rlbind: 40 stage-1 + 40 stage-2 steps at that rate, stage 2 with today's cosine text anchor);
  round B, three configurations at round A's best rate L:
    fare, tecoa, pmg-aft: the rate refined, L x 0.5, 1.5, 2;
    rlbind, the stage-2 search:
      ce      the contrastive anchor instead of the cosine one (cross-entropy over the class texts);
      stay    the better anchor of cos / ce at L plus the stay-near-stage-1 term (L2-SP, weight 5);
      visual  the better anchor after a stage 1 on the visual towers only (image, thermal, video).
Selection rule, fixed before any run: the configuration with the highest val score, S = mean over the four
modalities of (clean accuracy + robust accuracy at the modality's training eps) / 2, on the digits val split
(eps 4/255 image and thermal, 1/255 audio and video); a tie goes to the earlier configuration. Held-out val sets
are evaluated too but never used to choose. Stage 1 alone is evaluated as the reference a stage 2 must beat.

Resumable: a finished training (training.json) or evaluation (summary.parquet) is kept. Jobs run two at a time,
one thread each. The evidence (training.json, train_log.csv, the eval folders) is copied to --evidence, from
which `scripts/tuning_table.py` writes the tables.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _jobs import BIN, ROOT, run_logged

DIGITS = "demo-digits-image,demo-digits-audio,demo-digits-thermal-sim,demo-digits-video"
HELD_OUT = "demo-fashion-image,demo-letters-audio,demo-fashion-thermal-sim,demo-fashion-video"
LRS = ("3e-5", "1e-4", "3e-4", "1e-3")
REFINE = (0.5, 1.5, 2.0)  # never a round-A rate: a refinement is a new configuration
BASELINES = ("fare", "tecoa", "pmg-aft")
SHORT_STEPS = 80
ANCHORS = {"cos": [], "ce": ["--weight", "anchor=0", "--weight", "contrastive=1"]}
STAY = ["--weight", "stay=5"]


def lr_name(x: float | str) -> str:
    """3e-05 -> '3e-5', 0.00015 -> '1.5e-4': the learning rate as the folder names and the tables write it."""
    mantissa, exp = f"{float(x):.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exp)}"


def rlbind_name(kind: str, lr: str) -> str:
    """Folder of an RLBind tuning run. The first runs were made at lr 1e-4 before the rate was a tuned dimension
    and keep their names (rlbind-stage1, rlbind-cos, ...)."""
    return f"rlbind-{kind}" if lr_name(lr) == "1e-4" else f"rlbind-{kind}-lr{lr_name(lr)}"


def train(out: Path, recipe: str, init: str, steps: int, extra: list[str]) -> None:
    if (out / "training.json").is_file():
        return
    run_logged([str(BIN), "train", "--recipe", recipe, "--init", init, "--datasets", DIGITS, "--out", str(out),
         "--steps", str(steps), "--seed", "0", "--no-progress", *extra], out.parent / "logs" / f"{out.name}.log")


def evaluate(model: Path) -> None:
    out = model.parent / f"{model.name}-eval"
    if (out / "summary.parquet").is_file():
        return
    run_logged([str(BIN), "run", "--model", str(model), "--datasets", f"{DIGITS},{HELD_OUT}", "--split", "val",
         "--n-samples", "200", "--threats", "linf-pgd", "--eps", "1/255,4/255", "--steps", "10",
         "--logit-scale", "model", "--out", str(out), "--no-progress"],
        model.parent / "logs" / f"{out.name}.log")


def train_and_eval(out: Path, recipe: str, init: str, steps: int, extra: list[str]) -> None:
    train(out, recipe, init, steps, extra)
    evaluate(out)


def score(out: Path, name: str) -> float:
    sys.path.insert(0, str(ROOT / "scripts"))
    from tuning_table import val_score

    return val_score(out / f"{name}-eval")


def best_lr(out: Path, names: dict[str, str]) -> str:
    """names: lr -> folder; the rule (highest S, a tie to the earlier rate in the grid)."""
    lrs = list(names)
    return max(lrs, key=lambda lr: (score(out, names[lr]), -lrs.index(lr)))


def rlbind_round(pool, out: Path, bb: str, lr: str, kinds: tuple[str, ...]) -> list:
    half = SHORT_STEPS // 2
    extra = ["--lr", lr]
    stage1 = out / rlbind_name("stage1", lr)
    train_and_eval(stage1, "demo/rlbind-stage1", bb, half, extra)
    return [pool.submit(train_and_eval, out / rlbind_name(k, lr), "demo/rlbind-stage2", str(stage1), half,
                        extra + ANCHORS[k]) for k in kinds]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="zoo/demo-next/backbone")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "tune-demo")
    ap.add_argument("--evidence", type=Path, default=ROOT / "experiments" / "demo-tuning")
    args = ap.parse_args()
    out, bb = args.out, args.backbone
    half = SHORT_STEPS // 2
    with ThreadPoolExecutor(max_workers=2) as pool:
        # round A
        jobs = [pool.submit(train_and_eval, out / f"{m}-lr{lr}", f"demo/{m}", bb, SHORT_STEPS, ["--lr", lr])
                for m in BASELINES for lr in LRS]
        inner = [pool.submit(rlbind_round, pool, out, bb, lr, ("cos",)) for lr in LRS]
        for j in inner:
            jobs += j.result()
        for j in jobs:
            j.result()
        # round B
        jobs = []
        for m in BASELINES:
            best = best_lr(out, {lr: f"{m}-lr{lr}" for lr in LRS})
            jobs += [pool.submit(train_and_eval, out / f"{m}-lr{lr_name(float(best) * f)}", f"demo/{m}", bb,
                                 SHORT_STEPS, ["--lr", lr_name(float(best) * f)]) for f in REFINE]
        lr = best_lr(out, {lr: rlbind_name("cos", lr) for lr in LRS})
        for j in rlbind_round(pool, out, bb, lr, ("ce",)):
            j.result()
        anchor = max(ANCHORS, key=lambda a: (score(out, rlbind_name(a, lr)), a == "cos"))  # a tie keeps cos
        (out / "rlbind-round-b.txt").write_text(f"lr {lr_name(lr)}\nanchor {anchor}\n")
        stage1 = out / rlbind_name("stage1", lr)
        visual1 = out / rlbind_name("stage1-visual", lr)
        jobs += [pool.submit(train_and_eval, out / rlbind_name("stay", lr), "demo/rlbind-stage2", str(stage1), half,
                             ["--lr", lr, *ANCHORS[anchor], *STAY]),
                 pool.submit(train_and_eval, visual1, "demo/rlbind-stage1-visual", bb, half, ["--lr", lr])]
        for j in jobs:
            j.result()
        train_and_eval(out / rlbind_name("visual", lr), "demo/rlbind-stage2", str(visual1), half,
                       ["--lr", lr, *ANCHORS[anchor]])
    copy_evidence(out, args.evidence)


def copy_evidence(out: Path, evidence: Path) -> None:
    """The small files that the tables are written from (models stay in OUT, not committed)."""
    for d in sorted(p for p in out.iterdir() if p.is_dir() and p.name != "logs"):
        dest = evidence / d.name
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("training.json", "train_log.csv", "run.json", "summary.parquet", "samples.parquet"):
            if (d / name).is_file():
                shutil.copy2(d / name, dest / name)
    for name in ("rlbind-best-anchor.txt", "rlbind-round-b.txt"):
        if (out / name).is_file():
            shutil.copy2(out / name, evidence / name)


if __name__ == "__main__":
    main()
