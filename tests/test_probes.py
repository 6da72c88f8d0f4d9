"""The gradient-masking probes' cost controls (threats/probes.py): results reused across runs only when the model,
the inputs and the probe code are the same; --probe-samples sets how many inputs they run on, 0 turns them off
and says so in run.json, in `check`'s notes and in the plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlbind_bench.cli import main

PROBE_FIELDS = ("zero_grad_fraction", "randomized_output", "large_eps_accuracy", "accuracy_5_steps",
                "accuracy_20_steps", "n")


def _run(model: Path, photo_dir: Path, out: Path, *extra: str) -> dict:
    rc = main(["run", "--model", str(model), "--suite", "clean", "--threats", "linf-pgd", "--steps", "2",
               "--modalities", "image", "--dataset-dir", f"image={photo_dir}", "--n-samples", "8",
               "--out", str(out), "--no-progress", *extra])
    assert rc == 0
    return json.loads((out / "run.json").read_text())


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RLBIND_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_second_run_of_same_model_reuses_probes(checkpoints, photo_dir, tmp_path, fresh_cache, one_thread):
    first = _run(checkpoints["image"], photo_dir, tmp_path / "a", "--eps", "1/255")
    # Another eps grid: other cells, other shard hashes, so the resume copy beside the parts is not what is read.
    second = _run(checkpoints["image"], photo_dir, tmp_path / "b", "--eps", "2/255,4/255")
    (a,), (b,) = first["checks"].values(), second["checks"].values()
    assert list(first["probe_sources"].values()) == ["probed"]
    assert list(second["probe_sources"].values()) == ["user cache"]
    assert {k: a[k] for k in PROBE_FIELDS} == {k: b[k] for k in PROBE_FIELDS}
    assert len(list((fresh_cache / "probes").glob("*.json"))) == 1


def test_other_model_or_inputs_probe_again(checkpoints, photo_dir, tmp_path, fresh_cache, one_thread):
    _run(checkpoints["image"], photo_dir, tmp_path / "a")
    from rlbind_bench.encoders.checkpoint_factory import build_languagebind_checkpoint

    reseeded = build_languagebind_checkpoint(tmp_path / "img2", "image", seed=7)  # other weights, same photos
    other_model = _run(reseeded, photo_dir, tmp_path / "b")
    assert list(other_model["probe_sources"].values()) == ["probed"]
    # The same model on other bytes (first photo of every class replaced) under the same dataset name and sample
    # ids: not the cached verdict.
    changed = tmp_path / "copy" / photo_dir.name
    for f in sorted(photo_dir.rglob("*.*")):
        dest = changed / f.relative_to(photo_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(f.read_bytes())
    for cls in sorted(p for p in changed.iterdir() if p.is_dir()):
        files = sorted(cls.iterdir())
        files[0].write_bytes(files[1].read_bytes())
    other_inputs = _run(checkpoints["image"], changed, tmp_path / "c")
    assert list(other_inputs["probe_sources"].values()) == ["probed"]
    assert len(list((fresh_cache / "probes").glob("*.json"))) == 3


def test_garbled_cache_entry_is_probed_again(checkpoints, photo_dir, tmp_path, fresh_cache, one_thread):
    first = _run(checkpoints["image"], photo_dir, tmp_path / "a")
    entry, = (fresh_cache / "probes").glob("*.json")
    entry.write_text('{"zero_grad_fr')
    again = _run(checkpoints["image"], photo_dir, tmp_path / "b", "--eps", "2/255")
    (a,), (b,) = first["checks"].values(), again["checks"].values()
    assert list(again["probe_sources"].values()) == ["probed"]
    assert b["n"] == a["n"]
    assert json.loads(entry.read_text())["n"] == a["n"]  # rewritten whole


def test_probe_samples_sets_inputs_and_zero_turns_probes_off(checkpoints, photo_dir, tmp_path, fresh_cache,
                                                             one_thread, capsys):
    four = _run(checkpoints["image"], photo_dir, tmp_path / "four", "--probe-samples", "4")
    assert next(iter(four["checks"].values()))["n"] == 4
    assert four["checks_not_run"] == []
    off = _run(checkpoints["image"], photo_dir, tmp_path / "off", "--probe-samples", "0")
    assert list(off["checks"].values()) == [{}]
    assert set(off["checks_not_run"]) == {"large_eps_not_zero", "zero_gradients", "randomized_output",
                                          "more_steps_raise_accuracy", "more_steps_raise_cosine"}
    assert off["config"]["probe_samples"] == 0
    # Rows do not depend on the probes: same run_id, same per-sample table.
    assert off["run_id"] == four["run_id"]
    capsys.readouterr()
    assert main(["check", "--results", str(tmp_path / "off"), "--baseline", str(tmp_path / "four")]) == 0
    assert "without the gradient-masking probes" in capsys.readouterr().out


def test_negative_probe_samples_is_one_line(checkpoints, photo_dir, tmp_path, capsys):
    rc = main(["run", "--model", str(checkpoints["image"]), "--modalities", "image",
               "--dataset-dir", f"image={photo_dir}", "--out", str(tmp_path / "o"), "--probe-samples", "-1",
               "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "--probe-samples" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_plan_runs_the_probes_once_for_the_run(checkpoints, photo_dir, tmp_path, fresh_cache, one_thread):
    args = ["run", "--model", str(checkpoints["image"]), "--suite", "clean", "--threats", "linf-pgd", "--steps",
            "2", "--modalities", "image", "--dataset-dir", f"image={photo_dir}", "--n-samples", "8",
            "--no-progress", "--out", str(tmp_path / "p")]

    def probe_row(name: str) -> dict:
        assert main([*args, "--plan-json", str(tmp_path / name)]) == 0
        rows = [c for c in json.loads((tmp_path / name).read_text())["cells"] if "probes" in c["cell"]]
        assert len(rows) == 1
        return rows[0]

    first = probe_row("first.json")
    assert "run by this plan" in first["cell"]
    assert first["samples"] == 8
    assert first["worst_s"] > 0  # what they cost, shown
    assert first["expected_s"] == 0  # ...but not again in the run
    run = _run(checkpoints["image"], photo_dir, tmp_path / "a")
    assert list(run["probe_sources"].values()) == ["user cache"]
    assert "already cached" in probe_row("second.json")["cell"]
    assert len(list((fresh_cache / "probes").glob("*.json"))) == 1
