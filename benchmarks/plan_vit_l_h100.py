"""The plan of the full suite on LanguageBind-size towers for a card this machine does not have:
`run --suite full --plan-for CARD --plan-samples N` over image, audio, thermal and video ViT-L/14 towers
(checkpoint build --size vit-l), at fp32 and bf16.

    .venv/bin/python benchmarks/plan_vit_l_h100.py [--card H100] [--samples 1000] [--append docs/benchmarks.md]

FLOPs are counted here on one sample per modality; every pass is priced at the card's datasheet peak, so the
worst case is the compute bound and "expected" is the expected passes at the bound (nothing is probed: the
AutoAttack stages are priced on every clean-correct sample, the random towers' clean accuracy on the demo
digits). Divide by the fraction of peak a run reaches there (benchmarks/device.sh) for wall-clock hours.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import _report  # benchmarks/_report.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATASETS = {"image": "demo-digits-image", "audio": "demo-digits-audio", "thermal": "demo-digits-thermal-sim",
            "video": "demo-digits-video"}


def _hours(s: float) -> str:
    return f"{s / 3600:.2f} h"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--card", default="H100")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--append", type=Path, default=None)
    ap.add_argument("--save", type=Path, default=ROOT / "benchmarks" / "results",
                    help="folder the two plans are written to as JSON (what the tables are made from)")
    ap.add_argument("--from-saved", action="store_true",
                    help="write the tables from the plans already in --save instead of planning again")
    args = ap.parse_args()
    stem = f"plan-vit-l-{args.card.lower().replace(' ', '-')}"
    if args.from_saved:
        plans = {p: (json.loads((args.save / f"{stem}-{p}.json").read_text()), None) for p in ("fp32", "bf16")}
        return _emit(plans, args)

    from rlbind_bench.encoders.checkpoint_factory import build_languagebind_checkpoint, text_tower_state
    from rlbind_bench.plan.measure import run_measured

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ckpts = {"image": build_languagebind_checkpoint(work / "image", "image", size="vit-l")}
        text = text_tower_state(ckpts["image"])  # one text tower for all, as LanguageBind's checkpoints share it
        for m in ("audio", "thermal", "video"):
            ckpts[m] = build_languagebind_checkpoint(work / m, m, size="vit-l", seed=1, text_state=text)
        del text
        model = ",".join(f"{m}={p}" for m, p in ckpts.items())
        plans = {}
        for precision in ("fp32", "bf16"):
            out = work / f"plan-{precision}.json"
            measured = run_measured(["run", "--model", model, "--suite", "full", "--datasets", ",".join(DATASETS.values()),
                                     "--plan-for", args.card, "--plan-samples", str(args.samples), "--precision",
                                     precision, "--plan-json", str(out), "--no-progress", "--out", str(work / "o")])
            if measured.returncode != 0:
                print(measured.output, file=sys.stderr)
                return 1
            plans[precision] = (json.loads(out.read_text()), measured.seconds)
            args.save.mkdir(parents=True, exist_ok=True)
            (args.save / f"{stem}-{precision}.json").write_text(out.read_text())
    return _emit(plans, args)


def _emit(plans: dict, args) -> int:
    rows = []
    for precision, (plan, took) in plans.items():
        by_modality: dict[str, list[float]] = {}
        for c in plan["cells"]:
            acc = by_modality.setdefault(c["modality"], [0.0, 0.0, 0.0])
            acc[0] += c["flops"]
            acc[1] += c["worst_s"]
            acc[2] += c["expected_s"]
        for m, (flops, worst, expected) in by_modality.items():
            rows.append(f"| {precision} | {m} | {flops / 1e15:.0f} | {_hours(worst)} | {_hours(expected)} |")
        t = plan["totals"]
        rows.append(f"| {precision} | **all 4** | {t['flops'] / 1e15:.0f} | **{_hours(t['compute_bound_s'])}** | "
                    f"**{_hours(t['expected_s'])}** |")
        print(rows[-1], f"(plan took {took:.0f} s)" if took else "", flush=True)
    fp32 = plans["fp32"][0]
    families: dict[str, list[float]] = {}
    for c in fp32["cells"]:  # what dominates: the cells grouped by threat (the label before its norm/eps/sev)
        family = c["cell"].split(" ")[0].split(":")[0]  # one row for all corruptions
        acc = families.setdefault(family, [0.0, 0.0])
        acc[0] += c["worst_s"]
        acc[1] += c["expected_s"]
    total_worst, total_expected = fp32["totals"]["worst_case_s"], fp32["totals"]["expected_s"]
    share_rows = [f"| {name} | {w / total_worst:.1%} | {e / total_expected:.1%} |"
                  for name, (w, e) in sorted(families.items(), key=lambda kv: -kv[1][0]) if w > 0]
    text = "\n".join([
        f"## Plan: full suite, ViT-L/14 towers, {args.samples} samples x 4 modalities on {fp32['target']} "
        f"({time.strftime('%Y-%m-%d')}, commit {_report.commit()})",
        f"`benchmarks/plan_vit_l_h100.py`: `rlbind-bench run --suite full --plan-for {args.card} --plan-samples "
        f"{args.samples}` over `checkpoint build --size vit-l` towers (LanguageBind's released settings) on the demo "
        "digit sets; FLOPs counted here, every pass priced at the datasheet peak "
        f"({fp32['peak_flops'] / 1e12:.0f} TFLOP/s fp32, {plans['bf16'][0]['peak_flops'] / 1e12:.0f} bf16). "
        "Bound = all at-most passes at the peak; expected = the expected passes at the peak (AutoAttack's later "
        "sub-attacks on every clean-correct sample, as nothing is probed for another card; the random towers' "
        "clean accuracy on the digits, near chance, is what the early exit is estimated from, so 'expected' here "
        "shows the early exit of a model that is mostly wrong, not LanguageBind's). Corruption making and "
        "decoding are not priced for another card; the probes are, at most. PFLOP = 10^15 FLOP.",
        "",
        "| precision | modality | PFLOP (at most) | compute bound | expected at the bound |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "What dominates (fp32; each threat's share of the bound and of the expected time; the plans are in "
        "`benchmarks/results/`):",
        "",
        "| threat | share of the bound | share of expected |",
        "|---|---|---|",
        *share_rows])
    _report.emit(text, args.append)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
