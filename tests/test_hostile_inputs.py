"""Broken data and broken models: skipped and counted, marked invalid, or refused with one line."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest
import torch

from rlbind_bench.cli import main


def test_unreadable_files_are_skipped_and_counted(checkpoints, photo_dir, tmp_path, capsys):
    data = tmp_path / "photos"
    shutil.copytree(photo_dir, data)
    (data / "cat" / "broken.png").write_bytes(b"not a png at all")
    (data / "coffee" / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    rc = main(["run", "--model", str(checkpoints["image"]), "--dataset-dir", f"image={data}", "--out", str(out),
               "--no-progress"])
    assert rc == 0
    samples = pd.read_parquet(out / "samples.parquet")
    summary = pd.read_parquet(out / "summary.parquet")
    assert len(samples) == 12
    assert summary["n_skipped"].iloc[0] == 2
    assert "2 unreadable file(s) skipped" in capsys.readouterr().out


def test_nan_outputs_mark_rows_invalid(checkpoints, photo_dir, tmp_path):
    from rlbind_bench.config import RunConfig
    from rlbind_bench.encoders.registry import load_encoder
    from rlbind_bench.runner import RunRequest, run_evaluation

    enc = load_encoder(str(checkpoints["image"]))
    with torch.no_grad():
        enc.projection["image"].weight[0, 0] = float("nan")
    cfg = RunConfig(model="nan-model", suite="clean")
    outcome = run_evaluation(RunRequest(config=cfg, out=tmp_path / "o", dataset_dirs={"image": str(photo_dir)},
                                        progress=False, encoder=enc))
    assert not outcome.samples["valid"].any()
    assert not outcome.samples["correct"].any()
    row = outcome.summary.iloc[0]
    assert row["n"] == 0
    assert row["n_invalid"] == 12
    assert pd.isna(row["accuracy"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_output_folder(checkpoints, photo_dir, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    rc = main(["run", "--model", str(checkpoints["image"]), "--dataset-dir", f"image={photo_dir}",
               "--out", str(locked / "o"), "--no-progress"])
    assert rc == 2
    assert "not writable" in capsys.readouterr().err


def test_output_path_that_is_a_file(checkpoints, photo_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["run", "--model", str(checkpoints["image"]), "--dataset-dir", f"image={photo_dir}",
               "--out", str(blocker / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "not writable" in err
    assert len(err.strip().splitlines()) == 1


def test_eps_budget_covering_the_box_is_refused():
    """L-inf at half the range and L2 at the diameter are refused, just below both is not; the range is the
    modality's (waveforms span 2). Caught: the check comparing against 1 instead of half the range."""
    from rlbind_bench.errors import ConfigError
    from rlbind_bench.modalities.base import InputSpace
    from rlbind_bench.threats.base import Cell
    from rlbind_bench.threats.registry import check_eps_budget

    image = InputSpace("image", (3, 2, 2), 0.0, 1.0, "")
    audio = InputSpace("audio", (16,), -1.0, 1.0, "")
    for cell, space in ((Cell("t", "Linf", 0.5), image), (Cell("t", "Linf", 1.0), audio),
                        (Cell("t", "L2", 12 ** 0.5), image), (Cell("t", "L2", 8.0), audio)):
        with pytest.raises(ConfigError, match="did you mean"):
            check_eps_budget(cell, space, "t")
    for cell, space in ((Cell("t", "Linf", 0.49), image), (Cell("t", "Linf", 0.99), audio),
                        (Cell("t", "L2", 3.4), image), (Cell("t", "L2", 7.9), audio)):
        check_eps_budget(cell, space, "t")


def test_out_of_memory_backs_off_to_smaller_batches(checkpoints, photo_dir, tmp_path, monkeypatch):
    """A classifier that 'runs out of memory' above 3 samples: the run halves batches and still gives every row,
    identical to a run with small batches."""
    from rlbind_bench.config import RunConfig
    from rlbind_bench.runner import RunRequest, run_evaluation
    from rlbind_bench.zeroshot import ZeroShotClassifier

    original = ZeroShotClassifier.forward

    def limited(self, x):
        if x.shape[0] > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, x)

    monkeypatch.setattr(ZeroShotClassifier, "forward", limited)
    common = {"model": str(checkpoints["image"]), "suite": "clean", "threats": ["linf-pgd"], "eps": [2 / 255], "steps": 2}
    big = run_evaluation(RunRequest(config=RunConfig(batch_size=12, **common), out=tmp_path / "big",
                                    dataset_dirs={"image": str(photo_dir)}, progress=False))
    small = run_evaluation(RunRequest(config=RunConfig(batch_size=3, **common), out=tmp_path / "small",
                                      dataset_dirs={"image": str(photo_dir)}, progress=False))
    cols = ["sample_id", "threat", "clean_pred", "pred", "correct", "perturbation_norm"]
    assert len(big.samples) == 24
    pd.testing.assert_frame_equal(big.samples[cols], small.samples[cols])


def test_a_model_path_with_equals_and_commas_is_a_path(checkpoints, tmp_path):
    """A checkpoint folder whose name holds '=' and ',' loads as that folder, not as MODALITY=PATH,...
    Caught: the `"=" in spec` branch taken before looking at the file system ("bad model spec part")."""
    import shutil

    from rlbind_bench.encoders.registry import load_encoder

    odd = tmp_path / "<img src=x>,image=y"
    shutil.copytree(checkpoints["image"], odd)
    assert load_encoder(str(odd)).modalities == load_encoder(str(checkpoints["image"])).modalities
