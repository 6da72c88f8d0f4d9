"""The embedding-space threats (threats/embedding.py: label-free; threats/crossmodal.py: targeted to another
class's text) on a tiny bound encoder with one tower per modality, each on its own input space (audio's
waveform in [-1, 1], video's [T,3,H,W] frames), and through the runner on the ColourEncoder."""

from __future__ import annotations

import json
import math

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from test_few_classes_run import ColourEncoder, colour_folder

from rlbind_bench.config import RunConfig, RunRequest
from rlbind_bench.encoders.base import BoundEncoder
from rlbind_bench.errors import ConfigError
from rlbind_bench.leaderboard.merge import ResultFolder, merge_folders
from rlbind_bench.leaderboard.render import build_views, markdown_table
from rlbind_bench.modalities import PreprocessConfig
from rlbind_bench.results.schema import SUMMARY_COLUMNS
from rlbind_bench.results.store import read_table
from rlbind_bench.results.summary import summarise
from rlbind_bench.runner import run_evaluation
from rlbind_bench.threats.base import AttackContext
from rlbind_bench.threats.checks import apply_checks
from rlbind_bench.threats.crossmodal import CrossModalPGD, CrossModalSpec
from rlbind_bench.threats.embedding import EmbeddingPGD, EmbeddingPGDSpec
from rlbind_bench.threats.registry import spec_from_dict
from rlbind_bench.zeroshot import ZeroShotClassifier

# modality -> (per-sample input shape, box low, box high)
SPACES = {"image": ((3, 6, 6), 0.0, 1.0), "thermal": ((3, 6, 6), 0.0, 1.0), "depth": ((3, 6, 6), 0.0, 1.0),
          "audio": ((200,), -1.0, 1.0), "video": ((2, 3, 6, 6), 0.0, 1.0)}
CLASSES = 5
DIM = 8


class TinyTowers(BoundEncoder):
    """One fixed random two-layer tower per modality on the flattened input, and one random embedding per
    class text: a bound encoder small enough that an attack runs in milliseconds."""

    name = "tiny-towers"

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.towers = torch.nn.ModuleDict()
        for m, (shape, _, _) in SPACES.items():
            tower = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(math.prod(shape), 32), torch.nn.Tanh(),
                                        torch.nn.Linear(32, DIM))
            for p in tower.parameters():
                p.data = torch.randn(p.shape, generator=g) * (3 / math.sqrt(p.shape[-1]))
                p.requires_grad_(False)
            self.towers[m] = tower
        self.texts = torch.randn(CLASSES, DIM, generator=g)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(SPACES)

    def preprocess_config(self, modality: str) -> PreprocessConfig:
        return PreprocessConfig()

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        return self.towers[modality](x)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return self.texts[[int(t) for t in texts]]

    def logit_scale(self, modality: str) -> float:
        return 100.0

    def fingerprint(self) -> str:
        return "tiny-towers-v1"


@pytest.fixture(scope="module")
def towers():
    return TinyTowers().eval()


def classifier(towers, modality):
    return ZeroShotClassifier(towers, modality, F.normalize(towers.texts, dim=-1)).eval()


def batch(modality, n=16, seed=1):
    shape, low, high = SPACES[modality]
    g = torch.Generator().manual_seed(seed)
    x = low + (high - low) * torch.rand((n, *shape), generator=g)
    x.view(n, -1)[:, ::7] = high  # inputs on the box's edge: the attack must not leave it
    x.view(n, -1)[:, 3::7] = low
    ids = [f"{modality}/{i}" for i in range(n)]
    y = torch.arange(n) % CLASSES
    return x, y, ids


def context(clf, modality, x, ids, seed=0):
    _, low, high = SPACES[modality]
    with torch.no_grad():
        logits = clf(x)
    return AttackContext(modality, seed, ids, logits, low, high, CLASSES, torch.device("cpu"))


def embedding_attack(norm, eps, loss="cosine", steps=10, seed=0):
    return EmbeddingPGD(EmbeddingPGDSpec(name=f"emb-{norm}", attack="embedding-pgd", norm=norm, eps=(eps,),
                                         steps=steps, loss=loss, seed=seed))


def crossmodal_attack(eps, loss="cosine", steps=10):
    return CrossModalPGD(CrossModalSpec(name="xm", attack="crossmodal-pgd", norm="Linf", eps=(eps,), steps=steps,
                                        loss=loss))


