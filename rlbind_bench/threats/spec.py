"""Threat specs as typed data, one class per attack kind, selected by `attack:` in attacks/*.yaml.

Each class declares exactly the settings its attack reads, so a YAML key the attack would ignore is
refused by name (`config.build_dataclass`) instead of being stored in `config_hash` and never used.
Every field is serialised into the rows' `config_hash` (`to_dict`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from rlbind_bench.constants import MODALITIES
from rlbind_bench.errors import ConfigError

NORMS = ("Linf", "L2")
SEVERITIES = (1, 2, 3, 4, 5)


def parse_number(value, where: str) -> float:
    """Numbers as YAML or CLI give them: 0.5, '4/255', '1e-3'."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"{where}: {value!r} is not a number (use e.g. 0.5 or 4/255)") from None


def _tuple(value) -> tuple:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list | tuple) else (value,)


@dataclass(frozen=True)
class ThreatSpec:
    """What every threat has: a name, the attack that runs it, the modalities it applies to."""

    name: str
    attack: str
    modalities: tuple[str, ...] = MODALITIES
    description: str = ""

    def __post_init__(self):
        object.__setattr__(self, "modalities", _tuple(self.modalities))
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown:
            raise ConfigError(f"threat {self.name}: unknown modality {unknown[0]!r} (known: {', '.join(MODALITIES)})")

    @classmethod
    def coerce(cls, data: dict, where: str) -> dict:
        """YAML values to field types (numbers such as '4/255', lists to tuples); subclasses add theirs."""
        return dict(data)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def summary(self) -> str:
        """One line for `rlbind-bench list threats`."""
        return self.attack


@dataclass(frozen=True)
class CleanSpec(ThreatSpec):
    """The unperturbed input: no settings."""


@dataclass(frozen=True)
class AdversarialSpec(ThreatSpec):
    """Settings every gradient-based attack reads: the norm ball and the iteration budget."""

    norm: str = "Linf"
    eps: tuple[float, ...] = ()
    steps: int = 0
    seed: int = 0
    spaces: dict = field(default_factory=dict)  # modality -> the perturbed space, in words (documentation)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "eps", tuple(float(e) for e in _tuple(self.eps)))
        if self.norm not in NORMS:
            raise ConfigError(f"threat {self.name}: norm must be Linf or L2, got {self.norm!r}")
        for e in self.eps:
            self.check_eps(e)
        if self.steps < 0:
            raise ConfigError(f"threat {self.name}: steps must be >= 0")

    def check_eps(self, e: float) -> None:
        """An eps in input-space units: a non-negative number (specs of other units override this)."""
        if not math.isfinite(e) or e < 0:
            raise ConfigError(f"threat {self.name}: eps must be a non-negative number, got {e:g}")

    def summary(self) -> str:
        return f"{self.attack} {self.norm} eps={[round(e, 6) for e in self.eps]} steps={self.steps}"

    @classmethod
    def coerce(cls, data: dict, where: str) -> dict:
        data = super().coerce(data, where)
        if "eps" in data:
            data["eps"] = tuple(parse_number(v, f"{where}: eps") for v in _tuple(data["eps"]))
        # the step-size fields of the PGD-style specs (a spec without one refuses the key by name later)
        if data.get("step_size") is not None:
            data["step_size"] = parse_number(data["step_size"], f"{where}: step_size")
        return data


# PGD's losses and the fewest classes each is defined for (DLR's denominator is z_pi1 - z_pi3).
PGD_LOSS_MIN_CLASSES = {"ce": 2, "margin": 2, "dlr": 3}


@dataclass(frozen=True)
class PGDSpec(AdversarialSpec):
    """Projected gradient descent (Madry et al.) on the zero-shot logits, maximising `loss`."""

    step_size: float | None = None  # absolute; None: 2.5 * eps / steps
    restarts: int = 1
    random_start: bool = True
    # ce: cross-entropy; margin: CW, max other logit - true logit; dlr: Croce & Hein's difference of logits
    # ratio (needs >= 3 classes: the run refuses fewer).
    loss: str = "ce"
    eot_iter: int = 1  # gradients averaged over this many passes (EOT, for randomised models); 1: one pass
    only_correct: bool = True  # attack only samples that are still correct on clean input

    LOSSES = tuple(PGD_LOSS_MIN_CLASSES)

    def __post_init__(self):
        super().__post_init__()
        if self.restarts < 1:
            raise ConfigError(f"threat {self.name}: restarts must be >= 1")
        if self.eot_iter < 1:
            raise ConfigError(f"threat {self.name}: eot_iter must be >= 1")
        if self.loss not in self.LOSSES:
            raise ConfigError(f"threat {self.name}: loss {self.loss!r} is not implemented "
                              f"(known: {', '.join(self.LOSSES)})")

    def check_classes(self, num_classes: int) -> None:
        """Refuse a class count the loss is not defined for (before any sample is attacked)."""
        need = PGD_LOSS_MIN_CLASSES[self.loss]
        if num_classes < need:
            raise ConfigError(f"threat {self.name}: loss {self.loss} needs at least {need} classes, the dataset "
                              f"has {num_classes} (use loss: ce or margin)")


