"""Standard datasets by name: the shipped ImageNet-1k / Kinetics-400 vocabularies against the upstream packages'
own files, wnid folders prompted with real class names, RobustBench's 5000-image subset, and the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import runpy
import shutil
from pathlib import Path

import pytest

from rlbind_bench.cli import main
from rlbind_bench.config import DatasetSpec, adhoc_dataset, load_datasets, template_sets
from rlbind_bench.data.readers import index_dataset
from rlbind_bench.errors import ConfigError, DatasetError
from rlbind_bench.standards import get_standard

REPO = Path(__file__).resolve().parents[1]


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None, f"package {name} is not installed (CI installs it)"
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture(scope="module")
def open_clip_metadata() -> dict:
    # Read the file itself: importing open_clip would pull in its whole model stack.
    return runpy.run_path(str(package_dir("open_clip") / "zero_shot_metadata.py"))


@pytest.fixture(scope="module")
def robustbench_files() -> tuple[list[str], dict[str, int]]:
    helper = package_dir("robustbench") / "helper_files"
    ids = [line for line in (helper / "imagenet_test_image_ids.txt").read_text().splitlines() if line]
    return ids, json.loads((helper / "imagenet_class_to_id_map.json").read_text())


# ------------------------------------------------------------------------------------------- shipped lists
def test_imagenet_names_are_open_clips_in_robustbench_wnid_order(open_clip_metadata, robustbench_files):
    std = get_standard("imagenet-1k")
    upstream_names = list(open_clip_metadata["IMAGENET_CLASSNAMES"])
    _, class_to_id = robustbench_files
    upstream_wnids = sorted(class_to_id, key=class_to_id.get)
    assert len(upstream_names) == 1000
    assert len(set(class_to_id)) == 1000
    assert std.class_ids() == upstream_wnids
    assert [std.class_names()[w] for w in std.class_ids()] == upstream_names
    assert std.class_ids() == sorted(std.class_ids())  # ImageFolder's index = sorted wnids


def test_imagenet_wnid_to_name_agrees_with_torchvision_imagenette():
    """An independent pairing of wnids and names (torchvision's Imagenette table) agrees with the shipped one."""
    from torchvision.datasets.imagenette import Imagenette

    names = get_standard("imagenet-1k").class_names()
    pairs = Imagenette._WNID_TO_CLASS
    assert len(pairs) == 10
    for wnid, aliases in pairs.items():
        assert names[wnid].lower() in {a.lower() for a in aliases}, (wnid, names[wnid], aliases)


def test_openai_imagenet_templates_are_open_clips_80(open_clip_metadata):
    upstream = [t("{}") for t in open_clip_metadata["OPENAI_IMAGENET_TEMPLATES"]]
    assert len(upstream) == 80
    assert template_sets()["openai_imagenet"] == upstream


def test_kinetics_vocabulary_is_torchvisions():
    from torchvision.models.video import R3D_18_Weights

    upstream = R3D_18_Weights.KINETICS400_V1.meta["categories"]
    assert len(upstream) == 400 == len(set(upstream))
    assert get_standard("kinetics-400").class_ids() == upstream


# ------------------------------------------------------------------------------------------- wnid folders
WNIDS = ["n01440764", "n01443537", "n01484850"]  # tench, goldfish, great white shark


@pytest.fixture
def wnid_dir(photo_dir, tmp_path) -> Path:
    """Three wnid folders holding real photos (three crops of one photo each)."""
    root = tmp_path / "imagenet" / "val"
    for wnid, cls in zip(WNIDS, ("cat", "coffee", "rocket"), strict=True):
        shutil.copytree(photo_dir / cls, root / wnid)
    return root


def test_wnid_folders_get_real_class_names(wnid_dir):
    index = index_dataset(adhoc_dataset("image", str(wnid_dir)), wnid_dir)
    assert index.classnames == WNIDS
    assert index.prompts == ["tench", "goldfish", "great white shark"]
    assert {(s.sample_id.split("/")[0], s.label) for s in index.samples} == {(w, i) for i, w in enumerate(WNIDS)}
    assert len(index.samples) == 9


def test_non_wnid_folders_keep_their_names(photo_dir):
    index = index_dataset(adhoc_dataset("image", str(photo_dir)), photo_dir)
    assert index.prompts == ["astronaut", "cat", "coffee", "rocket"]


def test_explicit_prompts_win_over_the_standard(wnid_dir):
    spec = DatasetSpec(name="x", modality="image", path=str(wnid_dir), class_prompts={"n01440764": "tinca tinca"})
    assert index_dataset(spec, wnid_dir).prompts[0] == "tinca tinca"


def test_named_imagenet_is_the_1000_way_problem_and_refuses_a_partial_copy(wnid_dir, open_clip_metadata):
    spec = load_datasets(REPO / "datasets.yaml")["imagenet-val"]
    with pytest.raises(DatasetError, match="997 of 1000 class folders missing"):
        index_dataset(spec, wnid_dir.parents[1])
    for wnid in get_standard("imagenet-1k").class_ids():
        (wnid_dir / wnid).mkdir(exist_ok=True)
    with pytest.warns(UserWarning, match="no files"):
        index = index_dataset(spec, wnid_dir.parents[1])
    assert index.prompts == list(open_clip_metadata["IMAGENET_CLASSNAMES"])
    assert sorted({s.label for s in index.samples}) == [0, 1, 2]


# ------------------------------------------------------------------------------------------- robustbench-5000
@pytest.fixture(scope="module")
def imagenet_copy(tmp_path_factory, robustbench_files) -> Path:
    """A val folder holding every RobustBench-listed file (hard links to one real JPEG) plus unlisted decoys."""
    import numpy as np
    import skimage.data
    from PIL import Image

    ids, _ = robustbench_files
    data_root = tmp_path_factory.mktemp("imagenet-root")
    val = data_root / "imagenet" / "val"
    jpeg = data_root / "photo.jpg"
    Image.fromarray(np.ascontiguousarray(skimage.data.chelsea()[:96, :96])).save(jpeg, quality=90)
    for wnid in get_standard("imagenet-1k").class_ids():
        (val / wnid).mkdir(parents=True)
    for rel in ids + [f"{w}/ILSVRC2012_val_9{k:07d}.JPEG" for k, w in enumerate(WNIDS)]:
        os.link(jpeg, val / rel)
    return data_root


def test_robustbench_subset_selects_exactly_the_listed_ids(imagenet_copy, robustbench_files):
    ids, class_to_id = robustbench_files
    assert len(ids) == 5000
    spec = load_datasets(REPO / "datasets.yaml")["imagenet-robustbench-5k"]
    index = index_dataset(spec, imagenet_copy)
    assert [s.sample_id for s in index.samples] == ids
    assert [s.label for s in index.samples] == [class_to_id[i.split("/")[0]] for i in ids]
    whole = index_dataset(load_datasets(REPO / "datasets.yaml")["imagenet-val"], imagenet_copy)
    assert len(whole.samples) == 5003


def test_subset_needs_a_standard_that_offers_it(photo_dir):
    spec = DatasetSpec(name="x", modality="image", path=str(photo_dir), subset="robustbench-5000")
    with pytest.raises(DatasetError, match="imagenet-1k's"):
        index_dataset(spec, photo_dir)
    with pytest.raises(ValueError, match="unknown subset 'nope'"):
        DatasetSpec(name="x", modality="image", path="p", subset="nope")
    with pytest.raises(ValueError, match="unknown subset"):
        DatasetSpec(name="x", modality="video", path="p", standard="kinetics-400", subset="robustbench-5000")
    with pytest.raises(ValueError, match="not both"):
        DatasetSpec(name="x", modality="image", path="p", subset="robustbench-5000", sample_ids="ids.txt")


def test_robustbench_missing_is_one_line(wnid_dir, monkeypatch):
    import rlbind_bench.standards as standards

    real = importlib.util.find_spec
    monkeypatch.setattr(standards.importlib.util, "find_spec", lambda n, *a: None if n == "robustbench" else real(n, *a))
    spec = DatasetSpec(name="x", modality="image", path=str(wnid_dir), subset="robustbench-5000")
    with pytest.raises(DatasetError, match=r"needs the 'robustbench' package.*pip install robustbench"):
        index_dataset(spec, wnid_dir)


def test_unknown_standard_is_refused():
    with pytest.raises(ValueError, match="unknown standard 'imagenet-21k'"):
        DatasetSpec(name="x", modality="image", path="p", standard="imagenet-21k")
    with pytest.raises(ConfigError, match="unknown standard"):
        get_standard("imagenet-21k")


# ------------------------------------------------------------------------------------------- CLI
def run_cli(argv, capsys):
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_cli_run_on_wnid_folders_prompts_with_real_names(checkpoints, wnid_dir, tmp_path, capsys):
    out = tmp_path / "res"
    rc, _, err = run_cli(["run", "--model", str(checkpoints["image"]), "--suite", "clean", "--modalities", "image",
                          "--dataset-dir", f"image={wnid_dir}", "--templates", "a photo of a {}.", "--out", str(out),
                          "--no-progress", "--batch-size", "9"], capsys)
    assert rc == 0, err
    run = json.loads((out / "run.json").read_text())
    assert run["class_names"] == {"image:val": ["tench", "goldfish", "great white shark"]}


def test_cli_subset_and_dataset_path(checkpoints, imagenet_copy, robustbench_files, tmp_path, capsys):
    import pandas as pd

    ids, class_to_id = robustbench_files
    out = tmp_path / "res"
    rc, _, err = run_cli(["run", "--model", str(checkpoints["image"]), "--suite", "clean", "--modalities", "image",
                          "--dataset-path", f"imagenet-val={imagenet_copy / 'imagenet' / 'val'}",
                          "--subset", "robustbench-5000", "--n-samples", "3", "--templates", "a photo of a {}.",
                          "--out", str(out), "--no-progress", "--batch-size", "3"], capsys)
    assert rc == 0, err
    run = json.loads((out / "run.json").read_text())
    assert run["class_names"]["imagenet-val"][:3] == ["tench", "goldfish", "great white shark"]
    assert run["config"]["subset"] == "robustbench-5000"
    samples = pd.read_parquet(out / "samples.parquet")
    assert len(samples) == 3
    assert set(samples["sample_id"]) <= set(ids)
    assert all(row.label == class_to_id[row.sample_id.split("/")[0]] for row in samples.itertuples())


def test_cli_missing_data_says_where_to_get_it(checkpoints, tmp_path, capsys):
    rc, _, err = run_cli(["run", "--model", str(checkpoints["audio"]), "--datasets", "esc50", "--data-root",
                          str(tmp_path), "--out", str(tmp_path / "o"), "--no-progress"], capsys)
    assert rc == 2
    line = err.strip()
    assert "\n" not in line
    assert "https://github.com/karolpiczak/ESC-50" in line
    assert "--dataset-path esc50=PATH" in line


def test_cli_subset_on_a_dataset_without_it_is_one_line(checkpoints, photo_dir, tmp_path, capsys):
    rc, _, err = run_cli(["run", "--model", str(checkpoints["video"]), "--datasets", "kinetics-400", "--subset",
                          "robustbench-5000", "--out", str(tmp_path / "o"), "--no-progress"], capsys)
    assert rc == 2
    assert "--subset robustbench-5000: dataset kinetics-400: unknown subset" in err
    assert "\n" not in err.strip()
    rc, _, err = run_cli(["run", "--model", str(checkpoints["image"]), "--dataset-dir", f"image={photo_dir}",
                          "--subset", "robustbench-5000", "--out", str(tmp_path / "o"), "--no-progress"], capsys)
    assert rc == 2
    assert "subset robustbench-5000 is imagenet-1k's" in err
    assert "\n" not in err.strip()


def test_cli_lists_standard_datasets_with_their_source(capsys):
    import argparse

    from rlbind_bench.cli.lists import LISTERS

    rc, out, _ = run_cli(["list", "datasets"], capsys)
    assert rc == 0
    rows = dict(LISTERS["datasets"](argparse.Namespace(datasets_file=REPO / "datasets.yaml")))
    sources = {"imagenet-val": "https://image-net.org/download.php", "esc50": "https://github.com/karolpiczak/ESC-50",
               "llvip": "https://bupt-ai-cz.github.io/LLVIP/", "ucf101": "https://www.crcv.ucf.edu/data/UCF101.php",
               "kinetics-400": "https://github.com/cvdfoundation/kinetics-dataset"}
    for name, url in sources.items():
        assert name in out
        assert f"get it: {url}" in rows[name]
        assert "licence: " in rows[name]
    assert "subsets: robustbench-5000" in rows["imagenet-val"]
    assert "layout ucf101" in rows["ucf101"]


def test_subset_enters_run_id_only_when_set():
    from rlbind_bench.config import RunConfig
    from rlbind_bench.runner import run_identity

    assert "subset" not in run_identity(RunConfig(model="m"))  # runs made before --subset keep their run_id
    assert run_identity(RunConfig(model="m", subset="robustbench-5000"))["subset"] == "robustbench-5000"
