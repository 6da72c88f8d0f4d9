"""One temperature: the backbone learns the logit scale (saved, reloaded, clamped at 100), fine-tunes keep it
frozen, and `--logit-scale model` evaluates (and attacks) at the model's own scale, hashed by its number."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from rlbind_bench.constants import LOGIT_SCALE

TINY = {"image": {"widths": [8, 16], "stem": 4}}


def _tiny_demo():
    from rlbind_bench.encoders.demo import build_demo_encoder

    return build_demo_encoder(("image",), towers=TINY, image_size=32)


def _data():
    from rlbind_bench.train.data import TrainData

    g = torch.Generator().manual_seed(0)
    return TrainData(x={"image": torch.rand(16, 3, 32, 32, generator=g)}, y={"image": torch.arange(16) % 4},
                     class_text={"image": F.normalize(torch.randn(4, 384, generator=g), dim=-1)},
                     low_high={"image": (0.0, 1.0)}, classes={"image": ["a", "b", "c", "d"]})


def _train(encoder, tmp_path, objective="backbone", **fields):
    from rlbind_bench.train.loop import Trainer
    from rlbind_bench.train.recipes import recipe_from_dict

    recipe = recipe_from_dict({"name": "t", "objective": objective, "steps": 3, "batch_size": 8,
                               "attack": {"steps": 1}, "optim": {"warmup": 1, "lr": 5e-2}, **fields}, "test")
    Trainer(encoder, recipe, _data(), tmp_path, progress=False).run()
    return encoder


def test_backbone_learns_the_scale_and_saves_it(tmp_path):
    from rlbind_bench.encoders.registry import load_encoder

    encoder = _tiny_demo()
    before = encoder.logit_scale("image")
    _train(encoder, tmp_path / "run", learn_temperature=True)
    after = encoder.logit_scale("image")
    assert after != pytest.approx(before, abs=1e-3), (before, after)
    encoder.save(tmp_path / "saved")
    assert load_encoder(str(tmp_path / "saved")).logit_scale("image") == after


@pytest.mark.parametrize("objective", ["backbone", "tecoa"])
def test_without_learn_temperature_the_scale_is_frozen(objective, tmp_path):
    encoder = _tiny_demo()
    before = encoder.temperature("image").detach().clone()
    weights = encoder.towers["image"].projection.weight.detach().clone()
    _train(encoder, tmp_path, objective=objective)
    assert not torch.equal(encoder.towers["image"].projection.weight, weights)  # it did train
    assert torch.equal(encoder.temperature("image").detach(), before)


def test_learned_scale_is_clamped_at_100(tmp_path):
    encoder = _tiny_demo()
    with torch.no_grad():
        encoder.temperature("image").fill_(math.log(300.0))
    _train(encoder, tmp_path, learn_temperature=True)
    assert float(encoder.temperature("image").exp()) <= LOGIT_SCALE * (1 + 1e-6)


def test_fine_tune_losses_use_the_models_scale():
    from rlbind_bench.train.objectives import build_objective
    from rlbind_bench.train.recipes import recipe_from_dict

    encoder = _tiny_demo()
    with torch.no_grad():
        encoder.temperature("image").fill_(math.log(7.0))
    data = _data()
    obj = build_objective(encoder, recipe_from_dict({"name": "t", "objective": "tecoa"}, "test"), data)
    emb = encoder.encode("image", data.x["image"][:4])
    expected = 7.0 * F.normalize(emb, dim=-1) @ data.class_text["image"].T
    assert torch.allclose(obj.logits(emb, "image"), expected, rtol=1e-5)


def test_languagebind_backbone_learns_saves_and_resumes_the_scale(checkpoints, photo_dir, tmp_path):
    from rlbind_bench.cli import main
    from rlbind_bench.encoders.registry import load_encoder

    init = load_encoder(str(checkpoints["image"])).logit_scale("image")
    args = ["--recipe", "backbone", "--init", str(checkpoints["image"]), "--dataset-dir", f"image={photo_dir}",
            "--templates", "a photo of a {}.", "--batch-size", "6", "--no-progress", "--lr", "5e-2", "--warmup", "1",
            "--checkpoint-every", "2"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(["train", "--out", str(full), "--steps", "4", *args]) == 0
    learned = load_encoder(str(full)).logit_scale("image")
    assert learned != pytest.approx(init, abs=1e-3), (init, learned)
    assert json.loads((full / "training.json").read_text())["history"][0]["logit_scale"] == {"image": learned}
    assert main(["train", "--out", str(cut), "--steps", "2", *args]) == 0
    (cut / "rlbind-model.json").unlink()
    assert main(["train", "--out", str(cut), "--steps", "4", *args]) == 0  # resumes from step 2
    assert load_encoder(str(cut)).logit_scale("image") == learned
    frozen = tmp_path / "frozen"
    assert main(["train", "--out", str(frozen), "--steps", "2", "--learn-temperature", "false", *args]) == 0
    assert load_encoder(str(frozen)).logit_scale("image") == init


def test_lora_with_learned_scale_resumes_exactly(tmp_path):
    from rlbind_bench.train.loop import Trainer
    from rlbind_bench.train.recipes import recipe_from_dict

    def run(out, steps, encoder):
        recipe = recipe_from_dict({"name": "t", "objective": "backbone", "steps": steps, "batch_size": 8,
                                   "trainable": "lora", "learn_temperature": True, "checkpoint_every": 2,
                                   "optim": {"warmup": 1, "lr": 5e-2}}, "test")
        Trainer(encoder, recipe, _data(), out, progress=False).run()
        return encoder

    full = run(tmp_path / "full", 4, _tiny_demo())
    run(tmp_path / "cut", 2, _tiny_demo())
    resumed = run(tmp_path / "cut", 4, _tiny_demo())
    assert full.logit_scale("image") != pytest.approx(1 / 0.07, abs=1e-3)
    assert resumed.logit_scale("image") == full.logit_scale("image")


# ------------------------------------------------------------------------------------------ evaluation
@pytest.fixture(scope="module")
def scaled_model(tmp_path_factory):
    """A tiny demo image model whose own scale is 1/0.07 (14.29), saved."""
    folder = tmp_path_factory.mktemp("scaled") / "model"
    _tiny_demo().save(folder)
    return folder


def _run(model, photo_dir, out, scale):
    from rlbind_bench.config import RunConfig
    from rlbind_bench.runner import RunRequest, run_evaluation

    cfg = RunConfig(model=str(model), suite="clean", threats=["linf-pgd"], eps=[8 / 255], steps=3,
                    logit_scale=scale, probe_samples=0)
    return run_evaluation(RunRequest(config=cfg, out=out, dataset_dirs={"image": str(photo_dir)}, progress=False))


def test_model_scale_attacks_and_hashes_by_its_number(scaled_model, photo_dir, tmp_path):
    from rlbind_bench.encoders.registry import load_encoder

    own = load_encoder(str(scaled_model)).logit_scale("image")
    assert own == pytest.approx(1 / 0.07, rel=1e-5)
    model = _run(scaled_model, photo_dir, tmp_path / "model", "model")
    number = _run(scaled_model, photo_dir, tmp_path / "number", own)
    hundred = _run(scaled_model, photo_dir, tmp_path / "hundred", 100.0)
    key = ["sample_id", "threat"]
    cols = ["config_hash", "pred", "correct", "margin", "perturbation_norm"]
    a, b, c = (o.samples.sort_values(key).reset_index(drop=True) for o in (model, number, hundred))
    assert a[cols].equals(b[cols])  # "model" is exactly its number, hashes included
    assert set(a["config_hash"]).isdisjoint(set(c["config_hash"]))
    adv = a["threat"] != "clean"
    assert not a.loc[adv, "margin"].equals(c.loc[adv, "margin"])  # the attack saw other logits
    run = json.loads((tmp_path / "model" / "run.json").read_text())
    assert list(run["logit_scales"].values()) == [own]
    hundred_scales = json.loads((tmp_path / "hundred" / "run.json").read_text())["logit_scales"]
    assert hundred_scales == dict.fromkeys(run["logit_scales"], 100.0)


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "junk"])
def test_an_invalid_logit_scale_is_one_error_line(bad, scaled_model, photo_dir, tmp_path, capsys):
    from rlbind_bench.cli import main

    code = main(["run", "--model", str(scaled_model), "--dataset-dir", f"image={photo_dir}", "--logit-scale", bad,
                 "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "--logit-scale" in err, err


def test_gate_compares_the_scale_a_dataset_ran_at():
    from rlbind_bench.gate.compare import protocol_hashes

    def run(setting, used=None):
        out = {"config": {"seed": 0, "logit_scale": setting}, "datasets": [{"name": "d"}],
               "cells": [{"dataset": "d", "config_hash": "h", "config": {"threat": {"name": "clean"}}}]}
        if used is not None:
            out["logit_scales"] = {"d": used}
        return protocol_hashes(out)

    assert run("model", 14.5) == run(14.5) == run(14.5, 14.5)
    assert run("model", 14.5) != run("model", 20.0)


def test_the_learned_scale_has_no_weight_decay(tmp_path):
    """As open_clip (LanguageBind's trainer) excludes logit_scale from weight decay; the towers keep theirs."""
    from rlbind_bench.train.loop import Trainer
    from rlbind_bench.train.recipes import recipe_from_dict

    encoder = _tiny_demo()
    recipe = recipe_from_dict({"name": "t", "objective": "backbone", "learn_temperature": True,
                               "optim": {"weight_decay": 0.1}}, "test")
    trainer = Trainer(encoder, recipe, _data(), tmp_path, progress=False)
    decay = {id(p): g["weight_decay"] for g in trainer.optimizer.param_groups for p in g["params"]}
    assert decay[id(encoder.temperature("image"))] == 0.0
    assert decay[id(encoder.towers["image"].projection.weight)] == 0.1
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == len(list(encoder.tower("image").parameters()))
