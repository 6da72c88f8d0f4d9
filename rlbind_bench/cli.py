"""rlbind-bench command line: parse, call the library, render. No logic of its own."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from rlbind_bench.errors import UserError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2



class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other user mistake
        raise UserError(f"{self.prog}: {message}")


def _console():
    from rich.console import Console

    # Logs and CI pipes are not terminals: give tables room instead of rich's 80-column default.
    return Console() if sys.stdout.isatty() else Console(width=160)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected MODALITY=PATH, got {text!r}")
    return key.strip(), value.strip()


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _eps_list(text: str) -> list[float]:
    from rlbind_bench.threats.base import parse_number

    return [parse_number(t, "--eps") for t in _csv(text)]


# ----------------------------------------------------------------------------------------------- run
def add_run(sub) -> None:
    p = sub.add_parser("run", help="evaluate a model: clean accuracy, attacks, corruptions -> Parquet")
    p.add_argument("--model", default=None, help="registered name, checkpoint folder, hub id or MODALITY=PATH,...")
    p.add_argument("--suite", default=None, help="clean | quick | full (default: quick with no --model, else clean)")
    p.add_argument("--threats", type=_csv, default=None, help="comma-separated threat names (clean is always run)")
    p.add_argument("--eps", type=_eps_list, default=None, help="override eps grid, e.g. 1/255,4/255")
    p.add_argument("--steps", type=int, default=None, help="override attack steps")
    p.add_argument("--modalities", type=_csv, default=None)
    p.add_argument("--datasets", type=_csv, default=None, help="names from datasets.yaml")
    p.add_argument("--datasets-file", type=Path, default=None)
    p.add_argument("--dataset-dir", type=_key_value, action="append", default=[], metavar="MODALITY=PATH",
                   help="a folder per class; class names = sorted sub-folders (repeatable)")
    p.add_argument("--templates", action="append", default=None, help="zero-shot template with {} (repeatable)")
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--split", default=None, help="evaluate this split of named datasets (e.g. val)")
    p.add_argument("--n-samples", type=int, default=None)
    p.add_argument("--batch-size", default="auto",
                   help="samples per batch, or auto (default): 32 on CPU, the largest power of two that fits "
                        "70%% of a GPU's free memory (rows do not depend on it, AutoAttack aside)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--logit-scale", type=float, default=100.0)
    p.add_argument("--out", type=Path, default=None, help="results folder (default: runs/<model>-<suite>)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic GPU algorithms (slower); CPU runs are deterministic anyway")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader worker processes that decode (and corrupt) ahead of the model; speed only "
                        "(default: 0 on CPU, min(8, cores - 1) on a GPU)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: the encoder under torch.autocast, logits in float32; changes the numbers, so it "
                        "enters run_id and config_hash")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the zero-shot classifier; recorded in run_id and config_hash")
    p.add_argument("--no-corruption-cache", action="store_true",
                   help="make corruptions in the main process and keep none on disk (default: made in the "
                        "workers, kept under $RLBIND_CACHE_DIR or the user cache dir, in corruptions/)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_run)


def _default_model() -> str:
    from rlbind_bench.encoders.registry import MODELS

    if "demo/rlbind" in MODELS:
        return "demo/rlbind"
    raise UserError("--model is required (the demo zoo is not installed)")


DEMO_DATASETS = ["demo-digits-image", "demo-digits-audio", "demo-digits-thermal-sim", "demo-digits-video"]


def cmd_run(args) -> int:
    import fnmatch

    from rlbind_bench.config import RunConfig
    from rlbind_bench.encoders.registry import MODELS
    from rlbind_bench.runner import RunRequest, run_evaluation

    model = args.model or _default_model()
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
    base_out = args.out or Path("runs") / f"{_slug(model)}-{suite}"
    for name in models:
        datasets = args.datasets
        if datasets is None and not dirs and name.startswith("demo/"):
            datasets = list(DEMO_DATASETS)
            _require_demo_data(args.data_root)
        cfg = RunConfig(model=name, suite=suite, modalities=args.modalities, datasets=datasets,
                        n_samples=args.n_samples, batch_size=args.batch_size, device=args.device, seed=args.seed,
                        logit_scale=args.logit_scale, templates=args.templates, threats=args.threats, eps=args.eps,
                        steps=args.steps, deterministic=args.deterministic, split=args.split,
                        workers=args.workers, precision=args.precision, compile=args.compile)
        out = base_out / _slug(name) if len(models) > 1 else base_out
        outcome = run_evaluation(RunRequest(config=cfg, out=out, data_root=args.data_root,
                                            datasets_file=args.datasets_file, dataset_dirs=dirs,
                                            progress=not args.no_progress,
                                            corruption_cache=not args.no_corruption_cache))
        render_summary(outcome.summary, title=name)
        skipped = sum(len(v) for v in outcome.run["skipped_files"].values())
        if skipped:
            _console().print(f"[yellow]{skipped} unreadable file(s) skipped; listed in {out / 'run.json'}[/]")
        _console().print(f"results: {out / 'samples.parquet'}, {out / 'summary.parquet'}, {out / 'run.json'}")
    return EXIT_OK


def _require_demo_data(data_root: Path | None) -> None:
    from rlbind_bench.paths import default_data_root

    root = data_root or default_data_root()
    if not all((root / name).is_dir() for name in DEMO_DATASETS):
        raise UserError(f"the demo data is not under {root}: run `rlbind-bench data prepare demo` first")


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text).strip("_")[:80] or "model"


def render_summary(summary, title: str = "") -> None:
    import math

    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{escape(title)} accuracy (95% Wilson CI)" if title else "accuracy (95% Wilson CI)")
    for col in ("modality", "dataset", "threat", "eps/sev", "n", "accuracy", "95% CI", "checks"):
        table.add_column(col, justify="right" if col in ("n", "accuracy") else "left")
    for r in summary.itertuples():
        level = f"{r.eps * 255:.3g}/255" if r.norm == "Linf" else (f"{r.eps:.3g}" if not math.isnan(r.eps) else "")
        if r.severity:
            level = f"sev {r.severity}"
        table.add_row(escape(r.modality), escape(r.dataset), escape(f"{r.threat} {r.norm}".strip()), level, str(r.n),
                      f"{r.accuracy:.3f}", f"[{r.ci_low:.3f}, {r.ci_high:.3f}]", escape(r.checks_failed or "ok"))
    _console().print(table)


# ---------------------------------------------------------------------------------------------- list
LISTERS: dict[str, Callable[[argparse.Namespace], list[tuple[str, str]]]] = {}


def _lister(name):
    def deco(fn):
        LISTERS[name] = fn
        return fn

    return deco


@_lister("models")
def _list_models(args):
    from rlbind_bench.encoders.registry import MODELS

    return [(m.name, m.description) for m in MODELS.values()]


@_lister("datasets")
def _list_datasets(args):
    from rlbind_bench.config import load_datasets

    return [(s.name, f"{s.modality}: {s.description}") for s in load_datasets(args.datasets_file).values()]


@_lister("threats")
def _list_threats(args):
    from rlbind_bench.threats.registry import load_threats

    return [(t.name, f"{t.attack} {t.norm} eps={[round(e, 6) for e in t.eps]} steps={t.steps}".strip())
            for t in load_threats().values()]


@_lister("suites")
def _list_suites(args):
    from rlbind_bench.suites import SUITES

    return [(s.name, s.description) for s in SUITES.values()]


def add_list(sub) -> None:
    p = sub.add_parser("list", help="list models, datasets, threats or suites")
    p.add_argument("what", choices=sorted(LISTERS))
    p.add_argument("--datasets-file", type=Path, default=None)
    p.set_defaults(func=cmd_list)


def cmd_list(args) -> int:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=args.what)
    table.add_column("name")
    table.add_column("description")
    for name, desc in LISTERS[args.what](args):
        table.add_row(escape(name), escape(desc))
    _console().print(table)
    return EXIT_OK


# ---------------------------------------------------------------------------------------- data, checkpoint
DATA_BUILDERS: dict[str, str] = {
    "photos": "rlbind_bench.data.photos:prepare_photos",
    "demo": "rlbind_bench.data.demo:prepare_demo",
}


def add_data(sub) -> None:
    p = sub.add_parser("data", help="build offline datasets from packaged sources")
    p.add_argument("action", choices=["prepare"])
    p.add_argument("name", choices=sorted(DATA_BUILDERS))
    p.add_argument("--data-root", type=Path, default=None, help="default: $RLBIND_DATA_ROOT or the user data dir")
    p.set_defaults(func=cmd_data)


def cmd_data(args) -> int:
    import importlib

    from rlbind_bench.paths import default_data_root

    module, fn = DATA_BUILDERS[args.name].split(":")
    root = (args.data_root or default_data_root()) / ("photos" if args.name == "photos" else "")
    result = getattr(importlib.import_module(module), fn)(root)
    _console().print(f"{args.name}: ready under {root}")
    if isinstance(result, dict):
        _console().print(result)
    return EXIT_OK


def add_checkpoint(sub) -> None:
    p = sub.add_parser("checkpoint", help="build a random-init LanguageBind-format checkpoint (tests, demos)")
    p.add_argument("action", choices=["build"])
    p.add_argument("--modality", default="image")
    p.add_argument("--size", default="tiny", help="tiny | small | vit-b | vit-l")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_checkpoint)


def cmd_checkpoint(args) -> int:
    from rlbind_bench.encoders.checkpoint_factory import TOWER_SIZES, build_languagebind_checkpoint
    from rlbind_bench.modalities import get_handler

    get_handler(args.modality)
    if args.size not in TOWER_SIZES:
        raise UserError(f"unknown size {args.size!r} (known: {', '.join(TOWER_SIZES)})")
    if (args.out / "config.json").is_file():
        _console().print(f"checkpoint exists: {args.out}")
        return EXIT_OK
    path = build_languagebind_checkpoint(args.out, args.modality, size=args.size, seed=args.seed)
    _console().print(f"LanguageBind-format {args.modality} checkpoint ({args.size}): {path}")
    return EXIT_OK


# --------------------------------------------------------------------------------------------- train
def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a hardened encoder: backbone, fare, tecoa, pmg-aft, rlbind-stage1/2, rlbind")
    p.add_argument("--recipe", required=True, help="a name in recipes/ or a YAML path")
    p.add_argument("--init", required=True, help="model spec to start from (as for run --model)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dataset-dir", type=_key_value, action="append", default=[], metavar="MODALITY=PATH")
    p.add_argument("--datasets", type=_csv, default=None, help="names from datasets.yaml (their --split is used)")
    p.add_argument("--split", default="train")
    p.add_argument("--templates", action="append", default=None)
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--max-samples", type=int, default=None, help="per modality")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--eps", type=_eps_list, default=None, help="training attack eps (one value)")
    p.add_argument("--attack-steps", type=int, default=None)
    p.add_argument("--attack-step-size", type=_eps_list, default=None)
    p.add_argument("--trainable", default=None,
                   help="tower | projection | lora (peft LoRA adapters on each tower, merged into the saved weights)")
    p.add_argument("--lora-r", type=int, default=None, help="LoRA rank (recipe lora.r, default 8)")
    p.add_argument("--lora-alpha", type=float, default=None, help="LoRA scale numerator (lora.alpha, default 16)")
    p.add_argument("--lora-targets", type=_csv, default=None,
                   help="module names to adapt inside each tower (default: the backend's, e.g. q_proj,k_proj,v_proj,"
                        "out_proj for LanguageBind)")
    p.add_argument("--modalities", type=_csv, default=None)
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--weight", action="append", default=[], type=_key_value, metavar="NAME=VALUE",
                   help="override a loss weight of the recipe (e.g. align=0), repeatable")
    p.add_argument("--align-weight", type=float, default=None, help="shorthand for --weight align=X")
    p.add_argument("--mmd-weight", type=float, default=None, help="shorthand for --weight mmd=X")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from rlbind_bench.train.api import TrainRequest, train

    def one(values, flag):
        if values is None:
            return None
        if len(values) != 1:
            raise UserError(f"{flag} takes one value")
        return values[0]

    overrides = {"steps": args.steps, "batch_size": args.batch_size, "seed": args.seed, "trainable": args.trainable,
                 "checkpoint_every": args.checkpoint_every,
                 "modalities": tuple(args.modalities) if args.modalities else None,
                 "optim.lr": args.lr, "optim.weight_decay": args.weight_decay, "optim.warmup": args.warmup,
                 "attack.eps": one(args.eps, "--eps"), "attack.steps": args.attack_steps,
                 "attack.step_size": one(args.attack_step_size, "--attack-step-size"),
                 "lora.r": args.lora_r, "lora.alpha": args.lora_alpha,
                 "lora.target_modules": tuple(args.lora_targets) if args.lora_targets else None}
    try:
        weights = {k: float(v) for k, v in args.weight}
    except ValueError:
        raise UserError("--weight takes NAME=NUMBER") from None
    if args.align_weight is not None:
        weights["align"] = args.align_weight
    if args.mmd_weight is not None:
        weights["mmd"] = args.mmd_weight
    if weights:
        from rlbind_bench.train.recipes import load_recipe

        overrides["weights"] = {**load_recipe(args.recipe).weights, **weights}
    dirs = dict(args.dataset_dir)
    for modality, path in dirs.items():
        if not Path(path).expanduser().is_dir():
            raise UserError(f"--dataset-dir {modality}={path}: folder does not exist")
    card = train(TrainRequest(recipe=args.recipe, init=args.init, out=args.out, dataset_dirs=dirs,
                              datasets=args.datasets, split=args.split, templates=args.templates,
                              data_root=args.data_root, overrides=overrides, max_samples=args.max_samples,
                              progress=not args.no_progress))
    for h in card["history"]:
        _console().print(f"{h['stage']}: {h['steps']} steps, loss {h['first_loss']} -> {h['last_loss']}")
    _console().print(f"model: {args.out} (rlbind-bench run --model {args.out})")
    return EXIT_OK


# ----------------------------------------------------------------------------------------------- main
from rlbind_bench.leaderboard.commands import add_check, add_leaderboard  # noqa: E402

COMMANDS = [add_run, add_list, add_data, add_checkpoint, add_train, add_leaderboard, add_check]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rlbind-bench", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("RLBIND_DEBUG") == "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not debug:
        warnings.filterwarnings("ignore")
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UserError as exc:
        if debug:
            raise
        print(f"rlbind-bench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rlbind-bench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
