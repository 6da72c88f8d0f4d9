"""The training loop shared by every recipe; the loss is the recipe's objective's (train/objectives.py).

Stateless sampling: the batch of step t for modality m is drawn from a generator seeded by (seed, t, m),
and so is the attack's random start, so a run resumed from a checkpoint at step t continues exactly as an
uninterrupted one. Checkpoints (model, optimizer, step) are written atomically every `checkpoint_every`
steps into DIR/checkpoint; the final model lands in DIR itself (`rlbind-bench run --model DIR` loads it).
With `trainable: lora` both hold merged weights, and the checkpoint also the adapters (train/lora.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from pathlib import Path

import torch

from rlbind_bench.constants import LOGIT_SCALE
from rlbind_bench.encoders.base import BoundEncoder
from rlbind_bench.encoders.registry import load_encoder
from rlbind_bench.errors import ConfigError, UserError
from rlbind_bench.files import staged_dir
from rlbind_bench.seeding import seeded_generator
from rlbind_bench.train import lora
from rlbind_bench.train.augment import augment
from rlbind_bench.train.data import TrainData, class_balanced_batches, sample_batch
from rlbind_bench.train.log import progress_bar, read_log, write_log
from rlbind_bench.train.objectives import build_objective
from rlbind_bench.train.recipes import Recipe


def lr_at(step: int, recipe: Recipe) -> float:
    o = recipe.optim
    if step < o.warmup:
        return o.lr * (step + 1) / o.warmup
    progress = (step - o.warmup) / max(1, recipe.steps - o.warmup)
    floor = o.lr * o.min_lr_ratio
    return floor + (o.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


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
        # Before LoRA layers are added: an objective's frozen reference is the plain initial model.
        self.objective = build_objective(encoder, recipe, data)
        if self.objective.class_balanced:
            data.check_shared_classes(self.modalities)
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
        self.temperatures = self._temperatures()
        o = recipe.optim
        groups = [{"params": [p for p in self.params if all(p is not t for t in self.temperatures)]}]
        if self.temperatures:  # open_clip's (LanguageBind's) exclusion of logit_scale from weight decay
            groups.append({"params": self.temperatures, "weight_decay": 0.0})
        self.params = [p for g in groups for p in g["params"]]
        if not self.params:
            raise ConfigError(f"recipe {recipe.name}: nothing to train")
        self.n_trainable = sum(p.numel() for p in self.params)
        self.optimizer = torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay, betas=o.betas)
        self.step = 0

    def _temperatures(self) -> list[torch.nn.Parameter]:
        """The towers' log-scale parameters: trained with them under `learn_temperature`, else frozen (a demo
        tower holds its own, which stays in the optimizer's list without a gradient, as before the option)."""
        found = []
        for m in self.modalities:
            p = self.encoder.temperature(m)
            if p is None:
                if self.recipe.learn_temperature:
                    raise ConfigError(f"recipe {self.recipe.name}: learn_temperature, but model "
                                      f"{self.encoder.name!r} has no trainable temperature for {m}")
                continue
            p.requires_grad_(self.recipe.learn_temperature)
            if self.recipe.learn_temperature:
                found.append(p)
        return found

    def _augment(self, m: str, x: torch.Tensor, step: int) -> torch.Tensor:
        return augment(m, x, self.recipe.augment.get(m), seeded_generator(self.recipe.seed, step, "augment", m))

    # --------------------------------------------------------------------------------------------- loop
    def train_step(self, step: int) -> dict:
        r = self.recipe
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(step, r)
        self.encoder.train()
        if self.objective.class_balanced:
            ids = self.data.shared_label_ids(self.modalities)
            idx = class_balanced_batches({m: ids[m][self.data.y[m]] for m in self.modalities}, r.batch_size,
                                         r.classes_per_batch, seeded_generator(r.seed, step, "batch"))
        else:
            idx = {m: sample_batch(self.data.y[m], r.batch_size, seeded_generator(r.seed, step, "batch", m))
                   for m in self.modalities}
        batches = {m: (self._augment(m, self.data.x[m][i], step), self.data.y[m][i]) for m, i in idx.items()}
        loss, parts = self.objective.loss(batches, step)
        if not torch.isfinite(loss):
            raise UserError(f"training diverged at step {step}: loss is {float(loss.detach())} (lower the learning rate)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 10.0)
        self.optimizer.step()
        with torch.no_grad():  # CLIP's and LanguageBind's clamp of the learned temperature: scale <= 100
            for p in self.temperatures:
                p.clamp_(0, math.log(LOGIT_SCALE))
        self.encoder.eval()
        return {"step": step, "loss": float(loss.detach()), "lr": self.optimizer.param_groups[0]["lr"], **parts}

    def run(self) -> list[dict]:
        self.out.mkdir(parents=True, exist_ok=True)
        self._resume()
        log_path = self.out / "train_log.csv"
        rows = read_log(log_path, upto=self.step)
        start = time.time()
        bar = progress_bar(self.progress, self.recipe, self.step)
        try:
            while self.step < self.recipe.steps:
                row = self.train_step(self.step)
                row["seconds"] = round(time.time() - start, 3)
                rows.append(row)
                self.step += 1
                if bar:
                    bar[0].update(bar[1], advance=1, description=f"{self.recipe.name} loss {row['loss']:.4f}")
                if self.step % self.recipe.checkpoint_every == 0 or self.step == self.recipe.steps:
                    write_log(log_path, rows)
                    self._checkpoint()
        finally:
            if bar:
                bar[0].stop()
        write_log(log_path, rows)
        if self.lora_params:
            # The caller saves the encoder and a composite's next stage starts from it: both want plain layers.
            lora.merge_and_unload(self.encoder)
        return rows

    # ------------------------------------------------------------------------------------ checkpoints
    def _checkpoint(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with staged_dir(self.out / "checkpoint", ".checkpoint") as tmp:
            self._write_checkpoint(tmp)

    def _write_checkpoint(self, tmp: Path) -> None:
        with lora.merged(self.encoder) if self.lora_params else contextlib.nullcontext():
            self.encoder.save(tmp / "model")
        state = {"step": self.step, "recipe": dataclasses.asdict(self.recipe)}
        if self.lora_params:
            lora.save_adapters(self.lora_params, tmp / lora.ADAPTER_FILE)
            state["lora_base_sha256"] = self._lora_base_digest()
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state, default=str))

    def _lora_base_digest(self) -> str:
        if self._lora_base is None:  # the base is frozen: hashed once per run
            self._lora_base = lora.base_digest(self.encoder, self.modalities)
        return self._lora_base

    def _resume(self) -> None:
        ckpt = self.out / "checkpoint"
        if not (ckpt / "state.json").is_file():
            return
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
            if self.temperatures:  # learned next to the adapters: the saved model holds them
                saved = load_encoder(str(ckpt / "model"))
                with torch.no_grad():
                    for m in self.modalities:
                        self.encoder.temperature(m).copy_(saved.temperature(m))
        else:
            saved = load_encoder(str(ckpt / "model"))
            self.encoder.load_state_dict(saved.state_dict(), strict=False)
        self.optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True))
        self.step = int(state["step"])

