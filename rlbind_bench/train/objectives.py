"""Training objectives, one class each, registered by the name recipes give as `objective:`.

A class declares what it needs from the trainer as class attributes (a frozen copy of the initial model,
class-balanced batches, whether it trains on PGD inputs) and implements its loss; the formulas are in
train/losses.py. A new objective is one more class with `@register_objective(name)`: the trainer
(train/loop.py) only asks the class, and `recipes.OBJECTIVES` lists the registry.

Attack starts come from generators seeded per (seed, step) and modality (stage 2: one per step, shared by
the modalities in turn), like the batches, so a resumed run attacks exactly as an uninterrupted one.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from rlbind_bench.encoders.base import model_logit_scale
from rlbind_bench.errors import ConfigError
from rlbind_bench.seeding import seeded_generator
from rlbind_bench.threats.pgd import pgd_maximise
from rlbind_bench.train import losses

if TYPE_CHECKING:  # type names only: recipes.py imports this module to list the objectives
    from rlbind_bench.encoders.base import BoundEncoder
    from rlbind_bench.train.data import TrainData
    from rlbind_bench.train.recipes import Recipe

Batches = dict[str, tuple[torch.Tensor, torch.Tensor]]  # modality -> (inputs, labels)


class Objective:
    """The loss of one training step, on the batches the trainer drew (and augmented) for it."""

    name: ClassVar[str] = ""
    # A frozen copy of the model as it was before training (and before LoRA layers were added).
    needs_original: ClassVar[bool] = False
    # One batch per modality holding the same classes, and one loss over all of them; otherwise each
    # modality's batch is drawn on its own and the loss is the mean of the per-modality losses.
    class_balanced: ClassVar[bool] = False
    # Trains on PGD inputs (recipe.attack) that maximise `attack_loss`.
    attacks: ClassVar[bool] = False
    # Defaults of the recipe's `weights:` this objective reads.
    default_weights: ClassVar[dict[str, float]] = {}

    def __init__(self, encoder: BoundEncoder, recipe: Recipe, data: TrainData):
        self.encoder = encoder
        self.recipe = recipe
        self.data = data
        unknown = sorted(set(recipe.weights) - set(self.default_weights))
        if unknown:  # a weight that no loss reads would be stored in training.json as if it had been used
            raise ConfigError(f"recipe {recipe.name}: objective {self.name} has no loss weight "
                              f"{', '.join(unknown)} (it reads: {', '.join(self.default_weights) or 'none'})")
        self.weights = {**self.default_weights, **recipe.weights}
        self.original: BoundEncoder | None = None
        if self.needs_original:
            self.original = copy.deepcopy(encoder).eval()
            for p in self.original.parameters():
                p.requires_grad_(False)

    def loss(self, batches: Batches, step: int) -> tuple[torch.Tensor, dict]:
        """(loss, extra log columns)."""
        total, parts = 0.0, {}
        for m, (x, y) in batches.items():
            part = self.modality_loss(m, x, y, seeded_generator(self.recipe.seed, step, "attack", m))
            parts[f"loss_{m}"] = float(part.detach())
            total = total + part
        return total / len(batches), parts

    def modality_loss(self, m: str, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        raise NotImplementedError(f"objective {self.name} defines no per-modality loss")

    def attack_loss(self, m: str, z: torch.Tensor, y: torch.Tensor, ref: Any) -> torch.Tensor:
        """What the training attack maximises at input z; `ref` is what the objective attacks against."""
        raise NotImplementedError(f"objective {self.name} does not attack")

    def adversarial(self, m: str, x: torch.Tensor, y: torch.Tensor, ref: Any, g: torch.Generator) -> torch.Tensor:
        a = self.recipe.attack
        low, high = self.data.low_high[m]
        eps, step_size = a.for_modality(m)
        return pgd_maximise(lambda z: self.attack_loss(m, z, y, ref), x, eps=eps, steps=a.steps,
                            step_size=step_size, low=low, high=high, random_init=a.random_start, g=g,
                            norm=a.norm)

    def scale(self, m: str) -> float | torch.Tensor:
        """The model's own scale; a tensor the loss trains through when the recipe learns the temperature."""
        return model_logit_scale(self.encoder, m, differentiable=self.recipe.learn_temperature)

    def logits(self, emb: torch.Tensor, m: str) -> torch.Tensor:
        return self.scale(m) * F.normalize(emb, dim=-1) @ self.data.class_text[m].T


OBJECTIVE_CLASSES: dict[str, type[Objective]] = {}


def register_objective(name: str):
    def add(cls: type[Objective]) -> type[Objective]:
        if name in OBJECTIVE_CLASSES:
            raise ValueError(f"objective {name!r} is registered twice")
        cls.name = name
        OBJECTIVE_CLASSES[name] = cls
        return cls

    return add


def build_objective(encoder: BoundEncoder, recipe: Recipe, data: TrainData) -> Objective:
    cls = OBJECTIVE_CLASSES.get(recipe.objective)
    if cls is None:
        raise ConfigError(f"objective {recipe.objective} is not a training objective "
                          f"(known: {', '.join(OBJECTIVE_CLASSES)})")
    return cls(encoder, recipe, data)


@register_objective("backbone")
class Backbone(Objective):
    """LanguageBind's binding: each modality tower against the frozen text tower, clean inputs."""

    def modality_loss(self, m, x, y, g):
        return losses.binding_loss(self.encoder.encode(m, x), self.data.class_text[m], y, self.scale(m))


