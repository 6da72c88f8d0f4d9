"""Reproduce FARE's published zero-shot robustness through the open_clip backend (opt-in: needs the hub and data).

    .venv/bin/python scripts/reproduce_fare.py --data-root DIR [--export] [--eps 2] [--device cuda]
                                                [--model hf-hub:chs20/fare2-clip] [--datasets cifar10,...]

The published figure (Schlarmann et al., "Robust CLIP: Unsupervised Adversarial Fine-Tuning of Vision Embeddings
for Robust Large Vision-Language Models", ICML 2024, arXiv:2402.12336; numbers as in the authors' repository,
https://github.com/chs20/RobustVLM, README "Summary of results", checked there): the FARE^2 ViT-L/14 model
(hf-hub:chs20/fare2-clip), CLIP-only, average zero-shot accuracy over 13 datasets: clean 67.0 %, L-inf
eps=2/255 43.1 %, eps=4/255 20.5 % (FARE^4, hf-hub:chs20/fare4-clip: 61.1 / 45.9 / 32.4).
Their protocol (RobustVLM's CLIP_benchmark fork, bash/run_benchmark_adv.sh): AutoAttack `custom` APGD-CE +
APGD-T (this repo's `autoattack-custom` threat), the first 1000 test samples of each dataset, logits
100 * cos, CLIP_benchmark's class names and templates, datasets from benchmark/datasets.txt (below).
Per-dataset figures (CIFAR-10 alone, ...) are in the paper's tables and were not checked here, so none is
quoted: with --datasets naming a subset, the script prints its numbers without a published comparison.

DIR/<dataset>/<class name>/<image> is one folder per dataset (the first --n-samples test images), with
DIR/<dataset>/templates.json (CLIP_benchmark's templates for it). --export writes them from CLIP_benchmark's
webdataset copies on the Hugging Face hub (clip-benchmark/wds_*). Exit status: 0 when the average of all 13
datasets is within --tolerance points of the paper at every eps, 1 when not, 2 (one line on stderr) when the
model, the hub or the data cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlbind_bench.errors import UserError  # noqa: E402

# RobustVLM CLIP_benchmark/benchmark/datasets.txt, in its order (wds/ names of CLIP_benchmark).
DATASETS = ["vtab/cifar10", "stl10", "vtab/cifar100", "cars", "vtab/caltech101", "vtab/pets", "vtab/flowers",
            "vtab/dtd", "vtab/eurosat", "fgvc_aircraft", "vtab/pcam", "imagenet-r", "imagenet_sketch"]
# model -> {eps in 1/255: average zero-shot accuracy %}; 0 is clean (RobustVLM README, "Summary of results").
PUBLISHED = {"hf-hub:chs20/fare2-clip": {0: 67.0, 2: 43.1, 4: 20.5},
             "hf-hub:chs20/fare4-clip": {0: 61.1, 2: 45.9, 4: 32.4}}
SOURCE = "RobustVLM README (github.com/chs20/RobustVLM), Schlarmann et al. ICML 2024, arXiv:2402.12336"


def folder_name(dataset: str) -> str:
    return dataset.replace("/", "-")


def export(dataset: str, target: Path, n: int) -> None:
    """The first `n` test images of CLIP_benchmark's webdataset copy, as class folders + templates.json."""
    from clip_benchmark.datasets.builder import build_dataset

    url = f"https://huggingface.co/datasets/clip-benchmark/wds_{folder_name(dataset)}/tree/main"
    try:
        ds = build_dataset(f"wds/{dataset}", root=url, split="test", download=True)
        classes = [c.replace("/", " ") for c in ds.classes]
        for k, (img, label) in enumerate(ds):
            if k >= n:
                break
            (target / classes[label]).mkdir(parents=True, exist_ok=True)
            img.convert("RGB").save(target / classes[label] / f"{k:05d}.png")
    except Exception as exc:  # unreachable hub, missing curl, broken shard: all "cannot get the data here"
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UserError(f"cannot export {dataset} from {url}: {type(exc).__name__} {first}") from exc
    templates = [t.replace("{c}", "{}") for t in ds.templates]
    (target / "templates.json").write_text(json.dumps(templates))


def templates_for(folder: Path) -> list[str]:
    path = folder / "templates.json"
    if not path.is_file():
        raise UserError(f"{path} missing: rerun with --export, or write CLIP_benchmark's templates there")
    return json.loads(path.read_text())


def evaluate(encoder, model: str, folder: Path, args) -> dict[int, float]:
    from rlbind_bench.config import RunConfig
    from rlbind_bench.runner import RunRequest, run_evaluation

    cfg = RunConfig(model=model, suite="clean", threats=["autoattack-custom"], eps=[e / 255 for e in args.eps],
                    templates=templates_for(folder), device=args.device, batch_size=args.batch_size)
    outcome = run_evaluation(RunRequest(config=cfg, out=args.out / folder.name, dataset_dirs={"image": str(folder)},
                                        encoder=encoder, command=sys.argv))
    result = {}
    for _, row in outcome.summary.iterrows():
        eps = 0 if row["threat"] == "clean" else round(row["eps"] * 255)
        result[eps] = 100.0 * row["accuracy"]
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--export", action="store_true", help="write missing datasets from CLIP_benchmark's hub copies")
    p.add_argument("--model", default="hf-hub:chs20/fare2-clip", choices=sorted(PUBLISHED))
    p.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated (default: the paper's 13)")
    p.add_argument("--eps", type=lambda s: [int(e) for e in s.split(",")], default=[2], help="in 1/255, e.g. 2,4")
    p.add_argument("--n-samples", type=int, default=1000)
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch-size", default="auto")
    p.add_argument("--tolerance", type=float, default=2.0, help="points of accuracy")
    p.add_argument("--out", type=Path, default=Path("runs/reproduce-fare"))
    args = p.parse_args(argv)
    datasets = [d for d in args.datasets.split(",") if d]
    try:
        from rlbind_bench.encoders.registry import load_encoder

        encoder = load_encoder(args.model)
        folders = []
        for d in datasets:
            folder = args.data_root / folder_name(d)
            if not folder.is_dir():
                if not args.export:
                    raise UserError(f"dataset folder {folder} missing (give --export to write it from the hub)")
                export(d, folder, args.n_samples)
            folders.append(folder)
        results = {d: evaluate(encoder, args.model, f, args) for d, f in zip(datasets, folders, strict=True)}
    except UserError as exc:
        print(f"reproduce_fare: not reproducible here: {exc}", file=sys.stderr)
        return 2
    cols = [0, *args.eps]
    print("dataset".ljust(20) + "".join(("clean" if e == 0 else f"{e}/255").rjust(9) for e in cols))
    for d, r in results.items():
        print(d.ljust(20) + "".join(f"{r[e]:9.1f}" for e in cols))
    avg = {e: sum(r[e] for r in results.values()) / len(results) for e in cols}
    print("average".ljust(20) + "".join(f"{avg[e]:9.1f}" for e in cols))
    if sorted(datasets) != sorted(DATASETS):
        print("subset of the paper's datasets: no published figure to compare with")
        return 0
    paper = PUBLISHED[args.model]
    print("published".ljust(20) + "".join(f"{paper[e]:9.1f}" for e in cols) + f"   ({SOURCE})")
    ok = all(abs(avg[e] - paper[e]) <= args.tolerance for e in cols if e in paper)
    print("reproduced" if ok else f"NOT reproduced within {args.tolerance} points")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
