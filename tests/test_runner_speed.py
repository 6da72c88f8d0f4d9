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
    # Fresh caches: the workers run must make its corruptions in the workers, not read the serial run's.
    monkeypatch.setenv("RLBIND_CACHE_DIR", str(tmp_path / "cache0"))
    serial, run0 = _run_cli(checkpoints, photos_with_broken, tmp_path / "w0", "--workers", "0")
    monkeypatch.setenv("RLBIND_CACHE_DIR", str(tmp_path / "cache2"))
    parallel, run2 = _run_cli(checkpoints, photos_with_broken, tmp_path / "w2", "--workers", "2")
    uncached, run_u = _run_cli(checkpoints, photos_with_broken, tmp_path / "wu", "--workers", "0",
                               "--no-corruption-cache")
    assert len(serial) == 12 * 4  # clean + three corruptions at severity 3, the two broken files skipped
    # run_id included: workers and the cache are not part of the identity.
    pd.testing.assert_frame_equal(serial, parallel)
    pd.testing.assert_frame_equal(serial, uncached)
    assert len(list((tmp_path / "cache2" / "corruptions").rglob("*.bin"))) == 12 * 3
    assert run0["run_id"] == run2["run_id"] == run_u["run_id"]
    for run in (run0, run2):
        skipped = next(iter(run["skipped_files"].values()))
        assert len(skipped) == 2
        assert any("broken.png" in s for s in skipped)
        assert any("empty.jpg" in s for s in skipped)
    summary = pd.read_parquet(tmp_path / "w2" / "summary.parquet")
    assert (summary["n_skipped"] == 2).all()


def test_workers_default_and_validation():
    import torch

    from rlbind_bench.batching import resolve_workers
    from rlbind_bench.errors import ConfigError

    assert resolve_workers(None, torch.device("cpu")) == 0
    assert 0 <= resolve_workers(None, torch.device("cuda")) <= 8
    assert resolve_workers(3, torch.device("cpu")) == 3
    with pytest.raises(ConfigError, match="--workers"):
        resolve_workers(-1, torch.device("cpu"))


def _api_run(checkpoints, photo_dir, out, **options):
    from rlbind_bench.config import RunConfig
    from rlbind_bench.runner import RunRequest, run_evaluation

    cfg = RunConfig(model=str(checkpoints["image"]), suite="clean", templates=["a photo of a {}."], batch_size=6,
                    **options)
    return run_evaluation(RunRequest(config=cfg, out=out, dataset_dirs={"image": str(photo_dir)}, progress=False))


@pytest.fixture(scope="module")
def fp32_run(checkpoints, photo_dir, tmp_path_factory):
    return _api_run(checkpoints, photo_dir, tmp_path_factory.mktemp("fp32") / "o")


def test_bf16_on_cpu_is_close_to_fp32_and_recorded(checkpoints, photo_dir, fp32_run, tmp_path):
    bf16 = _api_run(checkpoints, photo_dir, tmp_path / "bf16", precision="bf16")
    a, b = fp32_run.samples, bf16.samples
    assert len(a) == len(b) == 12
    assert list(a["sample_id"]) == list(b["sample_id"])
    assert b["margin"].notna().all()
    assert (a["clean_pred"] == b["clean_pred"]).mean() >= 0.75
    assert abs(a["correct"].mean() - b["correct"].mean()) <= 0.25
    assert bf16.run["run_id"] != fp32_run.run["run_id"]
    assert bf16.run["config"]["precision"] == "bf16"
    assert set(a["config_hash"]).isdisjoint(set(b["config_hash"]))


