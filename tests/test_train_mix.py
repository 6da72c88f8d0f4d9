"""Several training datasets of one modality (the backbone's pretraining mix) become one set, classes merged by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rlbind_bench.errors import UserError


def _folder(root, classes, shade, size=32):
    """One solid-colour PNG per class, its grey level `shade[name]`: an image says which class it is."""
    for name in classes:
        (root / name).mkdir(parents=True)
        Image.fromarray(np.full((size, size, 3), shade[name], np.uint8)).save(root / name / "a.png")
    return root


def _encoder():
    from rlbind_bench.encoders.demo import build_demo_encoder

    return build_demo_encoder(("image",), towers={"image": {"widths": [8, 16], "stem": 4}}, image_size=32)


SHADE = {"cat": 10, "dog": 60, "owl": 110, "fox": 160}


def test_two_sets_of_one_modality_merge_by_class_name(tmp_path):
    from rlbind_bench.config import adhoc_dataset
    from rlbind_bench.train.data import load_training_data
    from rlbind_bench.zeroshot import build_class_embeddings

    a = _folder(tmp_path / "a", ["cat", "dog"], SHADE)
    b = _folder(tmp_path / "b", ["dog", "fox", "owl"], SHADE)  # "dog" in both sets
    enc = _encoder()
    specs = [adhoc_dataset("image", str(a), ["a photo of a {}."]), adhoc_dataset("image", str(b), ["a drawing of a {}."])]
    data = load_training_data(enc, specs, tmp_path, None)
    assert data.classes["image"] == ["cat", "dog", "fox", "owl"]
    assert data.datasets["image"] == "image:a+image:b"
    assert len(data.y["image"]) == 5
    # Every sample keeps its class NAME through the renumbering (the shade says which class a picture is).
    for x, y in zip(data.x["image"], data.y["image"].tolist(), strict=True):
        shade = round(float(x[0, 0, 0]) * 255)
        assert SHADE[data.classes["image"][y]] == shade
    # A shared name keeps the first set's text embedding; the second set's new classes bring their own.
    first = build_class_embeddings(enc, ["cat", "dog"], ["a photo of a {}."])
    second = build_class_embeddings(enc, ["dog", "fox", "owl"], ["a drawing of a {}."])
    assert torch.allclose(data.class_text["image"], torch.cat([first, second[1:]]))


def test_sets_with_other_input_shapes_are_refused(tmp_path):
    from rlbind_bench.config import adhoc_dataset
    from rlbind_bench.train.data import TrainData, _add

    data = TrainData()
    spec = adhoc_dataset("image", str(tmp_path), ["{}"])
    _add(data, spec, torch.zeros(2, 3, 32, 32), torch.tensor([0, 1]), torch.eye(2), ["x", "y"], (0.0, 1.0))
    with pytest.raises(UserError, match="different input shapes"):
        _add(data, spec, torch.zeros(2, 3, 16, 16), torch.tensor([0, 1]), torch.eye(2), ["x", "y"], (0.0, 1.0))