class Recording(ZeroShotClassifier):
    """The classifier, remembering the last input it embedded: the attacked point, embedded last by `run`."""

    def embed(self, x):
        self.last = x.detach().clone()
        return super().embed(x)


EPS = {"Linf": 8 / 255, "L2": 0.5}


def noise(x, norm, eps, low, high, seed=5, uniform=False):
    """Random noise of the attack's whole budget: a random corner of the L-inf cube (±eps everywhere; sign-step
    PGD ends near corners, so uniform noise in the cube, half as large on average, would be too easy a floor),
    or uniform in the cube, or a random direction of L2 length eps."""
    g = torch.Generator().manual_seed(seed)
    if norm == "Linf" and uniform:
        d = (torch.rand(x.shape, generator=g) * 2 - 1) * eps
    elif norm == "Linf":
        d = (torch.randint(0, 2, x.shape, generator=g) * 2 - 1).float() * eps
    else:
        d = torch.randn(x.shape, generator=g)
        d = d / d.flatten(1).norm(dim=1).view(-1, *[1] * (x.dim() - 1)) * eps
    return (x + d).clamp(low, high)


# ------------------------------------------------------------------------------------------------ bounds
@pytest.mark.parametrize("modality", list(SPACES))
@pytest.mark.parametrize("norm", ["Linf", "L2"])
@pytest.mark.parametrize("kind", ["embedding", "crossmodal"])
def test_the_attacked_point_stays_in_the_ball_and_the_box(towers, modality, norm, kind):
    """Measured on the point the model last embedded (the attacked one), not on what the attack reports.
    Break seen caught: pgd_maximise without its clamp to [low, high] (outside the box), and without the
    projection (outside the ball)."""
    _, low, high = SPACES[modality]
    eps = {"Linf": 0.3, "L2": 3.0}[norm]  # large: the box and the ball both bind
    clf = Recording(towers, modality, F.normalize(towers.texts, dim=-1)).eval()
    x, y, ids = batch(modality)
    if kind == "embedding":
        attack = embedding_attack(norm, eps)
    else:
        attack = CrossModalPGD(CrossModalSpec(name="xm", attack="crossmodal-pgd", norm=norm, eps=(eps,), steps=10))
    res = attack.run(clf, x, y, attack.cells(modality)[0], context(clf, modality, x, ids))
    delta = (clf.last - x).flatten(1)
    size = delta.abs().amax(1) if norm == "Linf" else delta.norm(dim=1)
    assert (size <= eps * (1 + 1e-5)).all()
    assert (size > eps / 2).all()  # the attack did move
    assert clf.last.min() >= low
    assert clf.last.max() <= high
    assert torch.allclose(res.perturbation_norm, size, atol=1e-5)


# ---------------------------------------------------------------------------------------------- strength
@pytest.mark.parametrize("modality", list(SPACES))
@pytest.mark.parametrize("norm", ["Linf", "L2"])
@pytest.mark.parametrize("loss", ["cosine", "l2"])
def test_the_embedding_attack_keeps_less_cosine_than_random_noise(towers, modality, norm, loss):
    """Random noise of the same budget is a floor any attack must beat: the cosine kept, computed here from
    the encoder, is lower under the attack for most samples and on average. Break seen caught: the loss
    negated (the attack pulls the embedding back to the clean one) and the step direction's sign flipped."""
    _, low, high = SPACES[modality]
    eps = EPS[norm]
    clf = classifier(towers, modality)
    x, y, ids = batch(modality)
    attack = embedding_attack(norm, eps, loss=loss)
    res = attack.run(clf, x, y, attack.cells(modality)[0], context(clf, modality, x, ids))
    with torch.no_grad():
        noisy = F.cosine_similarity(towers.encode(modality, noise(x, norm, eps, low, high)),
                                    towers.encode(modality, x), dim=-1)
    assert res.embedding_cosine.mean() < noisy.mean() - 0.02
    assert (res.embedding_cosine < noisy).float().mean() >= 0.9
    assert (res.embedding_cosine <= 1 + 1e-6).all()