@register_objective("fare")
class Fare(Objective):
    """Adversarial embeddings pulled to the frozen original's clean embeddings (no labels)."""

    needs_original = True
    attacks = True
    distance = staticmethod(losses.fare_loss)

    def attack_loss(self, m, z, y, ref):
        return self.distance(self.encoder.encode(m, z), ref)

    def modality_loss(self, m, x, y, g):
        with torch.no_grad():
            target = self.original.encode(m, x)
        x_adv = self.adversarial(m, x, y, target, g)
        return self.distance(self.encoder.encode(m, x_adv), target)


@register_objective("tecoa")
class TeCoA(Objective):
    """Cross-entropy of the scaled cosine logits against the class texts, on inputs that maximise it."""

    attacks = True

    def attack_loss(self, m, z, y, ref):
        return F.cross_entropy(self.logits(self.encoder.encode(m, z), m), y)

    def modality_loss(self, m, x, y, g):
        x_adv = self.adversarial(m, x, y, None, g)
        return losses.tecoa_loss(self.logits(self.encoder.encode(m, x_adv), m), y)


@register_objective("pmg-aft")
class PmgAft(TeCoA):
    """TeCoA's attack; CE plus KL terms towards the frozen original (on x_adv) and the clean prediction."""

    needs_original = True
    default_weights: ClassVar[dict[str, float]] = {"alpha": 1.0, "beta": 1.0}

    def modality_loss(self, m, x, y, g):
        x_adv = self.adversarial(m, x, y, None, g)
        with torch.no_grad():
            orig_adv = self.logits(self.original.encode(m, x_adv), m)
        enc, w = self.encoder, self.weights
        return losses.pmg_aft_loss(self.logits(enc.encode(m, x_adv), m), orig_adv, self.logits(enc.encode(m, x), m),
                                   y, alpha=float(w["alpha"]), beta=float(w["beta"]))


@register_objective("rlbind-stage1")
class RLBindStage1(Fare):
    """FARE's invariance for every modality tower."""

    distance = staticmethod(losses.rlbind_stage1_loss)


@register_objective("rlbind-stage2")
class RLBindStage2(Objective):
    """Text-anchored clean/adversarial alignment per modality plus class-wise cross-modal alignment, on
    class-balanced batches. The anchor is a cosine pull to the true class's text (`anchor`), a cross-entropy
    over the class texts (`contrastive`), or both; `stay` adds an L2 pull of the towers to the weights stage 2
    started from (the stage-1 result: L2-SP, Li et al. 2018)."""

    class_balanced = True
    attacks = True
    default_weights: ClassVar[dict[str, float]] = {"anchor": 1.0, "contrastive": 0.0, "align": 0.5, "mmd": 1.0,
                                                   "class_mean": 1.0, "bandwidth": 0.5, "invariance": 0.0,
                                                   "stay": 0.0}

    def __init__(self, encoder, recipe, data):
        super().__init__(encoder, recipe, data)
        if self.weights["stay"] and recipe.trainable == "lora":
            raise ConfigError(f"recipe {recipe.name}: the stay term pulls tower weights, but LoRA trains adapters; "
                              "use trainable: tower")
        # Taken before the trainer resumes a checkpoint, so a resumed run pulls to the same start weights.
        self.start = {m: [p.detach().clone() for p in encoder.tower(m).parameters()]
                      for m in (recipe.modalities or tuple(data.x))} if self.weights["stay"] else {}

    def attack_loss(self, m, z, y, ref):
        return (1 - F.cosine_similarity(self.encoder.encode(m, z), ref)).sum()

    def anchor_term(self, m, e_clean, e_adv, y):
        w, term = self.weights, 0.0
        if w["anchor"]:
            term = term + w["anchor"] * losses.text_anchor_loss(e_clean, e_adv, self.data.class_text[m], y)
        if w["contrastive"]:
            term = term + w["contrastive"] * losses.contrastive_anchor_loss(
                self.logits(e_clean, m), self.logits(e_adv, m), y)
        if w["invariance"]:
            term = term + w["invariance"] * losses.fare_loss(e_adv, e_clean.detach())
        return term

    def loss(self, batches, step):
        # One attack generator for the step: every modality's start is drawn from it in turn.
        g = seeded_generator(self.recipe.seed, step, "attack")
        w, enc = self.weights, self.encoder
        anchor_terms, clean_embs, labels, parts = [], {}, {}, {}
        for m, (x, y) in batches.items():
            x_adv = self.adversarial(m, x, y, self.data.class_text[m][y], g)
            e_clean, e_adv = enc.encode(m, x), enc.encode(m, x_adv)
            term = self.anchor_term(m, e_clean, e_adv, y)
            anchor_terms.append(term)
            clean_embs[m], labels[m] = e_clean, y
            parts[f"anchor_{m}"] = float(term.detach())
        anchor = torch.stack(anchor_terms).mean()
        # Classes pair across modalities by name: labels become the shared ids before the alignment.
        ids = self.data.shared_label_ids(tuple(batches))
        labels = {m: ids[m][y] for m, y in labels.items()}
        align = losses.class_alignment_loss(clean_embs, labels, bandwidth=w["bandwidth"], mmd_weight=w["mmd"],
                                            mean_weight=w["class_mean"]) if len(batches) > 1 else anchor * 0
        parts["align"] = float(align.detach())
        total = anchor + w["align"] * align
        if self.start:
            stay = losses.weight_distance({m: list(enc.tower(m).parameters()) for m in self.start}, self.start)
            parts["stay"] = float(stay.detach())
            total = total + w["stay"] * stay
        return total, parts
