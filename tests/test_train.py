"""Trainer: each loss against hand-computed values, each recipe lowers its loss, resume after a kill is exact."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rlbind_bench.train import losses


def test_fare_loss_hand_computed():
    a = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    b = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    # (1 + 4 + 9 + 16) / 2: summed over dimensions, mean over the batch, no 1/2.
    assert losses.fare_loss(a, b).item() == pytest.approx(15.0)
    assert losses.rlbind_stage1_loss(a, b).item() == pytest.approx(15.0)


def test_tecoa_and_pmg_aft_hand_computed():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0])
    ce = (-math.log(math.e ** 2 / (math.e ** 2 + 1)) - math.log(1 / (1 + math.e))) / 2
    assert losses.tecoa_loss(logits, y).item() == pytest.approx(ce, rel=1e-6)
    # Identical distributions: both KL terms vanish.
    assert losses.pmg_aft_loss(logits, logits, logits, y).item() == pytest.approx(ce, rel=1e-6)
    other = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    p = logits.softmax(1)
    kl = (0.5 * (torch.log(torch.tensor(0.5)) - p.log())).sum() / 2  # KL(uniform || p), summed, per sample
    expected = ce + kl.item() + 0.0
    assert losses.pmg_aft_loss(logits, other, logits, y).item() == pytest.approx(expected, rel=1e-5)


def test_binding_loss_hand_computed():
    t = torch.eye(2)
    emb = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    y = torch.tensor([0, 1, 0])
    s = 1.0
    m2t = F.cross_entropy(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), y).item()
    # text 0 vs samples (cos 1, 0, 1): positives 0 and 2; text 1 (0, 1, 0): positive 1
    z = math.exp(1) * 2 + 1
    t2m = (-math.log(2 * math.e / z) - math.log(math.e / (2 + math.e))) / 2
    assert losses.binding_loss(emb, t, y, s).item() == pytest.approx((m2t + t2m) / 2, rel=1e-6)


def test_stage2_terms_hand_computed():
    t = torch.eye(2)
    e = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0, 0])
    expected = (0 + (1 - 1 / math.sqrt(2))) / 2 * 2  # same for clean and adv
    assert losses.text_anchor_loss(e, e, t, y).item() == pytest.approx(expected, rel=1e-6)
    a = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0]])
    k_ab = math.exp(-2 / (2 * 0.25))
    assert losses.gaussian_mmd2(a, b, 0.5).item() == pytest.approx(2 - 2 * k_ab, rel=1e-6)
    out = losses.class_alignment_loss({"image": a, "audio": b}, {"image": torch.tensor([0]), "audio": torch.tensor([0])},
                                      bandwidth=0.5)
    assert out.item() == pytest.approx(2.0 + 2 - 2 * k_ab, rel=1e-6)


def test_class_balanced_batches_share_classes():
    from rlbind_bench.train.data import class_balanced_batches

    ys = {"image": torch.arange(40) % 10, "audio": torch.arange(30) % 10}
    out = class_balanced_batches(ys, 16, 4, torch.Generator().manual_seed(0))
    assert set(ys["image"][out["image"]].tolist()) == set(ys["audio"][out["audio"]].tolist())
    assert len(set(ys["image"][out["image"]].tolist())) == 4
    assert len(out["image"]) == 16


@pytest.fixture(scope="module")
def train_args(checkpoints, photo_dir):
    return ["--init", str(checkpoints["image"]), "--dataset-dir", f"image={photo_dir}", "--templates",
            "a photo of a {}.", "--batch-size", "6", "--attack-steps", "2", "--no-progress", "--lr", "1e-3"]


@pytest.mark.parametrize("recipe", ["backbone", "fare", "tecoa", "pmg-aft", "rlbind-stage1", "rlbind-stage2"])
def test_each_recipe_lowers_its_loss_and_loads(recipe, train_args, tmp_path, photo_dir):
    import csv

    from rlbind_bench.cli import main

    out = tmp_path / recipe
    assert main(["train", "--recipe", recipe, "--out", str(out), "--steps", "8", "--warmup", "1", *train_args]) == 0
    rows = list(csv.DictReader((out / "train_log.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in rows] == list(range(8))
    first = sum(float(r["loss"]) for r in rows[:3]) / 3
    last = sum(float(r["loss"]) for r in rows[-3:]) / 3
    assert last < first, (recipe, first, last)
    assert (out / "README.md").is_file()
    assert (out / "rlbind-model.json").is_file()
    assert main(["run", "--model", str(out), "--dataset-dir", f"image={photo_dir}", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0


def test_resume_after_kill_is_exact(train_args, tmp_path):
    from rlbind_bench.cli import main
    from rlbind_bench.encoders.registry import load_encoder

    full, cut = tmp_path / "full", tmp_path / "cut"
    common = ["--recipe", "fare", "--checkpoint-every", "2", "--warmup", "1", *train_args]
    assert main(["train", "--out", str(full), "--steps", "4", *common]) == 0
    assert main(["train", "--out", str(cut), "--steps", "2", *common]) == 0  # "killed" after its step-2 checkpoint
    (cut / "rlbind-model.json").unlink()
    assert main(["train", "--out", str(cut), "--steps", "4", *common]) == 0  # resumes from step 2
    a, b = load_encoder(str(full)).state_dict(), load_encoder(str(cut)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    import csv

    assert len(list(csv.DictReader((cut / "train_log.csv").read_text().splitlines()))) == 4


def test_lora_settings_parse_override_and_validate():
    from rlbind_bench.errors import ConfigError
    from rlbind_bench.train.recipes import override, recipe_from_dict

    r = recipe_from_dict({"name": "x", "objective": "fare", "trainable": "lora",
                          "lora": {"r": 4, "alpha": "8", "target_modules": "q_proj"}}, "test")
    assert (r.lora.r, r.lora.alpha, r.lora.dropout, r.lora.target_modules) == (4, 8.0, 0.0, ("q_proj",))
    assert override(r, **{"lora.r": 2}).lora.r == 2
    assert override(r, **{"lora.r": 2}).lora.alpha == 8.0
    with pytest.raises(ConfigError):
        override(r, **{"lora.r": 0})
    with pytest.raises(ConfigError, match="unknown key"):
        recipe_from_dict({"name": "x", "objective": "fare", "lora": {"rank": 4}}, "test")
    with pytest.raises(ConfigError, match="trainable must be one of tower, projection, lora"):
        recipe_from_dict({"name": "x", "objective": "fare", "trainable": "adapters"}, "test")


def test_lora_trains_only_adapters_lowers_loss_and_saves_merged(train_args, tmp_path, photo_dir, checkpoints):
    import csv
    import json

    from rlbind_bench.cli import main
    from rlbind_bench.encoders.registry import load_encoder

    out = tmp_path / "lora"
    assert main(["train", "--recipe", "backbone", "--trainable", "lora", "--out", str(out), "--steps", "8", "--warmup", "1", *train_args, "--lr", "1e-2"]) == 0
    rows = list(csv.DictReader((out / "train_log.csv").read_text().splitlines()))
    first = sum(float(r["loss"]) for r in rows[:3]) / 3
    last = sum(float(r["loss"]) for r in rows[-3:]) / 3
    assert last < first, (first, last)

    # Merged into the plain LanguageBind format: same keys as the init, only the adapted weights moved.
    init, trained = load_encoder(str(checkpoints["image"])).state_dict(), load_encoder(str(out)).state_dict()
    assert set(init) == set(trained)
    adapted = {k for k in init if k.startswith("vision.image.") and k.endswith("_proj.weight")
               and ".self_attn." in k}
    assert len(adapted) == 8  # q, k, v, out in both layers of the tiny tower
    assert all(not torch.equal(init[k], trained[k]) for k in adapted)
    # The backbone recipe learns the temperature (learn_temperature) next to the adapters; nothing else moves.
    assert not torch.equal(init["log_scales.image"], trained["log_scales.image"])
    assert all(torch.equal(init[k], trained[k]) for k in init if k not in adapted | {"log_scales.image"})

    card = json.loads((out / "training.json").read_text())
    assert card["recipe"]["trainable"] == "lora"
    assert card["recipe"]["lora"]["r"] == 8
    stage = card["history"][0]
    assert stage["lora"]["adapted"]["image"][0] == "vision.encoder.layers.0.self_attn.k_proj"
    tower = sum(v.numel() for k, v in init.items() if k.startswith(("vision.image.", "projection.image.")))
    assert stage["trainable_params"] == 8 * (64 * 8 + 8 * 64) + 1  # adapters + the temperature
    assert stage["trainable_params"] < 0.05 * tower
    assert "lora r=8 alpha=16.0" in (out / "README.md").read_text()
    assert main(["run", "--model", str(out), "--dataset-dir", f"image={photo_dir}", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0


def _randomise_adapters(params, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params.values():  # lora_B starts at zero: give every adapter a non-zero delta
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def test_lora_merge_matches_adapter_forward_and_reloads(checkpoints, tmp_path):
    """In-memory adapters vs merged layers vs the saved folder, on a LanguageBind ViT tower and on the
    demo CNN towers (peft's Conv2d, Conv1d and Linear LoRA)."""
    from rlbind_bench.encoders.demo import build_demo_encoder
    from rlbind_bench.encoders.registry import load_encoder
    from rlbind_bench.train import lora
    from rlbind_bench.train.recipes import LoraSettings

    small = {"widths": [8, 16], "stem": 4}
    cases = [(load_encoder(str(checkpoints["image"])), {"image": torch.rand(2, 3, 224, 224)}),
             (build_demo_encoder(("image", "video"), towers={"image": small, "video": small}, image_size=32,
                                 num_frames=2),
              {"image": torch.rand(2, 3, 32, 32), "video": torch.rand(2, 2, 3, 32, 32)})]
    # LanguageBind's projection also sits in the HF model that `save` writes: the adapter must reach it there.
    targets = [("q_proj", "v_proj", "projection"), ()]
    for i, (encoder, xs) in enumerate(cases):
        with torch.no_grad():
            before = {m: encoder.encode(m, x) for m, x in xs.items()}
        params, adapted = lora.attach(encoder, tuple(xs), LoraSettings(r=2, alpha=4, target_modules=targets[i]),
                                      seed=0)
        if i == 1:
            assert adapted["video"] == [f"backbone.frames.stages.{j}.conv" for j in range(3)] + [
                "backbone.temporal", "projection"]
        _randomise_adapters(params, i)
        with torch.no_grad():
            live = {m: encoder.encode(m, x) for m, x in xs.items()}
            with lora.merged(encoder):
                merged = {m: encoder.encode(m, x) for m, x in xs.items()}
                encoder.save(tmp_path / str(i))
            restored = {m: encoder.encode(m, x) for m, x in xs.items()}  # adapters back after the block
            lora.merge_and_unload(encoder)
            unloaded = {m: encoder.encode(m, x) for m, x in xs.items()}
            reloaded = load_encoder(str(tmp_path / str(i)))
            loaded = {m: reloaded.encode(m, x) for m, x in xs.items()}
        for m in xs:
            assert not torch.allclose(before[m], live[m], atol=1e-3), (i, m)
            assert torch.allclose(live[m], merged[m], atol=1e-5, rtol=1e-4), (i, m)
            assert torch.equal(live[m], restored[m]), (i, m)
            assert torch.equal(merged[m], unloaded[m]), (i, m)
            assert torch.equal(merged[m], loaded[m]), (i, m)
        assert set(encoder.state_dict()) == set(reloaded.state_dict())  # no adapter keys left behind


def test_lora_resume_after_kill_is_exact(train_args, tmp_path):
    from rlbind_bench.cli import main
    from rlbind_bench.encoders.registry import load_encoder

    full, cut = tmp_path / "full", tmp_path / "cut"
    common = ["--recipe", "fare", "--trainable", "lora", "--checkpoint-every", "2", "--warmup", "1", *train_args]
    assert main(["train", "--out", str(full), "--steps", "4", *common]) == 0
    assert main(["train", "--out", str(cut), "--steps", "2", *common]) == 0  # "killed" after its step-2 checkpoint
    assert (cut / "checkpoint" / "lora.safetensors").is_file()
    (cut / "rlbind-model.json").unlink()
    assert main(["train", "--out", str(cut), "--steps", "4", *common]) == 0  # resumes from step 2
    a, b = load_encoder(str(full)).state_dict(), load_encoder(str(cut)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ckpt = load_encoder(str(cut / "checkpoint" / "model")).state_dict()
    assert all(torch.equal(a[k], ckpt[k]) for k in a)  # the last checkpoint holds the merged final weights
    # Resuming that checkpoint as another trainable mode would mix states: refused.
    assert main(["train", "--out", str(cut), "--steps", "6", *common, "--trainable", "tower"]) == 2


def test_audio_augmentation_is_seeded_and_band_limits():
    from rlbind_bench.train.augment import augment

    t = torch.arange(16000) / 16000
    x = torch.stack([0.3 * torch.sin(2 * math.pi * 6000 * t), 0.3 * torch.sin(2 * math.pi * 300 * t)])
    settings = {"p_lowpass": 1.0, "lowpass_hz": 3400}
    a = augment("audio", x, settings, torch.Generator().manual_seed(0))
    b = augment("audio", x, settings, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert a[0].pow(2).mean() < 0.2 * x[0].pow(2).mean()  # 6 kHz tone mostly removed
    assert a[1].pow(2).mean() > 0.8 * x[1].pow(2).mean()  # 300 Hz tone kept
    noisy = augment("audio", x, {"snr_db": [10, 10]}, torch.Generator().manual_seed(1))
    snr = 10 * torch.log10(x.pow(2).mean(1) / (noisy - x).pow(2).mean(1))
    assert torch.allclose(snr, torch.full((2,), 10.0), atol=0.5)
    assert torch.equal(augment("depth", x, settings, torch.Generator()), x)  # no depth augmenter: unchanged


def test_telephone_speed_and_time_mask_augmentations():
    from rlbind_bench.train.augment import augment

    t = torch.arange(16000) / 16000
    x = torch.stack([0.3 * torch.sin(2 * math.pi * 5000 * t), 0.3 * torch.sin(2 * math.pi * 500 * t)])
    tel = augment("audio", x, {"p_telephone": 1.0}, torch.Generator().manual_seed(0))
    assert tel.shape == x.shape
    assert tel[0, 1000:-1000].pow(2).mean() < 0.01 * x[0].pow(2).mean()  # above 4 kHz: gone, as on a phone line
    assert tel[1, 1000:-1000].pow(2).mean() > 0.9 * x[1].pow(2).mean()
    fast = augment("audio", x[1:], {"speed": [1.25, 1.25]}, torch.Generator())
    spectrum = torch.fft.rfft(fast[0, 4000:12000]).abs()
    assert abs(int(spectrum.argmax()) * 16000 / 8000 - 625) < 10  # 500 Hz played 1.25x faster
    masked = augment("audio", x, {"time_mask_s": 0.2}, torch.Generator().manual_seed(3))
    zeros = (masked == 0) & (x != 0)
    assert 0 < zeros.sum(1).max() <= 3200


def test_frame_augmentation_moves_every_frame_alike():
    from rlbind_bench.train.augment import augment

    clip = torch.zeros(2, 4, 3, 32, 32)
    clip[..., 12:20, 12:20] = 1.0
    out = augment("video", clip, {"zoom": [0.5, 0.5], "translate": 0.0}, torch.Generator().manual_seed(0))
    assert out.shape == clip.shape
    assert torch.equal(out[:, 0], out[:, 3])  # the same geometric draw for every frame of a clip
    assert 0 < out[0, 0, 0].sum() < 0.5 * clip[0, 0, 0].sum()  # zoomed out: the square covers a quarter
    a = augment("image", clip[:, 0], {"zoom": [0.6, 1.2], "translate": 0.2}, torch.Generator().manual_seed(5))
    b = augment("image", clip[:, 0], {"zoom": [0.6, 1.2], "translate": 0.2}, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_a_registered_objective_trains_without_touching_the_loop(tmp_path):
    """A new objective is one class: the recipe accepts its name and the Trainer runs its loss."""
    from rlbind_bench.encoders.demo import build_demo_encoder
    from rlbind_bench.train.data import TrainData
    from rlbind_bench.train.loop import Trainer
    from rlbind_bench.train.objectives import OBJECTIVE_CLASSES, Objective, register_objective
    from rlbind_bench.train.recipes import OBJECTIVES, recipe_from_dict

    @register_objective("test-clean-ce")
    class CleanCE(Objective):
        def modality_loss(self, m, x, y, g):
            return F.cross_entropy(self.logits(self.encoder.encode(m, x), m), y)

    try:
        assert "test-clean-ce" in OBJECTIVES
        assert CleanCE.name == "test-clean-ce"
        encoder = build_demo_encoder(("image",), towers={"image": {"widths": [8, 16], "stem": 4}}, image_size=32)
        g = torch.Generator().manual_seed(0)
        data = TrainData(x={"image": torch.rand(8, 3, 32, 32, generator=g)}, y={"image": torch.arange(8) % 4},
                         class_text={"image": F.normalize(torch.randn(4, 384, generator=g), dim=-1)},
                         low_high={"image": (0.0, 1.0)})
        recipe = recipe_from_dict({"name": "t", "objective": "test-clean-ce", "steps": 2, "batch_size": 4,
                                   "optim": {"warmup": 1}}, "test")
        rows = Trainer(encoder, recipe, data, tmp_path, progress=False).run()
        assert [r["step"] for r in rows] == [0, 1]
        assert all(math.isfinite(r["loss"]) for r in rows)
    finally:
        OBJECTIVE_CLASSES.pop("test-clean-ce", None)