def test_bf16_classifier_keeps_float32_logits_and_gradients(checkpoints, photo_dir):
    import torch

    from rlbind_bench.encoders.registry import load_encoder
    from rlbind_bench.modalities import get_handler
    from rlbind_bench.threats.base import AttackContext, Cell
    from rlbind_bench.threats.pgd import PGD
    from rlbind_bench.threats.spec import PGDSpec
    from rlbind_bench.zeroshot import ZeroShotClassifier, build_class_embeddings

    enc = load_encoder(str(checkpoints["image"])).eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    files = sorted(photo_dir.rglob("*.png"))[:4]
    x = torch.stack([get_handler("image").load(f, enc.preprocess_config("image")) for f in files])
    emb = build_class_embeddings(enc, ["cat", "coffee", "astronaut", "rocket"], ["a photo of a {}."])
    clf = ZeroShotClassifier(enc, "image", emb, autocast_dtype=torch.bfloat16).eval()
    with torch.no_grad():
        logits = clf(x)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    y = logits.argmax(1)
    ids = [f.name for f in files]
    res = PGD(PGDSpec("t", "pgd", norm="Linf", eps=(4 / 255,), steps=2)).run(
        clf, x, y, Cell("t", "Linf", 4 / 255), AttackContext("image", 0, ids, logits, 0.0, 1.0, 4, torch.device("cpu")))
    assert res.valid.all()
    assert (res.perturbation_norm <= 4 / 255 + 1e-6).all()
    assert (res.perturbation_norm > 0).any()


def test_defaults_keep_hashes_and_compile_is_recorded(checkpoints, photo_dir, fp32_run, tmp_path, monkeypatch):
    import torch

    explicit = _api_run(checkpoints, photo_dir, tmp_path / "explicit", precision="fp32", compile=False, workers=0)
    assert explicit.run["run_id"] == fp32_run.run["run_id"]
    assert list(explicit.samples["config_hash"]) == list(fp32_run.samples["config_hash"])
    compiled = []

    def fake_compile(model, **kwargs):  # the flag's bookkeeping, without paying for inductor on CPU
        compiled.append(type(model).__name__)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    run = _api_run(checkpoints, photo_dir, tmp_path / "compiled", compile=True)
    assert compiled == ["ZeroShotClassifier"]
    assert run.run["run_id"] != fp32_run.run["run_id"]
    assert run.run["config"]["compile"] is True
    assert set(run.samples["config_hash"]).isdisjoint(set(fp32_run.samples["config_hash"]))
    pd.testing.assert_frame_equal(run.samples.drop(columns=["run_id", "config_hash"]),
                                  fp32_run.samples.drop(columns=["run_id", "config_hash"]))


def test_bad_precision_is_a_config_error(checkpoints, photo_dir, tmp_path):
    from rlbind_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="--precision"):
        _api_run(checkpoints, photo_dir, tmp_path / "o", precision="fp8")


@pytest.mark.slow
def test_torch_compile_on_cpu_matches_eager(checkpoints, photo_dir, fp32_run, tmp_path):
    run = _api_run(checkpoints, photo_dir, tmp_path / "compiled", compile=True)
    a, b = fp32_run.samples, run.samples
    assert (a["clean_pred"] == b["clean_pred"]).all()
    assert (a["pred"] == b["pred"]).mean() >= 0.9


def test_video_corruptions_made_in_workers_give_identical_rows(checkpoints, real_video, tmp_path, monkeypatch):
    """Video is not cached on disk; with workers its corruptions are made there and handed over in memory."""
    from rlbind_bench.threats import corruptions

    video = tmp_path / "video"
    for cls in ("car", "person"):
        (video / cls).mkdir(parents=True)
        shutil.copy(real_video, video / cls / "clip.mp4")

    def run(out, *extra):
        rc = main(["run", "--model", f"video={checkpoints['video']}", "--suite", "quick", "--threats", "corruptions",
                   "--modalities", "video", "--dataset-dir", f"video={video}", "--out", str(out), "--no-progress",
                   *extra])
        assert rc == 0
        return pd.read_parquet(out / "samples.parquet")

    made_in_main = []

    original = corruptions.corrupt_batch

    def counting(*args, **kwargs):
        made_in_main.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(corruptions, "corrupt_batch", counting)
    serial = run(tmp_path / "w0", "--workers", "0")
    assert len(made_in_main) == 3  # three video corruptions, one batch, made in the main process
    made_in_main.clear()
    parallel = run(tmp_path / "w2", "--workers", "2")
    assert made_in_main == []  # all made in the workers
    assert len(serial) == 2 * 4  # clean + three corruptions, two clips
    pd.testing.assert_frame_equal(serial, parallel)
    assert (serial.loc[serial["threat"] != "clean", "perturbation_norm"] > 0).all()
