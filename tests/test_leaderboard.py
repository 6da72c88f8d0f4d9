"""Statistics against hand-computed values; `leaderboard` and `check` end to end on real runs of two tiny
LanguageBind-format models; the HTML page in headless Chromium."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rlbind_bench.cli import main
from rlbind_bench.results import stats
from rlbind_bench.results.schema import SAMPLE_SCHEMA, SUMMARY_SCHEMA
from rlbind_bench.results.store import read_table, write_json_atomic, write_table_atomic

HOSTILE = "<script>alert(1)</script>"
HOSTILE_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


# ------------------------------------------------------------------------------------------ statistics
def test_mcnemar_exact_hand_computed():
    a = [1, 1, 1, 1, 0, 0]  # baseline
    b = [0, 0, 0, 1, 0, 1]  # n10 = 3 (a right, b wrong), n01 = 1
    res = stats.mcnemar_exact(a, b)
    assert (res.n, res.n01, res.n10) == (6, 1, 3)
    assert res.p_value == pytest.approx(2 * (1 + 4) / 16)  # 2 * P[Bin(4, 1/2) <= 1]
    assert stats.mcnemar_exact([1] * 9, [0] * 9).p_value == pytest.approx(2 / 2**9)
    assert stats.mcnemar_exact([1, 0, 1], [1, 0, 1]).p_value == 1.0  # no discordant pair
    assert stats.mcnemar_exact([1, 0], [0, 1]).p_value == 1.0  # min(1, 2 * 3/4)
    with pytest.raises(ValueError, match="same length"):
        stats.mcnemar_exact([1, 0], [1])


def test_paired_bootstrap_diff():
    rng = np.random.default_rng(3)
    a = rng.random(400) < 0.7
    b = a.copy()
    b[:40] = ~b[:40]  # 40 flips around 0.7: diff is (#wrong->right - #right->wrong) / 400
    ci = stats.paired_bootstrap_diff(a, b, n_boot=4000, rng=np.random.default_rng(0))
    assert ci.diff == pytest.approx(b.mean() - a.mean())
    assert ci.low < ci.diff < ci.high
    again = stats.paired_bootstrap_diff(a, b, n_boot=4000, rng=np.random.default_rng(0))
    assert (again.low, again.high) == (ci.low, ci.high)  # seeded: reproducible
    # Same distribution as resampling indices (the textbook loop), within Monte Carlo error.
    idx = np.random.default_rng(1).integers(0, a.size, size=(4000, a.size))
    naive = np.quantile(b[idx].mean(1) - a[idx].mean(1), [0.025, 0.975])
    assert ci.low == pytest.approx(naive[0], abs=0.01)
    assert ci.high == pytest.approx(naive[1], abs=0.01)
    same = stats.paired_bootstrap_diff(a, a, n_boot=100)
    assert (same.diff, same.low, same.high) == (0.0, 0.0, 0.0)
    assert math.isnan(stats.paired_bootstrap_diff([], []).diff)


def test_corruption_errors_and_means():
    errors = {"noise": [0.2, 0.4], "blur": [0.1, 0.1]}
    reference = {"noise": [0.4, 0.6], "blur": [0.2, 0.3]}
    ce = stats.corruption_errors(errors, reference)
    assert ce == {"noise": pytest.approx(0.6 / 1.0), "blur": pytest.approx(0.2 / 0.5)}
    assert stats.mean_corruption_error(errors, reference) == pytest.approx(0.5)
    assert math.isnan(stats.mean_corruption_error(errors, {"noise": [0.4, 0.6]}))  # blur not in the reference
    assert stats.mean_corruption_accuracy({"a": [0.5, 0.7], "b": [0.9, 0.1]}) == pytest.approx(0.55)
    assert math.isnan(stats.mean_corruption_accuracy({}))


def test_accuracy_eps_auc():
    # x = 0, 1/4, 1/2, 1 ; y = .8, .6, .4, .2 -> .25 * .7 + .25 * .5 + .5 * .3 = .45
    auc = stats.accuracy_eps_auc([4 / 255, 1 / 255, 2 / 255], [0.2, 0.6, 0.4], clean_accuracy=0.8)
    assert auc == pytest.approx(0.45)
    assert stats.accuracy_eps_auc([0.5, 1.0], [0.3, 0.3], 0.3) == pytest.approx(0.3)
    assert math.isnan(stats.accuracy_eps_auc([], [], 0.5))


def test_wilson_and_alpha():
    lo, hi = stats.wilson_interval(3, 12)
    assert (lo, hi) == (pytest.approx(0.0889, abs=1e-4), pytest.approx(0.5323, abs=1e-4))
    assert stats.z_for_alpha(0.05) == pytest.approx(stats.Z95)
    assert stats.z_for_alpha(1.0) == 0.0


# ----------------------------------------------------------------------------------------- result runs
def _run(ckpt: Path, photos: Path, out: Path) -> Path:
    rc = main(["run", "--model", str(ckpt), "--dataset-dir", f"image={photos}", "--templates", "a photo of a {}.",
               "--threats", "linf-pgd", "--eps", "1/255,2/255", "--steps", "3", "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


@pytest.fixture(scope="session")
def runs(photo_dir, tmp_path_factory) -> dict[str, Path]:
    """Two genuinely different models (seeds 1 and 2) on the same photos."""
    import torch

    from rlbind_bench.encoders.checkpoint_factory import build_languagebind_checkpoint

    root = tmp_path_factory.mktemp("lb")
    threads = torch.get_num_threads()
    # One thread: the model is tiny, and two threads on a busy 2-core machine are ~10x slower, not faster.
    torch.set_num_threads(1)
    try:
        return {name: _run(build_languagebind_checkpoint(root / f"ckpt-{name}", "image", seed=seed), photo_dir,
                           root / f"run-{name}") for name, seed in (("a", 1), ("b", 2))}
    finally:
        torch.set_num_threads(threads)


def _copy_with(src: Path, dst: Path, samples_fn=None, run_fn=None, model: str | None = None) -> Path:
    """A results folder edited as a later run could have produced it (summary recomputed from samples)."""
    from rlbind_bench.results.summary import summarise

    shutil.copytree(src, dst)
    samples = read_table(dst / "samples.parquet")
    run = json.loads((dst / "run.json").read_text())
    if model is not None:
        samples["model"] = model
        run["config"]["model"] = model
    if samples_fn is not None:
        samples = samples_fn(samples)
    if run_fn is not None:
        run_fn(run)
    summary = summarise(samples)
    summary["checks_failed"] = ""
    write_table_atomic(dst / "samples.parquet", samples, SAMPLE_SCHEMA)
    write_table_atomic(dst / "summary.parquet", summary, SUMMARY_SCHEMA)
    write_json_atomic(dst / "run.json", run)
    return dst


def _all_correct(samples: pd.DataFrame) -> pd.DataFrame:
    return samples.assign(correct=True, pred=samples["label"])


@pytest.fixture(scope="session")
def variants(runs, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("variants")
    return {
        "better": _copy_with(runs["a"], root / "better", _all_correct),
        "hostile": _copy_with(runs["b"], root / "hostile", model=HOSTILE),
    }


def _cli(argv, capsys):
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture(scope="session")
def board(runs, variants, tmp_path_factory):
    out = tmp_path_factory.mktemp("board") / "lb"
    model_a = json.loads((runs["a"] / "run.json").read_text())["config"]["model"]
    rc = main(["leaderboard", str(runs["a"]), str(runs["b"]), str(variants["hostile"]), "--out", str(out),
               "--reference", model_a])
    assert rc == 0
    return out, model_a


# --------------------------------------------------------------------------------------------- leaderboard
def test_leaderboard_writes_markdown_json_html_plots_parquet(board, runs):
    from rlbind_bench.leaderboard.schema import LEADERBOARD_COLUMNS, validate_model_entry

    out, model_a = board
    assert {p.name for p in out.iterdir()} >= {"image.md", "index.md", "index.html", "leaderboard.parquet",
                                              "models", "plots"}
    md = (out / "image.md").read_text()
    assert "| Model | clean | linf-pgd 1/255 | linf-pgd 2/255 | AUC linf-pgd Linf | n |" in md
    assert "(reference)" in md
    assert "(Δ " in md
    index = (out / "index.md").read_text()
    assert "[image](image.md)" in index
    assert "models/" in index
    merged = read_table(out / "leaderboard.parquet")
    assert list(merged.columns) == LEADERBOARD_COLUMNS
    assert merged["model"].nunique() == 3
    assert len(merged) == 3 * 3  # 3 models x (clean + 2 eps)
    entries = [json.loads(p.read_text()) for p in sorted((out / "models").glob("*.json"))]
    assert len(entries) == 3
    for e in entries:
        validate_model_entry(e)
        assert e["reference"] == model_a
        assert all(isinstance(c["accuracy"], float) and 0 <= c["accuracy"] <= 1 for c in e["cells"])
        rb = e["robustbench"]
        assert sorted(r["eps"] for r in rb) == pytest.approx([1 / 255, 2 / 255])
        assert all(isinstance(r["clean_acc"], float) and "autoattack_acc" not in r for r in rb)  # PGD, not AA
        assert e["runs"][0]["provenance"]["packages"]["torch"]
        assert e["runs"][0]["config_hashes"]
        assert e["summaries"][0]["auc"]["linf-pgd Linf"] is not None
    summary_a = read_table(runs["a"] / "summary.parquet")
    entry_a = next(e for e in entries if e["name"] == model_a)
    clean_a = next(c for c in entry_a["cells"] if c["threat"] == "clean")
    assert clean_a["accuracy"] == pytest.approx(summary_a.loc[summary_a["threat"] == "clean", "accuracy"].iloc[0])
    assert clean_a["config_hash"] == summary_a.loc[summary_a["threat"] == "clean", "config_hash"].iloc[0]
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots == ["image-acc-vs-eps-Linf.png", "image-acc-vs-eps-Linf.svg"]
    assert (out / "plots" / plots[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "index.html").read_text()
    assert page.count("<table") == 2
    assert 'data-type="num"' in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # self-contained
    assert "data:image/png;base64," in page


def test_untrusted_model_name_is_escaped(board):
    out, _ = board
    page = (out / "index.html").read_text()
    assert HOSTILE not in page
    assert HOSTILE_ESCAPED in page
    assert page.count("<script") == 1  # the page's own script only
    for name in ("image.md", "index.md"):
        text = (out / name).read_text()
        assert HOSTILE not in text, name
        assert '<script' not in text, name
        assert HOSTILE_ESCAPED in text, name
    entry = json.loads((out / "models" / "script_alert_1_script.json").read_text())
    assert entry["name"] == HOSTILE  # JSON keeps the data verbatim; renderers escape


def test_leaderboard_refuses_config_conflicts(runs, tmp_path, capsys):
    def other_config(samples):
        return samples.assign(config_hash=samples["config_hash"] + "x")

    changed = _copy_with(runs["a"], tmp_path / "changed", other_config)
    rc, _, err = _cli(["leaderboard", runs["a"], changed, "--out", tmp_path / "lb"], capsys)
    assert rc == 2
    assert "differ across runs" in err
    assert len(err.strip().splitlines()) == 1
    rc, out, _ = _cli(["leaderboard", runs["a"], changed, "--out", tmp_path / "lb", "--allow-conflicts"], capsys)
    assert rc == 0
    assert "config conflict" in out
    assert "‡" in (tmp_path / "lb" / "image.md").read_text()
    rc, _, err = _cli(["leaderboard", runs["a"], "--out", tmp_path / "lb2", "--reference", "nosuch"], capsys)
    assert rc == 2
    assert "--reference" in err
    rc, _, err = _cli(["leaderboard", tmp_path / "nosuch", "--out", tmp_path / "lb3"], capsys)
    assert rc == 2
    assert "not found" in err


# ------------------------------------------------------------------------------------------------- check
def test_check_against_itself_passes(runs, tmp_path, capsys):
    junit = tmp_path / "self.xml"
    rc, out, _ = _cli(["check", "--results", runs["a"], "--baseline", runs["a"], "--junit", junit], capsys)
    assert rc == 0
    assert "PASS" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "0"
    assert int(suite.get("tests")) == 3


def test_check_flags_regression_junit_and_step_summary(runs, variants, tmp_path, capsys, monkeypatch):
    summary_md = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_md))
    rc, out, err = _cli(["check", "--results", runs["a"], "--baseline", variants["better"]], capsys)
    assert rc == 1
    assert "regressed: image/image:photos" in err
    assert "linf-pgd 2/255" in err
    assert "FAIL" in out
    assert "regressed" in out
    junit = ET.parse(runs["a"] / "check-junit.xml").getroot().find("testsuite")  # default location
    failed = [tc.get("name") for tc in junit.iter("testcase") if tc.find("failure") is not None]
    assert sorted(failed) == ["clean", "linf-pgd 1/255", "linf-pgd 2/255"]
    assert {tc.find("failure").get("type") for tc in junit.iter("testcase")} == {"regressed"}
    text = summary_md.read_text()
    assert text.startswith("## rlbind-bench check: ❌ FAIL")
    assert "| status | modality |" in text
    assert "| regressed | image | image:photos" in text
    # alpha = 1 counts any drop beyond the tolerance; a huge tolerance accepts everything.
    rc, *_ = _cli(["check", "--results", runs["a"], "--baseline", variants["better"], "--tolerance-pts", "100",
                   "--junit", tmp_path / "j.xml"], capsys)
    assert rc == 0


def test_check_summary_only_baseline_is_unpaired(runs, variants, tmp_path, capsys):
    rc, out, _ = _cli(["check", "--results", runs["a"], "--baseline", variants["better"] / "summary.parquet",
                       "--junit", tmp_path / "j.xml"], capsys)
    out = " ".join(out.split())  # rich wraps long lines
    assert rc == 1
    assert "unpaired" in out
    assert "sample identity not verified" in out


@pytest.mark.parametrize(("change", "status"), [
    ("steps", "config-changed"),
    ("drop_sample", "samples-differ"),
    ("drop_cell", "missing"),
])
def test_check_reports_incomparable_cells(runs, tmp_path, capsys, change, status):
    def steps(run):
        for cell in run["cells"]:
            if cell["config"]["threat"]["name"] == "linf-pgd":
                cell["config"]["threat"]["steps"] = 99

    edits = {"steps": {"run_fn": steps},
             "drop_sample": {"samples_fn": lambda s: s[s["sample_id"] != s["sample_id"].iloc[0]]},
             "drop_cell": {"samples_fn": lambda s: s[s["eps"].isna() | (s["eps"] < 1.5 / 255)]}}[change]
    baseline = _copy_with(runs["a"], tmp_path / "baseline", **(edits if change != "drop_cell" else {}))
    results = _copy_with(runs["a"], tmp_path / "results", **(edits if change == "drop_cell" else {}))
    rc, _, err = _cli(["check", "--results", results, "--baseline", baseline], capsys)
    assert rc == 1
    assert f"{status}: image/image:photos" in err
    statuses = {tc.find("failure").get("type") for tc in ET.parse(results / "check-junit.xml").iter("testcase")
                if tc.find("failure") is not None}
    assert statuses == {status}


def test_check_input_errors_exit_2(runs, tmp_path, capsys):
    for argv in (["--results", tmp_path / "nosuch", "--baseline", runs["a"]],
                 ["--results", runs["a"], "--baseline", tmp_path / "nosuch"],
                 ["--results", runs["a"], "--baseline", runs["a"], "--alpha", "0"],
                 ["--results", runs["a"]]):
        rc, _, err = _cli(["check", *argv], capsys)
        assert rc == 2, (argv, err)
        assert len(err.strip().splitlines()) == 1, (argv, err)


def _parquet_with_version(path: Path, frame: pd.DataFrame, version: str | None) -> None:
    """Written with pyarrow directly, as an older (or newer) rlbind-bench would have: only the version differs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rlbind_bench.results.schema import METADATA_KEY

    table = pa.Table.from_pandas(frame, preserve_index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata({} if version is None else {METADATA_KEY: version.encode()}), path)


