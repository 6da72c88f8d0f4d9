"""Perceptual audio budgets (threats/perceptual.py): L-inf PGD and AutoAttack with eps in dB relative to each
clip's peak, on the committed demo backbone's audio tower and real speech recordings (asterisk digits).

Budgets are recomputed here in float64 numpy from the waveforms (10^(eps/20) * max|x_i|), and every input the
model is queried with is recorded, so the bound is checked on what the attack actually tried, not on what it
reports."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from digit_folders import DEMO_MODEL
from torch import nn

from rlbind_bench.cli import EXIT_OK, main
from rlbind_bench.encoders.registry import load_encoder
from rlbind_bench.errors import ConfigError
from rlbind_bench.modalities import get_handler
from rlbind_bench.threats.base import AttackContext, margins
from rlbind_bench.threats.perceptual import AutoAttackdB, AutoAttackdBSpec, PGDdB, PGDdBSpec
from rlbind_bench.threats.registry import load_threats
from rlbind_bench.zeroshot import ZeroShotClassifier, build_class_embeddings

WORDS = ["zero", "one", "two", "three", "four", "five"]
PEAKS = [0.9, 0.5, 0.2, 0.7, 0.05, 0.3]  # clip loudness, so budgets differ per clip
CLIP = 0.5


class Recorder(nn.Module):
    """The classifier, keeping a copy of every input it is queried with."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.model(x)


def budgets_np(x: torch.Tensor, eps_db: float) -> np.ndarray:
    return 10.0 ** (eps_db / 20.0) * np.abs(x.numpy().astype(np.float64)).max(axis=1)


def assert_queries_within(seen: list[torch.Tensor], x: torch.Tensor, budget: np.ndarray, tol: float) -> int:
    """Every queried row lies within its clip's budget (its clip: the nearest one; clips are far apart)."""
    xs = x.numpy().astype(np.float64)
    n = 0
    for q in seen:
        for row in q.numpy().astype(np.float64):
            dist = np.abs(row[None] - xs).max(axis=1)
            i = int(dist.argmin())
            assert dist[i] <= budget[i] + tol, (i, dist[i], budget[i])
            assert row.min() >= -1
            assert row.max() <= 1
            n += 1
    return n


@pytest.fixture(scope="module")
def audio(real_wav_dir):
    enc = load_encoder(str(DEMO_MODEL)).eval().requires_grad_(False)
    cfg = enc.preprocess_config("audio")
    waves = [get_handler("audio").load(real_wav_dir / f"{k}.wav", cfg, clip_seconds=CLIP) for k in range(6)]
    x = torch.stack([w / w.abs().max() * p for w, p in zip(waves, PEAKS, strict=True)])
    clf = ZeroShotClassifier(enc, "audio", build_class_embeddings(enc, WORDS, ["a person saying {}."])).eval()
    with torch.no_grad():
        logits = clf(x)
    ids = [f"clip{k}" for k in range(6)]
    return clf, x, logits.argmax(1), ids, logits


def ctx_for(ids, logits):
    return AttackContext("audio", 0, ids, logits, -1.0, 1.0, len(WORDS), torch.device("cpu"))


def pgd_db(eps: float, steps: int = 5) -> PGDdB:
    return PGDdB(PGDdBSpec(name="db", attack="pgd-db", eps=(eps,), steps=steps))


def test_every_pgd_db_query_and_result_lies_within_each_clips_db_budget(audio):
    """Caught: the budget taken from the batch's loudest clip (x.abs().max() without dim), from the clip's
    mean amplitude, or in dB/10 (power) instead of dB/20 (amplitude)."""
    clf, x, y, ids, logits = audio
    attack = pgd_db(-20.0)
    rec = Recorder(clf)
    res = attack.run(rec, x, y, attack.cells("audio")[0], ctx_for(ids, logits))
    budget = budgets_np(x, -20.0)
    assert np.allclose(res.budget.numpy(), budget, rtol=1e-12, atol=0)
    assert (res.perturbation_norm.numpy() <= budget + 1e-7).all()
    assert assert_queries_within(rec.seen, x, budget, 1e-7) > len(x)
    # Sign steps of 2.5 * budget / steps reach the boundary: the attack uses its budget.
    assert (res.perturbation_norm.numpy() >= 0.99 * budget).all()


def test_louder_clips_get_larger_absolute_budgets(audio):
    """One waveform at two loudnesses: the loud copy's budget is 8x the quiet one's, and it is used.
    Caught: a budget in absolute units (10^(eps/20) without the peak)."""
    clf, x, _, _, _ = audio
    pair = torch.stack([x[0] / 0.9 * 0.1, x[0] / 0.9 * 0.8])
    with torch.no_grad():
        logits = clf(pair)
    attack = pgd_db(-30.0, steps=3)
    res = attack.run(clf, pair, logits.argmax(1), attack.cells("audio")[0], ctx_for(["q", "l"], logits))
    budget = budgets_np(pair, -30.0)
    assert budget[1] / budget[0] == pytest.approx(8.0)
    assert res.perturbation_norm[1] > budget[0] * 4
    assert res.perturbation_norm[0] <= budget[0] + 1e-7


def test_a_positive_db_eps_is_refused_as_a_units_mistake(audio):
    attack = pgd_db(6.0)
    space = load_encoder(str(DEMO_MODEL)).input_space("audio", clip_seconds=CLIP)
    with pytest.raises(ConfigError, match=r"eps 6 dB .* did you mean -6\? \(--allow-large-eps"):
        attack.amplitude_cell(attack.cells("audio")[0], space, "threat db")
    # -20 dB: the loudest clip the box holds ([-1, 1], peak 1) may move by 0.1.
    assert pgd_db(-20.0).amplitude_cell(pgd_db(-20.0).cells("audio")[0], space, "t").eps == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="L-inf"):
        PGDdBSpec(name="db", attack="pgd-db", norm="L2", eps=(-20.0,))


