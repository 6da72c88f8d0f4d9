"""The device benchmark's plan stage: `rlbind-bench run --model <ckpt> --suite full --n-samples 1000 --plan` for
the image, audio, thermal and video towers (one checkpoint each, one shared text tower), through the plan's
library call (rlbind_bench.plan.plan_run: one process, not four CLI start-ups).

The data are synthetic class folders (benchmarks/_synthetic.py: 10 classes from scikit-image's photos, hard
links up to the sample count): the plan prices each cell's passes per sample and scales them to the dataset's
sample count, and its expected early exit comes from the probe's clean accuracy on these samples, which for a
random-init tower is about chance (1/10): the expected times are those of a model that is mostly wrong, the
bound and worst-case times do not depend on the model's accuracy.
"""

from __future__ import annotations

from _synthetic import make_dataset

MODALITIES = ("image", "audio", "thermal", "video")


def _seconds(s: float | None) -> str:
    return "-" if s is None else f"{s:.4g}"


def plan_stage(b) -> None:
    from rlbind_bench.config import RunConfig, RunRequest
    from rlbind_bench.plan import plan_run
    from rlbind_bench.plan.build import PROBE_SAMPLES

    s = b.sizes
    steps = f" --steps {s.plan_steps}" if s.plan_steps else ""
    probe = "" if s.plan_probe == PROBE_SAMPLES else f" (probe on {s.plan_probe} samples, not {PROBE_SAMPLES})"
    b.emit("\n".join([
        b.header(f"cost plan of the full suite, `{s.tower}` towers, {s.plan_samples} samples x "
                 f"{len(MODALITIES)} modalities", s.plan_precision), "",
        f"`rlbind-bench run --model <{s.tower} checkpoint of the modality> --suite full --n-samples {s.plan_samples} "
        f"--precision {s.plan_precision} --device {s.device}{steps} --plan`{probe} per modality (random-init LanguageBind-format "
        "towers; synthetic class folders, 10 classes, benchmarks/_synthetic.py). Seconds for the whole "
        "modality; the plan's probe runs each cell of at most 200 passes per sample on its samples (expected), "
        "prices every pass at the card's peak (bound) and at the measured time per pass (worst case).", "",
        "| modality | cells | clean acc (probe) | GFLOP fwd+bwd / sample | batch | compute bound s | worst case s | "
        "expected s |", "|---|---|---|---|---|---|---|---|"]))
    totals = {"compute_bound_s": 0.0, "worst_case_s": 0.0, "expected_s": 0.0}
    image_ckpt = b.checkpoint("image")
    for modality in MODALITIES:
        ckpt = b.checkpoint(modality, text_from=image_ckpt)
        data = make_dataset(b.work / "data" / modality, modality, s.plan_samples, b.work / "photos-more")
        cfg = RunConfig(model=str(ckpt), suite="full", modalities=[modality], n_samples=s.plan_samples,
                        device=s.device, precision=s.plan_precision, steps=s.plan_steps)
        req = RunRequest(config=cfg, out=b.work / "plan-out", dataset_dirs={modality: str(data)}, progress=False,
                         command=["device_bench.py", "plan"])
        plan = plan_run(req, probe_samples=s.plan_probe)
        t = plan.totals
        for key in totals:
            totals[key] = None if totals[key] is None or t[key] is None else totals[key] + t[key]
        cost = next(iter(plan.costs.values()))
        acc = next(iter(plan.clean_accuracy.values()))
        b.emit(f"| {modality} | {len(plan.cells)} | {acc:.2f} | {cost.flops_backward / 1e9:.4g} | "
               f"{cost.batch_size} | {_seconds(t['compute_bound_s'])} | {_seconds(t['worst_case_s'])} | "
               f"{_seconds(t['expected_s'])} |")
    b.emit(f"| **all {len(MODALITIES)}** | | | | | {_seconds(totals['compute_bound_s'])} | "
           f"{_seconds(totals['worst_case_s'])} | {_seconds(totals['expected_s'])} |")
    hours = ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {_hours(v)}" for k, v in totals.items())
    b.emit(f"\nall {len(MODALITIES)} modalities: {hours}; expected / compute bound {_ratio(totals)}\n")


def _hours(s: float | None) -> str:
    return "-" if s is None else f"{s / 3600:.3g} h"


def _ratio(totals: dict) -> str:
    if not totals["compute_bound_s"] or totals["expected_s"] is None:
        return "- (no compute bound for this card)"
    return f"{totals['expected_s'] / totals['compute_bound_s']:.2f} x"

