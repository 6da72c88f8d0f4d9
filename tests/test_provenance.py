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
