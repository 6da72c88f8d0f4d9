"""Threat specs from attacks/*.yaml and the attack implementations that run them.

An attack module registers its class with `@register_attack(name)`; the class's `spec_type` says which
typed spec the YAML is read into, so `attack:` selects both.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import TYPE_CHECKING

from rlbind_bench.bundled import bundled_path
from rlbind_bench.config import build_dataclass, read_yaml
from rlbind_bench.errors import ConfigError
from rlbind_bench.threats.base import Attack, AttackSetup, Cell
from rlbind_bench.threats.clean import Clean
from rlbind_bench.threats.spec import CleanSpec, ThreatSpec

if TYPE_CHECKING:
    from rlbind_bench.modalities.base import InputSpace

ATTACKS: dict[str, type[Attack]] = {"clean": Clean}
# Attack modules import torchattacks/pyautoattack/scikit-image (slow): imported on first use.
ATTACK_MODULES = ("rlbind_bench.threats.pgd", "rlbind_bench.threats.autoattack",
                  "rlbind_bench.threats.corruption_threat", "rlbind_bench.threats.perceptual",
                  "rlbind_bench.threats.transfer", "rlbind_bench.threats.embedding", "rlbind_bench.threats.crossmodal")


def register_attack(name: str):
    def deco(cls: type[Attack]) -> type[Attack]:
        cls.name = name
        ATTACKS[name] = cls
        return cls

    return deco


CLEAN = CleanSpec(name="clean", attack="clean", description="unperturbed inputs")


def attacks_dir(override: str | Path | None = None) -> Path:
    """The threat YAMLs: `override` (--attacks-dir), $RLBIND_ATTACKS_DIR, the checkout's or the wheel's."""
    return bundled_path("attacks", override)


def check_eps_budget(cell: Cell, space: InputSpace, where: str) -> None:
    """Refuse a budget that covers the input box, almost always an eps in the wrong units (4 for 4/255): an
    L-inf eps of at least half the range, or an L2 eps of at least the box's diameter, lets the attack move any
    input to any other, so the accuracy it reports says nothing (`--allow-large-eps` skips this check)."""
    span = space.high - space.low
    if cell.norm == "Linf" and cell.eps >= span / 2:
        raise ConfigError(f"{where}: Linf eps {cell.eps:g} is at least half of the {space.modality} input range "
                          f"[{space.low:g}, {space.high:g}]; did you mean {cell.eps:g}/255? "
                          "(--allow-large-eps runs it anyway)")
    diameter = span * math.sqrt(math.prod(space.shape))
    if cell.norm == "L2" and cell.eps >= diameter:
        raise ConfigError(f"{where}: L2 eps {cell.eps:g} is at least the diameter ({diameter:.4g}) of the "
                          f"{space.modality} input box; did you mean {cell.eps:g}/255? "
                          "(--allow-large-eps runs it anyway)")


def row_attack_class(attack: str) -> type[Attack]:
    """The class behind a result row's `attack`; for a kind this installation does not know (schema-1 rows
    have "", which were PGD or AutoAttack) the base `Attack`, whose class data are the defaults readers need
    (strength 0, input-space eps units, white-box, an attack on the label)."""
    import_attacks()
    return ATTACKS.get(attack, Attack)


def is_white_box(attack: str) -> bool:
    """Whether the white-box sanity checks apply to rows of `attack` (Attack.white_box)."""
    return row_attack_class(attack).white_box


def attack_class(name: str, where: str = "threat") -> type[Attack]:
    import_attacks()
    if name not in ATTACKS:
        raise ConfigError(f"{where}: unknown attack {name!r} (known: {', '.join(sorted(ATTACKS))})")
    return ATTACKS[name]


def spec_from_dict(data: dict, where: str) -> ThreatSpec:
    """A typed spec from a YAML mapping: `attack:` picks the class; keys that class does not read are refused."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping")
    if "attack" not in data:
        raise ConfigError(f"{where}: missing key attack")
    spec_type = attack_class(str(data["attack"]), where).spec_type
    return build_dataclass(spec_type, spec_type.coerce(data, where), where)


def load_threats(folder: Path | None = None) -> dict[str, ThreatSpec]:
    folder = attacks_dir(folder)
    specs: dict[str, ThreatSpec] = {"clean": CLEAN}
    for path in sorted(Path(folder).glob("*.yaml")):
        data = read_yaml(path)
        if isinstance(data, dict):
            data.setdefault("name", path.stem)
        specs[path.stem] = spec_from_dict(data, str(path))
    return specs


def build_attack(spec: ThreatSpec) -> Attack:
    return attack_class(spec.attack, f"threat {spec.name}")(spec)


def build_plan(threat_specs: list[ThreatSpec], setup: AttackSetup) -> list[tuple[Attack, Cell]]:
    """One dataset's (attack, cell) grid: the threats that apply to its modality, prepared for it, expanded
    into their cells (the runner evaluates it; the cost plan costs it)."""
    attacks = [build_attack(t) for t in threat_specs if setup.modality in t.modalities]
    for a in attacks:
        a.prepare(setup)
    return [(a, c) for a in attacks for c in a.cells(setup.modality)]


def import_attacks() -> None:
    for module in ATTACK_MODULES:
        importlib.import_module(module)