def test_targeted_success_is_higher_than_under_random_noise(towers):
    """Success: the attacked embedding's nearest class text is the target. Computed here from the encoder for
    noise, from the rows (pred == target) for the attack. Break seen caught: the cosine loss negated (the attack
    moves away from the target: success 0.08 vs 0.92)."""
    modality, (_, low, high) = "image", SPACES["image"]
    clf = classifier(towers, modality)
    x, y, ids = batch(modality, n=40)
    eps = 16 / 255  # the tiny tower needs it: 8/255 reaches ~45% success
    for loss in ("cosine", "ce"):
        attack = crossmodal_attack(eps, loss=loss)
        res = attack.run(clf, x, y, attack.cells(modality)[0], context(clf, modality, x, ids))
        with torch.no_grad():
            noisy_pred = clf(noise(x, "Linf", eps, low, high)).argmax(1)
        attacked = (res.pred == res.target).float().mean()
        assert attacked > (noisy_pred == res.target).float().mean() + 0.3
        assert attacked >= 0.6


# ----------------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("kind", ["embedding", "crossmodal"])
def test_rows_are_deterministic_and_do_not_depend_on_the_batch(towers, kind):
    """Same seed twice: identical results. A sample alone, or in a shuffled batch, gets its own row
    (batch_dependent is False). Another seed: other rows. Break seen caught: random starts drawn by position
    in the batch (`random_start` keyed by `range(len(ids))`): sample 3 alone differs from in the batch."""
    modality = "audio"
    clf = classifier(towers, modality)
    x, y, ids = batch(modality)
    attack = embedding_attack("Linf", 8 / 255) if kind == "embedding" else crossmodal_attack(8 / 255)
    assert not attack.batch_dependent
    cell = attack.cells(modality)[0]
    first = attack.run(clf, x, y, cell, context(clf, modality, x, ids))
    again = attack.run(clf, x, y, cell, context(clf, modality, x, ids))
    measured = "embedding_cosine" if kind == "embedding" else "target"
    for name in ("pred", "margin", "perturbation_norm", "true_rank", measured):
        assert torch.equal(getattr(first, name), getattr(again, name)), name
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    shuffled = attack.run(clf, x[order], y[order], cell, context(clf, modality, x[order], [ids[i] for i in order]))
    alone = attack.run(clf, x[3:4], y[3:4], cell, context(clf, modality, x[3:4], ids[3:4]))
    for other, index in ((shuffled, order), (alone, torch.tensor([3]))):
        assert torch.equal(other.pred, first.pred[index])
        assert torch.equal(other.true_rank, first.true_rank[index])
        assert torch.allclose(other.margin, first.margin[index], atol=1e-3)
        if kind == "embedding":
            assert torch.allclose(other.embedding_cosine, first.embedding_cosine[index], atol=1e-5)
        else:
            assert torch.equal(other.target, first.target[index])
    reseeded = attack.run(clf, x, y, cell, context(clf, modality, x, ids, seed=1))
    assert not torch.equal(reseeded.margin, first.margin)


# ------------------------------------------------------------------------------------ target and rank
def test_targets_are_never_the_label_and_the_true_rank_is_the_attacked_points(towers):
    """The true rank is checked against the logits the test computes itself at the point the model last
    embedded (the attacked one): 1 + classes scored strictly above the label. Break seen caught: the rank taken
    at the clean logits, a 0-based rank, the target allowed to equal the label ((label + offset) mod C)."""
    modality = "video"
    clf = Recording(towers, modality, F.normalize(towers.texts, dim=-1)).eval()
    x, y, ids = batch(modality, n=30)
    attack = crossmodal_attack(16 / 255, loss="ce")
    res = attack.run(clf, x, y, attack.cells(modality)[0], context(clf, modality, x, ids))
    assert (res.target != y).all()
    assert ((res.target >= 0) & (res.target < CLASSES)).all()
    assert len({int(t - label) % CLASSES for t, label in zip(res.target, y, strict=True)}) > 1  # not label + 1
    with torch.no_grad():
        emb = F.normalize(towers.encode(modality, clf.last), dim=-1)
        logits = emb @ F.normalize(towers.texts, dim=-1).T
        clean_logits = F.normalize(towers.encode(modality, x), dim=-1) @ F.normalize(towers.texts, dim=-1).T
    order = logits.argsort(dim=1, descending=True)
    expected = torch.tensor([int((order[i] == y[i]).nonzero()) + 1 for i in range(len(y))])
    assert torch.equal(res.true_rank, expected)
    clean_order = clean_logits.argsort(dim=1, descending=True)
    clean_rank = torch.tensor([int((clean_order[i] == y[i]).nonzero()) + 1 for i in range(len(y))])
    assert not torch.equal(clean_rank, expected)  # the attack moved ranks: the test tells the two apart
    assert torch.equal(res.pred, logits.argmax(1))


