"""Recipes as data (recipes/*.yaml), every hyper-parameter overridable from the command line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from rlbind_bench.bundled import bundled_path
from rlbind_bench.config import build_dataclass, read_yaml
from rlbind_bench.errors import ConfigError
from rlbind_bench.threats.spec import NORMS, parse_number
from rlbind_bench.train.objectives import OBJECTIVE_CLASSES

# A live view of the registry (in registration order): an objective registered later is known here too.
OBJECTIVES = OBJECTIVE_CLASSES.keys()
TRAINABLE = ("tower", "projection", "lora")


@dataclass(frozen=True)
class AttackSettings:
    """The training attack. eps and step_size are absolute, in the input space's units (as in evaluation):
    [0,1] pixels, or [-1,1] waveform for audio. `eps_by_modality` overrides eps per modality (step_size is
    scaled by the same factor)."""

    norm: str = "Linf"
    eps: float = 4 / 255
    steps: int = 10
    step_size: float = 1 / 255
    random_start: bool = True
    eps_by_modality: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ConfigError(f"attack.norm must be one of {', '.join(NORMS)}, got {self.norm!r}")

    def for_modality(self, modality: str) -> tuple[float, float]:
        eps = float(self.eps_by_modality.get(modality, self.eps))
        return eps, self.step_size * (eps / self.eps if self.eps else 1.0)


@dataclass(frozen=True)
class OptimSettings:
    lr: float = 1e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup: int = 10
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio


@dataclass(frozen=True)
class LoraSettings:
    """Low-rank adapters (peft LoRA) on the modality towers, used when `trainable: lora`. Empty
    `target_modules`: the backend's default (`BoundEncoder.lora_targets`); names match a module's full
    name or its last dotted parts, as in peft."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ()

    def __post_init__(self):
        if int(self.r) < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise ValueError("lora needs r >= 1, alpha > 0 and 0 <= dropout < 1")


@dataclass(frozen=True)
class Recipe:
    name: str
    objective: str
    steps: int = 100
    batch_size: int = 32
    trainable: str = "tower"
    seed: int = 0
    modalities: tuple[str, ...] = ()  # empty: every modality the data provides
    attack: AttackSettings = field(default_factory=AttackSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    weights: dict = field(default_factory=dict)  # objective-specific loss weights
    augment: dict = field(default_factory=dict)  # modality -> augmentation settings (train/augment.py)
    checkpoint_every: int = 50
    classes_per_batch: int = 8  # stage 2: class-balanced batches
    # Train the model's logit scale (LanguageBind's --learn-temp; clamped at LOGIT_SCALE after each step) with
    # the towers; off: the scale the model was loaded with stays, frozen (fine-tunes).
    learn_temperature: bool = False
    stages: tuple[str, ...] = ()  # composite recipes (rlbind): names of recipes run in order
    stage_steps: tuple[int, ...] = ()
    description: str = ""

    def __post_init__(self):
        if self.objective not in (*OBJECTIVES, "composite"):
            raise ValueError(f"unknown objective {self.objective!r} (known: {', '.join(OBJECTIVES)})")
        if self.trainable not in TRAINABLE:
            raise ValueError(f"trainable must be one of {', '.join(TRAINABLE)}")
        if not isinstance(self.learn_temperature, bool):
            raise ValueError(f"learn_temperature must be true or false, got {self.learn_temperature!r}")
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError("steps must be >= 0 and batch_size >= 1")


def recipes_dir() -> Path:
    """The named recipes: $RLBIND_RECIPES_DIR, the checkout's or the wheel's (a recipe's own path needs none)."""
    return bundled_path("recipes")


def _numbers(d: dict, keys, where) -> dict:
    return {k: (parse_number(v, f"{where}: {k}") if k in keys and v is not None else v) for k, v in d.items()}


def recipe_from_dict(data: dict, where: str) -> Recipe:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping")
    data = dict(data)
    if "attack" in data:
        attack = _numbers(data["attack"] or {}, ("eps", "step_size"), where)
        if "eps_by_modality" in attack:
            attack["eps_by_modality"] = {m: parse_number(v, f"{where}: eps_by_modality.{m}")
                                         for m, v in (attack["eps_by_modality"] or {}).items()}
        data["attack"] = build_dataclass(AttackSettings, attack, f"{where}: attack")
    if "optim" in data:
        optim = _numbers(data["optim"] or {}, ("lr", "weight_decay", "min_lr_ratio"), where)
        if "betas" in optim:
            optim["betas"] = tuple(float(b) for b in optim["betas"])
        data["optim"] = build_dataclass(OptimSettings, optim, f"{where}: optim")
    if "lora" in data:
        lora = _numbers(data["lora"] or {}, ("alpha", "dropout"), where)
        if "target_modules" in lora:
            targets = lora["target_modules"] or ()
            lora["target_modules"] = (targets,) if isinstance(targets, str) else tuple(str(t) for t in targets)
        data["lora"] = build_dataclass(LoraSettings, lora, f"{where}: lora")
    for key in ("modalities", "stages", "stage_steps"):
        if key in data:
            data[key] = tuple(data[key])
    return build_dataclass(Recipe, data, where)


def load_recipe(name: str) -> Recipe:
    path = Path(name)
    if not path.suffix:
        path = recipes_dir() / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in recipes_dir().glob("*.yaml")))
        raise ConfigError(f"unknown recipe {name!r} (known: {known})")
    data = read_yaml(path)
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return recipe_from_dict(data, str(path))


def override(recipe: Recipe, **changes) -> Recipe:
    """Command-line overrides: top-level fields, and `attack.x` / `optim.x` / `lora.x` dotted keys."""
    top: dict = {}
    nested: dict[str, dict] = {"attack": {}, "optim": {}, "lora": {}}
    for key, value in changes.items():
        if value is None:
            continue
        group, _, name = key.partition(".")
        if name and group in nested:
            nested[group][name] = value
        else:
            top[key] = value
    try:
        for group, values in nested.items():
            if values:
                top[group] = dataclasses.replace(getattr(recipe, group), **values)
        return dataclasses.replace(recipe, **top)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"recipe override: {exc}") from exc
