"""Stage 2 pairs classes across modalities by class NAME, not by label index."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rlbind_bench.errors import UserError

IMAGE_CLASSES = ["cat", "dog", "owl"]
THERMAL_CLASSES = ["owl", "fox", "cat", "dog"]  # another order, and one class the image set lacks


def _encoder():
    """Image and thermal towers with the same weights: one input gives one embedding in either modality."""
    from rlbind_bench.encoders.demo import build_demo_encoder

    enc = build_demo_encoder(("image", "thermal"), towers={m: {"widths": [8, 16], "stem": 4}
                                                           for m in ("image", "thermal")}, image_size=32)
    enc.towers["thermal"].load_state_dict(enc.towers["image"].state_dict())
    return enc


def _data(image_classes=IMAGE_CLASSES, thermal_classes=THERMAL_CLASSES):
    """One input per class NAME, shared by both modalities; labels index each modality's own class list."""
    from rlbind_bench.train.data import TrainData

    g = torch.Generator().manual_seed(0)
    names = sorted(set(image_classes) | set(thermal_classes))
    picture = {n: torch.rand(3, 32, 32, generator=g) for n in names}
    text = {n: F.normalize(torch.randn(384, generator=g), dim=-1) for n in names}
    data = TrainData(datasets={"image": "img", "thermal": "thm"})
    for m, classes in (("image", image_classes), ("thermal", thermal_classes)):
        data.x[m] = torch.stack([picture[n] for n in classes for _ in range(2)])
        data.y[m] = torch.tensor([i for i in range(len(classes)) for _ in range(2)])
        data.class_text[m] = torch.stack([text[n] for n in classes])
        data.low_high[m] = (0.0, 1.0)
        data.classes[m] = list(classes)
    return data


def _recipe(**fields):
    from rlbind_bench.train.recipes import recipe_from_dict

    return recipe_from_dict({"name": "s2", "objective": "rlbind-stage2", "steps": 1, "batch_size": 12,
                             "classes_per_batch": 4, "attack": {"steps": 1},
                             "weights": {"mmd": 1.0, "class_mean": 1.0}, **fields}, "test")


def test_batches_hold_the_same_class_names_in_every_modality(tmp_path):
    """The trainer's class-balanced draws (2 of 4 names a step): a name both modalities have is in both
    batches or in neither; the thermal-only name is never in the image batch."""
    from rlbind_bench.train.loop import Trainer

    data = _data()
    trainer = Trainer(_encoder(), _recipe(classes_per_batch=2), data, tmp_path, progress=False)
    seen = []
    real_loss = trainer.objective.loss
    trainer.objective.loss = lambda batches, step: (seen.append(batches), real_loss(batches, step))[1]
    for step in range(6):
        trainer.train_step(step)
    shared = set(IMAGE_CLASSES) & set(THERMAL_CLASSES)
    for batches in seen:
        names = {m: {data.classes[m][int(c)] for c in y} for m, (_, y) in batches.items()}
        assert names.get("image", set()) & shared == names.get("thermal", set()) & shared, names
        assert "fox" not in names.get("image", set())
    assert any("fox" in {data.classes["thermal"][int(c)] for c in b["thermal"][1]} for b in seen)


def test_alignment_pairs_classes_by_name(tmp_path):
    """Every input of a class name is the same in both modalities and both towers are one: paired by name,
    the class-wise MMD and class-mean distances are zero; paired by label index they would not be."""
    from rlbind_bench.train.loop import Trainer

    trainer = Trainer(_encoder(), _recipe(), _data(), tmp_path, progress=False)
    row = trainer.train_step(0)
    assert "anchor_image" in row
    assert "anchor_thermal" in row
    assert row["align"] < 1e-6, row


def test_index_pairing_would_misalign(tmp_path):
    """The control: the same data with the same class order in both modalities gives zero too, and a
    different order given as the same names per index (what index pairing assumes) does not."""
    from rlbind_bench.train.loop import Trainer

    same = Trainer(_encoder(), _recipe(), _data(THERMAL_CLASSES, THERMAL_CLASSES), tmp_path / "a", progress=False)
    assert same.train_step(0)["align"] < 1e-6
    data = _data()
    data.classes["thermal"] = ["cat", "dog", "owl", "fox"]  # index pairing's reading of the thermal labels
    wrong = Trainer(_encoder(), _recipe(), data, tmp_path / "b", progress=False)
    assert wrong.train_step(0)["align"] > 1e-3


def test_modalities_sharing_no_class_name_are_one_error(tmp_path):
    from rlbind_bench.train.loop import Trainer

    data = _data(["cat", "dog"], ["owl", "fox"])
    with pytest.raises(UserError, match="share no class"):
        Trainer(_encoder(), _recipe(), data, tmp_path, progress=False)


def test_one_class_list_everywhere_keeps_the_labels_as_ids():
    """The demo digits (one list, one order): the shared ids are the labels, so batches and losses are the
    ones index pairing gave."""
    data = _data(THERMAL_CLASSES, THERMAL_CLASSES)
    ids = data.shared_label_ids(("image", "thermal"))
    assert torch.equal(ids["image"], torch.arange(len(THERMAL_CLASSES)))
    assert torch.equal(ids["thermal"], torch.arange(len(THERMAL_CLASSES)))
