"""Named suites: which threats run, with which overrides, on how many samples."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from rlbind_bench.config import RunConfig
from rlbind_bench.errors import ConfigError, UserError
from rlbind_bench.threats.registry import attack_class, load_threats
from rlbind_bench.threats.spec import ThreatSpec


@dataclass(frozen=True)
class ThreatUse:
    threat: str
    overrides: dict = field(default_factory=dict)  # fields of the threat's spec replaced for this suite


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    description: str
    threats: tuple[ThreatUse, ...]
    n_samples: int | None = None  # None: every sample


_QUICK_IMAGE = ("gaussian_noise", "defocus_blur", "jpeg_compression")
# The quick suite's short corruption list per modality (CorruptionSpec.subset).
QUICK_CORRUPTIONS = {
    "image": _QUICK_IMAGE,
    "thermal": _QUICK_IMAGE,
    "depth": _QUICK_IMAGE,
    "audio": ("white_noise", "clipping", "telephone"),
    "video": ("frame_gaussian_noise", "frame_drop", "blockiness"),
}

SUITES: dict[str, SuiteSpec] = {
    s.name: s
    for s in (
        SuiteSpec("clean", "clean zero-shot accuracy only", (ThreatUse("clean"),)),
        SuiteSpec(
            "quick",
            "clean, Linf PGD-10 at 1/255 and 4/255, L2 PGD-10 at one eps, three corruptions at severity 3; "
            "64 samples per dataset",
            (
                ThreatUse("clean"),
                ThreatUse("linf-pgd", {"eps": (1 / 255, 4 / 255), "steps": 10}),
                ThreatUse("l2-pgd", {"eps": (0.5,), "steps": 10}),
                ThreatUse("corruptions", {"subset": QUICK_CORRUPTIONS, "severities": (3,)}),
            ),
            n_samples=64,
        ),
        SuiteSpec(
            "full",
            "clean, Linf PGD-100 at 1,2,4/255, L2 PGD-100 at three eps, AutoAttack standard Linf at 2/255 and 4/255, "
            "audio: Linf PGD-100 at -40,-30,-20 dB of each clip's peak; every corruption x 5 severities, label-free "
            "embedding PGD-100 (Linf 1,2,4/255; L2 three eps) and cross-modal targeted Linf PGD-100 at 1,2,4/255, "
            "every sample",
            (
                ThreatUse("clean"),
                ThreatUse("linf-pgd", {"eps": (1 / 255, 2 / 255, 4 / 255), "steps": 100}),
                ThreatUse("l2-pgd", {"eps": (0.25, 0.5, 1.0), "steps": 100}),
                ThreatUse("autoattack-linf", {"eps": (2 / 255, 4 / 255)}),
                ThreatUse("linf-pgd-db", {"eps": (-40.0, -30.0, -20.0), "steps": 100}),  # audio only
                ThreatUse("corruptions", {"severities": (1, 2, 3, 4, 5)}),
                ThreatUse("embedding-linf", {"eps": (1 / 255, 2 / 255, 4 / 255), "steps": 100}),
                ThreatUse("embedding-l2", {"eps": (0.25, 0.5, 1.0), "steps": 100}),
                ThreatUse("crossmodal-linf", {"eps": (1 / 255, 2 / 255, 4 / 255), "steps": 100}),
            ),
        ),
    )
}


def get_suite(name: str) -> SuiteSpec:
    if name not in SUITES:
        raise UserError(f"unknown suite {name!r} (known: {', '.join(SUITES)})")
    return SUITES[name]


def resolve_threats(cfg: RunConfig, attacks_dir: Path | None = None) -> list[ThreatSpec]:
    """Suite threats (+ --threats), with the suite's and then the command line's overrides applied.

    A suite override names fields of the threat's typed spec; one the spec does not have is a bug in the suite
    (refused). --eps and --steps apply to adversarial threats only."""
    suite = get_suite(cfg.suite)
    available = load_threats(attacks_dir)
    uses = list(suite.threats)
    if cfg.threats:
        named = {u.threat for u in uses}
        for t in cfg.threats:
            if t not in available:
                raise UserError(f"unknown threat {t!r} (known: {', '.join(sorted(available))})")
            if t not in named:
                uses.append(ThreatUse(t))
        uses = [u for u in uses if u.threat == "clean" or u.threat in cfg.threats]
    specs = []
    for use in uses:
        if use.threat not in available:
            raise UserError(f"suite {suite.name} names threat {use.threat!r}, which attacks/ does not define")
        spec = available[use.threat]
        fields = {f.name for f in dataclasses.fields(spec)}
        unknown = sorted(set(use.overrides) - fields)
        if unknown:
            raise ConfigError(f"suite {suite.name}: threat {spec.name} has no setting {unknown[0]!r}")
        overrides = dict(use.overrides)
        kind = attack_class(spec.attack)
        if kind.adversarial:
            # An eps in other units (dB) takes --eps only when the threat is named: a suite's dB grid is kept.
            if cfg.eps is not None and (not kind.eps_unit or spec.name in (cfg.threats or ())):
                overrides["eps"] = tuple(cfg.eps)
            if cfg.steps is not None:
                overrides["steps"] = cfg.steps
        if cfg.transfer_from is not None and "source" in fields:
            overrides["source"] = cfg.transfer_from
        spec = dataclasses.replace(spec, **overrides)  # the spec validates its settings again
        specs.append(spec)
    if cfg.transfer_from is not None and not any(hasattr(s, "source") for s in specs):
        raise UserError("--transfer-from: no transfer threat is selected (add e.g. --threats transfer-linf)")
    return specs
