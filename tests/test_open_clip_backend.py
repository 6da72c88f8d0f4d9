"""The open_clip backend against open_clip's own model, transform and zero-shot classifier, and against
CLIP_benchmark's zero-shot evaluator, on real photos (30 images, 10 classes, 3 of them greyscale).

The model is a tiny ViT registered through open_clip's model-config mechanism, randomly initialised under a
fixed seed and saved as a checkpoint file: random weights give arbitrary predictions, so parity is checked
per sample (argmax and logits), and the reference's top-2 gaps are checked to be far above the tolerance.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import open_clip
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from open_clip.transform import PreprocessCfg, image_transform_v2

from rlbind_bench.cli import main
from rlbind_bench.encoders.registry import load_encoder
from rlbind_bench.errors import CheckpointError, ConfigError, UserError
from rlbind_bench.modalities import get_handler

# Average pooling: with the class token, a random 2-layer ViT gives nearly the same embedding to every photo
# (one prediction for all 30); averaged patch tokens carry the photo (6 distinct predictions at seed 1234).
TINY = {"embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16,
                       "pool_type": "avg"},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
TEMPLATES = ["a photo of a {}.", "a blurry photo of the {}."]
TOL = 1e-4  # on logits scaled by 100 (CLIP_benchmark's scale and the runner's)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """The tiny architecture's config file, and its weights (seed 1234) as safetensors and as a .pt pickle."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("openclip")
    config = root / "rlbind-tiny-vit.json"
    config.write_text(json.dumps(TINY))
    open_clip.add_model_config(config)  # open_clip's own registry, for the reference models
    torch.manual_seed(1234)
    model = open_clip.create_model("rlbind-tiny-vit")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, root / "tiny.safetensors")
    torch.save(state, root / "tiny.pt")
    return {"config": config, "name": "rlbind-tiny-vit", "st": root / "tiny.safetensors", "pt": root / "tiny.pt"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from rlbind_bench.data.photos import MORE_PHOTOS, prepare_photos

    return prepare_photos(tmp_path_factory.mktemp("photos"), MORE_PHOTOS)


@pytest.fixture(scope="module")
def reference(tiny, photos) -> dict:
    """open_clip's own pipeline: create_model_and_transforms + ImageFolder + build_zero_shot_classifier."""
    from torchvision.datasets import ImageFolder

    model, _, preprocess = open_clip.create_model_and_transforms(tiny["name"], pretrained=str(tiny["st"]))
    model.eval()
    tokenizer = open_clip.get_tokenizer(tiny["name"])
    data = ImageFolder(str(photos), transform=preprocess)
    images = torch.stack([data[i][0] for i in range(len(data))])
    with torch.no_grad():
        weights = open_clip.build_zero_shot_classifier(model, tokenizer, data.classes, TEMPLATES)
        logits = 100.0 * F.normalize(model.encode_image(images), dim=-1) @ weights
    ids = [Path(p).relative_to(photos).as_posix() for p, _ in data.samples]
    return {"model": model, "tokenizer": tokenizer, "data": data, "logits": logits, "ids": ids,
            "labels": torch.tensor(data.targets)}


def _margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    true = logits.gather(1, labels[:, None])[:, 0]
    other = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
    return true - other


def test_reference_is_a_meaningful_target(reference, photos):
    """Parity below means something only if the reference's predictions are far from ties and not constant."""
    assert len(reference["ids"]) == 30
    assert len(reference["data"].classes) == 10
    top2 = reference["logits"].topk(2, dim=1).values
    assert (top2[:, 0] - top2[:, 1]).min() > 50 * TOL
    assert len(set(reference["logits"].argmax(1).tolist())) >= 3


@pytest.mark.parametrize("checkpoint", ["st", "pt"])
def test_inputs_and_logits_equal_open_clip(tiny, photos, reference, checkpoint):
    enc = load_encoder(f"open_clip:{tiny['config']}@{tiny[checkpoint]}")
    assert enc.modalities == ("image",)
    for k, v in reference["model"].state_dict().items():
        assert torch.equal(enc.model.state_dict()[k], v), k
    cfg = enc.preprocess_config("image")
    handler = get_handler("image")
    # The input space holds open_clip's pixels exactly: its transform with the normalisation undone by
    # mean 0, std 1 (no float round trip).
    raw = image_transform_v2(PreprocessCfg(**{**reference["model"].visual.preprocess_cfg,
                                                                  "mean": (0.0,) * 3, "std": (1.0,) * 3}),
                                       is_train=False)
    files = [path for path, _ in reference["data"].samples]
    ours = torch.stack([handler.load(Path(f), cfg) for f in files])
    from PIL import Image

    theirs = torch.stack([raw(Image.open(f).convert("RGB")) for f in files])
    assert torch.equal(ours, theirs)
    space = enc.input_space("image")
    assert space.shape == (3, 64, 64)
    assert "8-bit PIL resize(64, bicubic) + center crop" in space.description  # hashed into config_hash
    from rlbind_bench.zeroshot import ZeroShotClassifier, build_class_embeddings

    clf = ZeroShotClassifier(enc, "image", build_class_embeddings(enc, reference["data"].classes, TEMPLATES))
    with torch.no_grad():
        logits = clf(ours)
    assert torch.equal(logits.argmax(1), reference["logits"].argmax(1))
    assert torch.allclose(logits, reference["logits"], atol=TOL, rtol=0)
    assert enc.logit_scale("image") == pytest.approx(float(reference["model"].logit_scale.exp()))


@pytest.fixture(scope="module")
def cli_run(tiny, photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "res"
    argv = ["run", "--model", f"open_clip:{tiny['config']}@{tiny['st']}", "--modalities", "image",
            "--dataset-dir", f"image={photos}", "--out", str(out), "--no-progress", "--batch-size", "8",
            "--threats", "linf-pgd", "--eps", "1/255", "--steps", "2"]
    for t in TEMPLATES:
        argv += ["--templates", t]
    assert main(argv) == 0
    return out


def test_run_predictions_equal_open_clip_and_clip_benchmark(cli_run, reference):
    """Per sample, the CLI run's clean predictions and margins are open_clip's own, and CLIP_benchmark's."""
    from clip_benchmark.metrics import zeroshot_classification as zsc
    from torch.utils.data import DataLoader

    rows = pd.read_parquet(cli_run / "samples.parquet")
    clean = rows[rows["threat"] == "clean"].set_index("sample_id").loc[reference["ids"]]
    labels = reference["labels"]
    assert clean["label"].tolist() == labels.tolist()
    ref_pred = reference["logits"].argmax(1)
    assert clean["clean_pred"].tolist() == ref_pred.tolist()
    assert torch.allclose(torch.tensor(clean["margin"].to_numpy()), _margins(reference["logits"], labels).double(),
                          atol=TOL, rtol=0)
    # CLIP_benchmark's evaluator on the same photos: its classifier and classification loop (amp off: on CPU,
    # autocast means bfloat16).
    model, tokenizer, data = reference["model"], reference["tokenizer"], reference["data"]
    loader = DataLoader(data, batch_size=7, shuffle=False)
    cb_templates = [t.replace("{}", "{c}") for t in TEMPLATES]  # CLIP_benchmark's placeholder
    classifier = zsc.zero_shot_classifier(model, tokenizer, data.classes, cb_templates, "cpu", amp=False)
    cb_logits, cb_target = zsc.run_classification(model, classifier, loader, "cpu", amp=False)
    assert cb_target.tolist() == labels.tolist()
    assert clean["clean_pred"].tolist() == cb_logits.argmax(1).tolist()
    assert torch.allclose(torch.tensor(clean["margin"].to_numpy()), _margins(cb_logits, labels).double(),
                          atol=TOL, rtol=0)
    # (Not zsc.evaluate: clip-benchmark 1.6.2's `accuracy` does float() of a 1-element array, a TypeError
    # under numpy >= 2.3; its two steps above are where the predictions come from.)
    assert clean["correct"].mean() == pytest.approx((cb_logits.argmax(1) == cb_target).float().mean().item())


def test_run_attacks_in_pixel_space(cli_run, tiny):
    rows = pd.read_parquet(cli_run / "samples.parquet")
    pgd = rows[rows["attack"] == "pgd"]
    assert len(pgd) == 30
    assert set(pgd["eps"]) == {1 / 255}
    attacked = pgd[pgd["attacked"]]
    assert len(attacked) > 0
    assert (attacked["perturbation_norm"] <= 1 / 255 + 1e-6).all()
    clean = rows[rows["threat"] == "clean"].set_index("sample_id")
    # A perturbation can only lower the true-class margin it maximises against (the clean margin bounds it).
    joined = attacked.set_index("sample_id")
    assert (joined["margin"] <= clean.loc[joined.index, "margin"] + 1e-4).all()


@pytest.mark.parametrize("mode", ["shortest", "longest", "squash"])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_every_open_clip_resize_mode_gives_open_clip_pixels(photos, mode, interpolation):
    from PIL import Image

    from rlbind_bench.encoders.open_clip_backend import preprocess_from_open_clip

    pp = dataclasses.asdict(PreprocessCfg(size=50, resize_mode=mode, interpolation=interpolation,
                                                    fill_color=7, mean=(0.0,) * 3, std=(1.0,) * 3))
    transform = image_transform_v2(PreprocessCfg(**pp), is_train=False)
    cfg = preprocess_from_open_clip(pp)
    # One crop per class: landscape, square and grey photos; at size 50 the cat photo pads an odd number of rows.
    for f in sorted(photos.rglob("*0.png")):
        ours = get_handler("image").load(f, cfg)
        theirs = transform(Image.open(f).convert("RGB"))
        assert torch.equal(ours, theirs), f


def test_fingerprint_is_weights_content(tiny):
    a = load_encoder(f"open_clip:{tiny['config']}@{tiny['st']}")
    b = load_encoder(f"open_clip:{tiny['config']}@{tiny['pt']}")
    assert a.fingerprint() == b.fingerprint()  # same weights, other file format and path
    fp = a.fingerprint()
    with torch.no_grad():
        a.model.visual.proj.add_(1e-3)  # in place: the cached fingerprint must notice
    assert a.fingerprint() != fp
    # Random init is drawn under a fixed seed: the same model every time, and not the checkpoint's.
    r1, r2 = (load_encoder(f"open_clip:{tiny['config']}") for _ in range(2))
    assert r1.fingerprint() == r2.fingerprint() != b.fingerprint()


@pytest.mark.parametrize(("spec", "error", "needle"), [
    ("open_clip:", ConfigError, "expected open_clip:ARCH"),
    ("open_clip:ViT-B-32@", ConfigError, "expected open_clip:ARCH"),
    ("open_clip:No-Such-Arch", ConfigError, "unknown open_clip architecture"),
    ("open_clip:ViT-B-32@no_such_tag", ConfigError, "neither a pretrained tag"),
    ("hf-hub:not-a-repo-id", ConfigError, "expected hf-hub:ORG/NAME"),
])
def test_bad_specs_are_one_line_errors(spec, error, needle):
    with pytest.raises(error, match=needle) as info:
        load_encoder(spec)
    assert "\n" not in str(info.value)


def test_wrong_checkpoint_is_a_checkpoint_error(tiny, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot load open_clip model"):
        load_encoder(f"open_clip:{tiny['config']}@{bad}")
    wider = tmp_path / "rlbind-tiny-vit-wider.json"
    wider.write_text(json.dumps({**TINY, "embed_dim": 48}))
    with pytest.raises(CheckpointError, match="cannot load open_clip model"):
        load_encoder(f"open_clip:{wider}@{tiny['st']}")  # weights of another architecture


def test_hf_hub_model_loads_from_the_hub_cache_with_its_own_preprocessing(tiny, photos, tmp_path, monkeypatch):
    """Where the hub (or its cache) holds an open_clip model, `hf-hub:ORG/NAME` loads it, with the
    preprocessing its open_clip_config.json names (here not open_clip's defaults), as open_clip itself does."""
    import shutil

    import huggingface_hub.constants
    from PIL import Image

    repo = tmp_path / "models--rlbind--tiny-hub"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    pp = {"mean": [0.5] * 3, "std": [0.25] * 3, "resize_mode": "squash", "interpolation": "bilinear"}
    (snapshot / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY, "preprocess_cfg": pp}))
    shutil.copy(tiny["st"], snapshot / "open_clip_model.safetensors")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # read at each call

    enc = load_encoder("hf-hub:rlbind/tiny-hub")
    model, _, preprocess = open_clip.create_model_and_transforms("hf-hub:rlbind/tiny-hub")
    model.eval()
    cfg = enc.preprocess_config("image")
    assert (cfg.resize_mode, cfg.interpolation, cfg.mean, cfg.std) == ("squash", "bilinear", (0.5,) * 3, (0.25,) * 3)
    files = sorted(photos.rglob("*1.png"))
    ours = torch.stack([get_handler("image").load(f, cfg) for f in files])
    theirs = torch.stack([preprocess(Image.open(f).convert("RGB")) for f in files])
    tokens = open_clip.get_tokenizer("hf-hub:rlbind/tiny-hub")(["a photo of a cat."])
    with torch.no_grad():
        assert torch.allclose(enc.encode("image", ours), model.encode_image(theirs), atol=1e-5)
        assert torch.allclose(enc.encode_text(["a photo of a cat."]), model.encode_text(tokens), atol=1e-6)


@pytest.mark.parametrize(("spec", "needle"), [
    ("hf-hub:chs20/fare2-clip", "cannot load hf-hub:chs20/fare2-clip: not reachable on the Hugging Face hub"),
    # open_clip logs this failure as an error before raising it: the CLI must still print one line.
    ("open_clip:ViT-B-32@openai", "cannot load open_clip model ViT-B-32@openai"),
])
def test_offline_hub_is_one_error_line(photos, tmp_path, capsys, monkeypatch, spec, needle):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc = main(["run", "--model", spec, "--dataset-dir", f"image={photos}", "--out", str(tmp_path / "out"),
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0]


def test_reproduce_fare_says_in_one_line_that_it_cannot_run_here(tmp_path, capsys, monkeypatch):
    import importlib.util

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = Path(__file__).resolve().parents[1] / "scripts" / "reproduce_fare.py"
    spec = importlib.util.spec_from_file_location("reproduce_fare", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rc = script.main(["--data-root", str(tmp_path), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("reproduce_fare: not reproducible here: cannot load hf-hub:chs20/fare2-clip")


def test_missing_open_clip_is_one_line_with_the_install_hint(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # what `import open_clip` sees when not installed
    with pytest.raises(UserError, match=r"pip install 'rlbind-bench\[open_clip\]'"):
        load_encoder(f"open_clip:{tiny['config']}")


def test_package_does_not_import_open_clip():
    code = ("import sys, rlbind_bench.encoders.registry as r; "
            "assert 'open_clip' in r.SCHEMES and 'hf-hub' in r.SCHEMES; assert 'open_clip' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
