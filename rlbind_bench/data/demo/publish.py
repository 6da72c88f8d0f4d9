"""Metadata, verification and publication of one built demo dataset.

Beside the samples (``<split>/<class>/<file>``), each dataset folder holds::

    classes.txt             class names, index order (sorted folder names would not be label order)
    manifest.csv            sample_id, split, label, class_name, source, licence
    splits/<split>.txt      sample ids of one split (sample_id = path relative to the dataset folder)
    build.json              builder version, seed, scale, counts, tool versions
    checksums.sha256        sha256sum format, every other file of the dataset

Idempotence: a dataset whose ``build.json`` matches the request and whose ``checksums.sha256`` verifies (no
file missing, changed or extra) is skipped; otherwise it is built in a temporary folder next to it and
renamed into place (:func:`rlbind_bench.files.staged_dir`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from rlbind_bench.data.demo.fixed_splits import splits_mismatch
from rlbind_bench.data.demo.spec import DATASET_CLASSES, DATASET_MODALITIES, SPLITS, BuildContext, Row
from rlbind_bench.errors import DatasetError
from rlbind_bench.files import file_sha256

BUILDER_VERSION = 2
# The module that first published the demo data. It is written into build.json, so renaming it would change
# every dataset's bytes and checksums; verify_dataset does not read it.
BUILDER_NAME = "rlbind_bench.data.demo_builder"


def _counts(rows: list[Row], classes: tuple[str, ...]) -> dict[str, dict[str, int]]:
    counts = {split: dict.fromkeys(classes, 0) for split in SPLITS}
    for r in rows:
        counts[r.split][classes[r.label]] += 1
    return counts


# The files are plain writes: they land in a staged folder that staged_dir publishes as a whole.
def write_metadata(out: Path, name: str, rows: list[Row], ctx: BuildContext, *, description: str,
                   simulated: bool = False, tools: dict[str, str] | None = None) -> None:
    """Write classes.txt, manifest.csv, splits/, build.json and checksums.sha256 of the dataset in ``out``."""
    classes = DATASET_CLASSES[name]
    order = {s: i for i, s in enumerate(SPLITS)}
    rows = sorted(rows, key=lambda r: (order[r.split], r.label, r.sample_id))
    ids = [r.sample_id for r in rows]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{name}: duplicate sample ids")
    (out / "classes.txt").write_text("".join(c + "\n" for c in classes))
    with open(out / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["sample_id", "split", "label", "class_name", "source", "licence"])
        for r in rows:
            w.writerow([r.sample_id, r.split, r.label, classes[r.label], r.source, r.licence])
    (out / "splits").mkdir(exist_ok=True)
    for split in SPLITS:
        listing = "".join(r.sample_id + "\n" for r in rows if r.split == split)
        (out / "splits" / f"{split}.txt").write_text(listing)
    # Key order is part of the file's bytes (no sort_keys), hence json.dumps rather than write_json_atomic.
    info = {"dataset": name, "builder": BUILDER_NAME, "builder_version": BUILDER_VERSION, "seed": ctx.seed,
            "scale": ctx.scale_name, "modality": DATASET_MODALITIES[name], "simulated": simulated,
            "description": description, "classes": list(classes), "counts": _counts(rows, classes),
            "total": len(rows)}
    if tools is not None:
        info["tools"] = tools
    (out / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    (out / "checksums.sha256").write_text("".join(f"{file_sha256(out / f)}  {f}\n" for f in files))


def verify_dataset(folder: Path, *, seed: int | None = None, scale: str | None = None) -> bool:
    """True when ``folder`` is a complete demo dataset: checksums match, no file missing or extra, its
    build.json matches this builder version (and ``seed``/``scale`` when given), and its split ids are the
    fixed ones (:mod:`.fixed_splits`)."""
    sums, info_path = folder / "checksums.sha256", folder / "build.json"
    if not sums.is_file() or not info_path.is_file():
        return False
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return False
    if info.get("builder_version") != BUILDER_VERSION or info.get("dataset") != folder.name:
        return False
    if (seed is not None and info.get("seed") != seed) or (scale is not None and info.get("scale") != scale):
        return False
    listed: dict[str, str] = {}
    for line in sums.read_text().splitlines():
        digest, sep, rel = line.partition("  ")
        if not sep:
            return False
        listed[rel] = digest
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    present.discard("checksums.sha256")
    if present != set(listed):
        return False
    if splits_mismatch(folder, folder.name, info.get("seed"), info.get("scale")):
        return False  # built by a builder whose splits were not the fixed ones: rebuild
    return all(file_sha256(folder / rel) == digest for rel, digest in listed.items())


def summary_counts(folder: Path) -> dict:
    """``{"counts", "total"}`` of a published dataset, from its build.json."""
    info = json.loads((folder / "build.json").read_text())
    return {"counts": info["counts"], "total": info["total"]}
