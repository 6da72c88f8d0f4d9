"""The demo's fixed splits: the sha256 of every split's id list, pinned in the package.

Each built dataset lists its split ids in ``splits/<split>.txt``; at the reference seed
(:data:`PINNED_SEED`) those files must hash to the values in ``resources/datasets/demo-splits.json``
(per dataset, scale and split: the number of ids and the sha256 of the file). So a code change that moves a
sample to another split, drops one or changes the seeding fails the build (and the tests) instead of
silently changing what the benchmark measures. Other seeds are not pinned.

After an intended change of the splits, rebuild both scales (seed 0) and rewrite the pins with
:func:`pins_of`: ``python -c 'import json, sys; from rlbind_bench.data.demo.fixed_splits import pins_of;
print(json.dumps(pins_of(sys.argv[1:]), indent=1, sort_keys=True))' ROOT_FULL ROOT_TINY``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from importlib import resources
from pathlib import Path

from rlbind_bench.data.demo.spec import DATASETS, SPLITS
from rlbind_bench.errors import DatasetError

log = logging.getLogger(__name__)

PINNED_SEED = 0
PIN_RESOURCE = "resources/datasets/demo-splits.json"


@functools.lru_cache(maxsize=1)
def pinned() -> dict:
    """``{dataset: {scale: {split: {"n": int, "sha256": str}}}}``."""
    return json.loads(resources.files("rlbind_bench").joinpath(PIN_RESOURCE).read_text())["datasets"]


def split_digests(folder: Path) -> dict[str, dict]:
    """``{split: {"n", "sha256"}}`` of a built dataset's ``splits/<split>.txt``."""
    out = {}
    for split in SPLITS:
        data = (folder / "splits" / f"{split}.txt").read_bytes()
        out[split] = {"n": len(data.splitlines()), "sha256": hashlib.sha256(data).hexdigest()}
    return out


def splits_mismatch(folder: Path, name: str, seed: int, scale: str) -> str | None:
    """Why the split lists of ``folder`` are not the pinned ones (None when they are, or are not pinned)."""
    if seed != PINNED_SEED:
        return None
    pins = pinned().get(name, {}).get(scale)
    if pins is None:
        log.warning("%s: no pinned split ids for scale %s in %s", name, scale, PIN_RESOURCE)
        return None
    try:
        got = split_digests(folder)
    except OSError as exc:
        return str(exc)
    for split in SPLITS:
        if got[split] != pins.get(split):
            return (f"{name}: the {split} split's ids ({got[split]['n']}, sha256 {got[split]['sha256'][:12]}) "
                    f"are not the fixed ones ({pins.get(split)}) of {PIN_RESOURCE}")
    return None


def check_fixed_splits(folder: Path, name: str, seed: int, scale: str) -> None:
    """Raise DatasetError when a freshly built dataset's split ids are not the pinned ones."""
    why = splits_mismatch(folder, name, seed, scale)
    if why:
        raise DatasetError(why + " (a builder change moved samples between splits; if intended, re-pin: see "
                           "rlbind_bench/data/demo/fixed_splits.py)")


def pins_of(roots: list[str]) -> dict:
    """The pin file's content for the seed-0 datasets built under ``roots``."""
    out: dict = {"seed": PINNED_SEED, "datasets": {}}
    for root in map(Path, roots):
        for name in DATASETS:
            folder = root / name
            if (folder / "build.json").is_file():
                info = json.loads((folder / "build.json").read_text())
                if info["seed"] == PINNED_SEED:
                    out["datasets"].setdefault(name, {})[info["scale"]] = split_digests(folder)
    return out
