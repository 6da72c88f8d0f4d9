"""`run --autoattack-subset N` (threats/subset.py): AutoAttack cells on the N sample ids with the smallest sha256,
every other cell on every sample; the subset enters run_id and the narrowed cells' config_hash; reruns give the
same rows; the plan prices the narrowed cells on N samples."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from rlbind_bench.cli import main

N = 5


def _run(checkpoints, photo_dir, out, *extra) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    rc = main(["run", "--model", str(checkpoints["image"]), "--modalities", "image", "--dataset-dir",
               f"image={photo_dir}", "--threats", "linf-pgd,autoattack-custom", "--eps", "2/255", "--steps", "2",
               "--probe-samples", "0", "--no-progress", "--out", str(out), *extra])
    assert rc == 0
    return (pd.read_parquet(out / "samples.parquet"), json.loads((out / "run.json").read_text()),
            pd.read_parquet(out / "summary.parquet"))


@pytest.fixture(scope="module")
def runs(checkpoints, photo_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("aa-subset")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {name: _run(checkpoints, photo_dir, root / name, *extra) for name, extra in
                {"whole": (), "subset": ("--autoattack-subset", str(N)),
                 "again": ("--autoattack-subset", str(N))}.items()}
    finally:
        torch.set_num_threads(before)


def test_autoattack_rows_only_for_the_fixed_subset(runs):
    samples, _, _ = runs["subset"]
    ids = sorted(samples["sample_id"].unique())
    expected = set(sorted(ids, key=lambda s: hashlib.sha256(s.encode()).hexdigest())[:N])
    aa = samples[samples["attack"] == "autoattack"]
    assert set(aa["sample_id"]) == expected
    assert len(aa) == N
    assert set(samples[samples["attack"] == "pgd"]["sample_id"]) == set(ids)  # PGD keeps every sample
    assert len(ids) == 12


def test_subset_enters_the_hashes_of_the_narrowed_cells_only(runs):
    whole, whole_run, _ = runs["whole"]
    subset, subset_run, _ = runs["subset"]
    assert whole_run["run_id"] != subset_run["run_id"]
    for attack, same in (("pgd", True), ("autoattack", False)):
        h_whole = set(whole[whole["attack"] == attack]["config_hash"])
        h_subset = set(subset[subset["attack"] == attack]["config_hash"])
        assert (h_whole == h_subset) is same, attack
    pgd_cols = ["sample_id", "pred", "correct", "margin"]
    pd.testing.assert_frame_equal(  # the other cells' rows do not change
        whole[whole["attack"] == "pgd"][pgd_cols].sort_values("sample_id").reset_index(drop=True),
        subset[subset["attack"] == "pgd"][pgd_cols].sort_values("sample_id").reset_index(drop=True))
    assert subset_run["config"]["autoattack_subset"] == N


def test_rerun_gives_the_same_rows(runs):
    a, _, _ = runs["subset"]
    b, _, _ = runs["again"]
    cols = ["sample_id", "threat", "eps", "pred", "correct", "margin", "broken_by", "config_hash"]
    pd.testing.assert_frame_equal(a[cols].sort_values(["threat", "sample_id"]).reset_index(drop=True),
                                  b[cols].sort_values(["threat", "sample_id"]).reset_index(drop=True))


def test_summary_n_and_plan_samples(runs, checkpoints, photo_dir, tmp_path):
    summary = runs["subset"][2]
    assert summary[summary["threat"].str.startswith("autoattack")]["n"].tolist() == [N]
    assert summary[summary["threat"].str.startswith("linf-pgd")]["n"].tolist() == [12]
    rc = main(["run", "--model", str(checkpoints["image"]), "--modalities", "image", "--dataset-dir",
               f"image={photo_dir}", "--threats", "autoattack-custom", "--eps", "2/255", "--steps", "2",
               "--autoattack-subset", str(N), "--plan-for", "H100", "--plan-json", str(tmp_path / "p.json"),
               "--no-progress", "--out", str(tmp_path / "o")])
    assert rc == 0
    cells = json.loads((tmp_path / "p.json").read_text())["cells"]
    assert [c["samples"] for c in cells if c["cell"].startswith("autoattack")] == [N]
    assert [c["samples"] for c in cells if c["cell"].startswith("clean logits")] == [12]


@pytest.mark.parametrize("bad", ["0", "-3"])
def test_bad_subset_is_one_line(checkpoints, photo_dir, tmp_path, capsys, bad):
    rc = main(["run", "--model", str(checkpoints["image"]), "--modalities", "image", "--dataset-dir",
               f"image={photo_dir}", "--autoattack-subset", bad, "--no-progress", "--out", str(tmp_path / "o")])
    assert rc == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_plan_lays_out_the_subset_in_the_runs_own_batches(checkpoints, photo_dir, tmp_path, monkeypatch, one_thread):
    """A narrowed cell runs once per batch on that batch's subset rows (runner.evaluate_batch): the plan prices it
    on the same calls, not as one batch of N (which made AutoAttack's expected time 2-4x low on the demo grid)."""
    from rlbind_bench.threats.autoattack import AutoAttackThreat

    seen = []
    original = AutoAttackThreat.run

    def spy(self, model, x, *args, **kwargs):
        seen.append(len(x))
        return original(self, model, x, *args, **kwargs)

    monkeypatch.setattr(AutoAttackThreat, "run", spy)
    args = ["run", "--model", str(checkpoints["image"]), "--modalities", "image", "--dataset-dir",
            f"image={photo_dir}", "--threats", "autoattack-custom", "--eps", "2/255", "--steps", "2",
            "--autoattack-subset", str(N), "--batch-size", "4", "--probe-samples", "0", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    assert main([*args, "--out", str(tmp_path / "o"), "--plan-for", "H100", "--plan-json", str(tmp_path / "p.json")]) == 0
    cell = next(c for c in json.loads((tmp_path / "p.json").read_text())["cells"] if c["cell"].startswith("autoattack"))
    assert len(seen) > 1  # 12 samples in batches of 4: the subset falls in several
    assert [r for r in cell["subset_batch_rows"] if r] == seen
    assert len(cell["subset_batch_rows"]) == 3


def test_plan_estimates_survivors_on_the_subsets_own_samples(checkpoints, photo_dir, tmp_path, monkeypatch,
                                                              one_thread):
    """AutoAttack's later sub-attacks run on the subset's samples the first one leaves: the plan's short attack
    runs on those samples, not on a spread over the dataset (8 spread samples gave the demo videos 0.12 robust
    where the subset had 0.60)."""
    from rlbind_bench.plan import build

    short, every = [], []
    pgd, subset = build.pgd, build.fixed_subset
    monkeypatch.setattr(build, "pgd", lambda *a, ids, **k: short.append(list(ids)) or pgd(*a, ids=ids, **k))
    monkeypatch.setattr(build, "fixed_subset", lambda ids, n: every.append(list(ids)) or subset(ids, n))
    assert main(["run", "--model", str(checkpoints["image"]), "--modalities", "image", "--dataset-dir",
                 f"image={photo_dir}", "--threats", "autoattack-custom", "--eps", "2/255", "--steps", "60",
                 "--autoattack-subset", str(N), "--probe-samples", "0", "--no-progress", "--out", str(tmp_path / "o"),
                 "--plan-json", str(tmp_path / "p.json")]) == 0
    aa = [c for c in json.loads((tmp_path / "p.json").read_text())["cells"] if c["cell"].startswith("autoattack")]
    assert [c["expected_method"] for c in aa] == ["scaled"]  # priced from the short attack, not run
    assert every
    assert all(e == every[0] for e in every)
    assert len(every[0]) == 12
    expected = sorted(every[0], key=lambda s: hashlib.sha256(s.encode()).hexdigest())[:N]
    assert len(short) == 1
    assert sorted(short[0]) == sorted(expected)
