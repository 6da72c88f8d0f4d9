"""The threat interface: a spec (data, from attacks/*.yaml) and an attack that runs one cell on a batch."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from rlbind_bench.errors import ConfigError


def parse_number(value, where: str) -> float:
    """Numbers as YAML or CLI give them: 0.5, '4/255', '1e-3'."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"{where}: {value!r} is not a number (use e.g. 0.5 or 4/255)") from None


@dataclass(frozen=True)
class ThreatSpec:
    """One named threat model. Every field is stored in the results (config_hash covers all of them)."""

    name: str
    attack: str  # clean | pgd | autoattack | corruptions
    norm: str = ""  # Linf | L2
    eps: tuple[float, ...] = ()
    steps: int = 0
    step_size: float | None = None  # absolute; None: the attack's rule (PGD: 2.5 * eps / steps)
    restarts: int = 1
    random_start: bool = True
    loss: str = "ce"
    version: str = "standard"  # autoattack: standard | plus | custom | rand
    attacks_to_run: tuple[str, ...] = ()  # autoattack custom
    n_target_classes: int = 9
    corruptions: tuple[str, ...] = ()
    severities: tuple[int, ...] = ()
    seed: int = 0
    modalities: tuple[str, ...] = ("image", "thermal", "depth", "audio", "video")
    spaces: dict = field(default_factory=dict)  # modality -> perturbation space description
    only_correct: bool = True  # attack only samples that are still correct on clean input
    description: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["eps"] = list(self.eps)
        return d


@dataclass(frozen=True)
class Cell:
    """One column of the grid for a threat: an eps (attacks) or a (corruption, severity)."""

    threat: str
    norm: str = ""
    eps: float = math.nan
    severity: int = 0
    variant: str = ""  # corruption name

    @property
    def key(self) -> str:
        eps = "nan" if math.isnan(self.eps) else f"{self.eps:.8g}"
        return f"{self.threat}|{self.variant}|{self.norm}|{eps}|{self.severity}"

    @property
    def label(self) -> str:
        return f"{self.threat}:{self.variant}" if self.variant else self.threat


@dataclass
class BatchResult:
    """Per-sample outcome of one cell on one batch (tensors on CPU, length B)."""

    pred: torch.Tensor
    margin: torch.Tensor
    attacked: torch.Tensor
    perturbation_norm: torch.Tensor
    broken_by: list[str]
    valid: torch.Tensor


@dataclass
class AttackContext:
    """What an attack may know beyond the batch."""

    modality: str
    seed: int
    sample_ids: list[str]
    clean_logits: torch.Tensor
    low: float
    high: float
    num_classes: int
    device: torch.device
    # Corrupted versions of the batch made ahead of time (threats/corruptions/cache.py), or None.
    corrupted: Any = None


def margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return true - other.max(dim=1).values


def finite_rows(logits: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(logits).all(dim=1)


class Attack(ABC):
    """A threat's implementation. `cells` expands the spec; `run` evaluates one cell on one batch."""

    def __init__(self, spec: ThreatSpec):
        self.spec = spec

    @abstractmethod
    def cells(self) -> list[Cell]: ...

    def cell_config(self, cell: Cell) -> dict:
        return {"threat": self.spec.to_dict(), "cell": cell.key}

    @abstractmethod
    def run(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, cell: Cell,
            ctx: AttackContext) -> BatchResult: ...


def per_sample_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    if norm == "Linf":
        return flat.abs().max(dim=1).values
    return flat.norm(p=2, dim=1)
