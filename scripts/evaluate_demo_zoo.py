"""Evaluate the demo zoo on the TEST split, once, after every choice was made on val (docs/results-demo.md).

The grid (issue: the demo answers the method's claims), on the digits test sets and the held-out test sets
(Fashion-MNIST image / thermal / video, letters audio), at each model's own logit scale, every run folder
resumable:
  every model (backbone and every seed):  clean, L-inf PGD-50 at 1, 2, 4/255             -> RUNS/<model>/linf
  the backbone and seed 0 of each method: L2 PGD-50 at 0.5 and 1.0                       -> RUNS/<model>/l2
                                           AutoAttack standard L-inf at 4/255, fixed subset of 25 -> RUNS/<model>/aa-4
                                           AutoAttack at 1/255 (audio, video: their training eps) -> .../aa-1
                                           every corruption x 5 severities                -> RUNS/<model>/corruptions
Every group of one model evaluates the same samples (`--n-samples` per dataset, the sample ids a seeded draw
picks), so their clean cells are the same cell. AutoAttack runs on the AA_SUBSET sample ids with the smallest
sha256 (`--autoattack-subset`), as RobustBench runs it on a fixed subset.
Two runs at a time (--lanes), one thread each; a finished folder (summary.parquet) is kept.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _jobs import BIN, ROOT, run_logged

TEST_SETS = ("demo-digits-image,demo-digits-audio,demo-digits-thermal-sim,demo-digits-video,"
             "demo-fashion-image,demo-letters-audio,demo-fashion-thermal-sim,demo-fashion-video")
# rlbind-stage1: RLBind's stage 1 alone, the reference that says what stage 2 adds
METHODS = ("fare", "tecoa", "pmg-aft", "rlbind", "rlbind-stage1")
SEEDS = (0, 1, 2)
# 100 per dataset (the whole set where a test split is smaller): sized so the whole grid fits in about two hours
# here on two lanes (docs/results-demo.md states the measured times)
N_SAMPLES = 100
# AutoAttack on 25 of them, not the 100: measured here, standard AutoAttack at 4/255 on 100 digit images
# of demo/fare-s0 took 16 min 59 s of one thread (Square's 5,000 queries on every robust image), so 100 per set
# on the 8 sets and at 1/255 on the 4 audio/video sets is about 8-9 h of one thread for the 6 models: out of
# reach in one working session here. 25 keeps every subset one batch (AutoAttack's rows depend on the batch).
AA_SUBSET = 25
GROUPS = {
    "linf": ["--threats", "linf-pgd", "--eps", "1/255,2/255,4/255", "--steps", "50"],
    "l2": ["--threats", "l2-pgd", "--eps", "0.5,1.0", "--steps", "50"],
    "corruptions": ["--threats", "corruptions"],
    # AutoAttack last: on a robust demo tower it costs about 17 min per 100 digit images on one thread
    "aa-4": ["--threats", "autoattack-linf", "--eps", "4/255", "--autoattack-subset", str(AA_SUBSET)],
    "aa-1": ["--modalities", "audio,video", "--threats", "autoattack-linf", "--eps", "1/255",
             "--autoattack-subset", str(AA_SUBSET)],
}
FULL_GRID = tuple(GROUPS)
PGD_ONLY = ("linf",)


def models() -> list[tuple[str, tuple[str, ...]]]:
    out = [("demo/backbone", FULL_GRID)]
    for seed in SEEDS:
        out += [(f"demo/{m}-s{seed}", FULL_GRID if seed == 0 else PGD_ONLY) for m in METHODS]
    return out


def evaluate(model: str, group: str, runs: Path) -> None:
    out = runs / model.split("/", 1)[1] / group
    if (out / "summary.parquet").is_file():
        return
    cmd = [str(BIN), "run", "--model", model, "--suite", "clean", "--datasets", TEST_SETS, "--split", "test",
           "--n-samples", str(N_SAMPLES), "--logit-scale", "model", "--out", str(out), "--no-progress",
           *GROUPS[group]]
    run_logged(cmd, runs / "logs" / f"{model.split('/', 1)[1]}-{group}.log")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=Path, default=ROOT / "leaderboards" / "demo" / "runs")
    ap.add_argument("--only", nargs="*", default=None, help="groups to run (default: all)")
    ap.add_argument("--lanes", type=int, default=2, help="runs at a time, one thread each (default: 2)")
    args = ap.parse_args()
    jobs = [(m, g) for m, groups in models() for g in groups if args.only is None or g in args.only]
    # group by group, linf first: the claims table needs only clean and L-inf PGD, so it is complete earliest
    jobs.sort(key=lambda job: FULL_GRID.index(job[1]))
    with ThreadPoolExecutor(max_workers=args.lanes) as pool:
        for f in [pool.submit(evaluate, m, g, args.runs) for m, g in jobs]:
            f.result()


if __name__ == "__main__":
    main()
