"""One stage of the one-shot device benchmark; benchmarks/device.sh runs them in order, each in its own process,
and each appends its Markdown block to --out as soon as it has measured it (a kill keeps what came before).

    python benchmarks/device_bench.py STAGE --out FILE --work DIR [--mode device|dry-run]

Stages (cheapest first): env (card, torch, CUDA, memory), pgd (PGD-k against the compute bound and torchattacks,
fp32 and bf16), agreement (bf16 against fp32), batch (the auto batch size and one attacked batch's memory),
autoattack (project against pyautoattack), plan (`run --plan`'s totals for the full suite on 4 modalities, in
benchmarks/_device_plan.py). `--mode device`: the LanguageBind-format ViT-L/14 towers (random init) on CUDA;
`dry-run`: the tiny towers on CPU with few samples and steps, the same code end to end. --work holds what the
stages share: the checkpoints, the photos and the eps the pgd stage chose.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import _report  # benchmarks/_report.py: these scripts run as `python benchmarks/X.py`
import torch
from _attacks import (
    bound,
    make_batches,
    project_autoattack,
    project_pgd,
    reference_autoattack,
    tiled,
    timed,
    torchattacks_pgd,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DTYPES = {"fp32": None, "bf16": torch.bfloat16}
CLASSES = ["cat", "coffee", "rocket", "astronaut"]  # rlbind_bench.data.photos.PHOTOS, 3 crops each
TEMPLATE = "a photo of a {}."
# eps tried, largest first: a random-init tower may lose every sample at the first step of a large eps, and a
# PGD that exits at once measures nothing; the pgd stage keeps the largest eps half the samples survive.
EPS_CANDIDATES = (1 / 255, 0.5 / 255, 0.25 / 255, 0.125 / 255, 0.0625 / 255)


@dataclass(frozen=True)
class Sizes:
    tower: str  # checkpoint_factory size
    device: str
    n: int  # samples of the pgd, agreement and AutoAttack-free stages
    batch: int
    steps: int  # PGD-k
    aa_n: int  # AutoAttack samples
    aa_dtype: str
    plan_samples: int  # per modality
    plan_precision: str
    plan_steps: int | None = None  # --steps of the plan (None: the full suite's own, 100)
    plan_probe: int = 8  # samples the plan's probe runs the cells on (8: `run --plan`'s own)
    threads: int | None = None  # CPU intra-op threads; None: torch's default


SIZES = {
    # ViT-L/14 fwd+bwd is ~0.3 TFLOP per image: 64 x 10 passes x 3 (bound, project, peer) take seconds in bf16,
    # ~15 s in fp32 (TF32 off); AutoAttack's Square (5000 queries on the survivors) is what limits aa_n.
    "device": Sizes("vit-l", "cuda", 64, 32, 10, 8, "bf16", 1000, "bf16"),
    # One thread: for tiny towers, thread hand-offs on a shared CPU cost more than the arithmetic (AutoAttack
    # took many times longer with two).
    "dry-run": Sizes("tiny", "cpu", 16, 8, 5, 4, "fp32", 1000, "fp32", plan_steps=10, plan_probe=2, threads=1),
}


class Bench:
    """The stage's sizes, device and output file; `emit` appends a block and prints it."""

    def __init__(self, mode: str, out: Path, work: Path):
        self.mode, self.out, self.work = mode, out, work
        self.sizes = SIZES[mode]
        self.device = torch.device(self.sizes.device)
        if self.sizes.threads:
            torch.set_num_threads(self.sizes.threads)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise SystemExit("device mode needs CUDA (torch.cuda.is_available() is False); use --dry-run on CPU")
        work.mkdir(parents=True, exist_ok=True)

    @property
    def card(self) -> str:
        return torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "CPU (dry run)"

    def header(self, title: str, dtype: str) -> str:
        # The device machine's copy of the tree has no .git: device.sh's caller names the commit there.
        commit = os.environ.get("RLBIND_BENCH_COMMIT") or _report.commit() or "unknown"
        cuda = f", CUDA {torch.version.cuda}" if self.device.type == "cuda" else ""
        return (f"#### Device benchmark, {title}: {self.card}, torch {torch.__version__}{cuda}, {dtype}, "
                f"commit {commit} ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")

    def emit(self, text: str) -> None:
        _report.emit(text, self.out)

    def checkpoint(self, modality: str, text_from: Path | None = None) -> Path:
        """The work folder's random-init checkpoint for `modality`, built once (atomically: a killed build
        leaves no half folder for the next stage to load)."""
        from rlbind_bench.encoders.checkpoint_factory import build_languagebind_checkpoint, text_tower_state

        final = self.work / f"ckpt-{self.sizes.tower}-{modality}"
        if not final.is_dir():
            tmp = final.with_name(final.name + ".tmp")
            text = text_tower_state(text_from) if text_from else None
            build_languagebind_checkpoint(tmp, modality, size=self.sizes.tower, seed=0, text_state=text)
            tmp.rename(final)
        return final