# AutoAttack's sub-attacks, and the fewest classes each one's loss is defined for: DLR divides by
# z_pi1 - z_pi3 (3 logits), targeted DLR by z_pi1 - (z_pi3 + z_pi4) / 2 (4 logits); cross-entropy, FAB's
# linearised decision boundaries and Square's margin loss need only 2 (as pyautoattack's check_n_classes says).
SUB_ATTACK_MIN_CLASSES = {"apgd-ce": 2, "apgd-dlr": 3, "fab": 2, "square": 2, "apgd-t": 4, "fab-t": 2}
# The sub-attacks each version runs, in order (pyautoattack's AutoAttack._set_version; a test compares).
VERSION_SUB_ATTACKS = {"standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
                       "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"),
                       "rand": ("apgd-ce", "apgd-dlr")}


@dataclass(frozen=True)
class AutoAttackSpec(AdversarialSpec):
    """AutoAttack through the reference implementation; `steps` 0 keeps its 100 iterations."""

    version: str = "standard"  # standard | plus | custom | rand
    attacks_to_run: tuple[str, ...] = ()  # custom only
    n_target_classes: int = 9

    VERSIONS = ("standard", "plus", "custom", "rand")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "attacks_to_run", _tuple(self.attacks_to_run))
        if self.version not in self.VERSIONS:
            raise ConfigError(f"threat {self.name}: version must be one of {', '.join(self.VERSIONS)}")
        if self.attacks_to_run and self.version != "custom":
            raise ConfigError(f"threat {self.name}: attacks_to_run is read only by version: custom")
        if self.version == "custom" and not self.attacks_to_run:
            raise ConfigError(f"threat {self.name}: version custom needs attacks_to_run")
        unknown = [a for a in self.attacks_to_run if a not in SUB_ATTACK_MIN_CLASSES]
        if unknown:
            raise ConfigError(f"threat {self.name}: unknown sub-attack {unknown[0]!r} "
                              f"(known: {', '.join(SUB_ATTACK_MIN_CLASSES)})")
        if self.n_target_classes < 1:
            raise ConfigError(f"threat {self.name}: n_target_classes must be >= 1")

    def sub_attacks(self, num_classes: int) -> tuple[str, ...]:
        """The sub-attacks that run on a dataset of `num_classes` classes, in the reference's order: the
        version's (or custom's) list without those whose loss the class count does not define."""
        listed = self.attacks_to_run if self.version == "custom" else VERSION_SUB_ATTACKS[self.version]
        kept = tuple(a for a in listed if num_classes >= SUB_ATTACK_MIN_CLASSES[a])
        if not kept:
            raise ConfigError(f"threat {self.name}: none of {', '.join(listed)} can run on {num_classes} classes "
                              f"(apgd-dlr needs >= 3, apgd-t >= 4; apgd-ce, fab, fab-t and square run on 2)")
        return kept

    def target_classes(self, num_classes: int) -> int:
        """APGD-T / FAB-T target count: n_target_classes cut to classes - 1 (AutoAttack issue 110)."""
        return max(1, min(self.n_target_classes, num_classes - 1))


@dataclass(frozen=True)
class CorruptionSpec(ThreatSpec):
    """Natural corruptions, one cell per (corruption, severity).

    `corruptions` empty means every corruption registered for the modality; `subset` (modality -> names)
    narrows a modality to a short list, as the quick suite does."""

    corruptions: tuple[str, ...] = ()
    severities: tuple[int, ...] = SEVERITIES
    seed: int = 0
    subset: dict = field(default_factory=dict)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "corruptions", _tuple(self.corruptions))
        object.__setattr__(self, "severities", tuple(int(s) for s in _tuple(self.severities)))
        bad = [s for s in self.severities if s not in SEVERITIES]
        if bad:
            raise ConfigError(f"threat {self.name}: severities must be in 1..5, got {bad[0]}")

    def summary(self) -> str:
        names = ", ".join(self.corruptions) or "every corruption of the modality"
        return f"{self.attack}: {names}; severities {list(self.severities)}"
