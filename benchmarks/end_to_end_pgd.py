"""A whole `rlbind-bench run` of L-inf PGD-10 against a plain torchattacks PGD-10 script, on the same real photos.

    .venv/bin/python benchmarks/end_to_end_pgd.py [--n 600] [--size small] [--eps 1/255] [--append docs/benchmarks.md]

Both sides are timed as whole processes (interpreter start, imports, model load, PNG decoding, the attack,
writing results), one after the other on the same machine. The photos are `--n` crops (224x224, at seeded
offsets and scales) of the real photos that ship in scikit-image. The model is a random-init LanguageBind-format
image checkpoint, so to make the comparison stringent every crop is filed under the class the model itself
predicts: clean accuracy is 1.0 on both sides and nothing is skipped by rlbind-bench's "attack only the
correctly classified samples" rule. Robust accuracies are printed side by side and must agree within the
difference in what counts (rlbind-bench counts a sample as broken if any iterate misclassifies it; the plain
script checks the last iterate only, so it can only be higher).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import _report  # benchmarks/_report.py: these scripts run as `python benchmarks/X.py`

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

PLAIN_SCRIPT = r'''
import sys, time
from pathlib import Path
import torch, torchattacks
from PIL import Image
from rlbind_bench.encoders.registry import load_encoder
from rlbind_bench.modalities import get_handler
from rlbind_bench.zeroshot import ZeroShotClassifier, build_class_embeddings

ckpt, photos, eps, steps, batch = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
enc = load_encoder(ckpt).eval()
for p in enc.parameters():
    p.requires_grad_(False)
classes = (photos / "classes.txt").read_text().split()
clf = ZeroShotClassifier(enc, "image", build_class_embeddings(enc, classes, ["a photo of a {}."])).eval()
cfg = enc.preprocess_config("image")
files = sorted(photos.rglob("*.png"))
labels = [classes.index(f.parent.name) for f in files]
attack = torchattacks.PGD(clf, eps=eps, alpha=2.5 * eps / steps, steps=steps, random_start=True)
correct = 0
for i in range(0, len(files), batch):
    x = torch.stack([get_handler("image").load(f, cfg) for f in files[i:i + batch]])
    y = torch.tensor(labels[i:i + batch])
    adv = attack(x, y)
    with torch.no_grad():
        correct += int((clf(adv).argmax(1) == y).sum())
print(f"ROBUST {correct / len(files):.4f}")
'''


def make_photos(out: Path, n: int, ckpt: Path) -> None:
    """n seeded 224x224 crops of scikit-image photos, each filed under the model's own prediction."""
    import numpy as np
    import skimage.data
    import torch
    from PIL import Image

    from rlbind_bench.encoders.registry import load_encoder
    from rlbind_bench.modalities import get_handler
    from rlbind_bench.zeroshot import ZeroShotClassifier, build_class_embeddings

    sources = ["chelsea", "coffee", "rocket", "astronaut", "camera", "cat", "coins", "moon", "page", "horse"]
    classes = ["cat", "coffee", "rocket", "astronaut"]
    rng = np.random.default_rng(0)
    staging = out.parent / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(n):
        img = np.asarray(getattr(skimage.data, sources[k % len(sources)])())
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        img = img[..., :3].astype(np.uint8)
        h, w = img.shape[:2]
        side = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(np.ascontiguousarray(img[y0:y0 + side, x0:x0 + side])).resize((224, 224),
                                                                                           Image.BICUBIC)
        path = staging / f"photo{k:04d}.png"
        crop.save(path)
        files.append(path)
    enc = load_encoder(str(ckpt)).eval()
    clf = ZeroShotClassifier(enc, "image", build_class_embeddings(enc, classes, ["a photo of a {}."])).eval()
    cfg = enc.preprocess_config("image")
    with torch.no_grad():
        preds = torch.cat([clf(torch.stack([get_handler("image").load(f, cfg) for f in files[i:i + 64]])).argmax(1)
                           for i in range(0, len(files), 64)])
    for cls in classes:
        (out / cls).mkdir(parents=True, exist_ok=True)
    for f, p in zip(files, preds.tolist(), strict=True):
        f.rename(out / classes[p] / f.name)
    (out / "classes.txt").write_text("\n".join(classes) + "\n")


def timed_process(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--size", default="small")
    ap.add_argument("--eps", default="1/255")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--append", type=Path, default=None)
    args = ap.parse_args()
    eps = float(Fraction(args.eps))
    sys.path.insert(0, str(ROOT))
    from rlbind_bench.encoders.checkpoint_factory import build_languagebind_checkpoint

    tmp = Path(tempfile.mkdtemp(prefix="rlbind-e2e-"))
    ckpt = build_languagebind_checkpoint(tmp / "ckpt", "image", size=args.size, seed=0)
    photos = tmp / "photos"
    make_photos(photos, args.n, ckpt)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RLBIND_CACHE_DIR": str(tmp / "cache")}
    t_ours, _ = timed_process([PY, "-m", "rlbind_bench", "run", "--model", str(ckpt), "--dataset-dir",
                               f"image={photos}", "--templates", "a photo of a {}.", "--threats", "linf-pgd", "--eps", args.eps, "--steps",
                               str(args.steps), "--batch-size", str(args.batch_size), "--out", str(tmp / "run"),
                               "--no-progress"], env)
    import pandas as pd

    summary = pd.read_parquet(tmp / "run" / "summary.parquet")
    ours = summary[summary["threat"].str.contains("pgd")]
    acc_ours, acc_clean = float(ours["accuracy"].iloc[0]), float(summary[summary["threat"] == "clean"]["accuracy"].iloc[0])
    t_plain, out = timed_process([PY, "-c", PLAIN_SCRIPT, str(ckpt), str(photos), str(eps), str(args.steps),
                                  str(args.batch_size)], env)
    acc_plain = float(out.split("ROBUST")[1])
    commit = _report.commit()
    import torch

    text = "\n".join([
        f"### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: end to end, {platform.machine()} "
        f"{os.cpu_count()} cores, torch {torch.__version__}, commit {commit}",
        "",
        f"{args.n} real photo crops (scikit-image), LanguageBind-format image tower `{args.size}` (random init, "
        f"labels = its own predictions, clean accuracy {acc_clean:.3f}), L-inf PGD-{args.steps} eps {args.eps}, "
        f"batch {args.batch_size}; whole processes",
        "",
        "| process | seconds | robust acc |",
        "|---|---|---|",
        f"| `rlbind-bench run --threats linf-pgd` | {t_ours:.1f} | {acc_ours:.4f} |",
        f"| plain torchattacks PGD script | {t_plain:.1f} | {acc_plain:.4f} |",
        f"| ratio | {t_ours / t_plain:.2f} x | |",
        "",
    ])
    _report.emit(text, args.append)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
