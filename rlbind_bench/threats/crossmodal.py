"""The cross-modal targeted threat: perturb one modality so that its embedding lands on a chosen target.

In a bound encoder every modality shares the text space, so an attacker who controls an audio clip (or an
image, a depth map...) can make it "mean" another class to everything downstream. The target class is
(label + 1 + offset) mod C with offset drawn per sample from (seed, sample_id) in [0, C-2], so it is never the
true class and does not depend on the batch; both target kinds draw the same class for a sample.

`target: text` aims at the target class's text embedding (the dataset's zero-shot class embedding, templates
averaged). Loss `cosine` ascends cos(f(x+δ), t_target); `ce` descends the cross-entropy of the zero-shot logits
towards the target class (a targeted PGD). Success (`target_hit`): the attacked embedding's nearest class text
is the target (pred == target). `true_rank`: the true class's rank in the zero-shot logits at the attacked point.

`target: modality:M` with `target_dataset: NAME` (a catalogue dataset of modality M) aims at one M sample of the
target class, embedded by the model's own M tower (threats/crossmodal_targets.py: which samples, matching the
classes by name, the per-sample choice recorded in `target_sample`); loss `cosine` only. Success: the nearest
of the target set's embeddings is of the target class. `true_rank`: the true class's rank by cosine to the
class means of the target set's embeddings.

Both: the iteration is `pgd.pgd_maximise` from a random start drawn per sample; every finite sample is
attacked, last iterate kept; pred, correct and margin are the zero-shot text classifier's at the attacked point.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlbind_bench.constants import MODALITIES
from rlbind_bench.errors import ConfigError
from rlbind_bench.seeding import seeded_generator
from rlbind_bench.threats.base import (
    Attack,
    AttackContext,
    AttackSetup,
    BatchResult,
    Cell,
    Measure,
    PassCount,
    finite_rows,
    margins,
    per_sample_norm,
    true_ranks,
)
from rlbind_bench.threats.crossmodal_targets import TargetSet, build_target_set
from rlbind_bench.threats.embedding import attack_embedding, embedder, final_point, step_size_for
from rlbind_bench.threats.registry import register_attack
from rlbind_bench.threats.spec import AdversarialSpec

MODALITY_TARGET = "modality:"
DEFAULT_PER_CLASS = 8
# (embedding at x+δ, the embeddings aimed at [B, D], the model's zero-shot head, target classes) -> loss
CROSSMODAL_LOSSES = {
    "cosine": lambda emb, text, head, t: F.cosine_similarity(emb, text, dim=-1).sum(),
    "ce": lambda emb, text, head, t: -F.cross_entropy(head(emb), t, reduction="sum"),
}


@dataclass(frozen=True)
class CrossModalSpec(AdversarialSpec):
    """Targeted PGD in the input box towards another class's text embedding or another modality's sample."""

    target: str = "text"  # text: another class's text embedding; modality:M: an M sample of another class
    loss: str = "cosine"  # cosine: ascend cos(f(x+δ), target); ce (text only): targeted CE on the zero-shot logits
    step_size: float | None = None  # absolute; None: 2.5 * eps / steps
    random_start: bool = True
    target_dataset: str = ""  # modality:M: the catalogue dataset of modality M the targets come from
    target_per_class: int = DEFAULT_PER_CLASS  # modality:M: target samples kept per class (crossmodal_targets.py)

    def __post_init__(self):
        super().__post_init__()
        where = f"threat {self.name}"
        if self.target != "text" and not self.target.startswith(MODALITY_TARGET):
            raise ConfigError(f"{where}: target must be text or modality:M (M one of {', '.join(MODALITIES)}), "
                              f"got {self.target!r}")
        if self.loss not in CROSSMODAL_LOSSES:
            raise ConfigError(f"{where}: loss {self.loss!r} is not implemented "
                              f"(known: {', '.join(CROSSMODAL_LOSSES)})")
        if self.target_per_class < 1:
            raise ConfigError(f"{where}: target_per_class must be >= 1")
        if self.target == "text":
            if self.target_dataset or self.target_per_class != DEFAULT_PER_CLASS:
                raise ConfigError(f"{where}: target_dataset and target_per_class are read only by target: modality:M")
            return
        m = self.target_modality
        if m not in MODALITIES:
            raise ConfigError(f"{where}: target {self.target!r}: unknown modality {m!r} (known: {', '.join(MODALITIES)})")
        if m in self.modalities:
            raise ConfigError(f"{where}: target modality:{m} cannot attack {m} datasets: list the attacked "
                              f"modalities without {m} (e.g. modalities: [audio, video])")
        if not self.target_dataset:
            raise ConfigError(f"{where}: target modality:{m} needs target_dataset: NAME (a {m} dataset of the "
                              "catalogue, e.g. demo-digits-image)")
        if self.loss != "cosine":
            raise ConfigError(f"{where}: loss {self.loss} aims at the class texts; target modality:{m} takes loss: cosine")

    @property
    def target_modality(self) -> str:
        """M of target modality:M ("" for text)."""
        return self.target.removeprefix(MODALITY_TARGET) if self.target.startswith(MODALITY_TARGET) else ""

    def summary(self) -> str:
        dataset = f" from {self.target_dataset}" if self.target_dataset else ""
        return f"{super().summary()} target={self.target}{dataset} loss={self.loss}"


def target_classes(y: torch.Tensor, ids: list[str], num_classes: int, seed: int) -> torch.Tensor:
    """Per sample, a class other than its label: (label + 1 + offset) mod C, offset in [0, C-2] drawn from
    (seed, sample_id)."""
    offsets = [int(torch.randint(num_classes - 1, (), generator=seeded_generator(seed, sid, "crossmodal-target")))
               for sid in ids]
    return (y.cpu() + 1 + torch.tensor(offsets, dtype=torch.long)) % num_classes


@register_attack("crossmodal-pgd")
class CrossModalPGD(Attack):
    spec_type = CrossModalSpec
    adversarial = True
    measure = Measure("target_success", lower_is_stronger=False)

    def __init__(self, spec: CrossModalSpec):
        super().__init__(spec)
        self.targets: TargetSet | None = None  # modality:M: the target set of the dataset being run

    def prepare(self, setup: AttackSetup) -> None:
        if self.spec.target_modality:
            self.targets = build_target_set(setup, self.spec.target_dataset, self.spec.target_modality,
                                            self.spec.target_per_class, f"threat {self.spec.name}")

    def cells(self, modality: str) -> list[Cell]:
        return [Cell(self.spec.name, norm=self.spec.norm, eps=float(e)) for e in self.spec.eps]

    def cell_config(self, cell: Cell, num_classes: int | None = None) -> dict:
        if num_classes is not None and num_classes < 2:
            raise ConfigError(f"threat {self.spec.name}: a target other than the true class needs >= 2 classes")
        config = {**super().cell_config(cell, num_classes), "effective_step_size": step_size_for(self.spec, cell.eps)}
        if self.spec.target_modality:
            if self.targets is None:
                raise RuntimeError("CrossModalPGD.prepare must run before cell_config (the target set is hashed)")
            config["target_set"] = self.targets.identity()
        return config

    def pass_budget(self, cell: Cell, num_classes: int) -> PassCount:
        """`steps` forward+backward passes (every step runs) and the final point's forward; the target set's
        embeddings (modality targets) are made once per dataset in `prepare`, not per sample."""
        return PassCount(forward=1, backward=self.spec.steps if cell.eps > 0 else 0)

    def run(self, model, x, y, cell: Cell, ctx: AttackContext) -> BatchResult:
        _, head = embedder(model)
        seed = self.spec.seed + ctx.seed
        target = target_classes(y, ctx.sample_ids, ctx.num_classes, seed).to(y.device)
        targets = self.targets if self.spec.target_modality else None
        rows = targets.pick(target.cpu(), ctx.sample_ids, seed) if targets is not None else None
        # Per sample, the embedding aimed at: its target class's text, or its target sample's M embedding.
        goal = model.class_embeddings[target] if targets is None else targets.embeddings[rows]
        todo = finite_rows(ctx.clean_logits)
        x_final = x.clone()
        if todo.any() and cell.eps > 0:
            ids = [i for i, t in zip(ctx.sample_ids, todo.tolist(), strict=True) if t]
            t, g = target[todo], goal[todo]
            loss = CROSSMODAL_LOSSES[self.spec.loss]
            x_final[todo] = attack_embedding(
                model, x[todo], lambda emb: loss(emb, g, head, t), eps=cell.eps, norm=cell.norm,
                steps=self.spec.steps, step_size=step_size_for(self.spec, cell.eps), low=ctx.low, high=ctx.high,
                ids=ids, seed=seed, salt=cell.key, random_init=self.spec.random_start)
        emb, logits = final_point(model, x_final)
        pred = logits.argmax(1)
        flipped = (ctx.clean_logits.argmax(1) == y) & (pred != y) & todo
        if targets is None:
            hit, rank, sample = pred == target, true_ranks(logits, y), None
        else:
            hit, rank = targets.hits(emb, target), targets.true_ranks(emb, y)
            sample = [targets.sample_ids[r] for r in rows]
        return BatchResult(
            pred=pred.cpu(), margin=margins(logits, y).cpu(), attacked=todo.cpu(),
            perturbation_norm=per_sample_norm(x_final - x, cell.norm).cpu(),
            broken_by=[self.name if b else "" for b in flipped.tolist()], valid=finite_rows(logits).cpu(),
            target=target.cpu(), true_rank=rank.cpu(), target_hit=hit.cpu(), target_sample=sample)
