"""The extension points: a third-party backend written only to `BoundEncoder`, and the handler registry."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from rlbind_bench.constants import MODALITIES
from rlbind_bench.encoders.base import BoundEncoder, InputSpace
from rlbind_bench.encoders.registry import (
    BACKENDS,
    MANIFEST,
    MODELS,
    ModelEntry,
    load_encoder,
    register_backend,
)
from rlbind_bench.errors import UserError
from rlbind_bench.modalities import HANDLERS, ImageHandler, PreprocessConfig, get_handler, register_handler


class TinyBackend(BoundEncoder):
    """Only the abstract methods: everything else must come from the base class."""

    name = "tiny"

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3, 4)

    @property
    def modalities(self) -> tuple[str, ...]:
        return ("image",)

    def preprocess_config(self, modality: str) -> PreprocessConfig:
        self.require(modality)
        return PreprocessConfig(image_size=8)

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.mean(dim=(-2, -1)))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return torch.ones(len(texts), 4)

    def logit_scale(self, modality: str) -> float:
        return 100.0

    def fingerprint(self) -> str:
        return "tiny"


def test_backend_written_to_the_base_class(tmp_path):
    enc = TinyBackend()
    space = enc.input_space("image")
    assert isinstance(space, InputSpace)
    assert space.shape == (3, 8, 8)
    assert (space.low, space.high) == (0.0, 1.0)
    assert enc.encode("image", torch.rand(2, *space.shape)).shape == (2, 4)
    with pytest.raises(UserError, match="no 'audio' tower"):
        enc.input_space("audio")
    for method in (enc.tower, enc.lora_targets):
        with pytest.raises(NotImplementedError):
            method("image")
    with pytest.raises(NotImplementedError):
        enc.save(tmp_path)


def test_third_party_backend_loads_through_the_registry(tmp_path, monkeypatch):
    monkeypatch.setitem(MODELS, "tiny", ModelEntry("tiny", "test backend", TinyBackend))
    assert isinstance(load_encoder("tiny"), TinyBackend)
    monkeypatch.setattr("rlbind_bench.encoders.registry.BACKENDS", dict(BACKENDS))
    register_backend("tiny", lambda folder, manifest: TinyBackend())
    (tmp_path / MANIFEST).write_text(json.dumps({"backend": "tiny"}))
    assert isinstance(load_encoder(str(tmp_path)), TinyBackend)


def test_built_in_backends_are_registered():
    assert {"languagebind", "demo"} <= set(BACKENDS)
    assert {"languagebind", "demo/init", "demo/rlbind-s0"} <= set(MODELS)


def test_handlers_in_table_order_and_names_unique():
    assert tuple(HANDLERS) == MODALITIES
    assert all(get_handler(m).name == m for m in MODALITIES)

    class OtherImage(ImageHandler):
        name = "image"

    with pytest.raises(ValueError, match="already has a handler"):
        register_handler(OtherImage)
    assert type(get_handler("image")) is ImageHandler
    with pytest.raises(UserError, match="unknown modality 'smell'"):
        get_handler("smell")