@dataclass
class ImageSetup:
    encoder: object
    class_emb: torch.Tensor
    base: torch.Tensor  # the real photos, preprocessed, on CPU

    def classifier(self, dtype: str):
        from rlbind_bench.zeroshot import ZeroShotClassifier

        return ZeroShotClassifier(self.encoder, "image", self.class_emb, autocast_dtype=DTYPES[dtype]).eval()


def image_setup(b: Bench) -> ImageSetup:
    from rlbind_bench.data.photos import prepare_photos
    from rlbind_bench.encoders.registry import load_encoder
    from rlbind_bench.modalities import get_handler
    from rlbind_bench.zeroshot import build_class_embeddings

    encoder = load_encoder(str(b.checkpoint("image"))).to(b.device).eval().requires_grad_(False)
    photos = prepare_photos(b.work / "photos")
    cfg = encoder.preprocess_config("image")
    base = torch.stack([get_handler("image").load(f, cfg) for c in CLASSES for f in sorted((photos / c).glob("*.png"))])
    with torch.no_grad():
        class_emb = build_class_embeddings(encoder, CLASSES, [TEMPLATE]).to(b.device)
    return ImageSetup(encoder, class_emb, base)


def predictions(clf, x: torch.Tensor, batch: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([clf(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])


def inputs(b: Bench, setup: ImageSetup, n: int) -> tuple[torch.Tensor, list[str]]:
    return tiled(setup.base, n).to(b.device), [f"s{i}" for i in range(n)]


def alpha(eps: float, steps: int) -> float:
    return 2.5 * eps / steps  # torchattacks' and the project's usual step: 2.5 eps / k


def chosen_eps(b: Bench, setup: ImageSetup) -> tuple[float, str]:
    """The pgd stage's eps (work/eps.json), or chosen now: the largest candidate under which the project's
    PGD-k leaves at least half of one fp32 batch correct."""
    saved = b.work / "eps.json"
    if saved.is_file():
        data = json.loads(saved.read_text())
        return data["eps"], data["how"]
    clf = setup.classifier("fp32")
    x, ids = inputs(b, setup, b.sizes.batch)
    y = predictions(clf, x, b.sizes.batch)
    steps, tried = b.sizes.steps, []
    eps = EPS_CANDIDATES[-1]
    for cand in EPS_CANDIDATES:
        acc = project_pgd(clf, [(x, y, ids)], cand, steps, alpha(cand, steps), len(CLASSES), b.device)
        tried.append(f"{cand * 255:.3g}/255: {acc:.2f}")
        if acc >= 0.5:
            eps = cand
            break
    how = f"chosen on {len(x)} samples, robust acc fp32 PGD-{steps} " + ", ".join(tried)
    saved.write_text(json.dumps({"eps": eps, "how": how}))
    return eps, how


# ------------------------------------------------------------------------------------------------ stages
def stage_env(b: Bench) -> None:
    from importlib import metadata

    from rlbind_bench.plan.devices import device_peak

    lines = [b.header("environment", "fp32 and bf16"), ""]
    if b.device.type == "cuda":
        free, total = torch.cuda.mem_get_info(b.device)
        props = torch.cuda.get_device_properties(b.device)
        lines.append(f"card {b.card}, {props.multi_processor_count} SMs, memory {total / 2**30:.1f} GiB "
                     f"({free / 2**30:.1f} GiB free); driver CUDA {torch.version.cuda}; "
                     f"TF32 matmul {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}")
    else:
        lines.append(f"CPU {platform.machine()}, {torch.get_num_threads()} threads (dry run)")
    peaks = []
    for dtype in DTYPES:
        peak = device_peak(b.device, dtype)
        n = 8192 if b.device.type == "cuda" else 512
        a = torch.randn(n, n, device=b.device, dtype=DTYPES[dtype] or torch.float32)
        t, _ = timed(lambda a=a: [a @ a for _ in range(5)], 2, b.device)
        peaks.append(f"{dtype}: peak {peak.flops / 1e12:.4g} TFLOP/s ({peak.source}), "
                     f"{n}^3 matmul measured {5 * 2 * n ** 3 / t / 1e12:.4g} TFLOP/s")
    lines.append("; ".join(peaks))
    versions = []
    for dist in ("torch", "transformers", "tokenizers", "huggingface-hub", "languagebind", "torchattacks",
                 "pyautoattack", "decord", "numpy"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} missing")
    lines += [f"python {platform.python_version()}; " + ", ".join(versions), ""]
    b.emit("\n".join(lines))


def stage_pgd(b: Bench) -> None:
    s = b.sizes
    setup = image_setup(b)
    eps, how = chosen_eps(b, setup)
    steps = s.steps
    b.emit("\n".join([
        b.header(f"PGD-{steps} throughput, `{s.tower}` image tower", "fp32 and bf16"), "",
        f"LanguageBind-format `{s.tower}` image tower (random init, checkpoint_factory), {s.n} samples tiled from "
        f"the 12 scikit-image photos, labels the model's own predictions in each dtype, batch {s.batch}; L-inf "
        f"PGD-{steps}, eps {eps * 255:.3g}/255 ({how}). Compute bound: samples x steps x the fwd+bwd FLOPs "
        "(FlopCounterMode) at the card's peak; measured bound: the same passes in a plain loop.", "",
        "| dtype | compute bound s | measured bound s | rlbind-bench PGD s | torchattacks PGD s | project / compute "
        "bound | project / measured bound | project / torchattacks | robust acc project | robust acc torchattacks "
        "| measured bound TFLOP/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]))
    for dtype in DTYPES:
        b.emit(_pgd_row(b, setup, dtype, eps))
    b.emit("")


def _pgd_row(b: Bench, setup: ImageSetup, dtype: str, eps: float) -> str:
    from rlbind_bench.plan.cost import count_flops
    from rlbind_bench.plan.devices import device_peak

    s = b.sizes
    steps, a = s.steps, alpha(eps, s.steps)
    clf = setup.classifier(dtype)
    x, ids = inputs(b, setup, s.n)
    y = predictions(clf, x, s.batch)
    batches = make_batches(x, y, ids, s.batch)
    _, both = count_flops(clf, x[:1])
    compute = s.n * steps * both / device_peak(b.device, dtype).flops
    bound(clf, batches[:1], 1)  # warm-up: kernels, allocator, autotuning
    t_bound, _ = timed(lambda: bound(clf, batches, steps), 1, b.device)
    t_proj, acc_proj = timed(lambda: project_pgd(clf, batches, eps, steps, a, len(CLASSES), b.device), 1, b.device)
    t_peer, acc_peer = timed(lambda: torchattacks_pgd(clf, batches, eps, steps, a), 1, b.device)
    flag = "" if acc_proj == acc_peer else " (differ)"
    return (f"| {dtype} | {compute:.3f} | {t_bound:.3f} | {t_proj:.3f} | {t_peer:.3f} | {t_proj / compute:.2f} x | "
            f"{t_proj / t_bound:.2f} x | {t_proj / t_peer:.2f} x | {acc_proj:.3f}{flag} | {acc_peer:.3f} | "
            f"{s.n * steps * both / t_bound / 1e12:.3g} |")


def stage_agreement(b: Bench) -> None:
    s = b.sizes
    setup = image_setup(b)
    eps, _ = chosen_eps(b, setup)
    x, ids = inputs(b, setup, s.n)
    clf32, clf16 = setup.classifier("fp32"), setup.classifier("bf16")
    with torch.no_grad():
        l32 = torch.cat([clf32(x[i:i + s.batch]) for i in range(0, s.n, s.batch)])
        l16 = torch.cat([clf16(x[i:i + s.batch]) for i in range(0, s.n, s.batch)])
    y = l32.argmax(1)  # the fp32 model's predictions label both: bf16's clean accuracy is the agreement
    agree = float((l16.argmax(1) == y).float().mean())
    diff = (l16 - l32).abs()
    batches = make_batches(x, y, ids, s.batch)
    a = alpha(eps, s.steps)
    rob32 = project_pgd(clf32, batches, eps, s.steps, a, len(CLASSES), b.device)
    rob16 = project_pgd(clf16, batches, eps, s.steps, a, len(CLASSES), b.device)
    b.emit("\n".join([
        b.header(f"bf16 agreement with fp32, `{s.tower}` image tower", "bf16 against fp32"), "",
        f"{s.n} samples; logits (scale 100, float32 outside the autocast); labels: the fp32 predictions; "
        f"project PGD-{s.steps} L-inf eps {eps * 255:.3g}/255 on each.", "",
        "| equal argmax (clean) | max abs logit diff | mean abs logit diff | robust acc fp32 | robust acc bf16 |",
        "|---|---|---|---|---|",
        f"| {agree:.3f} | {float(diff.max()):.4g} | {float(diff.mean()):.4g} | {rob32:.3f} | {rob16:.3f} |", ""]))


def _peak_memory(b: Bench, fn) -> tuple[float, float]:
    """(seconds, peak bytes) of fn(): allocated on the GPU (torch.cuda.max_memory_allocated), or the process's
    peak resident memory on CPU (ru_maxrss, which never goes down: an upper bound)."""
    if b.device.type == "cuda":
        torch.cuda.synchronize(b.device)
        torch.cuda.reset_peak_memory_stats(b.device)
        t, _ = timed(fn, 1, b.device)
        return t, float(torch.cuda.max_memory_allocated(b.device))
    t, _ = timed(fn, 1, b.device)
    return t, float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def stage_batch(b: Bench) -> None:
    s = b.sizes
    setup = image_setup(b)
    eps, _ = chosen_eps(b, setup)
    steps = 2
    what = "torch.cuda.max_memory_allocated" if b.device.type == "cuda" else "peak RSS of the process (CPU)"
    b.emit("\n".join([
        b.header(f"auto batch size, `{s.tower}` image tower", "fp32 and bf16"), "",
        f"`--batch-size auto` (rlbind_bench.batching.resolve_batch_size, attacking plan), then one batch of that "
        f"size attacked with the project's PGD-{steps} (eps {eps * 255:.3g}/255); memory: {what}.", "",
        "| dtype | auto batch | memory free before GiB | peak of the attacked batch GiB | peak / free | PGD seconds "
        "| fwd+bwd samples/s |", "|---|---|---|---|---|---|---|"]))
    for dtype in DTYPES:
        b.emit(_batch_row(b, setup, dtype, eps, steps))
    b.emit("")


def _batch_row(b: Bench, setup: ImageSetup, dtype: str, eps: float, steps: int) -> str:
    from rlbind_bench.batching import available_host_bytes, resolve_batch_size

    clf = setup.classifier(dtype)
    size = resolve_batch_size("auto", clf, lambda: setup.base[0], b.device, needs_grad=True, n_samples=1 << 20)
    x, ids = inputs(b, setup, size)
    y = predictions(clf, x, min(size, 256))
    if b.device.type == "cuda":
        torch.cuda.empty_cache()
        free = float(torch.cuda.mem_get_info(b.device)[0])
    else:
        free = float(available_host_bytes() or 0)
    t, peak = _peak_memory(b, lambda: project_pgd(clf, [(x, y, ids)], eps, steps, alpha(eps, steps), len(CLASSES),
                                                  b.device))
    return (f"| {dtype} | {size} | {free / 2**30:.2f} | {peak / 2**30:.2f} | {peak / free:.2f} | {t:.3f} | "
            f"{size * steps / t:.1f} |")


def stage_autoattack(b: Bench) -> None:
    s = b.sizes
    setup = image_setup(b)
    eps, _ = chosen_eps(b, setup)
    clf = setup.classifier(s.aa_dtype)
    x, ids = inputs(b, setup, s.aa_n)
    y = predictions(clf, x, s.aa_n)
    batches = make_batches(x, y, ids, s.aa_n)
    bound(clf, batches, 1)  # warm-up, outside both timings
    t_proj, acc_proj = timed(lambda: project_autoattack(clf, batches, eps, len(CLASSES), b.device), 1, b.device)
    t_ref, acc_ref = timed(lambda: reference_autoattack(clf, batches, eps, len(CLASSES), b.device), 1, b.device)
    verdict = "equal" if acc_proj == acc_ref else "UNEQUAL: the project's AutoAttack differs from the reference"
    b.emit("\n".join([
        b.header(f"AutoAttack standard, `{s.tower}` image tower", s.aa_dtype), "",
        f"{s.aa_n} samples (labels: own predictions), one batch, L-inf eps {eps * 255:.3g}/255, "
        f"{min(9, len(CLASSES) - 1)} target classes, seed 0; project first, then pyautoattack "
        "(`run_standard_evaluation`), after a warm-up pass.", "",
        "| side | seconds | robust acc | ratio |", "|---|---|---|---|",
        f"| rlbind-bench AutoAttack standard | {t_proj:.2f} | {acc_proj:.3f} | {t_proj / t_ref:.2f} x pyautoattack |",
        f"| pyautoattack | {t_ref:.2f} | {acc_ref:.3f} | |", "", f"robust accuracy: {verdict}", ""]))


def stage_plan(b: Bench) -> None:
    from _device_plan import plan_stage

    plan_stage(b)


STAGES = {"env": stage_env, "pgd": stage_pgd, "agreement": stage_agreement, "batch": stage_batch,
          "autoattack": stage_autoattack, "plan": stage_plan}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=list(STAGES))
    ap.add_argument("--mode", choices=list(SIZES), default="device")
    ap.add_argument("--out", type=Path, required=True, help="Markdown file the block is appended to")
    ap.add_argument("--work", type=Path, required=True, help="folder the stages share (checkpoints, photos, eps)")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    STAGES[args.stage](Bench(args.mode, args.out, args.work))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
