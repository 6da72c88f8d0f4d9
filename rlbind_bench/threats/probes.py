"""The runner's gradient-masking probes (threats/checks.py) on one dataset: which samples, and their caches.

The probes concern the model, not the run: the same model on the same inputs gives the same verdicts whatever
the threats, sample count or eps of the run. So besides the copy beside the parts (a resumed run reads it), each
result is kept in the user cache under a key of everything the probes read: the model's weight fingerprint, the
probed inputs' bytes, norm, which probes, precision, device type and the probe code. A second run of the same
model and data (another threat, a larger --n-samples, a CI gate) pays nothing for them; the first pays at most
`probe_budget` passes on `samples` inputs (16 by default, fewer when the dataset has fewer). That keeps the
checks as they are (same samples, steps and thresholds) while their cost stops recurring with every run.
`--probe-samples 0` turns them off: run.json then says which checks were not run, and `rlbind-bench check`
repeats it, so a cell with no probe flag is never read as a cell that passed them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from pathlib import Path

import torch

from rlbind_bench.files import slugify, write_json_atomic
from rlbind_bench.hashing import config_hash
from rlbind_bench.paths import user_cache_dir
from rlbind_bench.threats.checks import probe_batch, probe_embedding
from rlbind_bench.threats.corruptions.cache import input_fingerprint

DEFAULT_PROBE_SAMPLES = 16
# The checks that read the probes' results: off with the probes (the others read the run's own rows).
PROBE_CHECKS = ("large_eps_not_zero", "zero_gradients", "randomized_output", "more_steps_raise_accuracy",
                "more_steps_raise_cosine")
_CODE = ("checks.py", "probes.py", "pgd.py", "embedding.py")


@functools.cache
def probe_code_digest() -> str:
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in _CODE:
        h.update(name.encode() + b"\0" + (here / name).read_bytes())
    return h.hexdigest()[:16]


def probe_inputs(dataset, k: int) -> tuple[list[str], list[torch.Tensor]]:
    """The first k readable samples (ids, inputs): fixed by the dataset's order, so reruns probe the same ones."""
    ids, xs = [], []
    for i in range(len(dataset)):
        if len(xs) == k:
            break
        _, x, _ = dataset[i]
        if x is not None:
            ids.append(dataset.index.samples[i].sample_id)
            xs.append(x)
    return ids, xs


def probe_key(fingerprint: str, ids: list[str], xs: list[torch.Tensor], *, norm: str, label_free: bool,
              precision: str, device, space) -> str:
    """Everything the probes' verdicts depend on."""
    return config_hash({"fingerprint": fingerprint, "ids": ids, "inputs": config_hash([input_fingerprint(x) for x in xs]), "norm": norm,
                        "label_free": label_free, "precision": precision, "device": torch.device(device).type,
                        "space": [space.low, space.high], "code": probe_code_digest()})


def shared_probe_file(dataset_name: str, key: str) -> Path:
    return user_cache_dir() / "probes" / f"{slugify(dataset_name)}-{key}.json"


def diagnose(dataset, classifier, space, device, *, resume_file: Path, fingerprint: str, norm: str,
             label_free: bool, samples: int = DEFAULT_PROBE_SAMPLES, precision: str = "fp32",
             shared_cache: bool = True) -> tuple[dict, str]:
    """(the probes' results for one dataset, {} when off or nothing is readable; where they came from: "probed",
    "user cache", "resumed" or "off"). The source is an execution detail like a time (run.json keeps it apart
    from the results, which are the same whichever it was)."""
    if samples <= 0:
        return {}, "off"
    if resume_file.is_file():
        return json.loads(resume_file.read_text()), "resumed"
    ids, xs = probe_inputs(dataset, samples)
    if not xs:
        return {}, "off"
    key = probe_key(fingerprint, ids, xs, norm=norm, label_free=label_free, precision=precision, device=device,
                    space=space)
    shared = shared_probe_file(dataset.index.spec.name, key)
    if shared_cache and shared.is_file():
        try:
            result = json.loads(shared.read_text())
        except (OSError, ValueError):  # a torn or garbled entry: probe again
            result = None
        if isinstance(result, dict) and result.get("probe_key") == key:
            write_json_atomic(resume_file, result)
            return result, "user cache"
    result = {**run_probes(xs, classifier, space, device, norm, label_free), "probe_key": key}
    write_json_atomic(resume_file, result)
    if shared_cache:
        with contextlib.suppress(OSError):  # an unwritable cache costs the next run its probes, nothing else
            write_json_atomic(shared, result)
    return result, "probed"


def run_probes(xs: list[torch.Tensor], classifier, space, device, norm: str, label_free: bool) -> dict:
    while True:
        try:
            x = torch.stack(xs).to(device)
            with torch.no_grad():
                pred = classifier(x).argmax(1)
            # Probe against the model's own predictions: the checks ask whether attacks can move the model at all.
            result = probe_batch(classifier, x, pred, space.low, space.high, norm=norm or "Linf")
            if label_free:  # the embedding threats' own convergence probe
                result.update(probe_embedding(classifier, x, space.low, space.high, norm=norm or "Linf"))
            return result
        except torch.cuda.OutOfMemoryError:
            if len(xs) == 1:
                raise
            torch.cuda.empty_cache()
            xs = xs[: len(xs) // 2]
