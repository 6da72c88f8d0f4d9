"""config_hash identifies what was evaluated, not where the checkpoint lay."""

from __future__ import annotations

import os
import shutil

import pandas as pd

from rlbind_bench.config import RunConfig
from rlbind_bench.runner import RunRequest, run_evaluation


def _hashes(model: str, photo_dir, out) -> pd.Series:
    cfg = RunConfig(model=model, suite="clean", n_samples=4)
    run_evaluation(RunRequest(config=cfg, out=out, dataset_dirs={"image": str(photo_dir)}, progress=False))
    return pd.read_parquet(out / "samples.parquet").set_index("sample_id")["config_hash"].sort_index()


def test_a_copied_checkpoint_keeps_its_config_hash(checkpoints, photo_dir, tmp_path):
    """Breaks when the model's path or the weight file's mtime enters config_hash (seen failing with the
    model spec back in the hashed config, and with the size/mtime fingerprint)."""
    copy = tmp_path / "elsewhere" / "renamed-checkpoint"
    shutil.copytree(checkpoints["image"], copy)
    for f in copy.iterdir():  # a re-download: same bytes, new times
        os.utime(f, (1_000_000_000, 1_000_000_000))
    original = _hashes(str(checkpoints["image"]), photo_dir, tmp_path / "a")
    copied = _hashes(str(copy), photo_dir, tmp_path / "b")
    pd.testing.assert_series_equal(original, copied)


def test_different_weights_change_config_hash(checkpoints, photo_dir, tmp_path):
    """The other direction: a checkpoint whose weights differ in one byte gets other hashes."""
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "changed"
    shutil.copytree(checkpoints["image"], copy)
    weights = next(p for p in copy.iterdir() if p.suffix == ".safetensors")
    state = load_file(weights)
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key].clone()
    state[key].view(-1)[0] += 1.0
    save_file(state, weights)
    original = _hashes(str(checkpoints["image"]), photo_dir, tmp_path / "a")
    changed = _hashes(str(copy), photo_dir, tmp_path / "b")
    assert not (original == changed).any()


def test_run_json_records_the_commit_the_run_started_at(checkpoints, photo_dir, tmp_path, monkeypatch):
    """A long run whose checkout moves on before it ends (a commit made while it runs) records the commit it
    started at. Broken by taking provenance() when run.json is written: caught (the later commit was recorded)."""
    from rlbind_bench.results import provenance as prov

    commits = iter(["started-here", "checked-out-later", "checked-out-later", "checked-out-later"])
    monkeypatch.setattr(prov, "git_hash", lambda: next(commits))
    cfg = RunConfig(model=str(checkpoints["image"]), suite="clean", n_samples=2)
    outcome = run_evaluation(RunRequest(config=cfg, out=tmp_path / "r", dataset_dirs={"image": str(photo_dir)},
                                        progress=False))
    assert outcome.run["provenance"]["git"] == "started-here"


def test_the_device_names_the_processor_model():
    """Rows are bit-reproducible on one processor model (float sums differ between models), so run.json says which."""
    import torch

    from rlbind_bench.results.provenance import cpu_model, device_name

    name = device_name(torch.device("cpu"))
    assert cpu_model() in name
    assert f"({torch.get_num_threads()} threads)" in name
