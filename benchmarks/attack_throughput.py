"""Attack throughput against the physical bound and the peers, on one model and one set of samples.

    .venv/bin/python benchmarks/attack_throughput.py [--size tiny|small|vit-b] [--n 32] [--steps 10]
                                                    [--model demo/rlbind-s0] [--autoattack] [--append docs/benchmarks.md]

(a) bound: steps x one forward+backward of the zero-shot classifier per batch;
(b) the project's PGD-k (threats/pgd.py, through the Attack interface the runner uses);
(c) torchattacks' PGD-k in a plain loop;
(d) with --autoattack: AutoAttack standard through the project and through pyautoattack directly;
(e) corruptions per second, per corruption, for image, audio and video inputs;
(f) clean throughput and the text-embedding cost.
Prints ratios project/bound and project/peer with robust accuracies side by side (they must agree), and
appends a Markdown block with machine, torch version and commit to --append.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from fractions import Fraction
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="tiny", help="LanguageBind-format checkpoint size (tiny|small|vit-b|vit-l)")
    ap.add_argument("--model", default=None, help="a model spec instead (e.g. demo/rlbind-s0), on demo images")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    # 1/255 by default: at 2/255 the random-init tiny tower loses every sample at the first step, which
    # measures nothing.
    ap.add_argument("--eps", type=lambda v: float(Fraction(v)), default=1 / 255, help="e.g. 1/255")
    ap.add_argument("--autoattack", action="store_true")
    ap.add_argument("--append", type=Path, default=None)
    ap.add_argument("--skip-corruptions", action="store_true", help="leave out (e): the corruption rates")
    args = ap.parse_args()
    torch.manual_seed(0)

    from rlbind_bench.data.photos import prepare_photos
    from rlbind_bench.encoders.checkpoint_factory import build_languagebind_checkpoint
    from rlbind_bench.encoders.registry import load_encoder
    from rlbind_bench.modalities import get_handler
    from rlbind_bench.zeroshot import ZeroShotClassifier, build_class_embeddings

    if args.model:
        # A zoo/user model on real demo images (the demo model of the performance issue).
        from rlbind_bench.paths import default_data_root

        enc = load_encoder(args.model)
        root = default_data_root() / "demo-digits-image"
        files = sorted((root / "test").rglob("*.png"))[: args.n]
        if not files:
            raise SystemExit(f"no demo images under {root}: run `rlbind-bench data prepare demo` first")
        classes = (root / "classes.txt").read_text().split()
        what = f"`{args.model}` image tower, {len(files)} real demo digit images (64x64)"
    else:
        tmp = Path(tempfile.mkdtemp(prefix="rlbind-bench-"))
        ckpt = build_languagebind_checkpoint(tmp / "ckpt", "image", size=args.size, seed=0)
        photos = prepare_photos(tmp / "photos")
        enc = load_encoder(str(ckpt))
        files = sorted(photos.rglob("*.png"))
        classes = ["cat", "coffee", "rocket", "astronaut"]
        what = f"LanguageBind-format image tower `{args.size}` (random init), real photos (scikit-image, 224x224)"
    for p in enc.parameters():
        p.requires_grad_(False)
    cfg = enc.preprocess_config("image")
    base = torch.stack([get_handler("image").load(f, cfg) for f in files])
    x_all = tiled(base, args.n)
    ids = [f"s{i}" for i in range(len(x_all))]
    t_text, class_emb = timed(lambda: build_class_embeddings(enc, classes, ["a photo of a {}."] * 20))
    clf = ZeroShotClassifier(enc, "image", class_emb).eval()
    with torch.no_grad():
        y_all = torch.cat([clf(x_all[i:i + args.batch_size]).argmax(1) for i in range(0, len(x_all), args.batch_size)])
    batches = make_batches(x_all, y_all, ids, args.batch_size)
    eps, steps, alpha = args.eps, args.steps, 2.5 * args.eps / args.steps

    def clean():
        with torch.no_grad():
            for x, _, _ in batches:
                clf(x)

    t_clean, _ = timed(clean, 2)
    t_bound, _ = timed(lambda: bound(clf, batches, steps), 1)
    t_proj, acc_proj = timed(lambda: project_pgd(clf, batches, eps, steps, alpha, len(classes)), 1)
    t_peer, acc_peer = timed(lambda: torchattacks_pgd(clf, batches, eps, steps, alpha), 1)
    lines = [
        f"model: {what}; {len(x_all)} samples (labels: the model's own predictions, so all start correct), "
        f"batch {args.batch_size}; L-inf PGD-{steps}, eps {eps * 255:.3g}/255",
        "",
        "| measurement | seconds | samples/s | robust acc | ratio |",
        "|---|---|---|---|---|",
        f"| clean forward | {t_clean:.3f} | {len(x_all) / t_clean:.1f} | | |",
        f"| text embeddings ({len(classes)} classes x 20 templates) | {t_text:.3f} | | | |",
        f"| bound: {steps} x (fwd+bwd) | {t_bound:.3f} | {len(x_all) / t_bound:.1f} | | 1.00 |",
        f"| rlbind-bench PGD-{steps} | {t_proj:.3f} | {len(x_all) / t_proj:.1f} | {acc_proj:.3f} | "
        f"{t_proj / t_bound:.2f} x bound, {t_proj / t_peer:.2f} x torchattacks |",
        f"| torchattacks PGD-{steps} loop | {t_peer:.3f} | {len(x_all) / t_peer:.1f} | {acc_peer:.3f} | "
        f"{t_peer / t_bound:.2f} x bound |",
    ]
    if args.autoattack:
        def aa_project():
            return project_autoattack(clf, batches, eps, len(classes))

        def aa_reference():
            return reference_autoattack(clf, batches, eps, len(classes))

        # ABBA order, best of two each: neither side gets only the cold (first) or only the warm slot.
        t_aa1, acc_aa = timed(aa_project)
        t_ref1, acc_ref = timed(aa_reference)
        t_ref2, acc_ref2 = timed(aa_reference)
        t_aa2, acc_aa2 = timed(aa_project)
        assert (acc_aa, acc_ref) == (acc_aa2, acc_ref2), "AutoAttack is not deterministic given its seed"
        t_aa, t_ref = min(t_aa1, t_aa2), min(t_ref1, t_ref2)
        print(f"AutoAttack seconds, ABBA order: project {t_aa1:.1f}, reference {t_ref1:.1f}, "
              f"reference {t_ref2:.1f}, project {t_aa2:.1f}", flush=True)
        lines += [f"| rlbind-bench AutoAttack standard | {t_aa:.3f} | {len(x_all) / t_aa:.2f} | {acc_aa:.3f} | "
                  f"{t_aa / t_ref:.2f} x pyautoattack |",
                  f"| pyautoattack run_standard_evaluation | {t_ref:.3f} | {len(x_all) / t_ref:.2f} | {acc_ref:.3f} | |"]
    if not args.skip_corruptions:
        lines += ["", *corruption_rates()]
    commit = _report.commit()
    header = (f"### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {platform.machine()} "
              f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
              f"commit {commit}")
    text = "\n".join([header, "", *lines, ""])
    _report.emit(text, args.append)
    return 0


def corruption_rates() -> list[str]:
    from rlbind_bench.threats.corruptions import corrupt, list_corruptions

    g = torch.Generator().manual_seed(0)
    inputs = {"image": torch.rand(3, 224, 224, generator=g), "audio": torch.rand(16000, generator=g) * 0.2 - 0.1,
              "video": torch.rand(8, 3, 224, 224, generator=g)}
    rows = ["| modality | corruption | samples/s (severity 3) |", "|---|---|---|"]
    for modality, x in inputs.items():
        for name in list_corruptions(modality):
            t, _ = timed(lambda n=name, m=modality, x=x: corrupt(m, n, 3, x, seed=0, sample_id="a"), 2)
            rows.append(f"| {modality} | {name} | {1 / t:.1f} |")
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
