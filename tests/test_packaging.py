"""The wheel works outside a clone: built from this tree, installed alone into a fresh virtual environment
(its dependencies come from the project's venv through a .pth line, so no source tree is importable), and
driven from an empty folder. Each command would fail here if the wheel lacked the file it reads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_package_of_the_source_tree():
    """Break seen caught: a new subpackage not in [tool.setuptools] packages (its modules missing from the
    wheel: ModuleNotFoundError only outside a clone)."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "rlbind_bench").rglob("__init__.py")}
    assert on_disk <= listed
    assert listed - on_disk == {"rlbind_bench._bundled"}


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("wheel")
    # a copy without build/: setuptools would reuse build/lib files that the package data no longer names
    source = root / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "runs",
                                                                 "__pycache__", ".ruff_cache", "checkpoint"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(root / "dist"), str(source)], check=True, capture_output=True)
    (wheel,) = (root / "dist").glob("rlbind_bench-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # the dependencies, not the project: a .pth line adds a directory but runs no .pth inside it, so the
    # project venv's editable-install finder stays inactive
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    str(wheel)], check=True, capture_output=True)
    empty = root / "empty"
    empty.mkdir()
    return {"bin": venv / "bin", "python": python, "cwd": empty, "site": Path(site)}


def _cli(env: dict, *args, check: bool = True) -> subprocess.CompletedProcess:
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("RLBIND_ATTACKS", "RLBIND_RECIPES",
                                                                          "RLBIND_DATASETS", "RLBIND_ZOO",
                                                                          "PYTHONPATH"))}
    out = subprocess.run([str(env["bin"] / "rlbind-bench"), *map(str, args)], cwd=env["cwd"], env=clean_env,
                         capture_output=True, text=True, timeout=600)
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_the_wheel_reads_its_own_copies(wheel_env):
    """Break seen caught: the `rlbind_bench._bundled` package-data globs emptied (no attacks/ in the wheel)."""
    # the vendored corruptions' frost images are package data too: read one from the wheel
    code = ("import rlbind_bench, rlbind_bench.bundled as b; print(rlbind_bench.__file__); "
            "print(*(b.bundled_path(n) for n in b.OVERRIDES), sep='\\n'); "
            "from rlbind_bench.threats.corruptions.ic.helpers import frost_image; print(frost_image(0).shape[2])")
    out = subprocess.run([wheel_env["python"], "-c", code], cwd=wheel_env["cwd"], capture_output=True, text=True,
                         check=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}).stdout.split()
    assert out.pop() == "3"
    for path in out:
        assert Path(path).is_relative_to(wheel_env["site"]), path
    attacks = {p.name for p in Path(out[1]).glob("*.yaml")}
    assert attacks == {p.name for p in (REPO / "attacks").glob("*.yaml")}
    assert Path(out[3]).read_bytes() == (REPO / "datasets.yaml").read_bytes()


def test_version_and_lists_from_an_empty_folder(wheel_env):
    from rlbind_bench import __version__

    assert _cli(wheel_env, "--version").stdout.split() == ["rlbind-bench", __version__]
    threats = _cli(wheel_env, "list", "threats").stdout
    for path in (REPO / "attacks").glob("*.yaml"):
        assert path.stem in threats
    assert "demo-digits-image" in _cli(wheel_env, "list", "datasets").stdout
    assert "demo/rlbind-s0" in _cli(wheel_env, "list", "models").stdout


def test_run_train_leaderboard_and_check_from_the_wheel(wheel_env, checkpoints, photo_dir, tmp_path):
    """A LanguageBind-format checkpoint and real photos, through the installed wheel: the per-sample rows equal
    those of the same run from this source tree."""
    from rlbind_bench.cli import main

    args = ["run", "--model", checkpoints["image"], "--dataset-dir", f"image={photo_dir}", "--templates",
            "a photo of a {}.", "--threats", "linf-pgd", "--eps", "1/255", "--steps", "2", "--no-progress",
            "--no-corruption-cache"]
    _cli(wheel_env, *args, "--out", tmp_path / "wheel-run")
    assert main([*map(str, args), "--out", str(tmp_path / "source-run")]) == 0
    wheel_rows = pd.read_parquet(tmp_path / "wheel-run" / "samples.parquet")
    source_rows = pd.read_parquet(tmp_path / "source-run" / "samples.parquet")
    assert len(wheel_rows) == 24
    columns = [c for c in source_rows.columns if c not in ("run_id",)]
    pd.testing.assert_frame_equal(wheel_rows[columns], source_rows[columns])

    # a user's own threat file replaces the bundled ones by flag
    own = tmp_path / "my-attacks"
    own.mkdir()
    (own / "tiny-pgd.yaml").write_text("attack: pgd\nnorm: Linf\neps: [1/255]\nsteps: 1\nmodalities: [image]\n")
    listed = _cli(wheel_env, "list", "threats", "--attacks-dir", own).stdout
    assert "tiny-pgd" in listed
    assert "linf-pgd" not in listed

    _cli(wheel_env, "train", "--recipe", "fare", "--init", checkpoints["image"], "--dataset-dir",
         f"image={photo_dir}", "--steps", "1", "--batch-size", "4", "--attack-steps", "1", "--no-progress",
         "--out", tmp_path / "trained")
    manifest = json.loads((tmp_path / "trained" / "rlbind-model.json").read_text())
    assert manifest["backend"] == "languagebind"

    _cli(wheel_env, "leaderboard", tmp_path / "wheel-run", "--out", tmp_path / "board")
    assert (tmp_path / "board" / "index.md").is_file()
    _cli(wheel_env, "check", "--results", tmp_path / "wheel-run", "--baseline", tmp_path / "source-run")