@pytest.mark.parametrize("as_file", [False, True], ids=["folder", "file"])
@pytest.mark.parametrize("version", ["older", None], ids=["older", "unversioned"])
def test_check_refuses_baseline_from_older_schema(tmp_path, capsys, as_file, version):
    from rlbind_bench.results.schema import SCHEMA_VERSION

    accs = {("clean", "", math.nan, 0): 0.9, ("linf-pgd", "Linf", 1 / 255, 0): 0.5}
    write_table_atomic(tmp_path / "results" / "summary.parquet", _summary("A", accs), SUMMARY_SCHEMA)
    old = str(int(SCHEMA_VERSION) - 1) if version == "older" else None
    _parquet_with_version(tmp_path / "baseline" / "summary.parquet", _summary("A", accs), old)
    ref = tmp_path / "baseline" / "summary.parquet" if as_file else tmp_path / "baseline"
    rc, out, err = _cli(["check", "--results", tmp_path / "results", "--baseline", ref], capsys)
    assert rc == 2
    assert "PASS" not in out
    assert "regressed" not in out
    assert err.strip() == (f"rlbind-bench: error: baseline {ref} is from results schema {old or '(none)'}; "
                           f"this rlbind-bench writes schema {SCHEMA_VERSION}: rerun the baseline")
    assert not (tmp_path / "results" / "check-junit.xml").exists()