def test_pgd_db_is_stronger_than_random_noise_of_the_same_budgets(audio):
    """Uniform noise filling each clip's budget (independent numpy draws) against PGD: PGD leaves smaller
    margins. Caught: the gradient step's sign flipped (descent)."""
    clf, x, y, ids, logits = audio
    attack = pgd_db(-20.0)
    res = attack.run(clf, x, y, attack.cells("audio")[0], ctx_for(ids, logits))
    budget = budgets_np(x, -20.0)
    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, size=tuple(x.shape)) * budget[:, None]
    noisy = (x + torch.from_numpy(noise).float()).clamp(-1, 1)
    with torch.no_grad():
        noise_margin = margins(clf(noisy), y)
    assert res.margin.sum() < noise_margin.sum()
    assert (res.pred != y).sum() >= (clf(noisy).argmax(1) != y).sum()
    assert (res.pred != y).any()


def test_pgd_db_rows_are_deterministic_per_sample(audio):
    """The same clip in another batch (other neighbours, other order) gets the same row."""
    clf, x, y, ids, logits = audio
    attack = pgd_db(-25.0, steps=3)
    cell = attack.cells("audio")[0]
    full = attack.run(clf, x, y, cell, ctx_for(ids, logits))
    again = attack.run(clf, x, y, cell, ctx_for(ids, logits))
    assert torch.equal(full.pred, again.pred)
    assert torch.equal(full.perturbation_norm, again.perturbation_norm)
    pick = [4, 1, 3]
    part = attack.run(clf, x[pick], y[pick], cell, ctx_for([ids[i] for i in pick], logits[pick]))
    assert torch.equal(part.pred, full.pred[pick])
    assert torch.allclose(part.perturbation_norm, full.perturbation_norm[pick], atol=1e-6)


def test_autoattack_db_rescales_each_clip_to_its_own_budget(audio, one_thread):
    """The reference AutoAttack, run per clip in its rescaled space: every input the model sees is within
    that clip's dB budget (float slack of the mapping: 1e-6), the results within it exactly (1e-7)."""
    clf, x, y, ids, logits = audio
    pick = [0, 2, 4]  # peaks 0.9, 0.2, 0.05
    spec = AutoAttackdBSpec(name="aadb", attack="autoattack-db", eps=(-20.0,), version="custom",
                            attacks_to_run=("apgd-ce",), steps=3)
    attack = AutoAttackdB(spec)
    rec = Recorder(clf)
    xs = x[pick]
    res = attack.run(rec, xs, y[pick], attack.cells("audio")[0], ctx_for([ids[i] for i in pick], logits[pick]))
    budget = budgets_np(xs, -20.0)
    assert np.allclose(res.budget.numpy(), budget, rtol=1e-12, atol=0)
    assert (res.perturbation_norm.numpy() <= budget + 1e-7).all()
    assert assert_queries_within(rec.seen, xs, budget, 1e-6) > len(pick)
    assert res.perturbation_norm[0] > budget[1]  # the loud clip moved further than the quiet one may


def test_runner_rows_keep_eps_in_db_and_each_clips_amplitude_budget(audio, real_wav_dir, tmp_path, capsys):
    """A run through the CLI: pgd-db rows carry eps -30 (dB) and eps_input = 10^(-1.5) * the clip's peak as the
    handler loads it (clean rows: NaN). A positive dB eps is one line, exit code 2."""
    data = tmp_path / "digits"
    for k, word in enumerate(WORDS[:3]):
        (data / word).mkdir(parents=True)
        shutil.copy(real_wav_dir / f"{k}.wav", data / word / f"{word}.wav")
    base = ["run", "--model", str(DEMO_MODEL), "--dataset-dir", f"audio={data}", "--templates", "a person saying {}.",
            "--no-progress", "--steps", "2"]
    out = tmp_path / "res"
    assert main([*base, "--threats", "linf-pgd-db", "--eps", "-30", "--out", str(out)]) == EXIT_OK
    assert "-30 dB" in capsys.readouterr().out
    rows = pd.read_parquet(out / "samples.parquet")
    db = rows[rows["attack"] == "pgd-db"]
    assert list(db["eps"].unique()) == [-30.0]
    assert len(db) == 3
    enc = load_encoder(str(DEMO_MODEL))
    seconds = max(__import__("soundfile").info(str(p)).duration for p in data.rglob("*.wav"))
    for r in db.itertuples():
        wave = get_handler("audio").load(data / r.sample_id, enc.preprocess_config("audio"), clip_seconds=round(seconds, 3))
        assert r.eps_input == pytest.approx(10 ** (r.eps / 20) * float(np.abs(wave.numpy()).max()), rel=1e-9)
        assert r.perturbation_norm <= r.eps_input + 1e-7
    assert (rows["source_model"] == "").all()
    assert math.isnan(rows[rows["attack"] == "clean"]["eps_input"].iloc[0])

    rc = main([*base, "--threats", "linf-pgd-db", "--eps", "6", "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert "did you mean -6?" in err


def test_the_db_threats_load_and_join_the_full_suite_for_audio_only():
    threats = load_threats()
    assert threats["linf-pgd-db"].modalities == ("audio",)
    assert threats["autoattack-db"].modalities == ("audio",)
    from rlbind_bench.suites import SUITES

    assert "linf-pgd-db" in {u.threat for u in SUITES["full"].threats}
