"""The offline demo benchmark builder (rlbind_bench.data.demo), at the "tiny" scale.

Needs the Debian sources (run scripts/install-demo-sources.sh first); skipped when they cannot be found or
fetched.
"""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from rlbind_bench.data import demo as db
from rlbind_bench.data.demo import audio, sources, video
from rlbind_bench.errors import DatasetError

SUFFIX = {"image": ".png", "thermal": ".png", "audio": ".wav", "video": ".mp4"}


@pytest.fixture(scope="module")
def builds(tmp_path_factory, sources_cache):
    """Two independent tiny builds (same seed) and the first one's summary."""
    root_a = tmp_path_factory.mktemp("demo_a")
    root_b = tmp_path_factory.mktemp("demo_b")
    summary = db.prepare_demo(root_a, scale="tiny", sources_cache=sources_cache)
    db.prepare_demo(root_b, scale="tiny", sources_cache=sources_cache)
    return root_a, root_b, summary


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _manifest(folder: Path) -> list[dict]:
    with open(folder / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_layout_classes_manifest_splits(builds):
    root, _, summary = builds
    assert set(summary["datasets"]) == set(db.DATASETS)
    for name in db.DATASETS:
        folder = root / name
        classes = db.DATASET_CLASSES[name]
        assert (folder / "classes.txt").read_text().split() == list(classes)
        rows = _manifest(folder)
        assert list(rows[0]) == ["sample_id", "split", "label", "class_name", "source", "licence"]
        for r in rows:
            split, cls, _ = r["sample_id"].split("/")
            assert split == r["split"]
            assert cls == r["class_name"] == classes[int(r["label"])]
            assert r["sample_id"].endswith(SUFFIX[db.DATASET_MODALITIES[name]])
            assert (folder / r["sample_id"]).is_file()
            assert r["source"]
            assert r["licence"]
        on_disk = {p.relative_to(folder).as_posix() for s in db.SPLITS for p in (folder / s).rglob("*") if p.is_file()}
        assert on_disk == {r["sample_id"] for r in rows}
        for split in db.SPLITS:
            listed = (folder / "splits" / f"{split}.txt").read_text().split()
            assert listed == [r["sample_id"] for r in rows if r["split"] == split]
            for label, cls in enumerate(classes):
                n = sum(1 for r in rows if r["split"] == split and int(r["label"]) == label)
                assert n > 0, f"{name}/{split}/{cls} is empty"
                assert summary["datasets"][name]["counts"][split][cls] == n
        assert db.verify_dataset(folder, seed=0, scale="tiny")
        assert not db.verify_dataset(folder, seed=1)


def test_two_builds_are_byte_identical(builds):
    root_a, root_b, _ = builds
    a, b = _files(root_a), _files(root_b)
    a.pop(".demo-build.lock", None), b.pop(".demo-build.lock", None)
    assert a.keys() == b.keys()
    different = [k for k in a if a[k] != b[k]]
    assert not different, f"{len(different)} files differ, e.g. {different[:3]}"


def test_image_files_are_rgb_64(builds):
    from PIL import Image

    root = builds[0]
    for p in sorted((root / db.IMAGE_DATASET).rglob("*.png"))[:40]:
        with Image.open(p) as img:
            assert img.mode == "RGB"
            assert img.size == (64, 64)


def test_thermal_is_simulated_greyscale(builds):
    from PIL import Image

    folder = builds[0] / db.THERMAL_DATASET
    assert "sim" in folder.name
    assert all(r["source"].startswith("simulated-thermal(") for r in _manifest(folder))
    for p in sorted(folder.rglob("*.png")):
        with Image.open(p) as img:
            assert img.mode == "RGB"
            assert img.size == (64, 64)
            x = np.asarray(img)
        assert np.array_equal(x[..., 0], x[..., 1])
        assert np.array_equal(x[..., 0], x[..., 2])
        assert x.std() > 5  # not blank


def test_audio_real_test_clips_and_format(builds):
    import soundfile as sf

    folder = builds[0] / db.AUDIO_DATASET
    rows = _manifest(folder)
    test_rows = [r for r in rows if r["split"] == "test"]
    assert all(r["source"].startswith("asterisk-core-sounds-") for r in test_rows)
    langs = {r["sample_id"].split("/")[-1].split("-")[1] for r in test_rows}
    assert len(langs) >= 2
    for lang in langs:  # every digit, in every language, is a real recording
        assert sorted(int(r["label"]) for r in test_rows if f"asterisk-{lang}-" in r["sample_id"]) == list(range(10))
    assert all(r["source"].startswith(("espeak-ng:", "flite:", "festival:")) for r in rows if r["split"] == "train")
    # val: TTS voices held out of train, plus every digit by each human validation speaker (not a test speaker)
    val_rows = [r for r in rows if r["split"] == "val"]
    human = [r for r in val_rows if r["source"].startswith("asterisk-prompt-")]
    assert {r["sample_id"].split("/")[-1] for r in human} == {f"human-{n}.wav" for n in sources.HUMAN_VAL_VOICES}
    for name in sources.HUMAN_VAL_VOICES:
        assert sorted(int(r["label"]) for r in human if r["sample_id"].endswith(f"human-{name}.wav")) == list(range(10))
    assert all(r["source"].startswith(("espeak-ng:", "flite:")) for r in val_rows if r not in human)
    for r in rows:
        info = sf.info(str(folder / r["sample_id"]))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 16000, "PCM_16")
        wave, _ = sf.read(str(folder / r["sample_id"]))
        assert np.abs(wave).max() > 0.5  # peak-normalised speech, not silence