def test_check_newer_baseline_schema_is_refused_as_unreadable(tmp_path, capsys):
    from rlbind_bench.results.schema import SCHEMA_VERSION

    accs = {("clean", "", math.nan, 0): 0.9}
    write_table_atomic(tmp_path / "results" / "summary.parquet", _summary("A", accs), SUMMARY_SCHEMA)
    newer = str(int(SCHEMA_VERSION) + 1)
    _parquet_with_version(tmp_path / "baseline" / "summary.parquet", _summary("A", accs), newer)
    rc, _, err = _cli(["check", "--results", tmp_path / "results", "--baseline", tmp_path / "baseline"], capsys)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert f"results schema version {newer}, this rlbind-bench reads {SCHEMA_VERSION}" in err


# ---------------------------------------------------------------------------------------- the HTML page
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    if os.geteuid() != 0:
        return None
    # CI runs as root (and has run apt-get update): install the browser rather than skip the test.
    if not shutil.which("apt-get"):
        pytest.fail("running as root without chromium or apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True).returncode:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True, check=True)
    return shutil.which("chromium")


def test_html_page_in_headless_chromium(board, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium absent and not root (cannot apt-get install it)")
    out, _ = board
    url = (out / "index.html").resolve().as_uri() + "#selftest"
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr",
                           "--v=0", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert dom.count("<table") == 2
    assert HOSTILE not in dom
    found = re.search(r'<pre id="selftest-result" data-status="(\w+)">([^<]*)</pre>', dom)
    assert found, dom[-2000:]
    report = json.loads(found.group(2).replace("&quot;", '"'))
    assert found.group(1) == "pass", report
    assert report["tables"] == 2
    assert report["sorted_columns"] == 1
    assert report["errors"] == []
    # Console messages (script errors, CSP violations from any external load) are logged as CONSOLE lines.
    assert ":CONSOLE" not in proc.stderr, [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]


# ------------------------------------------------------------------- corruptions, mCE, checks (synthetic)
def _summary(model: str, accs: dict, checks: dict | None = None) -> pd.DataFrame:
    from rlbind_bench.results.schema import SUMMARY_COLUMNS

    rows = [{"model": model, "modality": "image", "dataset": "toy", "threat": threat, "norm": norm, "eps": eps, "severity": sev,
             "attack": "clean" if threat == "clean" else "pgd" if norm else "corruptions", "adversarial": bool(norm),
                 "config_hash": f"h-{threat}-{sev}-{eps}", "n": 100, "n_correct": round(acc * 100), "accuracy": acc,
                 "ci_low": acc - 0.05, "ci_high": acc + 0.05, "n_invalid": 0, "n_skipped": 0,
                 "checks_failed": (checks or {}).get(threat, "")}
            for (threat, norm, eps, sev), acc in accs.items()]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def test_corruption_table_mce_and_failed_checks(tmp_path):
    from rlbind_bench.leaderboard.build import write_leaderboard
    from rlbind_bench.leaderboard.merge import ResultFolder, merge_folders

    nan = math.nan
    a = {("clean", "", nan, 0): 0.9, ("linf-pgd", "Linf", 1 / 255, 0): 0.95,
         ("corruptions:noise", "", nan, 1): 0.8, ("corruptions:noise", "", nan, 2): 0.6,
         ("corruptions:blur", "", nan, 1): 0.9, ("corruptions:blur", "", nan, 2): 0.9}
    b = {("clean", "", nan, 0): 0.8, ("linf-pgd", "Linf", 1 / 255, 0): 0.3,
         ("corruptions:noise", "", nan, 1): 0.6, ("corruptions:noise", "", nan, 2): 0.4,
         ("corruptions:blur", "", nan, 1): 0.8, ("corruptions:blur", "", nan, 2): 0.7}
    folders = [ResultFolder(tmp_path / "ra", _summary("A", a, {"linf-pgd": "robust_above_clean"}),
                            {"run_id": "ra", "finished": "2026-01-01T00:00:00Z"}),
               ResultFolder(tmp_path / "rb", _summary("B", b), {"run_id": "rb", "finished": "2026-01-02T00:00:00Z"})]
    out = tmp_path / "lb"
    write_leaderboard(merge_folders(folders), out, reference="B")
    md = (out / "image.md").read_text()
    # CE_noise = (.2 + .4) / (.4 + .6) = .6, CE_blur = (.1 + .1) / (.2 + .3) = .4 -> mCE 50%; B itself 100%.
    assert "| A | 80.0 (Δ +17.5) | 50.0 |" in md
    assert "| B (reference) | 62.5 | 100.0 |" in md
    assert "95.0 [90.0, 100.0] (Δ +65.0) ⚠" in md
    assert "failed sanity checks robust\\_above\\_clean" in md
    entry = json.loads((out / "models" / "A.json").read_text())
    assert entry["summaries"][0]["mce"] == pytest.approx(0.5)
    assert entry["summaries"][0]["mean_corruption_acc"] == pytest.approx(0.8)
    corr = next(r for r in entry["robustbench"] if r["threat"] == "corruptions")
    assert corr["corruptions_acc"] == pytest.approx(0.8)
    assert corr["corruptions_mce"] == pytest.approx(0.5)
    assert next(c for c in entry["cells"] if c["threat"] == "linf-pgd")["checks_failed"] == ["robust_above_clean"]
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        "image-acc-vs-eps-Linf.png", "image-acc-vs-eps-Linf.svg",
        "image-corruption-severity.png", "image-corruption-severity.svg"]