# --------------------------------------------------------------------------------------------- specs
def test_settings_the_threats_cannot_honour_are_refused():
    with pytest.raises(ConfigError, match="loss 'dlr' is not implemented"):
        spec_from_dict({"attack": "embedding-pgd", "name": "x", "loss": "dlr", "eps": [0.1]}, "x")
    with pytest.raises(ConfigError, match="unknown key"):
        spec_from_dict({"attack": "embedding-pgd", "name": "x", "restarts": 2}, "x")


# ------------------------------------------------------------------------------------ summary, schema
def test_the_summary_reports_cosine_kept_thresholds_and_target_success():
    """Cosines 0.95, 0.9 (at the threshold: counted), 0.6, 0.2 and an invalid row (excluded); targets hit 2 of
    3 by their target_hit flag (pred == target would say 1 of 3). Break seen caught: `>` instead of `>=` at the
    thresholds; invalid rows counted; target_success computed as pred == target."""
    base = {"model": "m", "modality": "image", "dataset": "d", "attack": "x", "adversarial": True, "norm": "Linf",
            "eps": 0.1, "severity": 0, "config_hash": "h", "label": 0}
    emb = pd.DataFrame([{**base, "threat": "emb", "embedding_cosine": c, "target": -1, "true_rank": 1, "target_hit": False,
                         "pred": 0, "correct": True, "valid": v}
                        for c, v in ((0.95, True), (0.9, True), (0.6, True), (0.2, True), (0.99, False))])
    # The flag decides, not pred == target (a modality target's success is not the text prediction's).
    xm = pd.DataFrame([{**base, "threat": "xm", "embedding_cosine": math.nan, "target": t, "true_rank": 2,
                        "target_hit": h, "pred": p, "correct": False, "valid": True}
                       for t, p, h in ((1, 1, True), (2, 0, True), (3, 0, False))])
    summary = summarise(pd.concat([emb, xm], ignore_index=True))
    assert list(summary.columns) == SUMMARY_COLUMNS
    summary = summary.set_index("threat")
    assert summary.loc["emb", "mean_cosine"] == pytest.approx((0.95 + 0.9 + 0.6 + 0.2) / 4)
    assert summary.loc["emb", "frac_cosine_ge_0_90"] == pytest.approx(0.5)
    assert summary.loc["emb", "frac_cosine_ge_0_70"] == pytest.approx(0.5)
    assert summary.loc["emb", "frac_cosine_ge_0_50"] == pytest.approx(0.75)
    assert math.isnan(summary.loc["emb", "target_success"])
    assert summary.loc["xm", "target_success"] == pytest.approx(2 / 3)
    assert math.isnan(summary.loc["xm", "mean_cosine"])


SCHEMA_2_SAMPLE_COLUMNS = ["run_id", "model", "modality", "dataset", "sample_id", "label", "threat", "attack",
                           "adversarial", "norm", "eps", "severity", "config_hash", "clean_pred", "pred", "correct",
                           "seed", "attacked", "broken_by", "perturbation_norm", "margin", "valid"]


def test_a_schema_2_file_reads_with_the_embedding_columns_not_measured(tmp_path):
    """Written with pyarrow directly. Break seen caught: the "2" upgrade step removed ("results schema version
    2, this rlbind-bench reads 3")."""
    frame = pd.DataFrame([("r", "m", "image", "d", "s", 0, "linf-pgd", "pgd", True, "Linf", 0.1, 0, "h", 0, 1,
                           False, 0, True, "pgd", 0.1, -1.0, True)], columns=SCHEMA_2_SAMPLE_COLUMNS)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.replace_schema_metadata({b"rlbind_bench.schema_version": b"2"}), tmp_path / "s.parquet")
    read = read_table(tmp_path / "s.parquet")
    assert math.isnan(read["embedding_cosine"].iloc[0])
    assert read["target"].iloc[0] == -1
    assert read["true_rank"].iloc[0] == -1
    assert not read["target_hit"].iloc[0]
    assert read["target_sample"].iloc[0] == ""
    summary = summarise(read)
    assert math.isnan(summary["mean_cosine"].iloc[0])
    assert math.isnan(summary["target_success"].iloc[0])


