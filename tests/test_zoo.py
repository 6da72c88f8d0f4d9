"""The demo zoo shipped in zoo/demo: integrity, loading, accuracy on real held-out data; a slow rerun of the recipes."""

from __future__ import annotations

import json
import subprocess

import pytest

from rlbind_bench.encoders.loading import file_digest
from rlbind_bench.encoders.zoo import DEMO_ZOO, ZOO_DIR


@pytest.mark.parametrize("name", DEMO_ZOO)
def test_zoo_model_ships_with_card_and_checksum(name):
    folder = ZOO_DIR / name
    manifest = json.loads((folder / "rlbind-model.json").read_text())
    assert manifest["backend"] == "demo"
    assert file_digest(folder / "model.safetensors") == manifest["weights_sha256"]
    card = (folder / "README.md").read_text()
    assert "recipe" in card and "seed" in card


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    from rlbind_bench.data.demo_builder import prepare_demo

    root = tmp_path_factory.mktemp("demo")
    prepare_demo(root, scale="tiny")
    return root


def test_zoo_models_classify_real_held_out_digits(tiny_demo, tmp_path):
    """Clean accuracy on the (tiny-scale) test split: real OpenCV digits, real human speech."""
    from rlbind_bench.config import RunConfig
    from rlbind_bench.runner import RunRequest, run_evaluation

    cfg = RunConfig(model="demo/rlbind", suite="clean", datasets=["demo-digits-image", "demo-digits-thermal-sim"])
    outcome = run_evaluation(RunRequest(config=cfg, out=tmp_path / "r", data_root=tiny_demo, progress=False))
    acc = dict(zip(outcome.summary["modality"], outcome.summary["accuracy"], strict=True))
    assert acc["image"] >= 0.5 and acc["thermal"] >= 0.5, acc


@pytest.mark.slow
def test_recipes_reproduce_the_zoo_backbone(tmp_path):
    """Rerun the committed backbone recipes; clean val accuracy within 5 points of the shipped model."""
    from rlbind_bench.cli import main

    out = tmp_path / "zoo"
    subprocess.run(["bash", "scripts/train-demo-zoo.sh", str(out)], check=True, timeout=6 * 3600)
    for name in DEMO_ZOO:
        shipped = json.loads((ZOO_DIR / name / "training.json").read_text())["final_metrics"]
        again = json.loads((out / name / "training.json").read_text())["final_metrics"]
        for key, m in shipped.items():
            assert abs(m["val_accuracy"] - again[key]["val_accuracy"]) <= 0.05, (name, key)
    assert main(["run", "--model", str(out / "rlbind"), "--suite", "clean", "--n-samples", "16",
                 "--out", str(tmp_path / "eval"), "--no-progress"]) == 0