def test_demo_zoo_ships_in_the_wheel(wheel_env):
    """The demo zoo's models load from the wheel's copy (no checkout): their weights equal the repo's."""
    code = ("from rlbind_bench.encoders.zoo import zoo_dir; from rlbind_bench.encoders.registry import load_encoder; "
            "e = load_encoder('demo/fare-s0'); print(zoo_dir()); print(e.fingerprint())")
    out = subprocess.run([wheel_env["python"], "-c", code], cwd=wheel_env["cwd"], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.returncode == 0, out.stderr[-2000:]
    folder, fingerprint = out.stdout.split()
    assert Path(folder).is_relative_to(wheel_env["site"])
    from rlbind_bench.encoders.registry import load_encoder

    assert fingerprint == load_encoder("demo/fare-s0").fingerprint()


def _clean_preds(run: Path) -> dict[str, int]:
    rows = pd.read_parquet(run / "samples.parquet")
    rows = rows[rows["threat"] == "clean"]
    return dict(zip(rows["sample_id"], rows["clean_pred"].astype(int), strict=True))


def test_open_clip_and_imagebind_checkpoints_from_the_wheel(wheel_env, photo_dir, tmp_path):
    """The Done-when of the package issue: from the installed wheel, in an empty folder, an open_clip checkpoint
    and an ImageBind-format checkpoint on a folder of real photos give each library's own zero-shot
    predictions, sample by sample (references: open_clip's transform + build_zero_shot_classifier; ImageBind's
    load_and_transform_vision_data + its model)."""
    import open_clip
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file
    from test_imagebind_backend import TINY as IMAGEBIND_TINY
    from test_imagebind_backend import _package_text
    from test_open_clip_backend import TINY as OPEN_CLIP_TINY
    from torchvision.datasets import ImageFolder

    from rlbind_bench import _compat

    classes = sorted(p.name for p in photo_dir.iterdir())
    ids = lambda data: [Path(p).relative_to(photo_dir).as_posix() for p, _ in data.samples]  # noqa: E731

    config = tmp_path / "rlbind-wheel-tiny.json"
    config.write_text(json.dumps(OPEN_CLIP_TINY))
    open_clip.add_model_config(config)
    torch.manual_seed(1234)
    model = open_clip.create_model("rlbind-wheel-tiny").eval()
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, tmp_path / "oc.safetensors")
    _, _, preprocess = open_clip.create_model_and_transforms("rlbind-wheel-tiny",
                                                             pretrained=str(tmp_path / "oc.safetensors"))
    data = ImageFolder(str(photo_dir), transform=preprocess)
    with torch.no_grad():
        weights = open_clip.build_zero_shot_classifier(model, open_clip.get_tokenizer("rlbind-wheel-tiny"), classes,
                                                       ["a photo of a {}."])
        images = torch.stack([data[i][0] for i in range(len(data))])
        expected = (F.normalize(model.encode_image(images), dim=-1) @ weights).argmax(1).tolist()
    _cli(wheel_env, "run", "--model", f"open_clip:{config}@{tmp_path / 'oc.safetensors'}", "--dataset-dir",
         f"image={photo_dir}", "--templates", "a photo of a {}.", "--out", tmp_path / "oc-run", "--no-progress")
    assert _clean_preds(tmp_path / "oc-run") == dict(zip(ids(data), expected, strict=True))

    ib = _compat.import_imagebind()
    torch.manual_seed(0)
    ib_model = ib.models.imagebind_model.ImageBindModel(**IMAGEBIND_TINY).eval()
    torch.save(ib_model.state_dict(), tmp_path / "tiny.pth")
    (tmp_path / "tiny.json").write_text(json.dumps({"model": IMAGEBIND_TINY}))
    files = [photo_dir / i for i in ids(data)]
    with torch.no_grad():
        vision = ib_model({"vision": ib.data.load_and_transform_vision_data([str(f) for f in files], "cpu")})["vision"]
        expected = (vision @ _package_text(ib, ib_model, classes).T).argmax(1).tolist()
    _cli(wheel_env, "run", "--model", f"imagebind:{tmp_path / 'tiny.pth'}", "--dataset-dir", f"image={photo_dir}",
         "--templates", "{}", "--out", tmp_path / "ib-run", "--no-progress")
    assert _clean_preds(tmp_path / "ib-run") == dict(zip(ids(data), expected, strict=True))
