"""The training loop shared by every recipe.

Stateless sampling: the batch of step t for modality m is drawn from a generator seeded by (seed, t, m),
and so is the attack's random start, so a run resumed from a checkpoint at step t continues exactly as an
uninterrupted one. Checkpoints (model, optimizer, step) are written atomically every `checkpoint_every`
steps into DIR/checkpoint; the final model lands in DIR itself (`rlbind-bench run --model DIR` loads it).
With `trainable: lora` both hold merged weights, and the checkpoint also the adapters (train/lora.py).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from rlbind_bench.config import DatasetSpec
from rlbind_bench.data.readers import InputSpaceDataset, index_dataset
from rlbind_bench.encoders.base import BoundEncoder
from rlbind_bench.errors import ConfigError, UserError
from rlbind_bench.train import lora, losses
from rlbind_bench.train.recipes import Recipe
from rlbind_bench.zeroshot import build_class_embeddings

ATTACKED = {"fare", "tecoa", "pmg-aft", "rlbind-stage1", "rlbind-stage2"}
NEEDS_ORIGINAL = {"fare", "pmg-aft", "rlbind-stage1"}


@dataclass
class TrainData:
    """Per modality: decoded training tensors in the input space, labels, class text embeddings."""

    x: dict[str, torch.Tensor] = field(default_factory=dict)
    y: dict[str, torch.Tensor] = field(default_factory=dict)
    class_text: dict[str, torch.Tensor] = field(default_factory=dict)
    low_high: dict[str, tuple[float, float]] = field(default_factory=dict)
    datasets: dict[str, str] = field(default_factory=dict)
    classes: dict[str, list[str]] = field(default_factory=dict)


def load_training_data(encoder: BoundEncoder, specs: list[DatasetSpec], data_root: Path, cache_dir: Path | None,
                       max_per_modality: int | None = None) -> TrainData:
    """Decode every training sample once (small demo-scale sets); unreadable files are skipped."""
    data = TrainData()
    for spec in specs:
        encoder.require(spec.modality)
        index = index_dataset(spec, data_root, max_per_modality)
        hints = {}
        if spec.modality == "audio":
            from rlbind_bench.runner import audio_clip_seconds

            hints["clip_seconds"] = audio_clip_seconds(index, encoder)
        ds = InputSpaceDataset(index, encoder.preprocess_config(spec.modality), hints)
        xs, ys = [], []
        for i in range(len(ds)):
            _, x, _ = ds[i]
            if x is not None:
                xs.append(x)
                ys.append(index.samples[i].label)
        if not xs:
            raise UserError(f"training dataset {spec.name}: no readable samples")
        space = encoder.input_space(spec.modality, **hints)
        data.x[spec.modality] = torch.stack(xs)
        data.y[spec.modality] = torch.tensor(ys)
        data.class_text[spec.modality] = build_class_embeddings(encoder, index.prompts, spec.template_list(),
                                                                cache_dir=cache_dir)
        data.low_high[spec.modality] = (space.low, space.high)
        data.datasets[spec.modality] = spec.name
        data.classes[spec.modality] = index.prompts
    return data


def step_generator(seed: int, step: int, salt: str) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}|{step}|{salt}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def sample_batch(y: torch.Tensor, batch_size: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(len(y), (batch_size,), generator=g)


def class_balanced_batches(ys: dict[str, torch.Tensor], batch_size: int, classes_per_batch: int,
                           g: torch.Generator) -> dict[str, torch.Tensor]:
    """The same classes in every modality's batch (stage 2): draw K shared classes, then batch_size / K
    samples of each class per modality (with replacement when a class is small)."""
    shared = set.intersection(*(set(y.tolist()) for y in ys.values()))
    if not shared:
        raise UserError("class-balanced batches need classes shared by the modalities' training sets")
    shared = sorted(shared)
    k = min(classes_per_batch, len(shared))
    chosen = [shared[i] for i in torch.randperm(len(shared), generator=g)[:k].tolist()]
    per_class = max(1, batch_size // k)
    out = {}
    for m, y in ys.items():
        idx = []
        for c in chosen:
            pool = (y == c).nonzero().squeeze(1)
            idx.append(pool[torch.randint(len(pool), (per_class,), generator=g)])
        out[m] = torch.cat(idx)
    return out


def lr_at(step: int, recipe: Recipe) -> float:
    o = recipe.optim
    if step < o.warmup:
        return o.lr * (step + 1) / o.warmup
    progress = (step - o.warmup) / max(1, recipe.steps - o.warmup)
    floor = o.lr * o.min_lr_ratio
    return floor + (o.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def pgd_maximise(loss_fn, x: torch.Tensor, *, eps: float, steps: int, step_size: float, low: float, high: float,
                 random_start: bool, g: torch.Generator) -> torch.Tensor:
    """L-inf PGD that maximises `loss_fn(x_adv)` (the recipe's inner loss); eps and step in input-space units."""
    eps_abs, alpha = eps, step_size
    delta = (torch.rand(x.shape, generator=g) * 2 - 1).to(x) * eps_abs if random_start else torch.zeros_like(x)
    x_adv = (x + delta).clamp(low, high).detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        grad, = torch.autograd.grad(loss_fn(x_adv), x_adv)
        with torch.no_grad():
            x_adv = x_adv + alpha * grad.sign()
            x_adv = (x + (x_adv - x).clamp(-eps_abs, eps_abs)).clamp(low, high)
    return x_adv.detach()


class Trainer:
    def __init__(self, encoder: BoundEncoder, recipe: Recipe, data: TrainData, out: Path, progress: bool = True,
                 init_spec: str = ""):
        self.encoder = encoder
        self.recipe = recipe
        self.data = data
        self.out = Path(out)
        self.progress = progress
        self.init_spec = init_spec
        wanted = recipe.modalities or tuple(data.x)
        missing = [m for m in wanted if m not in data.x]
        if missing:
            raise ConfigError(f"recipe {recipe.name} trains {', '.join(missing)} but no data was given for it")
        self.modalities = tuple(m for m in wanted if m in data.x)
        for p in encoder.parameters():
            p.requires_grad_(False)
        self.original = None
        if recipe.objective in NEEDS_ORIGINAL:
            # Copied before LoRA layers are added: the frozen reference is the plain initial model.
            self.original = copy.deepcopy(encoder).eval()
            for p in self.original.parameters():
                p.requires_grad_(False)
        self.lora_adapted: dict[str, list[str]] = {}
        self.lora_params: dict[str, torch.nn.Parameter] = {}
        self._lora_base: str | None = None
        if recipe.trainable == "lora":
            self.lora_params, self.lora_adapted = lora.attach(encoder, self.modalities, recipe.lora, recipe.seed)
            self.params = list(self.lora_params.values())
        else:
            self.params = []
            for m in self.modalities:
                module = encoder.tower(m)
                if recipe.trainable == "projection":
                    module = getattr(module, "projection", None) or module["projection"]
                for p in module.parameters():
                    p.requires_grad_(True)
                    self.params.append(p)
        if not self.params:
            raise ConfigError(f"recipe {recipe.name}: nothing to train")
        self.n_trainable = sum(p.numel() for p in self.params)
        o = recipe.optim
        self.optimizer = torch.optim.AdamW(self.params, lr=o.lr, weight_decay=o.weight_decay, betas=o.betas)
        self.step = 0

    # ------------------------------------------------------------------------------------------- losses
    def _scale(self, m: str) -> float:
        return min(100.0, self.encoder.logit_scale(m))

    def _logits(self, emb: torch.Tensor, m: str) -> torch.Tensor:
        return self._scale(m) * F.normalize(emb, dim=-1) @ self.data.class_text[m].T

    def _attack(self, m: str, x: torch.Tensor, inner, g) -> torch.Tensor:
        a = self.recipe.attack
        low, high = self.data.low_high[m]
        eps, step_size = a.for_modality(m)
        return pgd_maximise(inner, x, eps=eps, steps=a.steps, step_size=step_size, low=low, high=high,
                            random_start=a.random_start, g=g)

    def modality_loss(self, m: str, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, dict]:
        obj = self.recipe.objective
        enc = self.encoder
        w = self.recipe.weights
        if obj == "backbone":
            loss = losses.binding_loss(enc.encode(m, x), self.data.class_text[m], y, self._scale(m))
            return loss, {}
        if obj in ("fare", "rlbind-stage1"):
            with torch.no_grad():
                target = self.original.encode(m, x)
            x_adv = self._attack(m, x, lambda z: losses.fare_loss(enc.encode(m, z), target), g)
            return losses.fare_loss(enc.encode(m, x_adv), target), {}
        if obj == "tecoa":
            x_adv = self._attack(m, x, lambda z: F.cross_entropy(self._logits(enc.encode(m, z), m), y), g)
            return losses.tecoa_loss(self._logits(enc.encode(m, x_adv), m), y), {}
        if obj == "pmg-aft":
            x_adv = self._attack(m, x, lambda z: F.cross_entropy(self._logits(enc.encode(m, z), m), y), g)
            with torch.no_grad():
                orig_adv = self._logits(self.original.encode(m, x_adv), m)
            return losses.pmg_aft_loss(self._logits(enc.encode(m, x_adv), m), orig_adv,
                                       self._logits(enc.encode(m, x), m), y, alpha=float(w.get("alpha", 1.0)),
                                       beta=float(w.get("beta", 1.0))), {}
        raise ConfigError(f"objective {obj} is not a per-modality loss")

    def stage2_loss(self, batches: dict[str, tuple[torch.Tensor, torch.Tensor]], g) -> tuple[torch.Tensor, dict]:
        w = {"anchor": 1.0, "align": 0.5, "mmd": 1.0, "class_mean": 1.0, "bandwidth": 0.5, "invariance": 0.0,
             **self.recipe.weights}
        enc = self.encoder
        anchor_terms, clean_embs, labels, parts = [], {}, {}, {}
        for m, (x, y) in batches.items():
            anchors = self.data.class_text[m][y]
            x_adv = self._attack(m, x, lambda z, m=m, a=anchors: (1 - F.cosine_similarity(enc.encode(m, z), a)).sum(), g)
            e_clean, e_adv = enc.encode(m, x), enc.encode(m, x_adv)
            term = losses.text_anchor_loss(e_clean, e_adv, self.data.class_text[m], y)
            if w["invariance"]:
                term = term + w["invariance"] * losses.fare_loss(e_adv, e_clean.detach())
            anchor_terms.append(term)
            clean_embs[m], labels[m] = e_clean, y
            parts[f"anchor_{m}"] = float(term)
        anchor = torch.stack(anchor_terms).mean()
        align = losses.class_alignment_loss(clean_embs, labels, bandwidth=w["bandwidth"], mmd_weight=w["mmd"],
                                            mean_weight=w["class_mean"]) if len(batches) > 1 else anchor * 0
        parts["align"] = float(align)
        return w["anchor"] * anchor + w["align"] * align, parts

    def _augment(self, m: str, x: torch.Tensor, step: int) -> torch.Tensor:
        from rlbind_bench.train.augment import augment

        return augment(m, x, self.recipe.augment.get(m), step_generator(self.recipe.seed, step, f"augment|{m}"))

    # --------------------------------------------------------------------------------------------- loop
    def train_step(self, step: int) -> dict:
        r = self.recipe
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(step, r)
        self.encoder.train()
        g = step_generator(r.seed, step, "batch")
        if r.objective == "rlbind-stage2":
            idx = class_balanced_batches({m: self.data.y[m] for m in self.modalities}, r.batch_size,
                                         r.classes_per_batch, g)
            batches = {m: (self._augment(m, self.data.x[m][i], step), self.data.y[m][i]) for m, i in idx.items()}
            loss, parts = self.stage2_loss(batches, step_generator(r.seed, step, "attack"))
        else:
            total, parts = 0.0, {}
            for m in self.modalities:
                i = sample_batch(self.data.y[m], r.batch_size, step_generator(r.seed, step, f"batch|{m}"))
                part, _ = self.modality_loss(m, self._augment(m, self.data.x[m][i], step), self.data.y[m][i],
                                             step_generator(r.seed, step, f"attack|{m}"))
                parts[f"loss_{m}"] = float(part)
                total = total + part
            loss = total / len(self.modalities)
        if not torch.isfinite(loss):
            raise UserError(f"training diverged at step {step}: loss is {float(loss)} (lower the learning rate)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 10.0)
        self.optimizer.step()
        self.encoder.eval()
        return {"step": step, "loss": float(loss), "lr": self.optimizer.param_groups[0]["lr"], **parts}

    def run(self) -> list[dict]:
        self.out.mkdir(parents=True, exist_ok=True)
        self._resume()
        log_path = self.out / "train_log.csv"
        rows = _read_log(log_path, upto=self.step)
        start = time.time()
        bar = _bar(self.progress, self.recipe, self.step)
        try:
            while self.step < self.recipe.steps:
                row = self.train_step(self.step)
                row["seconds"] = round(time.time() - start, 3)
                rows.append(row)
                self.step += 1
                if bar:
                    bar[0].update(bar[1], advance=1, description=f"{self.recipe.name} loss {row['loss']:.4f}")
                if self.step % self.recipe.checkpoint_every == 0 or self.step == self.recipe.steps:
                    _write_log(log_path, rows)
                    self._checkpoint()
        finally:
            if bar:
                bar[0].stop()
        _write_log(log_path, rows)
        if self.lora_params:
            # The caller saves the encoder and a composite's next stage starts from it: both want plain layers.
            lora.merge_and_unload(self.encoder)
        return rows

    # ------------------------------------------------------------------------------------ checkpoints
    def _checkpoint(self) -> None:
        final = self.out / "checkpoint"
        tmp = self.out / f".checkpoint.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with lora.merged(self.encoder) if self.lora_params else contextlib.nullcontext():
            self.encoder.save(tmp / "model")
        state = {"step": self.step, "recipe": dataclasses.asdict(self.recipe)}
        if self.lora_params:
            lora.save_adapters(self.lora_params, tmp / lora.ADAPTER_FILE)
            state["lora_base_sha256"] = self._lora_base_digest()
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state, default=str))
        old = self.out / ".checkpoint.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)

    def _lora_base_digest(self) -> str:
        if self._lora_base is None:  # the base is frozen: hashed once per run
            self._lora_base = lora.base_digest(self.encoder, self.modalities)
        return self._lora_base

    def _resume(self) -> None:
        ckpt = self.out / "checkpoint"
        if not (ckpt / "state.json").is_file():
            return
        from rlbind_bench.encoders.registry import load_encoder

        state = json.loads((ckpt / "state.json").read_text())
        saved_mode = state.get("recipe", {}).get("trainable", self.recipe.trainable)
        if saved_mode != self.recipe.trainable:
            raise ConfigError(f"{ckpt} was written with trainable: {saved_mode}, this run is trainable: "
                              f"{self.recipe.trainable}; train into another --out")
        if self.lora_params:
            # The saved model is merged; the run continues from the same base plus the saved adapters.
            if state.get("lora_base_sha256") != self._lora_base_digest():
                raise ConfigError(f"{ckpt} was trained by LoRA from other base weights than --init gives now; "
                                  "train into another --out")
            lora.load_adapters(self.lora_params, ckpt / lora.ADAPTER_FILE)
        else:
            saved = load_encoder(str(ckpt / "model"))
            self.encoder.load_state_dict(saved.state_dict(), strict=False)
        self.optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True))
        self.step = int(state["step"])


def _bar(enabled: bool, recipe: Recipe, done: int):
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    p.start()
    return p, p.add_task(recipe.name, total=recipe.steps, completed=done)


def _read_log(path: Path, upto: int) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = [dict(r) for r in csv.DictReader(fh)]
    return [r for r in rows if int(r["step"]) < upto]


def _write_log(path: Path, rows: list[dict]) -> None:
    from rlbind_bench.results.store import write_bytes_atomic

    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(path, buf.getvalue().encode())