# -------------------------------------------------------------------------------------------- checks
def _summary_rows(rows):
    return pd.DataFrame([{c: r.get(c, math.nan) for c in SUMMARY_COLUMNS} for r in rows], columns=SUMMARY_COLUMNS)


def test_the_checks_that_apply_to_each_kind():
    """Embedding cells: accuracy above clean is not a failure (label-free), cosine kept rising with eps is, and
    so is the probe's cosine rising with more steps. Cross-modal cells: a success rate falling with eps fails.
    PGD keeps its accuracy checks. Break seen caught: robust_above_clean applied to label-free cells; the
    monotonicity check left on accuracy for every attack."""
    common = {"model": "m", "modality": "image", "dataset": "d", "severity": 0, "config_hash": "h",
              "checks_failed": ""}
    rows = [{**common, "threat": "clean", "attack": "clean", "adversarial": False, "norm": "", "accuracy": 0.5},
            {**common, "threat": "emb", "attack": "embedding-pgd", "adversarial": True, "norm": "Linf", "eps": 0.01,
             "accuracy": 0.6, "mean_cosine": 0.8},
            {**common, "threat": "emb", "attack": "embedding-pgd", "adversarial": True, "norm": "Linf", "eps": 0.02,
             "accuracy": 0.4, "mean_cosine": 0.85},
            {**common, "threat": "xm", "attack": "crossmodal-pgd", "adversarial": True, "norm": "Linf", "eps": 0.01,
             "accuracy": 0.3, "target_success": 0.5},
            {**common, "threat": "xm", "attack": "crossmodal-pgd", "adversarial": True, "norm": "Linf", "eps": 0.02,
             "accuracy": 0.2, "target_success": 0.4},
            {**common, "threat": "pgd", "attack": "pgd", "adversarial": True, "norm": "Linf", "eps": 0.01,
             "accuracy": 0.7}]
    diag = {"d": {"cosine_5_steps": 0.7, "cosine_20_steps": 0.75}}
    failed = apply_checks(_summary_rows(rows), pd.DataFrame(), diag)["checks_failed"].tolist()
    assert failed == ["", "more_steps_raise_cosine", "more_steps_raise_cosine,not_monotone_in_eps", "",
                      "not_monotone_in_eps", "robust_above_clean"]
    diag = {"d": {"cosine_5_steps": 0.7, "cosine_20_steps": 0.65}}
    assert apply_checks(_summary_rows(rows), pd.DataFrame(), diag)["checks_failed"].tolist()[1] == ""