def test_full_scale_tts_plan():
    jobs = audio._tts_jobs(0, db.SCALES["full"])
    train = [j for j in jobs if j.split == "train"]
    assert {j.engine for j in train} == {"espeak-ng", "flite", "festival"}
    assert {j.voice for j in train if j.engine == "festival"} == set(sources.FESTIVAL_VOICES)
    assert {j.voice for j in train if j.engine == "espeak-ng"} >= {"es", "es-419", "fr-fr", "fr-be", "it", "ru"}
    for c in range(10):
        assert sum(j.label == c for j in train) == 277
        assert sum(j.label == c for j in jobs if j.split == "val") == 20
    ids = [j.sample_id for j in jobs]
    assert len(set(ids)) == len(ids)
    # no TTS voice of val (engine, voice, variant) is also in train
    def voices(js):
        return {(j.engine, j.voice, j.variant) for j in js}

    assert not voices(train) & voices(j for j in jobs if j.split == "val")


def test_videos_decode_with_decord(builds):
    decord = pytest.importorskip("decord")
    folder = builds[0] / db.VIDEO_DATASET
    for p in sorted(folder.rglob("*.mp4")):
        reader = decord.VideoReader(str(p), ctx=decord.cpu(0))
        assert len(reader) == video.VIDEO_FRAMES
        batch = reader.get_batch(list(range(len(reader))))
        # languagebind (imported by other tests) switches decord's global bridge to torch.
        frames = batch.asnumpy() if hasattr(batch, "asnumpy") else batch.numpy()
        assert frames.shape == (video.VIDEO_FRAMES, 64, 64, 3)
        assert not np.array_equal(frames[0], frames[-1])  # the digit moves


def test_second_call_is_fast_and_does_not_rewrite(builds, sources_cache):
    root = builds[0]
    before = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in root.rglob("*") if p.is_file()}
    t0 = time.perf_counter()
    summary = db.prepare_demo(root, scale="tiny", sources_cache=sources_cache)
    assert time.perf_counter() - t0 < 10
    assert not any(d["built"] for d in summary["datasets"].values())
    after = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in root.rglob("*") if p.is_file()}
    assert before == after


def test_damaged_dataset_is_rebuilt(builds, sources_cache, tmp_path):
    src = builds[0] / db.IMAGE_DATASET
    shutil.copytree(src, tmp_path / db.IMAGE_DATASET)
    victim = next(iter(sorted((tmp_path / db.IMAGE_DATASET / "test").rglob("*.png"))))
    victim.write_bytes(victim.read_bytes()[:-10])
    (tmp_path / db.IMAGE_DATASET / "train" / "zero" / "stray.png").write_bytes(b"x")
    assert not db.verify_dataset(tmp_path / db.IMAGE_DATASET)
    summary = db.prepare_demo(tmp_path, scale="tiny", sources_cache=sources_cache, datasets=[db.IMAGE_DATASET])
    assert summary["datasets"][db.IMAGE_DATASET]["built"]
    assert _files(tmp_path / db.IMAGE_DATASET) == _files(src)
    assert not list(tmp_path.glob(".demo-*tmp*"))


def test_readers_index_the_demo_layout(builds):
    from rlbind_bench.config import DatasetSpec
    from rlbind_bench.data.readers import index_dataset

    root = builds[0]
    for name in db.DATASETS:
        spec = DatasetSpec(name=name, modality=db.DATASET_MODALITIES[name], path=name, split="test")
        index = index_dataset(spec, root)
        classes = list(db.DATASET_CLASSES[name])
        assert index.classnames == classes  # from ROOT/<dataset>/classes.txt, label order
        expected = sorted(r["sample_id"] for r in _manifest(root / name) if r["split"] == "test")
        assert sorted("test/" + s.sample_id for s in index.samples) == expected
        assert all(s.label == classes.index(s.sample_id.split("/")[0]) for s in index.samples)


def test_unknown_scale_and_missing_package_errors(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="unknown demo scale"):
        db.prepare_demo(tmp_path, scale="huge")
    if (Path("/") / sources.OPENCV_DIGITS).is_file():
        pytest.skip("opencv-doc is installed system-wide")
    real_which = shutil.which
    monkeypatch.setattr(sources, "_ensure_tool", lambda name, cache: Path("/usr/bin") / name)
    monkeypatch.setattr(sources, "_ensure_festival_voices", lambda cache: None)
    monkeypatch.setattr(sources.shutil, "which", lambda n, *a, **k: None if n == "apt-get" else real_which(n, *a, **k))
    with pytest.raises(DatasetError, match=r"opencv-doc.*apt-get download opencv-doc"):
        db.ensure_sources(tmp_path / "empty-cache")


def test_constants():
    assert set(db.DEBIAN_PACKAGES) >= {"espeak-ng", "opencv-doc", "asterisk-core-sounds-en-wav"}
    assert len(db.CLASS_NAMES) == 10
    assert db.THERMAL_DATASET.endswith("-sim")
    text = (Path(__file__).resolve().parents[1] / sources.INSTALL_SCRIPT).read_text()
    langs = text.split("LANGS=(", 1)[1].split(")", 1)[0].split()
    assert set(db.DEBIAN_PACKAGES) >= {"festival", "festvox-ru", "asterisk-prompt-it-menardi-wav",
                                       "dataset-fashion-mnist"}
    for pkg in db.DEBIAN_PACKAGES:
        if pkg.startswith("asterisk-core-sounds-"):
            assert 'asterisk-core-sounds-$lang-wav' in text, pkg
            assert pkg.split('-')[3] in langs, pkg
        else:
            assert pkg in text, pkg
    # the script unpacks the members the builder expects, and its done-markers list the same patterns
    for pkg, patterns in sources.DATA_PACKAGES.items():
        for pattern in patterns:
            assert pattern.replace(pkg, "$pkg") in text or pattern in text, (pkg, pattern)
