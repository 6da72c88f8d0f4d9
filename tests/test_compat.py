"""Each _compat shim: the upstream failure reproduced without it (in a fresh interpreter), gone with it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from rlbind_bench import _compat

PROBE = r'''
import json, sys, importlib
out = {}
def attempt(name, fn):
    try:
        fn(); out[name] = "ok"
    except BaseException as e:
        out[name] = f"{type(e).__name__}: {e}"[:300]

attempt("languagebind_import", lambda: importlib.import_module("languagebind"))
attempt("robustbench_import", lambda: importlib.import_module("robustbench"))

# The LanguageBind failures need the import to work: alias only that module, nothing else.
import torchvision.transforms._functional_tensor as ft
sys.modules["torchvision.transforms.functional_tensor"] = ft
import torch, tempfile
from rlbind_bench.encoders import checkpoint_factory as cf
from rlbind_bench import _compat
_compat._APPLIED.update({"languagebind_attn_default", "languagebind_nonsquare_embeddings", "languagebind_save_image_size"})
lb = importlib.import_module("languagebind")
def build(modality):
    d = tempfile.mkdtemp()
    cf.write_clip_tokenizer(__import__("pathlib").Path(d))
    cfgs = dict(text_config={"vocab_size": 600, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                             "num_attention_heads": 2, "projection_dim": 16},
                vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                               "num_attention_heads": 2, "patch_size": 32, "projection_dim": 16, "lora_r": 0,
                               **cf._MODALITY_EXTRAS[modality]}, projection_dim=16)
    return lb.model_dict[modality](lb.config_dict[modality](**cfgs)).eval(), d
def image_forward():
    m, _ = build("image")
    m.get_image_features(pixel_values=torch.rand(1, 3, 224, 224))
attempt("attn_default", image_forward)
def audio_forward():
    m, _ = build("audio")
    m.config.vision_config._attn_implementation = "eager"
    m.config.text_config._attn_implementation = "eager"
    for mod in m.modules():
        if hasattr(mod, "config") and hasattr(mod.config, "_attn_implementation") and mod.config._attn_implementation is None:
            mod.config._attn_implementation = "eager"
    m.get_image_features(pixel_values=torch.rand(1, 3, 64, 256))
attempt("audio_nonsquare", audio_forward)
def save_load():
    m, d = build("image")
    m.save_pretrained(d)
    lb.model_dict["image"].from_pretrained(d)
attempt("save_load", save_load)
print("RESULT" + json.dumps(out))
'''


@pytest.fixture(scope="module")
def unpatched() -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    assert line, proc.stderr[-2000:]
    return json.loads(line[0][len("RESULT"):])


def test_without_shims_upstream_fails(unpatched):
    assert "functional_tensor" in unpatched["languagebind_import"]
    assert "No module named 'autoattack'" in unpatched["robustbench_import"]
    assert unpatched["attn_default"].startswith("KeyError")
    assert "doesn't match model" in unpatched["audio_nonsquare"]
    assert "unsupported operand" in unpatched["save_load"]


def test_pkg_resources_and_setuptools_pin():
    import importlib.metadata as md

    _compat.apply("pkg_resources_present")
    major = int(md.version("setuptools").split(".")[0])
    assert major < 82, "setuptools>=82 removed pkg_resources (robustbench needs it)"


def test_with_shims_everything_works(tmp_path, checkpoints):
    lb = _compat.import_languagebind()
    _compat.apply("autoattack_module")
    import robustbench  # noqa: F401
    from autoattack import AutoAttack

    # Audio tower (non-square input) forward, and save -> load exact for every modality.
    for modality, folder in checkpoints.items():
        model = lb.model_dict[modality].from_pretrained(str(folder)).eval()
        model.save_pretrained(tmp_path / modality)
        again = lb.model_dict[modality].from_pretrained(str(tmp_path / modality)).eval()
        for (k, v), (_, w) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
            assert torch.equal(v, w), (modality, k)
        saved = json.loads((tmp_path / modality / "config.json").read_text())
        assert isinstance(saved["vision_config"]["image_size"], int)
        assert "_rlbind_image_size" not in json.dumps(saved)
    audio = lb.model_dict["audio"].from_pretrained(str(checkpoints["audio"])).eval()
    with torch.no_grad():
        assert audio.get_image_features(pixel_values=torch.rand(1, 3, 64, 256)).shape == (1, 32)
    # The fra31 facade over pyautoattack (what robustbench calls).
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x = torch.rand(4, 3, 2, 2)
    y = model(x).argmax(1)
    adv = AutoAttack(model, norm="Linf", eps=1 / 255, version="custom", attacks_to_run=["apgd-ce"],
                     device="cpu").run_standard_evaluation(x, y, bs=4)
    assert adv.shape == x.shape
    assert (adv - x).abs().max() <= 1 / 255 + 1e-6
