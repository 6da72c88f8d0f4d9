"""RLBind stage-2 variants of the val search (docs/method.md): the contrastive text anchor, the stay-near-stage-1
term, and loss weights that no loss reads refused (a stored weight must be a used one)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rlbind_bench.errors import ConfigError, UserError

CLASSES = ["cat", "dog", "owl"]


def _encoder():
    from rlbind_bench.encoders.demo import build_demo_encoder

    return build_demo_encoder(("image", "thermal"), towers={m: {"widths": [8, 16], "stem": 4}
                                                           for m in ("image", "thermal")}, image_size=32)


def _data():
    from rlbind_bench.train.data import TrainData

    g = torch.Generator().manual_seed(0)
    data = TrainData(datasets={"image": "img", "thermal": "thm"})
    for m in ("image", "thermal"):
        data.x[m] = torch.rand(12, 3, 32, 32, generator=g)
        data.y[m] = torch.arange(12) % 3
        data.class_text[m] = F.normalize(torch.randn(3, 384, generator=g), dim=-1)
        data.low_high[m] = (0.0, 1.0)
        data.classes[m] = list(CLASSES)
    return data


def _recipe(weights, **fields):
    from rlbind_bench.train.recipes import recipe_from_dict

    return recipe_from_dict({"name": "s2", "objective": "rlbind-stage2", "steps": 4, "batch_size": 6,
                             "classes_per_batch": 3, "attack": {"steps": 1}, "optim": {"lr": 1e-2, "warmup": 1},
                             "weights": weights, **fields}, "test")


def test_contrastive_anchor_is_cross_entropy_over_the_class_texts():
    """Against the written-out formula: -log(exp(l_y) / sum_c exp(l_c)), for the clean and the adversarial logits."""
    from rlbind_bench.train.losses import contrastive_anchor_loss

    g = torch.Generator().manual_seed(1)
    clean, adv = torch.randn(5, 4, generator=g) * 3, torch.randn(5, 4, generator=g) * 3
    y = torch.tensor([0, 3, 1, 1, 2])

    def nll(logits):
        return sum(-math.log(math.exp(row[int(c)]) / sum(math.exp(v) for v in row))
                   for row, c in zip(logits.tolist(), y, strict=True)) / len(y)

    assert float(contrastive_anchor_loss(clean, adv, y)) == pytest.approx(nll(clean) + nll(adv), rel=1e-5)


def test_contrastive_anchor_sees_the_other_classes_and_the_cosine_one_does_not():
    """Two embeddings at the same cosine to the true text, one nearer a wrong class: only the contrastive anchor
    tells them apart (what makes it a different variant)."""
    from rlbind_bench.train.losses import contrastive_anchor_loss, text_anchor_loss

    texts = torch.eye(3)
    y = torch.tensor([0])
    near_wrong = F.normalize(torch.tensor([[0.6, 0.8, 0.0]]), dim=-1)
    far_wrong = F.normalize(torch.tensor([[0.6, -0.8, 0.0]]), dim=-1)
    assert float(text_anchor_loss(near_wrong, near_wrong, texts, y)) == pytest.approx(
        float(text_anchor_loss(far_wrong, far_wrong, texts, y)))
    s = 10.0
    assert float(contrastive_anchor_loss(s * near_wrong @ texts.T, s * near_wrong @ texts.T, y)) > float(
        contrastive_anchor_loss(s * far_wrong @ texts.T, s * far_wrong @ texts.T, y)) + 1.0


def test_the_contrastive_weight_is_used_by_the_objective(tmp_path):
    """With a zero-step attack from no random start (x_adv = x), each modality's anchor term is
    w * 2 CE(s f(x) T^T, y), s the model's own scale: recomputed here from the batch the trainer drew."""
    from rlbind_bench.encoders.base import model_logit_scale
    from rlbind_bench.train.loop import Trainer

    enc, data = _encoder(), _data()
    trainer = Trainer(enc, _recipe({"anchor": 0.0, "contrastive": 0.5, "align": 0.0},
                                   attack={"steps": 0, "random_start": False}), data, tmp_path, progress=False)
    expected = {}
    real_loss = trainer.objective.loss

    def spy(batches, step):
        with torch.no_grad():
            for m, (x, y) in batches.items():
                logits = model_logit_scale(enc, m) * F.normalize(enc.encode(m, x), dim=-1) @ data.class_text[m].T
                expected[m] = 0.5 * 2 * sum(-math.log(math.exp(r[int(c)]) / sum(math.exp(v) for v in r))
                                            for r, c in zip(logits.tolist(), y, strict=True)) / len(y)
        return real_loss(batches, step)

    trainer.objective.loss = spy
    row = trainer.train_step(0)
    for m in ("image", "thermal"):
        assert row[f"anchor_{m}"] == pytest.approx(expected[m], rel=1e-4)


