"""Write docs/results-demo.md from the committed test-split run folders (leaderboards/demo/runs/<model>/<group>/),
written by scripts/evaluate_demo_zoo.py. Every figure, setting and caveat on the page is computed here from those
folders and from the val-split tuning evidence (experiments/demo-tuning/); nothing is typed by hand.

    .venv/bin/python scripts/results_demo.py [--runs leaderboards/demo/runs] [--out docs/results-demo.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import evaluate_demo_zoo  # noqa: E402
import tuning_table  # noqa: E402

from rlbind_bench.results.stats import mean_corruption_accuracy, paired_bootstrap_mean_diff, wilson_interval  # noqa: E402
from rlbind_bench.threats.spec import parse_number  # noqa: E402

MODALITIES = ("image", "thermal", "audio", "video")
TRAIN_EPS = tuning_table.TRAIN_EPS
DIGITS = tuning_table.DIGITS
HELD_OUT = tuning_table.HELD_OUT
METHODS = ("fare", "tecoa", "pmg-aft", "rlbind")
BASELINES = ("fare", "tecoa", "pmg-aft")
SEEDS = (0, 1, 2)
BACKBONE = "demo/backbone"
MARGIN = 0.02  # "kept": the 95% CI of the change stays above -2 points
KEYS = ["model", "dataset", "sample_id", "threat", "norm", "eps", "severity"]


def load(runs: Path) -> tuple[pd.DataFrame, dict[str, dict]]:
    folders = sorted(p.parent for p in runs.glob("*/*/samples.parquet"))
    if not folders:
        raise SystemExit(f"no <model>/<group>/samples.parquet under {runs}")
    frame = pd.concat([pd.read_parquet(f / "samples.parquet") for f in folders], ignore_index=True)
    # Every group of a model evaluates the same samples, so their clean rows are one cell seen several times.
    frame = frame.drop_duplicates(KEYS)
    meta = {str(f.relative_to(runs)): json.loads((f / "run.json").read_text()) for f in folders}
    return frame, meta


def eps_label(eps: float, norm: str) -> str:
    return f"{eps * 255:.3g}/255" if norm == "Linf" else f"{eps:g}"


def outcomes(frame: pd.DataFrame, model: str, dataset: str, threat: str, eps: float | None = None) -> pd.Series:
    rows = frame[(frame["model"] == model) & (frame["dataset"] == dataset) & (frame["threat"] == threat)]
    if eps is not None:
        rows = rows[(rows["eps"] - eps).abs() < 1e-9]
    return rows.set_index("sample_id")["correct"].astype(float).sort_index()


def seed_mean(frame, method: str, dataset: str, threat: str, eps=None) -> tuple[pd.Series, list[float]]:
    """Per sample, the outcome averaged over the method's seeds; and each seed's accuracy."""
    per_seed = [outcomes(frame, f"demo/{method}-s{s}", dataset, threat, eps) for s in SEEDS]
    joined = pd.concat(per_seed, axis=1, join="inner")
    return joined.mean(axis=1), [float(s.mean()) for s in per_seed]


def compare(frame, method: str, reference: str | None, dataset: str, threat: str, eps=None) -> dict:
    """method's seeds (pooled per sample) minus the reference (the backbone, or another method's seeds)."""
    ours, ours_seeds = seed_mean(frame, method, dataset, threat, eps)
    if reference is None:
        ref = outcomes(frame, BACKBONE, dataset, threat, eps)
        ref_seeds = [float(ref.mean())] * len(SEEDS)
    else:
        ref, ref_seeds = seed_mean(frame, reference, dataset, threat, eps)
    ref, ours = ref.align(ours, join="inner")
    ci = paired_bootstrap_mean_diff(ref.to_numpy(), ours.to_numpy(), rng=0)
    per_seed = np.array(ours_seeds) - np.array(ref_seeds)
    return {"ci": ci, "n": len(ours), "seed_mean": float(per_seed.mean()), "seed_sd": float(per_seed.std(ddof=1)),
            "ours": float(ours.mean()), "ref": float(ref.mean())}


def fmt_cmp(c: dict) -> str:
    ci = c["ci"]
    return (f"{ci.diff:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}] (n {c['n']}; per seed {c['seed_mean']:+.3f} ± "
            f"{c['seed_sd']:.3f})")


def answer_raise(c: dict) -> str:
    ci = c["ci"]
    return "**yes**" if ci.low > 0 else ("**no** (lower)" if ci.high < 0 else "**no** (not distinguishable)")


def answer_kept(c: dict) -> str:
    ci = c["ci"]
    if ci.low > -MARGIN:
        return "**yes**"
    # a CI wholly below 0 is a loss; one that only reaches below the margin is too wide to show either
    return "**no** (lower)" if ci.high < 0 else f"**not shown** (the CI reaches below -{MARGIN * 100:.0f} points)"


def best_baseline() -> tuple[str, dict[str, float]]:
    """The rule, applied before any test figure: the baseline whose chosen configuration has the highest val score."""
    evidence = ROOT / "experiments" / "demo-tuning"
    chosen = tuning_table.choices(evidence)
    scores = {m: tuning_table.val_score(evidence / f"{chosen[m]}-eval") for m in BASELINES}
    return max(scores, key=lambda m: (scores[m], -BASELINES.index(m))), scores


def claims(frame) -> list[str]:
    best, scores = best_baseline()
    lines = [
        "## Claims", "",
        "Each row pools the three training seeds of a fine-tune: per test sample, its outcome averaged over the seeds;",
        "the change is the mean over samples of (ours - reference), with a paired bootstrap 95% CI over samples, and",
        "beside it the mean ± sd over seeds of the per-seed change. Robust = L-inf PGD-50 at the modality's training",
        "eps (4/255 image and thermal, 1/255 audio and video). \"Raises\": CI above 0. \"Kept\": CI above "
        f"-{MARGIN * 100:.0f} points (non-inferiority); a CI wholly below 0 is a loss, one in between is not shown "
        "either way at this sample size.",
        f"The best baseline, chosen on val before any test figure (rule: highest val score S of its tuned "
        f"configuration, `docs/tuning-demo.md`): **{best}** (S: "
        + ", ".join(f"{m} {s:.3f}" for m, s in scores.items()) + ").", "",
        "| modality | claim | change | answer |", "|---|---|---|---|"]
    tally: dict[str, list[str]] = {}
    for m in MODALITIES:
        d, h, eps = DIGITS[m], HELD_OUT[m], TRAIN_EPS[m]
        rows = [
            ("robust above the backbone (digits)", compare(frame, "rlbind", None, d, "linf-pgd", eps), answer_raise),
            (f"robust above the best baseline, {best} (digits)", compare(frame, "rlbind", best, d, "linf-pgd", eps),
             answer_raise),
            ("clean accuracy kept vs the backbone (digits)", compare(frame, "rlbind", None, d, "clean"), answer_kept),
            ("stage 2 raises robust over its own stage 1 (digits)",
             compare(frame, "rlbind", "rlbind-stage1", d, "linf-pgd", eps), answer_raise),
            (f"zero-shot transfer kept: clean on held-out {h} vs the backbone",
             compare(frame, "rlbind", None, h, "clean"), answer_kept),
            (f"zero-shot transfer above the best baseline, {best}: clean on held-out {h}",
             compare(frame, "rlbind", best, h, "clean"), answer_raise),
        ]
        lines += [f"| {m} | {claim} | {fmt_cmp(c)} | {ans(c)} |" for claim, c, ans in rows]
        for claim, c, ans in rows:
            # one line per claim over the modalities: the claim without its modality's dataset names
            tally.setdefault(claim.replace(h, "<held-out>"), []).append(f"{m} {ans(c).split('**')[1]}")
    lines += ["", "In short (answers per modality):", ""]
    lines += [f"- {claim}: {', '.join(answers)}" for claim, answers in tally.items()]
    lines += ["", "Zero-shot transfer of every fine-tune (clean accuracy on the held-out test sets, change vs the "
              "backbone, pooled over seeds):", "",
              "| modality | held-out set | backbone | " + " | ".join(METHODS) + " |", "|---" * (3 + len(METHODS)) + "|"]
    for m in MODALITIES:
        h = HELD_OUT[m]
        ref = outcomes(frame, BACKBONE, h, "clean").mean()
        cells = []
        for method in METHODS:
            c = compare(frame, method, None, h, "clean")
            cells.append(f"{c['ours']:.3f} ({c['ci'].diff:+.3f} [{c['ci'].low:+.3f}, {c['ci'].high:+.3f}])")
        lines.append(f"| {m} | {h} | {ref:.3f} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def acc_cell(frame, model, dataset, threat, eps=None) -> str:
    o = outcomes(frame, model, dataset, threat, eps)
    if o.empty:
        return "–"  # noqa: RUF001 (en dash: "not run" in the published tables)
    return f"{o.mean():.3f}" + ("" if len(o) >= 100 else f" (n {len(o)})")


def mca(frame, model, dataset) -> str:
    # corruption rows: attack "corruptions", threat the corruption's label, severity 1-5
    rows = frame[(frame["model"] == model) & (frame["dataset"] == dataset) & (frame["attack"] == "corruptions")]
    if rows.empty:
        return "–"  # noqa: RUF001
    accs = rows.groupby(["threat", "severity"])["correct"].mean()
    by_corruption = {c: accs.xs(c, level=0).tolist() for c in accs.index.get_level_values(0).unique()}
    return f"{mean_corruption_accuracy(by_corruption):.3f}"


def autoattack_eps(modality: str) -> list[float]:
    """The AutoAttack eps the test grid (scripts/evaluate_demo_zoo.py) runs on `modality`, from its groups."""
    found = set()
    for args in evaluate_demo_zoo.GROUPS.values():
        if "autoattack-linf" not in args[args.index("--threats") + 1].split(","):
            continue
        if "--modalities" in args and modality not in args[args.index("--modalities") + 1].split(","):
            continue
        found.update(parse_number(e, "evaluate_demo_zoo --eps") for e in args[args.index("--eps") + 1].split(","))
    return sorted(found)


def grid(frame) -> list[str]:
    models = [BACKBONE] + [f"demo/{m}-s0" for m in (*METHODS, "rlbind-stage1")]
    linf = sorted(frame[frame["threat"] == "linf-pgd"]["eps"].dropna().unique())
    l2 = sorted(frame[frame["threat"] == "l2-pgd"]["eps"].dropna().unique())
    lines = ["## The full grid (backbone and seed 0 of each fine-tune)", "",
             "AutoAttack cells run on a fixed subset of each test set (the Settings say how many; their n is shown).",
             ""]
    for m in MODALITIES:
        aa = autoattack_eps(m)
        head = (["model", "clean"] + [f"PGD-50 L-inf {eps_label(e, 'Linf')}" for e in linf]
                + [f"PGD-50 L2 {eps_label(e, 'L2')}" for e in l2]
                + [f"AutoAttack {eps_label(e, 'Linf')}" for e in aa] + ["mean corruption acc."])
        for dataset in (DIGITS[m], HELD_OUT[m]):
            lines += [f"### {m}: {dataset}", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
            for model in models:
                cells = [acc_cell(frame, model, dataset, "clean")]
                cells += [acc_cell(frame, model, dataset, "linf-pgd", e) for e in linf]
                cells += [acc_cell(frame, model, dataset, "l2-pgd", e) for e in l2]
                cells += [acc_cell(frame, model, dataset, "autoattack-linf", e) for e in aa]
                cells.append(mca(frame, model, dataset))
                lines.append(f"| {model} | " + " | ".join(cells) + " |")
            lines.append("")
    return lines


def seeds_table(frame) -> list[str]:
    lines = ["## Every seed: clean and L-inf PGD-50 at the training eps (test split)", "",
             "| modality | dataset | method | " + " | ".join(f"seed {s}" for s in SEEDS) + " | mean ± sd |",
             "|---" * (4 + len(SEEDS)) + "|"]
    for m in MODALITIES:
        for dataset in (DIGITS[m], HELD_OUT[m]):
            for method in (*METHODS, "rlbind-stage1"):
                for threat, eps, label in (("clean", None, "clean"), ("linf-pgd", TRAIN_EPS[m], "robust")):
                    accs = [outcomes(frame, f"demo/{method}-s{s}", dataset, threat, eps).mean() for s in SEEDS]
                    lines.append(f"| {m} | {dataset} | {method} {label} | " + " | ".join(f"{a:.3f}" for a in accs)
                                 + f" | {np.mean(accs):.3f} ± {np.std(accs, ddof=1):.3f} |")
    return [*lines, ""]


# threat-spec fields that describe rather than set (the page states the settings; run.json keeps everything)
PROSE = ("name", "description", "modalities", "spaces")


def setting(key: str, value, norm: str | None) -> str:
    if key == "eps" and isinstance(value, list):
        return "[" + ", ".join(eps_label(v, norm) for v in value) + "]"
    return str(value)


# AutoAttack spec fields whose zero or empty value means "the reference's own" (threats/spec.py)
REFERENCE_DEFAULT = {"steps": "the reference's 100 iterations", "attacks_to_run": "the version's sub-attacks"}


def describe(threat: dict) -> str:
    parts = []
    for k, v in threat.items():
        if k in PROSE:
            continue
        text = setting(k, v, threat.get("norm"))
        if threat.get("attack") == "autoattack" and k in REFERENCE_DEFAULT and not v:
            text += f" ({REFERENCE_DEFAULT[k]})"
        parts.append(f"{k}={text}")
    return ", ".join(parts)


def step_sizes(run: dict) -> str:
    """The PGD step size each cell used (run.json's effective_step_size), as a fraction of its eps."""
    ratios = set()
    for cell in run.get("cells", []):
        step = cell["config"].get("effective_step_size")
        eps = float(cell["cell"].split("|")[3]) if step else 0.0
        if step and eps:
            ratios.add(f"eps/{eps / step:.3g}")
    return f"; step size used: {', '.join(sorted(ratios))}" if ratios else ""


def narrowed(run: dict) -> str:
    """AutoAttack's fixed subset and the batch it ran in (its rows depend on the batch), from run.json."""
    subsets = {(c["config"]["subset"]["n"], c["config"]["subset"]["rule"]) for c in run.get("cells", [])
               if c["config"].get("subset")}
    if not subsets:
        return ""
    batches = sorted(set(run.get("batch_sizes", {}).values()))
    return "".join(f"; AutoAttack on a fixed subset of {n} samples per dataset (`--autoattack-subset`: {rule})"
                   for n, rule in sorted(subsets)) + f", batch size {', '.join(map(str, batches))}"


def settings(frame, meta) -> list[str]:
    """What ran, read from the run folders (never restated by hand)."""
    lines = ["## Settings (from the run folders' run.json)", ""]
    seen = set()
    for name, run in sorted(meta.items()):
        group = name.split("/", 1)[1]
        if group in seen:
            continue
        seen.add(group)
        cfg = run.get("config", {})
        threats = ", ".join(f"{t.get('name')} ({describe(t)})" for t in run.get("threats", [])
                            if t.get("name") != "clean")
        lines.append(f"- `{group}`: split {cfg.get('split')}, up to {cfg.get('n_samples')} samples per dataset, "
                     f"seed {cfg.get('seed')}, logit scale {cfg.get('logit_scale')}; {threats or 'clean only'}"
                     + step_sizes(run) + narrowed(run))
    seconds: dict[str, list[float]] = {}
    for name, run in meta.items():
        seconds.setdefault(name.split("/", 1)[1], []).append(float(run.get("seconds", 0.0)))
    lines += ["", "Evaluation time here (run.json `seconds`: one thread per run, two runs at a time on the 2-core "
              "machine, sometimes beside training jobs): " + ", ".join(
                  f"`{g}` {sum(v) / 60:.0f} min over {len(v)} models ({min(v) / 60:.0f}-{max(v) / 60:.0f} min each)"
                  for g, v in sorted(seconds.items())) + "."]
    scales: dict[str, set[str]] = {}
    for run in meta.values():
        for dataset, scale in run.get("logit_scales", {}).items():
            scales.setdefault(dataset, set()).add(f"{scale:.2f}")
    lines += ["", "Logit scale each dataset was evaluated at (run.json `logit_scales`, every model): " + ", ".join(
        f"{d} {' / '.join(sorted(v))}" for d, v in sorted(scales.items())) + "."]
    n = frame[frame["threat"] == "clean"].groupby(["model", "dataset"])["sample_id"].nunique()
    per_dataset = n.groupby(level=1).agg(["min", "max"])
    lines += ["", "Samples per test set: " + ", ".join(
        f"{d} {r['min']}" + ("" if r["min"] == r["max"] else f"-{r['max']}") for d, r in per_dataset.iterrows()) + "."]
    aa = frame[frame["threat"] == "autoattack-linf"].groupby("dataset")["sample_id"].nunique()
    if len(aa):
        lines.append("AutoAttack subsets: " + ", ".join(f"{d} {k}" for d, k in aa.items()) + " samples.")
    return [*lines, ""]


def autoattack_vs_pgd(frame) -> list[str]:
    """Where AutoAttack ran, PGD-50 at the same eps on the same samples: how far the claims' attack (PGD-50)
    overstates robust accuracy against the stronger ensemble."""
    aa_rows = frame[frame["threat"] == "autoattack-linf"]
    if aa_rows.empty:
        return []
    pairs = {}
    for (model, dataset, eps), rows in aa_rows.groupby(["model", "dataset", "eps"]):
        aa = rows.set_index("sample_id")["correct"].astype(float).sort_index()
        pgd = outcomes(frame, model, dataset, "linf-pgd", eps).reindex(aa.index)
        if len(aa) and not pgd.isna().any():
            pairs[(model, dataset, eps)] = (pgd, aa)
    if not pairs:
        return []
    only_pgd = sum(int(((p == 1) & (a == 0)).sum()) for p, a in pairs.values())
    only_aa = sum(int(((p == 0) & (a == 1)).sum()) for p, a in pairs.values())
    n = sum(len(a) for _, a in pairs.values())
    gap, worst = max((p.mean() - a.mean(), key) for key, (p, a) in pairs.items())
    lines = [f"- AutoAttack against PGD-50 (the claims' attack) at the same eps on the same {n} subset samples "
             f"({len(pairs)} cell{'s' if len(pairs) > 1 else ''}): PGD-50 leaves {only_pgd} samples correct that AutoAttack breaks, AutoAttack "
             f"{only_aa} that PGD-50 broke; the largest accuracy gap is {gap:+.3f} ({worst[0]}, {worst[1]}, "
             f"{eps_label(worst[2], 'Linf')}). At the training eps on the digits sets (PGD-50 / AutoAttack, same "
             "samples):", "",
             "| model | " + " | ".join(MODALITIES) + " |", "|---" * (1 + len(MODALITIES)) + "|"]
    for model in sorted({k[0] for k in pairs}, key=lambda m: (m != BACKBONE, m)):
        cells = []
        for m in MODALITIES:
            pa = next((v for (mo, d, e), v in pairs.items()
                       if mo == model and d == DIGITS[m] and abs(e - TRAIN_EPS[m]) < 1e-9), None)
            cells.append("–" if pa is None else f"{pa[0].mean():.2f} / {pa[1].mean():.2f} (n {len(pa[1])})")  # noqa: RUF001
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def not_run(runs: Path) -> list[str]:
    """The groups of the test grid (scripts/evaluate_demo_zoo.py) that have no finished run folder yet."""
    return [f"{model.split('/', 1)[1]}/{group}" for model, groups in evaluate_demo_zoo.models() for group in groups
            if not (runs / model.split("/", 1)[1] / group / "summary.parquet").is_file()]


def caveats(frame, runs: Path) -> list[str]:
    lines = ["## Caveats (computed)", ""]
    missing = not_run(runs)
    if missing:
        lines.append(f"- Not run yet ({len(missing)} run folders of scripts/evaluate_demo_zoo.py; their cells show "
                     f"\"–\"): " + ", ".join(f"`{m}`" for m in missing) + ".")  # noqa: RUF001
    for m in MODALITIES:
        for dataset in (DIGITS[m], HELD_OUT[m]):
            k = outcomes(frame, BACKBONE, dataset, "clean")
            lo, hi = wilson_interval(int(k.sum()), len(k))
            lines.append(f"- {dataset}: {len(k)} test samples; the backbone's clean accuracy {k.mean():.3f} has a 95% "
                         f"Wilson interval [{lo:.3f}, {hi:.3f}] (width {hi - lo:.3f}).")
    lines += autoattack_vs_pgd(frame)
    lines.append("- Thermal is simulated (a rendering of the digits and garments), not a thermal camera.")
    return [*lines, ""]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=Path, default=ROOT / "leaderboards" / "demo" / "runs")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results-demo.md")
    args = ap.parse_args()
    frame, meta = load(args.runs)
    lines = ["# Demo zoo results (test split; written by scripts/results_demo.py, do not edit)", "",
             "The backbone learned from the pretraining mix (digits, Fashion-MNIST, letters); every fine-tune saw the "
             "digits train split only. Test figures were computed once, after every choice was made on val "
             "(`docs/tuning-demo.md`). Held-out sets: Fashion-MNIST (image, simulated thermal, video) and human "
             "recordings of the spoken letters (audio), never seen by a fine-tune.", ""]
    pending_linf = [m for m in not_run(args.runs) if m.endswith("/linf")]
    if pending_linf:  # the claims pool every seed of every fine-tune: all or nothing
        lines += ["## Claims", "", f"Not computed yet: {len(pending_linf)} models lack their clean and L-inf PGD "
                  "run (Caveats).", ""]
    else:
        lines += claims(frame)
    lines += grid(frame)
    lines += [] if pending_linf else seeds_table(frame)
    lines += settings(frame, meta) + caveats(frame, args.runs)
    args.out.write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
