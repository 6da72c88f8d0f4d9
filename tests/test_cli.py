"""End to end through the CLI: a run on real photos, its files, and one-line errors for user mistakes."""

from __future__ import annotations

import json
import pickle

import pandas as pd
import pytest

from rlbind_bench.cli import main
from rlbind_bench.results.schema import SAMPLE_COLUMNS, SCHEMA_VERSION, SUMMARY_COLUMNS


def run(argv, capsys):
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture(scope="module")
def clean_run(checkpoints, photo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "res"
    rc = main(["run", "--model", str(checkpoints["image"]), "--suite", "clean", "--modalities", "image",
               "--dataset-dir", f"image={photo_dir}", "--templates", "a photo of a {}.", "--out", str(out),
               "--no-progress", "--batch-size", "5"])
    assert rc == 0
    return out


def test_clean_run_writes_results_matching_languagebind(clean_run, checkpoints, photo_dir):
    import torch

    from rlbind_bench import _compat

    samples = pd.read_parquet(clean_run / "samples.parquet")
    summary = pd.read_parquet(clean_run / "summary.parquet")
    run = json.loads((clean_run / "run.json").read_text())
    assert list(samples.columns) == SAMPLE_COLUMNS
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert len(samples) == 12
    assert set(samples["threat"]) == {"clean"}
    assert sorted(samples["sample_id"]) == sorted(p.relative_to(photo_dir).as_posix() for p in photo_dir.rglob("*.png"))
    assert samples["label"].dtype.kind == "i"
    assert samples["clean_pred"].dtype.kind == "i"
    row = summary.iloc[0]
    assert row["n"] == 12
    assert row["accuracy"] == pytest.approx(samples["correct"].mean())
    assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]
    assert run["provenance"]["packages"]["torch"]
    assert run["command"]
    assert run["finished"]
    assert run["config"]["batch_size"] == 5
    assert list(run["batch_sizes"].values()) == [5]
    import pyarrow.parquet as pq

    assert pq.read_schema(clean_run / "samples.parquet").metadata[b"rlbind_bench.schema_version"] == SCHEMA_VERSION.encode()
    # Per-sample predictions identical to languagebind's own model + processor.
    lb = _compat.import_languagebind()
    model = lb.model_dict["image"].from_pretrained(str(checkpoints["image"])).eval()
    tok = lb.LanguageBindImageTokenizer.from_pretrained(str(checkpoints["image"]))
    proc = lb.transform_dict["image"](model.config, tok)
    classes = sorted(p.name for p in photo_dir.iterdir())
    text = tok([f"a photo of a {c}." for c in classes], max_length=77, padding="max_length", truncation=True,
               return_tensors="pt")
    for r in samples.itertuples():
        with torch.no_grad():
            logits = model(input_ids=text["input_ids"], attention_mask=text["attention_mask"],
                           pixel_values=proc(images=[str(photo_dir / r.sample_id)])["pixel_values"]).logits_per_image
        assert int(logits.argmax()) == r.clean_pred, r.sample_id


@pytest.mark.parametrize(("argv_extra", "needle"), [
    (["--model", "/nonexistent/ckpt"], "not found"),
    (["--suite", "nosuch"], "unknown suite"),
    (["--threats", "nosuch"], "unknown threat"),
    (["--eps=-1/255", "--threats", "linf-pgd"], "non-negative"),
    (["--datasets", "nosuch"], "unknown dataset"),
    (["--batch-size", "0"], "positive integer or 'auto'"),
    (["--batch-size", "lots"], "positive integer or 'auto'"),
])
def test_user_errors_exit_2_with_one_line(checkpoints, photo_dir, tmp_path, capsys, argv_extra, needle):
    argv = ["run", "--model", str(checkpoints["image"]), "--dataset-dir", f"image={photo_dir}", "--out",
            str(tmp_path / "o"), "--no-progress"]
    if "--datasets" in argv_extra:
        argv = ["run", "--model", str(checkpoints["image"]), "--out", str(tmp_path / "o"), "--no-progress"]
    # later flags win in argparse
    rc, _, err = run(argv + argv_extra, capsys)
    assert rc == 2
    lines = [x for x in err.strip().splitlines() if x]
    assert len(lines) == 1
    assert needle in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "o" / "samples.parquet").exists()


def test_empty_dataset_and_missing_folder(checkpoints, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "cat").mkdir(parents=True)
    for target, needle in ((empty, "no image files"), (tmp_path / "missing", "does not exist")):
        rc, _, err = run(["run", "--model", str(checkpoints["image"]), "--dataset-dir", f"image={target}",
                          "--out", str(tmp_path / "o"), "--no-progress"], capsys)
        assert rc == 2
        assert needle in err
        assert len(err.strip().splitlines()) == 1


