"""Runner options that only change speed (workers) give the same rows; those that change numbers (precision,
compile) are recorded in run_id and config_hash."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from rlbind_bench.cli import main


def _run_cli(checkpoints, data, out, *extra):
    rc = main(["run", "--model", str(checkpoints["image"]), "--suite", "quick", "--threats", "corruptions",
               "--modalities", "image", "--dataset-dir", f"image={data}", "--templates", "a photo of a {}.",
               "--out", str(out), "--no-progress", "--batch-size", "5", *extra])
    assert rc == 0
    return pd.read_parquet(out / "samples.parquet"), json.loads((out / "run.json").read_text())


@pytest.fixture(scope="module")
def photos_with_broken(photo_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("photos") / "photos"
    shutil.copytree(photo_dir, data)
    (data / "cat" / "broken.png").write_bytes(b"not a png at all")
    (data / "coffee" / "empty.jpg").write_bytes(b"")
    return data


def test_workers_give_identical_rows_and_still_skip_unreadable(checkpoints, photos_with_broken, tmp_path,
                                                               monkeypatch):
    monkeypatch.setenv("RLBIND_SHARD_SIZE", "7")  # two shards: the loader must not mix their rows
    serial, run0 = _run_cli(checkpoints, photos_with_broken, tmp_path / "w0", "--workers", "0")
    parallel, run2 = _run_cli(checkpoints, photos_with_broken, tmp_path / "w2", "--workers", "2")
    assert len(serial) == 12 * 4  # clean + three corruptions at severity 3, the two broken files skipped
    pd.testing.assert_frame_equal(serial, parallel)  # run_id included: workers are not part of the identity
    assert run0["run_id"] == run2["run_id"]
    for run in (run0, run2):
        skipped = next(iter(run["skipped_files"].values()))
        assert len(skipped) == 2 and any("broken.png" in s for s in skipped) and any("empty.jpg" in s for s in skipped)
    summary = pd.read_parquet(tmp_path / "w2" / "summary.parquet")
    assert (summary["n_skipped"] == 2).all()


def test_workers_default_and_validation():
    import torch

    from rlbind_bench.errors import ConfigError
    from rlbind_bench.runner import resolve_workers

    assert resolve_workers(None, torch.device("cpu")) == 0
    assert 0 <= resolve_workers(None, torch.device("cuda")) <= 8
    assert resolve_workers(3, torch.device("cpu")) == 3
    with pytest.raises(ConfigError, match="--workers"):
        resolve_workers(-1, torch.device("cpu"))
