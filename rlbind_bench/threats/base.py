"""The threat interface: a spec (data, from attacks/*.yaml) and an attack that runs one cell on a batch."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from typing import Any, ClassVar

import torch

from rlbind_bench.threats.spec import ThreatSpec


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
    """Per-sample outcome of one cell on one batch (tensors on CPU, length B); each field becomes the row column
    of the same name. `margins`, `finite_rows` and `per_sample_norm` below compute the usual ones."""

    pred: torch.Tensor  # int64 predicted class at the final input
    margin: torch.Tensor  # logit[label] - max other logit at the final input
    attacked: torch.Tensor  # bool: the attack ran on this sample (False: skipped, e.g. already wrong on clean input)
    perturbation_norm: torch.Tensor  # ||x_final - x|| in the cell's norm (L2 where the cell has none)
    broken_by: list[str]  # the (sub-)attack that flipped the prediction, "" if none
    valid: torch.Tensor  # bool: the logits were finite
    # --- embedding-space threats (threats/embedding.py, threats/crossmodal.py); None: not measured ---
    embedding_cosine: torch.Tensor | None = None  # float: cos(f(x_final), f(x)) of the raw embeddings
    target: torch.Tensor | None = None  # int64: the class a targeted attack aimed at
    true_rank: torch.Tensor | None = None  # int64: 1 + the classes scored above the label at the final input
    target_hit: torch.Tensor | None = None  # bool: a targeted attack's success criterion held at the final input
    target_sample: list[str] | None = None  # the target dataset's sample id aimed at (modality targets)

    def embedding_columns(self, j: int) -> dict:
        """Row j's embedding-threat columns, with the schema's "not measured" values (NaN, -1, False, "") where
        unset."""
        return {"embedding_cosine": math.nan if self.embedding_cosine is None else float(self.embedding_cosine[j]),
                "target": -1 if self.target is None else int(self.target[j]),
                "true_rank": -1 if self.true_rank is None else int(self.true_rank[j]),
                "target_hit": False if self.target_hit is None else bool(self.target_hit[j]),
                "target_sample": "" if self.target_sample is None else self.target_sample[j]}

    # The per-sample budget in input-space units (the `eps_input` column) where it is not the cell's eps: the
    # dB threats' 10^(eps/20) * max|x| per clip. None: every sample's budget is the cell's eps.
    budget: torch.Tensor | None = None


@dataclass(frozen=True)
class PassCount:
    """Model passes per sample of one cell, at most (every sample attacked, none broken early): `forward`
    passes without gradient, `backward` forward+backward passes (an input gradient). The `source_` ones run on
    another model (transfer's source), the others on the evaluated one. rlbind_bench/plan costs them."""

    forward: int = 0
    backward: int = 0
    source_forward: int = 0
    source_backward: int = 0

    def __add__(self, other: PassCount) -> PassCount:
        return PassCount(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def __mul__(self, k: int) -> PassCount:
        return PassCount(*(a * k for a in astuple(self)))

    def on_source(self) -> PassCount:
        """The same passes, made on the source model."""
        return PassCount(source_forward=self.forward + self.source_forward,
                         source_backward=self.backward + self.source_backward)


@dataclass(frozen=True)
class Measure:
    """The summary column that says how well a threat's attack did, and which way is stronger: the sanity
    checks compare a threat's cells by it (accuracy for attacks on the label, the cosine kept for attacks on the
    embedding, the targeted success rate for targeted ones)."""

    column: str
    lower_is_stronger: bool = True


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


@dataclass
class AttackSetup:
    """What an attack may know about the dataset it is about to run on (Attack.prepare), once per dataset."""

    modality: str
    space: Any  # the target model's InputSpace for this dataset
    hints: dict  # the modality handler's input hints (audio: clip_seconds)
    device: torch.device
    load_model: Callable[[str], tuple[Any, str]]  # model spec -> (BoundEncoder on device, fingerprint); cached
    classifier_for: Callable[[Any], torch.nn.Module]  # BoundEncoder -> its zero-shot classifier for this dataset
    encoder: Any = None  # the evaluated BoundEncoder, on device (its other towers embed cross-modal targets)
    classnames: list[str] = field(default_factory=list)  # the dataset's class ids, label order
    # A catalogue dataset's name -> its DatasetIndex under the run's data root (--datasets-file and
    # --dataset-path applied; every sample, no --n-samples); unknown names raise UserError.
    index_named: Callable[[str], Any] | None = None


def margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return true - other.max(dim=1).values


def true_ranks(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1-based rank of the label among the classes: 1 + how many classes score strictly above it."""
    return (logits > logits.gather(1, y[:, None])).sum(dim=1) + 1


def finite_rows(logits: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(logits).all(dim=1)


class Attack(ABC):
    """A threat's implementation. `cells` expands the spec for a modality; `run` evaluates one cell on one batch.

    What kind of threat it is lives here, as class data, and is read by the runner, the sanity checks, the
    leaderboard and the gate alike (through the rows' `attack` and `adversarial` columns)."""

    name: ClassVar[str]  # the `attack:` value in attacks/*.yaml (set by register_attack)
    spec_type: ClassVar[type[ThreatSpec]] = ThreatSpec
    adversarial: ClassVar[bool] = False  # input-gradient attack: sanity checks apply, batches need gradients
    batch_dependent: ClassVar[bool] = False  # rows depend on the batch a sample is in (its batch size is fixed)
    # How strong an evaluation the attack is, for ranking: leaderboards rank models by accuracy under the
    # strongest attack present (RobustBench: AutoAttack). 0: not a ranking attack.
    strength: ClassVar[int] = 0
    # The unit of the cells' eps: "" input-space units; "dB" relative to each clip's peak (threats/perceptual.py).
    eps_unit: ClassVar[str] = ""
    # The attack uses the gradients of the evaluated model: the white-box sanity checks (threats/checks.py) apply.
    # False for transfer, which crafts on another model; only the bound checks apply to it.
    white_box: ClassVar[bool] = True

    # Needs no label (attacks the embedding): accuracy is a by-product, so the checks that read it as the
    # attack's success (robust_above_clean) do not apply; `measure` says what does.
    label_free: ClassVar[bool] = False
    measure: ClassVar[Measure] = Measure("accuracy")
    # Run only on the fixed subset of `run --autoattack-subset N` when one is set (threats/subset.py).
    on_fixed_subset: ClassVar[bool] = False

    def __init__(self, spec: ThreatSpec):
        if not isinstance(spec, self.spec_type):
            raise TypeError(f"{type(self).__name__} runs {self.spec_type.__name__}, got {type(spec).__name__}")
        self.spec = spec

    @abstractmethod
    def cells(self, modality: str) -> list[Cell]: ...

    def cell_config(self, cell: Cell, num_classes: int | None = None) -> dict:
        """What the cell's rows are hashed over; `num_classes` (the dataset's) for attacks whose settings
        depend on it (AutoAttack's sub-attacks) or that refuse some counts (PGD's DLR loss)."""
        return {"threat": self.spec.to_dict(), "cell": cell.key}

    def pass_budget(self, cell: Cell, num_classes: int) -> PassCount:
        """The model passes one sample of `cell` costs at most (the cost plan, rlbind_bench/plan); each attack
        counts them from its own loop. The runner's shared clean forward is not included."""
        raise NotImplementedError(f"{type(self).__name__} does not declare its pass budget")

    def stage_budgets(self, cell: Cell, num_classes: int) -> list[PassCount]:
        """`pass_budget` split into stages that each run only on the samples the earlier ones left unbroken
        (AutoAttack's sub-attacks); summing to `pass_budget`. The plan prices the later stages on the samples a
        short attack leaves robust."""
        return [self.pass_budget(cell, num_classes)]

    def stage_outside_seconds(self, cell: Cell, num_classes: int, x: torch.Tensor, low: float, high: float,
                              device, rows: int) -> list[float] | None:
        """Per stage (as `stage_budgets`), seconds per model call the attack spends outside the model when each
        call carries `rows` rows (x: one input); None where that work is small beside a pass (the attacks that
        only step and project)."""
        return None

    def prepare(self, setup: AttackSetup) -> None:
        """Called once per dataset before `cells`/`cell_config`: attacks that need more than the batch (a
        source model) load it here and refuse a dataset they cannot run on."""
        return None

    def amplitude_cell(self, cell: Cell, space: Any, where: str) -> Cell:
        """The cell as `registry.check_eps_budget` judges it: the largest budget it allows, in input-space
        units (dB threats convert; they refuse a units mistake here). Skipped with --allow-large-eps."""
        return cell

    @property
    def source_model(self) -> str:
        """The model the inputs were crafted on when it is not the evaluated one (the `source_model` column)."""
        return ""

    @abstractmethod
    def run(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, cell: Cell,
            ctx: AttackContext) -> BatchResult:
        """Called outside `torch.no_grad`; the model's parameters do not require gradients, inputs may."""


def per_sample_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    if norm == "Linf":
        return flat.abs().max(dim=1).values
    return flat.norm(p=2, dim=1)
