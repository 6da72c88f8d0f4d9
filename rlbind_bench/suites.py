"""Named suites: which threats run, with which overrides, on how many samples."""

from __future__ import annotations

from dataclasses import dataclass, field

from rlbind_bench.errors import UserError


@dataclass(frozen=True)
class ThreatUse:
    threat: str
    overrides: dict = field(default_factory=dict)  # ThreatSpec fields replaced for this suite


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    description: str
    threats: tuple[ThreatUse, ...]
    n_samples: int | None = None  # None: every sample


QUICK_CORRUPTIONS = {
    "image": ("gaussian_noise", "defocus_blur", "jpeg_compression"),
    "audio": ("white_noise", "clipping", "telephone"),
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
                ThreatUse("corruptions", {"quick": True, "severities": (3,)}),
            ),
            n_samples=64,
        ),
        SuiteSpec(
            "full",
            "clean, Linf PGD-100 at 1,2,4/255, L2 PGD-100 at three eps, AutoAttack standard Linf at 2/255 and 4/255, "
            "every corruption x 5 severities, every sample",
            (
                ThreatUse("clean"),
                ThreatUse("linf-pgd", {"eps": (1 / 255, 2 / 255, 4 / 255), "steps": 100}),
                ThreatUse("l2-pgd", {"eps": (0.25, 0.5, 1.0), "steps": 100}),
                ThreatUse("autoattack-linf", {"eps": (2 / 255, 4 / 255)}),
                ThreatUse("corruptions", {"severities": (1, 2, 3, 4, 5)}),
            ),
        ),
    )
}


def get_suite(name: str) -> SuiteSpec:
    if name not in SUITES:
        raise UserError(f"unknown suite {name!r} (known: {', '.join(SUITES)})")
    return SUITES[name]