def _distance(encoder, start):
    return sum(float((p - p0).pow(2).sum()) for m in start for p, p0 in
               zip(encoder.tower(m).parameters(), start[m], strict=True))


def test_stay_keeps_the_towers_near_the_weights_stage_2_started_from(tmp_path):
    from rlbind_bench.train.loop import Trainer

    moved = {}
    for stay in (0.0, 100.0):
        enc = _encoder()
        start = {m: [p.detach().clone() for p in enc.tower(m).parameters()] for m in ("image", "thermal")}
        trainer = Trainer(enc, _recipe({"stay": stay}), _data(), tmp_path / str(stay), progress=False)
        for step in range(4):
            row = trainer.train_step(step)
        moved[stay] = _distance(enc, start)
        assert ("stay" in row) == bool(stay)
    assert moved[100.0] < 0.5 * moved[0.0], moved


def test_a_resumed_stage_2_pulls_to_its_start_not_to_the_checkpoint(tmp_path):
    """Stopped after 2 of 4 steps and resumed: the same weights as one uninterrupted run (the stay term's
    reference is the stage's start, taken before the checkpoint is loaded)."""
    from rlbind_bench.train.loop import Trainer

    whole = _encoder()
    Trainer(whole, _recipe({"stay": 100.0}, checkpoint_every=1), _data(), tmp_path / "whole", progress=False).run()
    first = _encoder()
    Trainer(first, _recipe({"stay": 100.0}, steps=2, checkpoint_every=1), _data(), tmp_path / "split",
            progress=False).run()
    resumed = _encoder()  # a fresh process: the stage's start weights, then the checkpoint
    Trainer(resumed, _recipe({"stay": 100.0}, checkpoint_every=1), _data(), tmp_path / "split", progress=False).run()
    for a, b in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_weight_no_loss_reads_is_refused(tmp_path):
    from rlbind_bench.train.loop import Trainer
    from rlbind_bench.train.recipes import recipe_from_dict

    with pytest.raises(ConfigError, match="no loss weight contrastve"):
        Trainer(_encoder(), _recipe({"contrastve": 1.0}), _data(), tmp_path / "a", progress=False)
    fare = recipe_from_dict({"name": "f", "objective": "fare", "steps": 1, "weights": {"alpha": 1.0}}, "test")
    with pytest.raises(ConfigError, match="objective fare has no loss weight alpha"):
        Trainer(_encoder(), fare, _data(), tmp_path / "b", progress=False)


def test_a_composite_gives_each_weight_to_the_stage_that_reads_it():
    from rlbind_bench.train.api import stage_recipes
    from rlbind_bench.train.recipes import load_recipe

    s1, s2 = stage_recipes(load_recipe("demo/rlbind"), {"weights": {"contrastive": 1.0, "anchor": 0.0}})
    assert s1.weights == {}
    assert s2.weights["contrastive"] == 1.0
    assert s2.weights["anchor"] == 0.0
    assert s2.weights["mmd"] == 0.25  # the stage's own recipe weights stay
    with pytest.raises(UserError, match="no stage reads the loss weight nope"):
        stage_recipes(load_recipe("demo/rlbind"), {"weights": {"nope": 1.0}})
