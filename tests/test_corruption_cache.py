"""The corrupted-input cache: a second run reads what the first made, with identical rows; broken entries are
made again; values come back bit for bit, as uint8 only when that is lossless."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from rlbind_bench.threats.corruptions import cache as cc


@pytest.fixture
def counted(monkeypatch):
    """Counts corrupt() calls (the main process's: run with workers=0)."""
    from rlbind_bench.threats import corruptions

    calls = []
    original = corruptions.corrupt

    def corrupt(modality, name, severity, x, **kw):
        calls.append((name, severity, kw["sample_id"]))
        return original(modality, name, severity, x, **kw)

    monkeypatch.setattr(corruptions, "corrupt", corrupt)
    return calls


def _run(checkpoints, photo_dir, out, cache=True):
    from rlbind_bench.config import RunConfig
    from rlbind_bench.runner import RunRequest, run_evaluation

    cfg = RunConfig(model=str(checkpoints["image"]), suite="quick", threats=["corruptions"], modalities=["image"],
                    templates=["a photo of a {}."], batch_size=5, workers=0)
    return run_evaluation(RunRequest(config=cfg, out=out, dataset_dirs={"image": str(photo_dir)}, progress=False,
                                     corruption_cache=cache)).samples


def _entries(root):
    return sorted((root / "corruptions").rglob("*.bin"))


def test_second_run_reads_the_cache_with_identical_rows(checkpoints, photo_dir, tmp_path, monkeypatch, counted):
    monkeypatch.setenv("RLBIND_CACHE_DIR", str(tmp_path / "cache"))
    first = _run(checkpoints, photo_dir, tmp_path / "a")
    assert len(counted) == 12 * 3
    assert len(_entries(tmp_path / "cache")) == 12 * 3
    counted.clear()
    second = _run(checkpoints, photo_dir, tmp_path / "b")
    assert counted == []  # every corrupted input came from the cache
    pd.testing.assert_frame_equal(first, second)
    uncached = _run(checkpoints, photo_dir, tmp_path / "c", cache=False)
    assert len(counted) == 12 * 3
    pd.testing.assert_frame_equal(first, uncached)
    # Image corruptions round to 8 bits: stored as uint8, a quarter of float32.
    for path in _entries(tmp_path / "cache"):
        data = path.read_bytes()
        n = int.from_bytes(data[8:12], "little")
        assert json.loads(data[12:12 + n])["dtype"] == "uint8"
        assert len(data) - 12 - n == 3 * 224 * 224


def test_broken_entries_are_made_again(checkpoints, photo_dir, tmp_path, monkeypatch, counted):
    monkeypatch.setenv("RLBIND_CACHE_DIR", str(tmp_path / "cache"))
    first = _run(checkpoints, photo_dir, tmp_path / "a")
    entries = _entries(tmp_path / "cache")
    truncated, flipped, garbage, empty = entries[:4]
    truncated.write_bytes(truncated.read_bytes()[:-100])
    data = bytearray(flipped.read_bytes())
    data[-7] ^= 0x55
    flipped.write_bytes(bytes(data))
    garbage.write_bytes(b"\x00" * 64)
    empty.write_bytes(b"")
    counted.clear()
    second = _run(checkpoints, photo_dir, tmp_path / "b")
    assert len(counted) == 4
    pd.testing.assert_frame_equal(first, second)
    cache = cc.CorruptionCache(tmp_path / "cache" / "corruptions")
    for path in (truncated, flipped, garbage, empty):
        assert cache.load(path.stem, (3, 224, 224)) is not None
    assert not list((tmp_path / "cache").rglob("*.tmp"))


@pytest.mark.parametrize(("values", "dtype"), [
    (torch.arange(256, dtype=torch.float64).div(255).float(), "uint8"),
    (torch.tensor([0.0, 0.5, 1.0]), "float32"),  # 0.5 is not k/255
    (torch.tensor([-0.0, 1.0]), "float32"),  # -0.0 would come back as +0.0
    (torch.tensor([0.0, 2.0]), "float32"),
    (torch.tensor([float("nan"), 0.0]), "float32"),
    (torch.randn(3, 5), "float32"),
])
def test_values_round_trip_bit_for_bit(tmp_path, values, dtype):
    cache = cc.CorruptionCache(tmp_path)
    assert cache.store("ab" + "0" * 62, values)
    back = cache.load("ab" + "0" * 62, tuple(values.shape))
    assert cc.encode(values)[0] == dtype
    assert back.dtype == torch.float32
    assert torch.equal(back.view(torch.int32), values.view(torch.int32))
    assert cache.load("ab" + "0" * 62, (1, *values.shape)) is None  # a different shape is a different input
    assert cache.load("cd" + "0" * 62, tuple(values.shape)) is None


def test_key_covers_every_input(tmp_path):
    cache = cc.CorruptionCache(tmp_path)
    fp = cc.input_fingerprint(torch.zeros(3, 4, 4))
    v = cc.Variant("gaussian_noise", 3, 0)
    keys = {cache.key("image", "a.png", fp, v), cache.key("thermal", "a.png", fp, v),
            cache.key("image", "b.png", fp, v), cache.key("image", "a.png", cc.input_fingerprint(torch.ones(3, 4, 4)), v),
            cache.key("image", "a.png", fp, cc.Variant("gaussian_noise", 4, 0)),
            cache.key("image", "a.png", fp, cc.Variant("gaussian_noise", 3, 1)),
            cache.key("image", "a.png", fp, cc.Variant("shot_noise", 3, 0))}
    assert len(keys) == 7
    assert cc.input_fingerprint(torch.zeros(3, 4, 4)) != cc.input_fingerprint(torch.zeros(3, 16))


def test_unwritable_cache_warns_and_corrupts_in_process(checkpoints, photo_dir, tmp_path, monkeypatch, counted):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "corruptions").write_text("x")  # a file where the folder should be: even root can't
    monkeypatch.setenv("RLBIND_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.warns(UserWarning, match="not writable"):
        rows = _run(checkpoints, photo_dir, tmp_path / "a")
    assert len(counted) == 12 * 3
    assert len(rows) == 12 * 4


def test_audio_is_cached_as_float32_with_identical_rows(checkpoints, real_wav_dir, tmp_path, monkeypatch, counted):
    import shutil

    from rlbind_bench.config import RunConfig
    from rlbind_bench.runner import RunRequest, run_evaluation

    audio = tmp_path / "audio"
    for digit, name in ((1, "one"), (2, "two")):
        (audio / name).mkdir(parents=True)
        shutil.copy(real_wav_dir / f"{digit}.wav", audio / name / f"{digit}.wav")
    monkeypatch.setenv("RLBIND_CACHE_DIR", str(tmp_path / "cache"))
    cfg = RunConfig(model=str(checkpoints["audio"]), suite="quick", threats=["corruptions"], modalities=["audio"],
                    templates=["the sound of {}."], workers=0)

    def run(out, cache=True):
        return run_evaluation(RunRequest(config=cfg, out=tmp_path / out, dataset_dirs={"audio": str(audio)},
                                         progress=False, corruption_cache=cache)).samples

    first, second = run("a"), run("b")
    assert len(counted) == 2 * 3
    uncached = run("c", cache=False)
    assert len(counted) == 2 * 3 * 2
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(first, uncached)
    for path in _entries(tmp_path / "cache"):
        data = path.read_bytes()
        n = int.from_bytes(data[8:12], "little")
        assert json.loads(data[12:12 + n])["dtype"] == "float32"
