"""The Python API: lazy package attributes, `evaluate` equal to the command line, third-party backends found
through the entry-point group, and the notebook in docs/ executed cell by cell."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

import rlbind_bench
from rlbind_bench.cli import main
from rlbind_bench.errors import CheckpointError, UserError

REPO = Path(__file__).resolve().parents[1]


def test_import_is_cheap_and_the_api_is_lazy():
    """Break seen caught: `from rlbind_bench.api import evaluate` at the top of rlbind_bench/__init__.py (torch
    imported by `import rlbind_bench`)."""
    code = "import sys, rlbind_bench; print('torch' in sys.modules); rlbind_bench.evaluate; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split() == ["False", "True"]
    assert set(rlbind_bench.__all__) <= set(dir(rlbind_bench))
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        rlbind_bench.nosuch  # noqa: B018


def test_evaluate_gives_the_command_line_rows(checkpoints, photo_dir, tmp_path):
    options = {"eps": [1 / 255], "steps": 2}
    results = rlbind_bench.evaluate(str(checkpoints["image"]), {"image": photo_dir}, threats=["linf-pgd"],
                                    templates=["a photo of a {}."], **options)
    assert results.out is None
    assert main(["run", "--model", str(checkpoints["image"]), "--dataset-dir", f"image={photo_dir}", "--templates",
                 "a photo of a {}.", "--threats", "linf-pgd", "--eps", "1/255", "--steps", "2", "--no-progress",
                 "--out", str(tmp_path / "cli")]) == 0
    cli = pd.read_parquet(tmp_path / "cli" / "samples.parquet")
    assert len(results.samples) == len(cli) == 24
    pd.testing.assert_frame_equal(results.samples.reset_index(drop=True), cli)
    assert set(results.summary["threat"]) == {"clean", "linf-pgd"}

    written = rlbind_bench.evaluate(str(checkpoints["image"]), str(photo_dir), threats=["linf-pgd"],
                                    templates=["a photo of a {}."], out=tmp_path / "api", **options)
    assert written.out == tmp_path / "api"
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "api" / "samples.parquet"), cli)


def test_evaluate_refuses_what_it_cannot_run(checkpoints, photo_dir):
    with pytest.raises(UserError, match=r"unknown option.*epss"):
        rlbind_bench.evaluate(str(checkpoints["image"]), {"image": photo_dir}, epss=[1 / 255])
    with pytest.raises(UserError, match="neither a folder nor a catalogued dataset"):
        rlbind_bench.evaluate(str(checkpoints["image"]), "no-such-dataset")
    with pytest.raises(UserError, match="spec string or a BoundEncoder"):
        rlbind_bench.evaluate(42, {"image": photo_dir})


PLUGIN = textwrap.dedent('''
    import torch
    from rlbind_bench import BoundEncoder
    from rlbind_bench.modalities import PreprocessConfig

    COLOURS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}


    class MeanColour(BoundEncoder):
        """image -> mean colour; a class text -> its colour."""

        def __init__(self, size):
            super().__init__()
            self.size = size
            self.name = f"colour:{size}"

        @classmethod
        def from_spec(cls, spec):
            return cls(int(spec))

        @property
        def modalities(self):
            return ("image",)

        def preprocess_config(self, modality):
            self.require(modality)
            return PreprocessConfig(image_size=self.size)

        def encode(self, modality, x):
            return x.mean(dim=(-2, -1))

        def encode_text(self, texts):
            return torch.tensor([next(v for k, v in COLOURS.items() if k in t) for t in texts])

        def logit_scale(self, modality):
            return 100.0

        def fingerprint(self):
            return f"mean-colour-{self.size}"
''')


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """An installed third-party distribution: its module and a dist-info with the entry point, on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "colour_backend.py").write_text(PLUGIN)
    info = site / "colour_backend-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: colour-backend\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[rlbind_bench.backends]\ncolour = colour_backend:MeanColour\n"
                                           "notanencoder = json:JSONDecoder\n")
    monkeypatch.syspath_prepend(str(site))
    yield
    from rlbind_bench.encoders.registry import SCHEMES

    SCHEMES.pop("colour", None)
    sys.modules.pop("colour_backend", None)


def colour_folder(root: Path) -> Path:
    from PIL import Image

    for name, rgb in (("red", (200, 30, 20)), ("green", (10, 180, 40)), ("blue", (30, 20, 220))):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (12, 12), tuple(c + 10 * i for c in rgb)).save(root / name / f"{i}.png")
    return root


def test_a_third_party_backend_is_found_through_its_entry_point(plugin, tmp_path):
    """Break seen caught: load_encoder without the entry-point lookup ('model 'colour:8' not found')."""
    encoder = rlbind_bench.load_encoder("colour:8")
    assert type(encoder).__name__ == "MeanColour"
    assert encoder.size == 8
    results = rlbind_bench.evaluate("colour:8", colour_folder(tmp_path / "colours"), templates=["a {} image."])
    assert results.summary["accuracy"].tolist() == [1.0]
    assert results.samples["model"].unique().tolist() == ["colour:8"]
    with pytest.raises(CheckpointError, match="is not a BoundEncoder subclass"):
        rlbind_bench.load_encoder("notanencoder:x")
    with pytest.raises(CheckpointError, match="not found"):
        rlbind_bench.load_encoder("nosuchbackend:x")


def test_the_notebook_runs(tmp_path, monkeypatch):
    """docs/python-api.ipynb, every code cell in order in one namespace (as a kernel would)."""
    notebook = json.loads((REPO / "docs" / "python-api.ipynb").read_text())
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    code_cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert len(code_cells) >= 3
    for cell in code_cells:
        source = "".join(cell["source"])
        tree = ast.parse(source)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, "<notebook>", "exec"), namespace)
        if last is not None:  # a cell's last expression is its displayed output
            namespace["_"] = eval(compile(ast.Expression(last.value), "<notebook>", "eval"), namespace)
    results = namespace["results"]
    assert len(results.samples) == 24
    assert set(results.summary["threat"]) == {"clean", "linf-pgd"}
    assert isinstance(namespace["_"], torch.Size)
    assert namespace["_"][0] == 2
