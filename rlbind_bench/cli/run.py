"""`rlbind-bench run`: evaluate one model (or every registered model a glob matches) and print its summary."""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path

from rlbind_bench.cli.console import EXIT_OK, console, csv, eps_list, key_value, size
from rlbind_bench.cli.plan import show_plan
from rlbind_bench.config import RunConfig
from rlbind_bench.constants import DEFAULT_DEMO_MODEL, LOGIT_SCALE
from rlbind_bench.errors import UserError
from rlbind_bench.files import slugify, write_json_atomic
from rlbind_bench.paths import default_data_root

DEMO_DATASETS = ["demo-digits-image", "demo-digits-audio", "demo-digits-thermal-sim", "demo-digits-video"]


def add_run(sub) -> None:
    p = sub.add_parser("run", help="evaluate a model: clean accuracy, attacks, corruptions -> Parquet")
    p.add_argument("--model", default=None, help="registered name, checkpoint folder, hub id or MODALITY=PATH,...")
    p.add_argument("--suite", default=None, help="clean | quick | full (default: quick with no --model, else clean)")
    p.add_argument("--threats", type=csv, default=None, help="comma-separated threat names (clean is always run)")
    p.add_argument("--eps", type=eps_list, default=None, help="override eps grid, e.g. 1/255,4/255")
    p.add_argument("--steps", type=int, default=None, help="override attack steps")
    p.add_argument("--modalities", type=csv, default=None)
    p.add_argument("--datasets", type=csv, default=None, help="names from datasets.yaml")
    p.add_argument("--datasets-file", type=Path, default=None, help="your own dataset catalogue (YAML)")
    p.add_argument("--attacks-dir", type=Path, default=None, help="your own threat YAMLs instead of attacks/")
    p.add_argument("--dataset-dir", type=key_value, action="append", default=[], metavar="MODALITY=PATH",
                   help="a folder per class; class names = sorted sub-folders (repeatable)")
    p.add_argument("--templates", action="append", default=None, help="zero-shot template with {} (repeatable)")
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--split", default=None, help="evaluate this split of named datasets (e.g. val)")
    p.add_argument("--subset", default=None, help="a standard dataset's named subset, e.g. robustbench-5000 "
                   "(RobustBench's 5000 ImageNet val images; needs the robustbench package)")
    p.add_argument("--dataset-path", type=key_value, action="append", default=[], metavar="NAME=PATH",
                   help="read dataset NAME (rlbind-bench list datasets) from your copy at PATH (repeatable)")
    p.add_argument("--n-samples", type=int, default=None)
    p.add_argument("--batch-size", default="auto",
                   help="samples per batch, or auto (default): 32 on CPU, the largest power of two that fits "
                        "70%% of a GPU's free memory (rows do not depend on it, AutoAttack aside)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--logit-scale", default=LOGIT_SCALE,
                   help="scale of the zero-shot logits (default 100, LanguageBind's evaluation), or 'model': each "
                        "modality's own learned scale, capped at 100; the number used enters config_hash")
    p.add_argument("--out", type=Path, default=None, help="results folder (default: runs/<model>-<suite>)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic GPU algorithms (slower); CPU runs are deterministic anyway")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader worker processes that decode (and corrupt) ahead of the model; speed only "
                        "(default: 0 on CPU, min(8, cores - 1) on a GPU)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: the encoder under torch.autocast, logits in float32; changes the numbers, so it "
                        "enters run_id and config_hash")
    p.add_argument("--allow-large-eps", action="store_true",
                   help="run eps budgets that cover the input box (L-inf >= half its range, L2 >= its diameter)")
    p.add_argument("--transfer-from", default=None, metavar="SPEC",
                   help="source model of the transfer threats (--threats transfer-linf): inputs crafted on SPEC "
                        "(any --model value), evaluated on --model")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the zero-shot classifier; recorded in run_id and config_hash")
    p.add_argument("--no-corruption-cache", action="store_true",
                   help="make corruptions in the main process and keep none on disk (default: made in the "
                        "workers, kept under $RLBIND_CACHE_DIR or the user cache dir, in corruptions/)")
    p.add_argument("--cache-max-size", type=size, default=None, metavar="SIZE",
                   help="cap of the user cache, least recently used entries evicted first: e.g. 5G, 500M, 0 = no "
                        "cap (default: $RLBIND_CACHE_MAX_SIZE, else 5G; see `rlbind-bench cache info`)")
    p.add_argument("--autoattack-subset", type=int, default=None, metavar="N",
                   help="run the AutoAttack cells on a fixed subset of N samples per dataset (the N sample ids with "
                        "the smallest sha256; every other cell keeps every sample); in run_id and their config_hash")
    p.add_argument("--probe-samples", type=int, default=16, metavar="N",
                   help="inputs the gradient-masking probes run on per dataset (default 16; results are reused "
                        "across runs of the same model and data); 0 turns them off, and run.json then lists the "
                        "checks not run")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--plan", action="store_true",
                   help="print the cost plan (passes, FLOPs, time per cell; docs/benchmarks.md) instead of running; "
                        "writes nothing under --out")
    p.add_argument("--plan-json", type=Path, default=None, metavar="FILE",
                   help="with --plan (implied): also write the plan as JSON to FILE")
    p.add_argument("--plan-for", default=None, metavar="CARD",
                   help="with --plan (implied): price every pass at this card's datasheet peak (H100, H200, A100, "
                        "L4, 'H100 PCIe') instead of timing passes here; nothing is probed")
    p.add_argument("--plan-samples", type=int, default=None, metavar="N",
                   help="with --plan (implied): price every dataset as if it had N samples")
    p.set_defaults(func=cmd_run)


