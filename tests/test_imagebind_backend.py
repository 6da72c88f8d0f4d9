"""The ImageBind backend against the imagebind package's own model and loaders (imagebind.data) on real files.

The model is a tiny ImageBindModel built with the package's class (random init), saved as a state dict the
way imagebind_huge.pth is, and loaded through `imagebind:PATH`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from rlbind_bench import _compat
from rlbind_bench.encoders.registry import load_encoder
from rlbind_bench.errors import CheckpointError, UserError
from rlbind_bench.modalities import get_handler

TINY = {"out_embed_dim": 16, "vision_embed_dim": 32, "vision_num_blocks": 1, "vision_num_heads": 2,
        "audio_embed_dim": 32, "audio_num_blocks": 1, "audio_num_heads": 2, "text_embed_dim": 32,
        "text_num_blocks": 1, "text_num_heads": 2, "depth_embed_dim": 32, "depth_num_blocks": 1,
        "depth_num_heads": 2, "thermal_embed_dim": 32, "thermal_num_blocks": 1, "thermal_num_heads": 2,
        "imu_embed_dim": 32, "imu_num_blocks": 1, "imu_num_heads": 2}


@pytest.fixture(scope="module")
def ib():
    return _compat.import_imagebind()


@pytest.fixture(scope="module")
def tiny(ib, tmp_path_factory):
    """(checkpoint path, the package's model holding the same weights)."""
    torch.manual_seed(0)
    model = ib.models.imagebind_model.ImageBindModel(**TINY).eval()
    folder = tmp_path_factory.mktemp("imagebind")
    torch.save(model.state_dict(), folder / "tiny.pth")
    (folder / "tiny.json").write_text(json.dumps({"model": TINY}))
    return folder / "tiny.pth", model


@pytest.fixture(scope="module")
def enc(tiny):
    return load_encoder(f"imagebind:{tiny[0]}")


def test_spec_loads_the_state_dict_exactly(tiny, enc):
    ref = tiny[1].state_dict()
    ours = enc.model.state_dict()
    assert ours.keys() == ref.keys()
    assert all(torch.equal(ours[k], ref[k]) for k in ref)
    assert enc.modalities == ("image", "thermal", "depth", "audio", "video")


def _package_text(ib, model, texts):
    with torch.no_grad():
        return model({"text": ib.data.load_and_transform_text(texts, "cpu")})["text"]


def test_image_embeddings_and_predictions_match_the_package(ib, tiny, enc, photo_dir):
    from rlbind_bench.zeroshot import ZeroShotClassifier, build_class_embeddings

    model = tiny[1]
    files = sorted(photo_dir.rglob("*.png"))
    cfg = enc.preprocess_config("image")
    ours_x = torch.stack([get_handler("image").load(f, cfg) for f in files])
    theirs_x = ib.data.load_and_transform_vision_data([str(f) for f in files], "cpu")
    assert torch.allclose(enc.preprocessors["image"](ours_x), theirs_x, atol=1e-6)
    classes = ["cat", "coffee", "rocket", "astronaut"]
    with torch.no_grad():
        theirs = model({"vision": theirs_x})["vision"]
        ours = enc.encode("image", ours_x)
        assert torch.allclose(ours, theirs, atol=1e-5)
        text = _package_text(ib, model, classes)
        assert torch.allclose(enc.encode_text(classes), text, atol=1e-5)
        ref_logits = theirs @ text.T  # ImageBind's zero-shot scores
        clf = ZeroShotClassifier(enc, "image", build_class_embeddings(enc, classes, ["{}"]))
        our_logits = clf(ours_x)
    assert torch.equal(our_logits.argmax(1), ref_logits.argmax(1))
    assert torch.allclose(our_logits / 100.0, ref_logits / enc.logit_scale("image"), atol=1e-5)


@pytest.fixture(scope="module")
def wav_files(real_wav_dir, tmp_path_factory):
    """Real 8 kHz recordings: one digit as is (0.6 s) and six digits in a row (about 3.9 s: three 2 s clips
    that overlap, the case where imagebind.data's in-place mean removal matters)."""
    import soundfile as sf

    folder = tmp_path_factory.mktemp("wav")
    one, sr = sf.read(str(real_wav_dir / "7.wav"), dtype="float32")
    many = np.concatenate([sf.read(str(real_wav_dir / f"{d}.wav"), dtype="float32")[0] for d in range(6)])
    sf.write(str(folder / "one.wav"), one, sr, subtype="FLOAT")
    sf.write(str(folder / "many.wav"), many + 0.05, sr, subtype="FLOAT")  # a DC offset, as some recordings have
    return [folder / "one.wav", folder / "many.wav"]


def test_audio_embeddings_match_the_package(ib, tiny, enc, wav_files):
    import soundfile as sf

    model = tiny[1]
    cfg = enc.preprocess_config("audio")
    for path in wav_files:
        info = sf.info(str(path))
        seconds = info.frames * 2 / 16000  # 8 kHz -> 16 kHz: exactly twice the samples
        ours_x = get_handler("audio").load(path, cfg, clip_seconds=seconds)[None]
        theirs_x = ib.data.load_and_transform_audio_data([str(path)], "cpu")
        assert torch.allclose(enc.preprocessors["audio"](ours_x), theirs_x, atol=1e-4), path.name
        with torch.no_grad():
            assert torch.allclose(enc.encode("audio", ours_x), model({"audio": theirs_x})["audio"], atol=1e-4)


def test_audio_clip_bounds_are_the_packages(ib):
    from pytorchvideo.data.clip_sampling import ConstantClipsPerVideoSampler

    from rlbind_bench.encoders.imagebind_preprocess import audio_clip_bounds

    for n in (9000, 32000, 47999, 62640, 160000, 160017):
        sampler = ConstantClipsPerVideoSampler(clip_duration=2, clips_per_video=3)
        points = ib.data.get_clip_timepoints(sampler, n / 16000)
        expected = [(int(a * 16000), min(int(b * 16000), n)) for a, b in points]
        assert audio_clip_bounds(n, 16000, 3, 2.0) == expected, n


def _center_only(ib, monkeypatch):
    """imagebind.data's video loader with only the center of its three spatial crops (our input space)."""
    crop = ib.data.SpatialCrop
    monkeypatch.setattr(ib.data, "SpatialCrop", lambda size, num_crops: crop(size, num_crops=1))


@pytest.mark.parametrize("name", ["carphone_pristine.mp4", "bikes.mp4"])
def test_video_embeddings_match_the_package(ib, tiny, enc, real_video, monkeypatch, name):
    model = tiny[1]
    path = real_video.parent / name
    cfg = enc.preprocess_config("video")
    ours_x = get_handler("video").load(path, cfg)[None]
    with torch.no_grad():
        all_crops = ib.data.load_and_transform_video_data([str(path)], "cpu")
        _center_only(ib, monkeypatch)
        theirs_x = ib.data.load_and_transform_video_data([str(path)], "cpu")
        assert theirs_x.shape == (1, 5, 3, 2, 224, 224)
        assert torch.allclose(enc.preprocessors["video"](ours_x), theirs_x, atol=1e-5)
        ours = enc.encode("video", ours_x)
        assert torch.allclose(ours, model({"vision": theirs_x})["vision"], atol=1e-5)
        # The center crop is one of the package's three (the input space drops the side crops).
        assert torch.equal(all_crops.view(1, 5, 3, *all_crops.shape[2:])[:, :, 1], theirs_x)


def test_depth_and_thermal_follow_the_documented_transforms(tiny, enc, photo_dir, tmp_path):
    """ImageBind ships no depth or thermal loader: the package's model on tensors computed here from the
    files by the formulas docs/backends-imagebind.md states."""
    from PIL import Image
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    model = tiny[1]
    src = sorted(photo_dir.rglob("*.png"))[1]
    grey = np.asarray(Image.open(src).convert("L"))
    depth_file = tmp_path / "depth.png"
    Image.fromarray(grey.astype(np.uint16) * 40).save(depth_file)  # millimetres, up to 10.2 m
    s = enc.settings
    metres = np.clip(np.asarray(Image.open(depth_file)).astype(np.float32) / 1000.0, 0.01, s.max_depth)
    scaled = TF.center_crop(TF.resize(torch.from_numpy(metres)[None], 224, InterpolationMode.BICUBIC,
                                      antialias=True), [224, 224])
    scaled = (scaled / s.max_depth).clamp(0, 1) * s.max_depth
    disparity = (s.depth_baseline * s.depth_focal_length / scaled.clamp(min=0.01) - s.depth_mean) / s.depth_std
    thermal = np.asarray(Image.open(src).convert("RGB"))
    thermal_file = tmp_path / "thermal.png"
    Image.fromarray(thermal).save(thermal_file)
    rgb = TF.to_tensor(TF.center_crop(TF.resize(Image.open(thermal_file), 224, InterpolationMode.BICUBIC), 224))
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    with torch.no_grad():
        for modality, file, ref_x in (("depth", depth_file, disparity[None]), ("thermal", thermal_file, luma[None, None])):
            x = get_handler(modality).load(file, enc.preprocess_config(modality))[None]
            assert torch.allclose(enc.preprocessors[modality](x), ref_x, rtol=1e-4, atol=1e-4), modality
            assert torch.allclose(enc.encode(modality, x), model({modality: ref_x})[modality], atol=1e-4)


def test_every_modality_is_differentiable_in_its_input_space(enc):
    for modality in enc.modalities:
        space = enc.input_space(modality, clip_seconds=2.5)
        x = (torch.rand(2, *space.shape) * (space.high - space.low) + space.low).requires_grad_(True)
        enc.encode(modality, x).square().sum().backward()
        assert torch.isfinite(x.grad).all()
        assert x.grad.abs().sum() > 0, modality


def test_save_and_reload_through_the_manifest(enc, tmp_path, photo_dir):
    folder = enc.save(tmp_path / "saved")
    again = load_encoder(str(folder))
    x = torch.stack([get_handler("image").load(f, enc.preprocess_config("image"))
                     for f in sorted(photo_dir.rglob("*.png"))[:2]])
    with torch.no_grad():
        assert torch.equal(again.encode("image", x), enc.encode("image", x))
    assert again.fingerprint() != ""


def test_user_mistakes_are_one_line_errors(tiny, tmp_path, monkeypatch):
    path = tiny[0]
    with pytest.raises(CheckpointError, match="not found"):
        load_encoder(f"imagebind:{tmp_path / 'missing.pth'}")
    # A tiny checkpoint without its config is read as imagebind_huge: refused, not half-loaded.
    bare = tmp_path / "bare.pth"
    bare.write_bytes(path.read_bytes())
    with pytest.raises(CheckpointError, match="config JSON beside it"):
        load_encoder(f"imagebind:{bare}")
    (tmp_path / "bad.pth").write_bytes(path.read_bytes())
    (tmp_path / "bad.json").write_text(json.dumps({"model": {**TINY, "num_layers": 3}}))
    with pytest.raises(CheckpointError, match="unknown ImageBindModel argument"):
        load_encoder(f"imagebind:{tmp_path / 'bad.pth'}")
    (tmp_path / "bad.json").write_text(json.dumps({"model": TINY, "preprocess": {"audio_std": -1}}))
    with pytest.raises(CheckpointError, match="positive"):
        load_encoder(f"imagebind:{tmp_path / 'bad.pth'}")
    # Not installed: one UserError line naming the extra.
    monkeypatch.setitem(sys.modules, "imagebind", None)
    with pytest.raises(UserError, match=r"'imagebind' extra") as info:
        load_encoder(f"imagebind:{path}")
    assert "\n" not in str(info.value)


PROBE = r'''
import json, sys
import torchvision.transforms._functional_tensor as ft
sys.modules["torchvision.transforms.functional_tensor"] = ft  # only what `import imagebind` itself needs
from imagebind import data
out = {}
for name, call in (("audio", lambda: data.load_and_transform_audio_data([sys.argv[1]], "cpu")),
                   ("video", lambda: data.load_and_transform_video_data([sys.argv[2]], "cpu"))):
    try:
        call(); out[name] = "ok"
    except Exception as e:
        out[name] = f"{type(e).__name__}: {e}"[:300]
print("RESULT" + json.dumps(out))
'''


def test_imagebind_shims_fix_the_package_loaders(ib, wav_files, real_video):
    """Without the shims imagebind.data's audio and video loaders fail on the pinned stack (reproduced in a
    fresh interpreter); with them, they run (the parity tests above use them)."""
    proc = subprocess.run([sys.executable, "-c", PROBE, str(wav_files[0]), str(real_video)], capture_output=True,
                          text=True, timeout=300)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    assert line, proc.stderr[-2000:]
    unpatched = json.loads(line[0][len("RESULT"):])
    assert "TorchCodec" in unpatched["audio"]
    assert "sample_rate" in unpatched["video"]
    assert ib.data.load_and_transform_audio_data([str(wav_files[0])], "cpu").shape == (1, 3, 1, 128, 204)
    assert ib.data.load_and_transform_video_data([str(real_video)], "cpu").shape == (1, 15, 3, 2, 224, 224)


def test_cli_clean_run(tiny, ib, photo_dir, tmp_path):
    import pandas as pd

    from rlbind_bench.cli import main

    out = tmp_path / "res"
    classes = sorted(p.name for p in photo_dir.iterdir())
    rc = main(["run", "--model", f"imagebind:{tiny[0]}", "--suite", "clean", "--modalities", "image",
               "--dataset-dir", f"image={photo_dir}", "--templates", "{}", "--out", str(out),
               "--no-progress", "--batch-size", "6"])
    assert rc == 0
    samples = pd.read_parquet(out / "samples.parquet").sort_values("sample_id")
    assert len(samples) == 12
    assert set(samples["threat"]) == {"clean"}
    # Per-sample predictions identical to the package's model on the package's transform.
    files = [photo_dir / s for s in samples["sample_id"]]
    model = tiny[1]
    with torch.no_grad():
        vision = model({"vision": ib.data.load_and_transform_vision_data([str(f) for f in files], "cpu")})["vision"]
        preds = (vision @ _package_text(ib, model, classes).T).argmax(1)
    assert samples["clean_pred"].tolist() == preds.tolist()
