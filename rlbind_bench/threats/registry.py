"""Threat specs from attacks/*.yaml and the attack implementations that run them."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

from rlbind_bench.config import read_yaml
from rlbind_bench.errors import ConfigError
from rlbind_bench.threats.base import Attack, ThreatSpec, parse_number
from rlbind_bench.threats.clean import Clean

ATTACKS: dict[str, type[Attack]] = {"clean": Clean}


def register_attack(name: str):
    def deco(cls):
        ATTACKS[name] = cls
        return cls

    return deco


CLEAN = ThreatSpec(name="clean", attack="clean", description="unperturbed inputs")
NORMS = ("Linf", "L2", "")


def attacks_dir() -> Path:
    for candidate in (Path.cwd() / "attacks", Path(__file__).resolve().parents[2] / "attacks"):
        if candidate.is_dir():
            return candidate
    raise ConfigError("no attacks/ folder found next to the project")


def _tuple(value, where, conv):
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        value = [value]
    return tuple(conv(v, where) for v in value)


def validate_eps(eps: tuple[float, ...], norm: str, where: str) -> None:
    for e in eps:
        if not math.isfinite(e) or e < 0:
            raise ConfigError(f"{where}: eps must be a non-negative number, got {e:g}")
        if norm == "Linf" and e >= 1:
            warnings.warn(f"{where}: Linf eps {e:g} >= 1 covers the whole [0,1] box; did you mean {e:g}/255?",
                          stacklevel=2)


def spec_from_dict(data: dict, where: str) -> ThreatSpec:
    from rlbind_bench.config import build_dataclass

    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping")
    data = dict(data)
    if "eps" in data:
        data["eps"] = _tuple(data["eps"], f"{where}: eps", parse_number)
    if data.get("step_size") is not None:
        data["step_size"] = parse_number(data["step_size"], f"{where}: step_size")
    for key in ("corruptions", "attacks_to_run", "modalities"):
        if key in data:
            data[key] = tuple(data[key]) if isinstance(data[key], (list, tuple)) else (data[key],)
    if "severities" in data:
        data["severities"] = tuple(int(s) for s in data["severities"])
    spec = build_dataclass(ThreatSpec, data, where)
    if spec.attack not in ATTACKS:
        raise ConfigError(f"{where}: unknown attack {spec.attack!r} (known: {', '.join(sorted(ATTACKS))})")
    if spec.norm not in NORMS:
        raise ConfigError(f"{where}: norm must be Linf or L2, got {spec.norm!r}")
    validate_eps(spec.eps, spec.norm, where)
    if spec.steps < 0 or spec.restarts < 1:
        raise ConfigError(f"{where}: steps must be >= 0 and restarts >= 1")
    return spec


def load_threats(folder: Path | None = None) -> dict[str, ThreatSpec]:
    _ensure_attacks_imported()
    folder = folder or attacks_dir()
    specs = {"clean": CLEAN}
    for path in sorted(Path(folder).glob("*.yaml")):
        data = read_yaml(path)
        name = path.stem
        if isinstance(data, dict):
            data.setdefault("name", name)
        specs[name] = spec_from_dict(data, str(path))
    return specs


def build_attack(spec: ThreatSpec) -> Attack:
    _ensure_attacks_imported()
    return ATTACKS[spec.attack](spec)


def _ensure_attacks_imported() -> None:
    # Attack modules register themselves on import; import them lazily (torchattacks etc. are slow).
    import importlib

    for module in ("rlbind_bench.threats.pgd", "rlbind_bench.threats.autoattack",
                   "rlbind_bench.threats.corruption_threat"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