def _default_model(models) -> str:
    if DEFAULT_DEMO_MODEL in models:
        return DEFAULT_DEMO_MODEL
    raise UserError("--model is required (the demo zoo is not installed)")


def cmd_run(args) -> int:
    from rlbind_bench.encoders.registry import MODELS
    from rlbind_bench.runner import RunRequest, run_evaluation

    model = args.model or _default_model(MODELS)
    suite = args.suite or ("quick" if args.model is None else "clean")
    models = [model]
    if any(ch in model for ch in "*?["):
        models = [m for m in MODELS if fnmatch.fnmatch(m, model) and m != "demo/init"]
        if not models:
            raise UserError(f"--model {model!r} matches no registered model (rlbind-bench list models)")
    dirs = dict(args.dataset_dir)
    if len(dirs) != len(args.dataset_dir):
        raise UserError("--dataset-dir: each modality may be given once")
    for modality, path in dirs.items():
        if not Path(path).expanduser().is_dir():
            raise UserError(f"--dataset-dir {modality}={path}: folder does not exist")
    paths = dict(args.dataset_path)
    if len(paths) != len(args.dataset_path):
        raise UserError("--dataset-path: each dataset may be given once")
    for name, path in paths.items():
        if not Path(path).expanduser().is_dir():
            raise UserError(f"--dataset-path {name}={path}: folder does not exist")
    base_out = args.out or Path("runs") / f"{slugify(model, fallback='model')}-{suite}"
    plans: list[dict] = []
    for name in models:
        datasets = args.datasets
        if datasets is None and not dirs and not paths and name.startswith("demo/"):
            datasets = list(DEMO_DATASETS)
            _require_demo_data(args.data_root)
        cfg = RunConfig(model=name, suite=suite, modalities=args.modalities, datasets=datasets,
                        n_samples=args.n_samples, batch_size=args.batch_size, device=args.device, seed=args.seed,
                        logit_scale=args.logit_scale, templates=args.templates, threats=args.threats, eps=args.eps,
                        steps=args.steps, deterministic=args.deterministic, split=args.split,
                        workers=args.workers, precision=args.precision, compile=args.compile,
                        allow_large_eps=args.allow_large_eps, subset=args.subset, transfer_from=args.transfer_from,
                        probe_samples=args.probe_samples, autoattack_subset=args.autoattack_subset)
        out = base_out / slugify(name, fallback="model") if len(models) > 1 else base_out
        req = RunRequest(config=cfg, out=out, data_root=args.data_root, datasets_file=args.datasets_file,
                         attacks_dir=args.attacks_dir, dataset_dirs=dirs, dataset_paths=paths,
                         progress=not args.no_progress, corruption_cache=not args.no_corruption_cache,
                         cache_max_size=args.cache_max_size)
        if args.plan or args.plan_json or args.plan_for or args.plan_samples is not None:
            plans.append(show_plan(req, target=args.plan_for, samples=args.plan_samples))
            continue
        outcome = run_evaluation(req)
        render_summary(outcome.summary, title=name)
        skipped = sum(len(v) for v in outcome.run["skipped_files"].values())
        if skipped:
            console().print(f"[yellow]{skipped} unreadable file(s) skipped; listed in {out / 'run.json'}[/]")
        console().print(f"results: {out / 'samples.parquet'}, {out / 'summary.parquet'}, {out / 'run.json'}")
    if args.plan_json:
        write_json_atomic(args.plan_json, plans[0] if len(plans) == 1 else {"plans": plans})
        console().print(f"plan: {args.plan_json}")
    return EXIT_OK


def _require_demo_data(data_root: Path | None) -> None:
    root = data_root or default_data_root()
    if not all((root / name).is_dir() for name in DEMO_DATASETS):
        raise UserError(f"the demo data is not under {root}: run `rlbind-bench data prepare demo` first")


def render_summary(summary, title: str = "") -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{escape(title)} accuracy (95% Wilson CI)" if title else "accuracy (95% Wilson CI)")
    for col in ("modality", "dataset", "threat", "eps/sev", "n", "accuracy", "95% CI", "checks"):
        table.add_column(col, justify="right" if col in ("n", "accuracy") else "left")
    from rlbind_bench.leaderboard.metrics import eps_unit

    for r in summary.itertuples():
        level = f"{r.eps * 255:.3g}/255" if r.norm == "Linf" else (f"{r.eps:.3g}" if not math.isnan(r.eps) else "")
        if eps_unit(r.attack):  # dB threats: eps relative to each clip's peak
            level = f"{r.eps:.3g} {eps_unit(r.attack)}"
        if r.severity:
            level = f"sev {r.severity}"
        table.add_row(escape(r.modality), escape(r.dataset), escape(f"{r.threat} {r.norm}".strip()), level, str(r.n),
                      f"{r.accuracy:.3f}", f"[{r.ci_low:.3f}, {r.ci_high:.3f}]", escape(r.checks_failed or "ok"))
    console().print(table)
