"""A whole run, as a user starts one, on 2- and 3-class folders: AutoAttack runs, and run.json's cell
catalogue says which sub-attacks ran; a PGD loss the class count does not define is refused before the run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from rlbind_bench.config import RunConfig, RunRequest
from rlbind_bench.encoders.base import BoundEncoder
from rlbind_bench.errors import ConfigError
from rlbind_bench.modalities import PreprocessConfig
from rlbind_bench.runner import run_evaluation

COLOURS = {"red": (1.0, 0.1, 0.1), "green": (0.1, 1.0, 0.1), "blue": (0.1, 0.1, 1.0)}


class ColourEncoder(BoundEncoder):
    """Image embedding = mean colour; a class text's embedding = its colour: a zero-shot colour classifier
    small enough for AutoAttack to run in a second."""

    name = "colour"

    @property
    def modalities(self) -> tuple[str, ...]:
        return ("image",)

    def preprocess_config(self, modality: str) -> PreprocessConfig:
        self.require(modality)
        return PreprocessConfig(image_size=8)

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([next(v for k, v in COLOURS.items() if k in t) for t in texts])

    def logit_scale(self, modality: str) -> float:
        return 100.0

    def fingerprint(self) -> str:
        return "colour-v1"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny model: one intra-op thread is faster than two on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def colour_folder(root, names: list[str]):
    rng = np.random.default_rng(0)
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(3):
            pixels = np.clip(np.array(COLOURS[name]) * 0.6 + rng.uniform(0, 0.4, (8, 8, 3)), 0, 1)
            Image.fromarray((pixels * 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def run(tmp_path, classes: list[str], threats: list[str], eps: float = 0.3):
    cfg = RunConfig(model="colour", threats=threats, eps=[eps], steps=10, templates=["a {} image."], batch_size=8)
    req = RunRequest(config=cfg, out=tmp_path / "out", dataset_dirs={"image": str(colour_folder(tmp_path / "data",
                                                                                             classes))},
                     progress=False, encoder=ColourEncoder(), corruption_cache=False)
    return run_evaluation(req)


@pytest.mark.parametrize(("classes", "custom", "rand"), [
    (["green", "red"], ["apgd-ce"], ["apgd-ce"]),
    (["blue", "green", "red"], ["apgd-ce"], ["apgd-ce", "apgd-dlr"]),
])
def test_autoattack_runs_on_few_classes_and_run_json_says_what_ran(tmp_path, classes, custom, rand):
    """Break seen caught: the runner calling cell_config(c) without the class count (no `sub_attacks` in
    run.json)."""
    outcome = run(tmp_path, classes, ["autoattack-custom", "autoattack-rand"])
    cells = json.loads((outcome.out / "run.json").read_text())["cells"]
    ran = {c["config"]["threat"]["name"]: c["config"]["sub_attacks"] for c in cells
           if c["config"]["threat"]["attack"] == "autoattack"}
    assert ran == {"autoattack-custom": custom, "autoattack-rand": rand}
    rows = outcome.samples[outcome.samples["threat"] != "clean"]
    assert len(rows) == 2 * 3 * len(classes)
    assert set(rows["broken_by"]) <= {"", *custom, *rand}
    assert (rows["broken_by"] != "").any()  # the attacks did run (eps 0.3 breaks these colours)


def test_dlr_loss_on_two_classes_is_refused_before_the_run(tmp_path, monkeypatch):
    """Break seen caught: PGD.cell_config not checking the class count (the run started and failed in the
    first batch instead)."""
    calls = []
    monkeypatch.setattr("rlbind_bench.threats.pgd.PGD.run", lambda *a, **k: calls.append(1))
    attacks = tmp_path / "attacks"
    attacks.mkdir()
    (attacks / "dlr-pgd.yaml").write_text("attack: pgd\nnorm: Linf\neps: [0.1]\nsteps: 2\nloss: dlr\n")
    monkeypatch.setenv("RLBIND_ATTACKS_DIR", str(attacks))  # replaces the bundled attacks/
    with pytest.raises(ConfigError, match="loss dlr needs at least 3 classes, the dataset has 2"):
        run(tmp_path, ["green", "red"], ["dlr-pgd"])
    assert not calls
