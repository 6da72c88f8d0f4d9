"""`rlbind-bench train`: resolve the init model, the data and the recipe (stages), train, write the model card."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rlbind_bench.config import DatasetSpec, RunConfig, adhoc_dataset, load_datasets, named_datasets
from rlbind_bench.encoders.base import model_logit_scale
from rlbind_bench.encoders.registry import load_encoder
from rlbind_bench.errors import UserError
from rlbind_bench.files import write_text_atomic
from rlbind_bench.paths import default_data_root, user_cache_dir
from rlbind_bench.results.provenance import git_hash

# The evaluation's public entry point and its request type, nothing else of the runner.
from rlbind_bench.runner import RunRequest, run_evaluation
from rlbind_bench.train.data import load_training_data
from rlbind_bench.train.loop import Trainer
from rlbind_bench.train.objectives import OBJECTIVE_CLASSES
from rlbind_bench.train.recipes import Recipe, load_recipe, override


@dataclass
class TrainRequest:
    recipe: str
    init: str
    out: Path
    dataset_dirs: dict[str, str] = field(default_factory=dict)
    datasets: list[str] | None = None
    split: str = "train"
    templates: list[str] | None = None
    data_root: Path | None = None
    overrides: dict = field(default_factory=dict)
    max_samples: int | None = None
    progress: bool = True


def training_specs(req: TrainRequest) -> list[DatasetSpec]:
    if req.dataset_dirs:
        return [adhoc_dataset(m, p, req.templates) for m, p in req.dataset_dirs.items()]
    if not req.datasets:
        raise UserError("give training data: --dataset-dir MODALITY=PATH (repeatable) or --datasets NAMES")
    specs = [dataclasses.replace(s, split=req.split) for s in named_datasets(load_datasets(), req.datasets)]
    if req.templates:
        specs = [dataclasses.replace(s, templates=list(req.templates)) for s in specs]
    return specs


def stage_recipes(recipe: Recipe, overrides: dict | None = None) -> list[Recipe]:
    if recipe.objective != "composite":
        return [recipe]
    stages = []
    steps = recipe.stage_steps or tuple(recipe.steps // len(recipe.stages) for _ in recipe.stages)
    if len(steps) != len(recipe.stages):
        raise UserError(f"recipe {recipe.name}: stage_steps must have one entry per stage")
    total = sum(steps)
    known_anywhere = {k for name in recipe.stages for k in OBJECTIVE_CLASSES[load_recipe(name).objective].default_weights}
    unread = sorted(set((overrides or {}).get("weights") or {}) - known_anywhere)
    if unread:
        raise UserError(f"recipe {recipe.name}: no stage reads the loss weight {', '.join(unread)}")
    weights = dict((overrides or {}).get("weights") or {})
    for name, n in zip(recipe.stages, steps, strict=True):
        # Command-line overrides reach every stage; --steps is split across stages in stage_steps' ratio, and a
        # loss weight goes to the stages whose objective reads it.
        stage = load_recipe(name)
        known = OBJECTIVE_CLASSES[stage.objective].default_weights
        changes = {k: v for k, v in (overrides or {}).items() if k not in ("steps", "weights")}
        if any(k in known for k in weights):
            changes["weights"] = {**stage.weights, **{k: v for k, v in weights.items() if k in known}}
        stage = override(stage, **changes)
        n = round(n * recipe.steps / total) if total else n
        stages.append(dataclasses.replace(stage, steps=n, batch_size=recipe.batch_size, seed=recipe.seed))
    return stages


def train(req: TrainRequest) -> dict:
    recipe = override(load_recipe(req.recipe), **req.overrides)
    encoder = load_encoder(req.init)
    specs = training_specs(req)
    data = load_training_data(encoder, specs, req.data_root or default_data_root(), user_cache_dir() / "text",
                              req.max_samples)
    out = Path(req.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    history = []
    stages = stage_recipes(recipe, req.overrides)
    for i, stage in enumerate(stages):
        stage_out = out / f"stage{i + 1}-{stage.name}" if len(stages) > 1 else out
        # A composite's later stage starts from the earlier stage's result (already in `encoder`).
        trainer = Trainer(encoder, stage, data, stage_out, progress=req.progress, init_spec=req.init)
        rows = trainer.run()
        entry = {"stage": stage.name, "steps": stage.steps, "first_loss": _f(rows, 0), "last_loss": _f(rows, -1),
                 "trainable": stage.trainable, "trainable_params": trainer.n_trainable,
                 "logit_scale": {m: model_logit_scale(encoder, m) for m in trainer.modalities}}
        if stage.trainable == "lora":
            entry["lora"] = {**dataclasses.asdict(stage.lora), "adapted": trainer.lora_adapted}
        history.append(entry)
    encoder.save(out)
    metrics = validation_metrics(out, req)
    card = {"final_metrics": metrics, "recipe": dataclasses.asdict(recipe), "stages": [dataclasses.asdict(s) for s in stages],
            "init": req.init, "data": {m: data.datasets[m] for m in data.x},
            "classes": data.classes, "n_train": {m: len(y) for m, y in data.y.items()}, "git": git_hash(),
            "seconds": round(time.time() - started, 1), "history": history}
    write_text_atomic(out / "training.json", json.dumps(card, indent=2, default=str))
    write_model_card(out, card)
    return card


def validation_metrics(out: Path, req: TrainRequest) -> dict:
    """Clean accuracy of the trained model on the datasets' val split (named datasets only; never test)."""
    if not req.datasets:
        return {}
    cfg = RunConfig(model=str(out), suite="clean", datasets=list(req.datasets), split="val", n_samples=200)
    scratch = Path(tempfile.mkdtemp(prefix="rlbind-val-"))
    try:
        outcome = run_evaluation(RunRequest(config=cfg, out=scratch, data_root=req.data_root, progress=False))
    except UserError as exc:  # no val split: the card says so instead of failing the training
        return {"error": str(exc)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {f"{r.modality}/{r.dataset}": {"val_accuracy": round(float(r.accuracy), 4), "n": int(r.n),
                                          "ci": [round(float(r.ci_low), 4), round(float(r.ci_high), 4)]}
            for r in outcome.summary.itertuples()}


def _f(rows: list[dict], i: int):
    return float(rows[i]["loss"]) if rows else None


def _trained(h: dict) -> str:
    mode = h.get("trainable", "tower")
    n = h.get("trainable_params")
    if mode == "lora" and "lora" in h:
        lo = h["lora"]
        targets = ", ".join(sorted({t.rsplit(".", 1)[-1] for names in lo["adapted"].values() for t in names}))
        mode = f"lora r={lo['r']} alpha={lo['alpha']} dropout={lo['dropout']} on {targets}; merged"
    return f"{mode} ({n:,} params)" if n is not None else mode


def write_model_card(out: Path, card: dict) -> None:
    r = card["recipe"]
    n_train = card["n_train"]
    data = ", ".join(f"{m}: {d} ({n_train[m]} samples)" for m, d in card["data"].items())
    lines = [f"# {out.name}", "", f"Trained with `rlbind-bench train --recipe {r['name']} --init {card['init']}`.", "",
             "| field | value |", "|---|---|", f"| recipe | {r['name']} ({r['objective']}) |",
             f"| data | {data} |",
             f"| seed | {r['seed']} |", f"| git | {card['git']} |", f"| seconds | {card['seconds']} |", "",
             "## Stages", "", "| stage | steps | trained | first loss | last loss |", "|---|---|---|---|---|"]
    lines.extend(f"| {h['stage']} | {h['steps']} | {_trained(h)} | {h['first_loss']} | {h['last_loss']} |"
                 for h in card["history"])
    if card.get("final_metrics"):
        lines += ["", "## Final metrics (clean, val split, up to 200 samples per dataset)", "",
                  "| modality/dataset | accuracy | 95% CI | n |", "|---|---|---|---|"]
        for key, m in card["final_metrics"].items():
            if isinstance(m, dict) and "val_accuracy" in m:
                lines.append(f"| {key} | {m['val_accuracy']:.3f} | [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}] | {m['n']} |")
    lines += ["", "Full settings: `training.json`. Evaluate: `rlbind-bench run --model THIS_FOLDER`.", ""]
    write_text_atomic(out / "README.md", "\n".join(lines))