def test_hostile_checkpoints_refused(checkpoints, tmp_path, capsys):
    import shutil

    import torch
    from safetensors.torch import load_file

    # Truncated safetensors.
    bad = tmp_path / "truncated"
    shutil.copytree(checkpoints["image"], bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    rc, _, err = run(["run", "--model", str(bad), "--dataset-dir", "image=/tmp", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2
    assert "corrupt or truncated" in err
    # A pickle that would run code: refused, never executed.
    evil = tmp_path / "evil"
    shutil.copytree(checkpoints["image"], evil)
    (evil / "model.safetensors").unlink()
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(evil / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"x": Payload()}, fh)
    rc, _, err = run(["run", "--model", str(evil), "--dataset-dir", "image=/tmp", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2
    assert "refusing" in err
    assert not marker.exists()
    # A plain tensor state dict in pytorch_model.bin loads (weights_only).
    good = tmp_path / "binckpt"
    shutil.copytree(checkpoints["image"], good)
    torch.save(load_file(str(good / "model.safetensors")), good / "pytorch_model.bin")
    (good / "model.safetensors").unlink()
    from rlbind_bench.encoders.registry import load_encoder

    assert load_encoder(str(good)).modalities == ("image",)
    # Remote code requested.
    remote = tmp_path / "remote"
    shutil.copytree(checkpoints["image"], remote)
    cfg = json.loads((remote / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "evil.Model"}
    (remote / "config.json").write_text(json.dumps(cfg))
    rc, _, err = run(["run", "--model", str(remote), "--dataset-dir", "image=/tmp", "--out", str(tmp_path / "o")],
                     capsys)
    assert rc == 2
    assert "never executes code" in err


def test_hub_id_offline_fails_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    rc, _, err = run(["run", "--model", "LanguageBind/LanguageBind_Image", "--dataset-dir", "image=/tmp",
                      "--out", str(tmp_path / "o")], capsys)
    assert rc == 2
    assert "cannot fetch LanguageBind/LanguageBind_Image" in err
    assert len(err.strip().splitlines()) == 1


def test_malformed_datasets_yaml(checkpoints, tmp_path, capsys):
    bad = tmp_path / "datasets.yaml"
    bad.write_text("datasets:\n  x: [unclosed\n")
    rc, _, err = run(["run", "--model", str(checkpoints["image"]), "--datasets-file", str(bad), "--datasets", "x",
                      "--out", str(tmp_path / "o")], capsys)
    assert rc == 2
    assert "malformed YAML" in err
    bad.write_text("datasets:\n  x: {modality: image, path: p, colour: red}\n")
    rc, _, err = run(["run", "--model", str(checkpoints["image"]), "--datasets-file", str(bad), "--datasets", "x",
                      "--out", str(tmp_path / "o")], capsys)
    assert rc == 2
    assert "unknown key(s) colour" in err


@pytest.mark.parametrize(("what", "needle"), [("models", "languagebind/audio"), ("threats", "autoattack-linf"),
                                         ("suites", "quick"), ("datasets", "esc50")])
def test_list(capsys, what, needle):
    rc, out, _ = run(["list", what], capsys)
    assert rc == 0
    assert needle in out


def test_quick_suite_all_four_modalities(checkpoints, photo_dir, real_wav_dir, real_video, tmp_path):
    """Every threat of the quick suite gives rows for image, audio, thermal and video."""
    import shutil

    audio = tmp_path / "audio"
    for digit, name in ((1, "one"), (2, "two")):
        (audio / name).mkdir(parents=True)
        shutil.copy(real_wav_dir / f"{digit}.wav", audio / name / f"{digit}.wav")
    video = tmp_path / "video"
    for cls in ("car", "person"):
        (video / cls).mkdir(parents=True)
        shutil.copy(real_video, video / cls / "clip.mp4")
    spec = ",".join(f"{m}={checkpoints[m]}" for m in ("image", "thermal", "audio", "video"))
    out = tmp_path / "quick"
    rc = main(["run", "--model", spec, "--suite", "quick", "--n-samples", "2", "--dataset-dir", f"image={photo_dir}",
               "--dataset-dir", f"thermal={photo_dir}", "--dataset-dir", f"audio={audio}",
               "--dataset-dir", f"video={video}", "--out", str(out), "--no-progress", "--steps", "2"])
    assert rc == 0
    summary = pd.read_parquet(out / "summary.parquet")
    for modality in ("image", "thermal", "audio", "video"):
        threats = set(summary[summary["modality"] == modality]["threat"].str.split(":").str[0])
        assert threats == {"clean", "linf-pgd", "l2-pgd", "corruptions"}, (modality, threats)
