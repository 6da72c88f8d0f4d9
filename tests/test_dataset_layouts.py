"""The standard layouts on tiny copies that keep each dataset's real file formats: ESC-50 (meta/esc50.csv with
folds, real WAV files), UCF-101 (classInd.txt, test lists, real MP4), Kinetics-400 (label folders, or clips
plus the official annotation csv) and LLVIP (LanguageBind's background/person folders)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from rlbind_bench.config import load_datasets
from rlbind_bench.data.readers import index_dataset
from rlbind_bench.errors import DatasetError
from rlbind_bench.standards import get_standard

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def catalogue():
    return load_datasets(REPO / "datasets.yaml")


# ------------------------------------------------------------------------------------------------ ESC-50
# Rows as in the real meta/esc50.csv (targets 0 dog, 1 rooster, 2 pig; the header is the file's own).
ESC_ROWS = [("1-100032-A-0.wav", 1, 0, "dog"), ("1-100038-A-14.wav", 1, 1, "rooster"),
            ("2-100648-A-43.wav", 2, 2, "pig"), ("2-101676-A-10.wav", 2, 0, "dog"),
            ("2-102414-B-17.wav", 2, 1, "rooster")]


@pytest.fixture
def esc50_root(tmp_path, real_wav_dir) -> Path:
    root = tmp_path / "ESC-50"
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for k, (name, fold, target, category) in enumerate(ESC_ROWS):
        shutil.copy(real_wav_dir / f"{k + 1}.wav", root / "audio" / name)
        lines.append(f"{name},{fold},{target},{category},False,{name.split('-')[1]},{name.split('-')[2]}")
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    return root


def test_esc50_all_folds_and_one_fold(esc50_root, catalogue):
    spec = catalogue["esc50"]
    index = index_dataset(spec, esc50_root.parent)
    assert index.prompts == ["dog", "rooster", "pig"]
    assert {s.sample_id: s.label for s in index.samples} == {f"audio/{n}": t for n, _, t, _ in ESC_ROWS}
    fold2 = index_dataset(dataclasses.replace(spec, fold=2), esc50_root.parent)
    assert [s.sample_id for s in fold2.samples] == sorted(f"audio/{n}" for n, f, _, _ in ESC_ROWS if f == 2)
    assert fold2.prompts == ["dog", "rooster", "pig"]  # one fold is still the whole class set
    with pytest.raises(DatasetError, match="no clip of fold 5"):
        index_dataset(dataclasses.replace(spec, fold=5), esc50_root.parent)


def test_fold_only_where_the_layout_has_folds(catalogue):
    with pytest.raises(ValueError, match="has no folds"):
        dataclasses.replace(catalogue["imagenet-val"], fold=1)
    with pytest.raises(ValueError, match="positive integer"):
        dataclasses.replace(catalogue["esc50"], fold=0)


# ------------------------------------------------------------------------------------------------ UCF-101
UCF_CLASSES = ["ApplyEyeMakeup", "ApplyLipstick", "Archery"]
UCF_TEST = {1: ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "Archery/v_Archery_g01_c01.avi"],
            2: ["ApplyLipstick/v_ApplyLipstick_g08_c01.avi", "Archery/v_Archery_g08_c02.avi"]}


@pytest.fixture
def ucf_root(tmp_path, real_video) -> Path:
    """UCF-101/ as UCF101.rar extracts, ucfTrainTestlist/ beside it; videos re-encoded to .mp4 (real MP4)."""
    root = tmp_path / "UCF-101"
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\r\n" for i, c in enumerate(UCF_CLASSES, start=1)))
    for fold, rels in UCF_TEST.items():
        (lists / f"testlist0{fold}.txt").write_text("".join(r + "\r\n" for r in rels))
        for rel in rels:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(real_video, (root / rel).with_suffix(".mp4"))
    return root


def test_ucf101_labels_names_and_folds(ucf_root, catalogue):
    spec = catalogue["ucf101"]
    index = index_dataset(spec, ucf_root.parent)
    assert index.classnames == UCF_CLASSES
    assert index.prompts == ["Apply Eye Makeup", "Apply Lipstick", "Archery"]
    assert [(s.sample_id, s.label) for s in index.samples] == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.mp4", 0), ("Archery/v_Archery_g01_c01.mp4", 2)]
    fold2 = index_dataset(dataclasses.replace(spec, fold=2), ucf_root.parent)
    assert [s.label for s in fold2.samples] == [1, 2]


def test_ucf101_missing_video_and_list(ucf_root, catalogue):
    (ucf_root / "Archery" / "v_Archery_g01_c01.mp4").unlink()
    with pytest.raises(DatasetError, match=r"1 of 2 videos listed in testlist01\.txt are missing"):
        index_dataset(catalogue["ucf101"], ucf_root.parent)
    with pytest.raises(DatasetError, match=r"testlist03\.txt not found"):
        index_dataset(dataclasses.replace(catalogue["ucf101"], fold=3), ucf_root.parent)


# ------------------------------------------------------------------------------------------------ Kinetics
def test_kinetics_label_folders(tmp_path, real_video, catalogue):
    val = tmp_path / "kinetics400" / "val"
    for folder, clip in (("abseiling", "a"), ("air_drumming", "b"), ("passing American football (in game)", "c")):
        (val / folder).mkdir(parents=True)
        shutil.copy(real_video, val / folder / f"{clip}_000010_000020.mp4")
    index = index_dataset(catalogue["kinetics-400"], tmp_path)
    classes = get_standard("kinetics-400").class_ids()
    assert index.prompts == classes
    assert len(classes) == 400
    assert [s.label for s in index.samples] == [0, 1, classes.index("passing American football (in game)")]
    (val / "moonwalking").mkdir()
    shutil.copy(real_video, val / "moonwalking" / "d.mp4")
    with pytest.raises(DatasetError, match="'moonwalking' is not a Kinetics-400 class"):
        index_dataset(catalogue["kinetics-400"], tmp_path)


def test_kinetics_clips_with_annotation_csv(tmp_path, real_video, catalogue):
    base = tmp_path / "kinetics400"
    (base / "val").mkdir(parents=True)
    (base / "annotations").mkdir()
    rows = [("applauding", "-3B32lodo2M", 59, 69), ("zumba", "zzyxzRSDfcc", 0, 10), ("abseiling", "0wR5jVB-WPk", 417, 427)]
    lines = ["label,youtube_id,time_start,time_end,split"] + [f"{lab},{y},{a},{b},val" for lab, y, a, b in rows]
    lines[2] = '"zumba",zzyxzRSDfcc,0,10,val'  # labels with commas are quoted in the real files
    (base / "annotations" / "val.csv").write_text("\n".join(lines) + "\n")
    for _, y, a, b in rows[:2]:  # the third clip has left YouTube
        shutil.copy(real_video, base / "val" / f"{y}_{a:06d}_{b:06d}.mp4")
    with pytest.warns(UserWarning, match="1 of 3 annotated clips are not under"):
        index = index_dataset(catalogue["kinetics-400"], tmp_path)
    classes = get_standard("kinetics-400").class_ids()
    assert {s.sample_id: s.label for s in index.samples} == {
        "-3B32lodo2M_000059_000069.mp4": classes.index("applauding"),
        "zzyxzRSDfcc_000000_000010.mp4": classes.index("zumba")}


# ------------------------------------------------------------------------------------------------ LLVIP
def test_llvip_prompts_are_languagebinds(tmp_path, photo_dir, catalogue):
    val = tmp_path / "llvip" / "val"
    shutil.copytree(photo_dir / "astronaut", val / "person")
    shutil.copytree(photo_dir / "coffee", val / "background")
    index = index_dataset(catalogue["llvip"], tmp_path)
    assert index.classnames == ["background", "person"]
    assert index.prompts == ["background", "people"]
    assert {s.label for s in index.samples if s.sample_id.startswith("person/")} == {1}