# ------------------------------------------------------------------------------- through the runner
def test_a_run_records_the_embedding_columns_and_the_leaderboard_shows_them(tmp_path, monkeypatch, one_thread):
    """The two threats through run_evaluation (the ColourEncoder on 3 x 3 colour images): their rows carry the
    cosine kept or the target, the other threats' rows the "not measured" values; the summary aggregates them,
    run.json has the embedding probe, and the leaderboard renders an "Embedding-space robustness" table.
    Break seen caught: the runner dropping BatchResult.embedding_columns (every row NaN / -1)."""
    attacks = tmp_path / "attacks"
    attacks.mkdir()
    (attacks / "emb.yaml").write_text("attack: embedding-pgd\nnorm: Linf\neps: [0.05, 0.2]\nsteps: 5\n")
    (attacks / "xm.yaml").write_text("attack: crossmodal-pgd\nnorm: Linf\neps: [0.05, 0.2]\nsteps: 5\n")
    monkeypatch.setenv("RLBIND_ATTACKS_DIR", str(attacks))
    cfg = RunConfig(model="colour", threats=["emb", "xm"], templates=["a {} image."], batch_size=4)
    data = colour_folder(tmp_path / "data", ["blue", "green", "red"])
    out = run_evaluation(RunRequest(config=cfg, out=tmp_path / "out", dataset_dirs={"image": str(data)},
                                    progress=False, encoder=ColourEncoder(), corruption_cache=False))
    rows = out.samples
    emb, xm, clean = (rows[rows["threat"] == t] for t in ("emb", "xm", "clean"))
    assert len(emb) == len(xm) == 2 * 9
    assert emb["embedding_cosine"].between(-1, 1 + 1e-6).all()
    assert (emb["target"] == -1).all()
    assert (xm["target"] >= 0).all()
    assert (xm["target"] != xm["label"]).all()
    assert xm["embedding_cosine"].isna().all()
    assert clean["embedding_cosine"].isna().all()
    assert (clean["true_rank"] == -1).all()
    assert (emb["true_rank"] >= 1).all()
    summary = out.summary.set_index(["threat", "eps"])
    for eps in (0.05, 0.2):
        cell = emb[emb["eps"] == eps]
        assert summary.loc[("emb", eps), "mean_cosine"] == pytest.approx(cell["embedding_cosine"].mean())
        x = xm[xm["eps"] == eps]
        assert summary.loc[("xm", eps), "target_success"] == pytest.approx((x["pred"] == x["target"]).mean())
        assert (x["target_hit"] == (x["pred"] == x["target"])).all()  # the text target's criterion
        assert (x["target_sample"] == "").all()
    assert summary.loc[("emb", 0.2), "mean_cosine"] < summary.loc[("emb", 0.05), "mean_cosine"] < 1
    checks = json.loads((out.out / "run.json").read_text())["checks"]
    assert checks
    assert all("cosine_20_steps" in probe for probe in checks.values())

    merged = merge_folders([ResultFolder(out.out, read_table(out.out / "summary.parquet"),
                                         json.loads((out.out / "run.json").read_text()))])
    tables = {t.title: t for t in build_views(merged)[0].datasets[0].tables}
    table = markdown_table(tables["Embedding-space robustness"])
    cos = summary.loc[("emb", 0.2), "mean_cosine"]
    success = summary.loc[("xm", 0.2), "target_success"]
    assert f"{cos:.3f}" in table
    assert f"{success * 100:.1f}" in table
    assert "cos kept emb" in table
    assert "target success xm" in table


# ------------------------------------------------------------------------ real LanguageBind-format towers
@pytest.mark.parametrize("modality", ["audio", "video"])
def test_the_embedding_attack_reaches_through_languagebind_towers(checkpoints, modality, one_thread):
    """Through the encoder's own preprocessing inside the forward (audio: kaldi fbank; video: frame layout), on
    the tiny LanguageBind-format checkpoints: the gradient reaches the input, so the attack moves the embedding
    much further than random noise of its budget, within the budget. Break seen caught: steps along a random
    direction instead of the gradient. (A negated loss is not caught here: sign steps along these towers'
    gradients move them further than random corners even when they aim back; the tiny towers' test catches it.)"""
    from rlbind_bench.encoders.registry import load_encoder

    enc = load_encoder(str(checkpoints[modality]))
    for p in enc.parameters():
        p.requires_grad_(False)
    hints = {"clip_seconds": 1.0} if modality == "audio" else {}
    space = enc.input_space(modality, **hints)
    g = torch.Generator().manual_seed(0)
    x = space.low + (space.high - space.low) * torch.rand((2, *space.shape), generator=g)
    if modality == "audio":
        x = x * 0.3  # speech-like loudness, away from the box's edges
    clf = ZeroShotClassifier(enc, modality, F.normalize(torch.randn(3, enc.encode(modality, x[:1]).shape[-1],
                                                                    generator=g), dim=-1)).eval()
    with torch.no_grad():
        logits = clf(x)
    ctx = AttackContext(modality, 0, ["a", "b"], logits, space.low, space.high, 3, torch.device("cpu"))
    eps = 4 / 255 if modality == "video" else 1e-3
    attack = embedding_attack("Linf", eps, steps=3)
    res = attack.run(clf, x, torch.tensor([0, 1]), attack.cells(modality)[0], ctx)
    with torch.no_grad():
        ref = enc.encode(modality, x)
        noisy = F.cosine_similarity(enc.encode(modality, noise(x, "Linf", eps, space.low, space.high)), ref, dim=-1)
    # Random noise barely moves these towers (1 - cos ~1e-7): the attack must move them 10x as far (seen:
    # ~500x for audio, ~5000x for video; with random step directions, about as far as noise).
    assert ((1 - res.embedding_cosine) > 10 * (1 - noisy)).all()
    assert (res.perturbation_norm <= eps * (1 + 1e-5)).all()
