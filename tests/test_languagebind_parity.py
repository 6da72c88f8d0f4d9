"""The LanguageBind backend against languagebind's own model and processors on real files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlbind_bench import _compat
from rlbind_bench.encoders.registry import load_encoder
from rlbind_bench.modalities import get_handler


@pytest.fixture(scope="module")
def lb():
    return _compat.import_languagebind()


def _reference(lb, modality, folder):
    model = lb.model_dict[modality].from_pretrained(str(folder)).eval()
    tok = lb.LanguageBindImageTokenizer.from_pretrained(str(folder))
    proc = lb.transform_dict[modality](model.config, tok)
    return model, tok, proc


@pytest.mark.parametrize("modality", ["image", "thermal", "depth", "audio", "video"])
def test_save_load_roundtrip_exact(lb, checkpoints, modality):
    ours = load_encoder(str(checkpoints[modality]))
    ref = lb.model_dict[modality].from_pretrained(str(checkpoints[modality])).eval()
    ref_state = ref.vision_model.state_dict()
    for k, v in ours.vision[modality].state_dict().items():
        assert torch.equal(v, ref_state[k]), k
    assert ours.modalities == (modality,)


def test_image_preprocessing_and_predictions_match(lb, checkpoints, photo_dir):
    model, tok, proc = _reference(lb, "image", checkpoints["image"])
    enc = load_encoder(str(checkpoints["image"]))
    handler = get_handler("image")
    cfg = enc.preprocess_config("image")
    files = sorted(photo_dir.rglob("*.png"))
    ours = torch.stack([handler.load(f, cfg) for f in files])
    theirs = proc(images=[str(f) for f in files])["pixel_values"]
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    theirs_raw = theirs * std + mean
    # Same pixels, except where bicubic overshoot left [0,1] (the input space clamps it).
    assert torch.allclose(ours, theirs_raw.clamp(0, 1), atol=1e-5)
    assert (theirs_raw.clamp(0, 1) - theirs_raw).abs().max() < 0.1
    classes = ["cat", "coffee", "rocket", "astronaut"]
    text = tok([f"a photo of a {c}." for c in classes], max_length=77, padding="max_length", truncation=True,
               return_tensors="pt")
    with torch.no_grad():
        ref_logits = model(input_ids=text["input_ids"], attention_mask=text["attention_mask"],
                           pixel_values=theirs).logits_per_image
        from rlbind_bench.zeroshot import ZeroShotClassifier, build_class_embeddings

        clf = ZeroShotClassifier(enc, "image", build_class_embeddings(enc, classes, ["a photo of a {}."]))
        our_logits = clf(ours)
    assert torch.equal(our_logits.argmax(1), ref_logits.argmax(1))
    scale = model.logit_scale.exp()
    assert torch.allclose(our_logits / 100.0, ref_logits / scale, atol=2e-3)


def test_thermal_and_depth_preprocessing_match(lb, checkpoints, photo_dir, tmp_path):
    import cv2

    for modality in ("thermal", "depth"):
        _, _, proc = _reference(lb, modality, checkpoints[modality])
        enc = load_encoder(str(checkpoints[modality]))
        cfg = enc.preprocess_config(modality)
        if modality == "thermal":
            src = sorted(photo_dir.rglob("*.png"))[0]
            from PIL import Image

            path = tmp_path / "thermal.png"
            Image.open(src).convert("RGB").save(path)
        else:
            grey = cv2.imread(str(sorted(photo_dir.rglob("*.png"))[1]), cv2.IMREAD_GRAYSCALE)
            path = tmp_path / "depth.png"
            cv2.imwrite(str(path), (grey.astype(np.uint16) * 40))  # millimetres, up to 10.2 m
        ours = get_handler(modality).load(path, cfg)
        theirs = proc(images=[str(path)])["pixel_values"][0]
        raw = theirs * torch.tensor(cfg.std).view(3, 1, 1) + torch.tensor(cfg.mean).view(3, 1, 1)
        assert torch.allclose(ours, raw.clamp(0, 1), atol=1e-5), modality
        # ...and the in-forward normalisation reproduces the processor's output.
        pre = enc.preprocessors[modality](ours[None])[0]
        assert torch.allclose(pre, ((raw.clamp(0, 1) - torch.tensor(cfg.mean).view(3, 1, 1))
                                    / torch.tensor(cfg.std).view(3, 1, 1)), atol=1e-5)


@pytest.mark.parametrize("seconds", [1.0, 4.0])
def test_audio_fbank_matches_languagebind(lb, checkpoints, real_wav_dir, monkeypatch, seconds, tmp_path):
    import soundfile as sf
    import torchaudio

    _, _, proc = _reference(lb, "audio", checkpoints["audio"])
    enc = load_encoder(str(checkpoints["audio"]))
    cfg = enc.preprocess_config("audio")
    # A real recording, repeated to the clip length (4 s > target_length 2.56 s exercises the 3-chunk path).
    data, sr = sf.read(str(real_wav_dir / "7.wav"), dtype="float32")
    wave = torch.from_numpy(data)
    wave = torchaudio.functional.resample(wave, sr, 16000)
    n = int(seconds * 16000)
    wave = wave.repeat(n // wave.numel() + 1)[:n]
    path = tmp_path / "clip.wav"
    sf.write(str(path), wave.numpy(), 16000, subtype="FLOAT")
    ours_wave = get_handler("audio").load(path, cfg, clip_seconds=seconds)
    ours = enc.preprocessors["audio"](ours_wave[None])[0]
    # LanguageBind draws chunk starts at random; our input space takes the first of each third.
    monkeypatch.setattr(np.random, "choice", lambda a: a[0])
    theirs = proc.transform((ours_wave[None].clone(), 16000))
    assert ours.shape == theirs.shape == (3, cfg.num_mel_bins, cfg.target_length)
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_video_preprocessing_matches_languagebind(lb, checkpoints, real_video):
    _, _, proc = _reference(lb, "video", checkpoints["video"])
    proc.transform.transforms = proc.transform.transforms[:-1]  # drop RandomHorizontalFlipVideo (eval: off)
    enc = load_encoder(str(checkpoints["video"]))
    cfg = enc.preprocess_config("video")
    ours = get_handler("video").load(real_video, cfg)
    assert ours.shape == (cfg.num_frames, 3, 224, 224)
    assert ours.min() >= 0
    assert ours.max() <= 1
    theirs = proc(images=[str(real_video)])["pixel_values"][0]  # [3, T, H, W], normalised
    pre = enc.preprocessors["video"](ours[None])[0]
    assert torch.allclose(pre, theirs, atol=1e-4)
    with torch.no_grad():
        feats = enc.encode("video", ours[None])
        ref = _reference(lb, "video", checkpoints["video"])[0].get_image_features(pixel_values=theirs[None])
    assert torch.allclose(feats, ref, atol=1e-4)


def test_shared_text_tower_binding(checkpoints):
    spec = ",".join(f"{m}={checkpoints[m]}" for m in ("image", "audio", "video"))
    enc = load_encoder(spec)
    assert enc.modalities == ("image", "audio", "video")
    single = load_encoder(str(checkpoints["image"]))
    texts = ["a photo of a cat.", "a sound of a dog."]
    assert torch.allclose(enc.encode_text(texts), single.encode_text(texts))
