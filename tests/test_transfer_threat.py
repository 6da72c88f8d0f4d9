"""Transfer threat (threats/transfer.py): inputs crafted on a source model, evaluated on the target; rows name
the source; schema 3's columns and their upgrade from schema 2. Models: the committed demo zoo (64x64
images), data: real handwritten digits."""

from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from digit_folders import DEMO_MODEL, TEMPLATE, write_digit_folders
from torch import nn

from rlbind_bench.cli import EXIT_OK, main
from rlbind_bench.data.demo.spec import CLASS_NAMES
from rlbind_bench.encoders.registry import load_encoder
from rlbind_bench.errors import ConfigError
from rlbind_bench.leaderboard.merge import load_and_merge
from rlbind_bench.leaderboard.render import build_views
from rlbind_bench.modalities import get_handler
from rlbind_bench.results.schema import SAMPLE_COLUMNS
from rlbind_bench.results.store import read_table
from rlbind_bench.threats.base import AttackContext, AttackSetup
from rlbind_bench.threats.pgd import PGD
from rlbind_bench.threats.spec import PGDSpec
from rlbind_bench.threats.transfer import Transfer, TransferSpec
from rlbind_bench.zeroshot import ZeroShotClassifier, build_class_embeddings

SOURCE = DEMO_MODEL.parent / "tecoa-s0"
OTHER_SOURCE = DEMO_MODEL.parent / "fare-s0"
EPS = 8 / 255


class Recorder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x):
        self.seen.append((x.detach().clone(), x.requires_grad))
        return self.model(x)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digit_folders(tmp_path_factory.mktemp("digits"), per_class=1)


@pytest.fixture(scope="module")
def models():
    return {m: load_encoder(str(m)).eval().requires_grad_(False) for m in (DEMO_MODEL, SOURCE)}


def classifier(enc):
    return ZeroShotClassifier(enc, "image", build_class_embeddings(enc, list(CLASS_NAMES), [TEMPLATE])).eval()


@pytest.fixture(scope="module")
def batch(models, digits):
    target = models[DEMO_MODEL]
    files = sorted(digits.rglob("*.png"))
    x = torch.stack([get_handler("image").load(f, target.preprocess_config("image")) for f in files])
    y = torch.tensor([list(CLASS_NAMES).index(f.parent.name) for f in files])
    return x, y, [f.name for f in files]


def prepared(source: str, models, recorder=None, steps=5) -> Transfer:
    attack = Transfer(TransferSpec(name="t", attack="transfer", source=str(source), eps=(EPS,), steps=steps))
    space = models[DEMO_MODEL].input_space("image")
    enc = models[source]
    wrap = (lambda e: recorder) if recorder is not None else classifier
    attack.prepare(AttackSetup("image", space, {}, torch.device("cpu"), lambda name: (enc, "fp-" + name), wrap))
    return attack


def context(clf, x, ids):
    with torch.no_grad():
        logits = clf(x).float()
    return AttackContext("image", 0, ids, logits, 0.0, 1.0, len(CLASS_NAMES), torch.device("cpu"))


def test_inputs_are_crafted_with_the_source_gradients_and_judged_once_by_the_target(models, batch):
    """The source sees gradient queries, the target one plain forward of inputs within eps; the rows are the
    target's predictions on those inputs. Caught: crafting on the target (the target saw gradient queries)."""
    x, y, ids = batch
    source = Recorder(classifier(models[SOURCE]))
    target = Recorder(classifier(models[DEMO_MODEL]))
    attack = prepared(SOURCE, models, recorder=source)
    ctx = context(target, x, ids)
    target.seen.clear()
    res = attack.run(target, x, y, attack.cells("image")[0], ctx)
    assert any(grad for _, grad in source.seen)
    assert len(target.seen) == 1
    assert not target.seen[0][1]
    judged = target.seen[0][0]
    todo = ctx.clean_logits.argmax(1) == y
    assert torch.equal(res.attacked, todo)
    assert todo.any()
    assert (judged - x[todo]).abs().amax() <= EPS + 1e-6
    with torch.no_grad():
        assert torch.equal(res.pred[todo], classifier(models[DEMO_MODEL])(judged).argmax(1))
    assert res.broken_by == ["transfer" if b else "" for b in (res.pred != y).tolist()]
    assert attack.source_model == str(SOURCE)


def test_a_transfer_from_the_target_itself_gives_the_white_box_pgd_rows(models, batch):
    """Same name, seed and settings: transfer from the target = white-box PGD on it (per-sample starts).
    Caught: the source's name in the random-start salt (other starts)."""
    x, y, ids = batch
    target = classifier(models[DEMO_MODEL])
    ctx = context(target, x, ids)
    transfer = prepared(DEMO_MODEL, models, steps=3)
    white = PGD(PGDSpec(name="t", attack="pgd", eps=(EPS,), steps=3))
    a = transfer.run(target, x, y, transfer.cells("image")[0], ctx)
    b = white.run(target, x, y, white.cells("image")[0], ctx)
    assert torch.equal(a.pred, b.pred)
    assert torch.allclose(a.perturbation_norm, b.perturbation_norm, atol=1e-6)
    assert torch.allclose(a.margin, b.margin, atol=1e-4)  # the same inputs, not only the same verdicts
    assert (a.pred != y).any()


def test_runs_name_the_source_and_hash_it(digits, tmp_path, capsys):
    """Through the CLI: rows carry source_model and a label naming the source, eps_input = eps; another
    source changes config_hash; the leaderboard labels the column with the source and ranks by PGD."""
    base = ["run", "--model", str(DEMO_MODEL), "--dataset-dir", f"image={digits}", "--templates", TEMPLATE,
            "--no-progress", "--steps", "2", "--eps", "8/255", "--n-samples", "5"]
    outs = {}
    for src in (SOURCE, OTHER_SOURCE):
        outs[src] = tmp_path / src.name
        assert main([*base, "--threats", "transfer-linf,linf-pgd", "--transfer-from", str(src),
                     "--out", str(outs[src])]) == EXIT_OK
    capsys.readouterr()
    rows = read_table(outs[SOURCE] / "samples.parquet")
    tr = rows[rows["attack"] == "transfer"]
    assert len(tr) == 5
    assert (tr["source_model"] == str(SOURCE)).all()
    assert (tr["threat"] == f"transfer-linf from {SOURCE}").all()
    assert (rows.loc[rows["attack"] != "transfer", "source_model"] == "").all()
    adv = rows[rows["adversarial"]]
    assert (adv["eps_input"] == adv["eps"]).all()
    other = read_table(outs[OTHER_SOURCE] / "samples.parquet")
    hashes = {o: set(t[t["attack"] == "transfer"]["config_hash"]) for o, t in ((0, rows), (1, other))}
    assert hashes[0]
    assert hashes[0].isdisjoint(hashes[1])
    pgd_hash = {o: set(t[t["attack"] == "pgd"]["config_hash"]) for o, t in ((0, rows), (1, other))}
    assert pgd_hash[0] == pgd_hash[1]  # the other threats' hashes do not depend on the source
    summary = read_table(outs[SOURCE] / "summary.parquet")
    assert set(summary.loc[summary["attack"] == "transfer", "source_model"]) == {str(SOURCE)}

    table = build_views(load_and_merge([outs[SOURCE]]))[0].datasets[0].tables[0]
    assert f"transfer-linf from {SOURCE} 8/255" in table.columns
    assert table.columns[0].startswith("Rank (linf-pgd")
    assert any(n.startswith(f"Transfer from {SOURCE}") for n in table.notes)


def test_transfer_settings_are_refused_in_one_line(digits, checkpoints, tmp_path, capsys):
    base = ["run", "--model", str(DEMO_MODEL), "--dataset-dir", f"image={digits}", "--templates", TEMPLATE,
            "--no-progress", "--out", str(tmp_path / "o")]
    cases = [(["--threats", "transfer-linf"], "no source model"),
             (["--transfer-from", str(SOURCE)], "no transfer threat is selected"),
             (["--threats", "transfer-linf", "--transfer-from", str(checkpoints["image"])], "needs one input space"),
             (["--threats", "transfer-linf", "--transfer-from", str(checkpoints["audio"])], "has no image tower")]
    for extra, message in cases:
        rc = main([*base, *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 2, (extra, err)
        assert len(err.splitlines()) == 1, (extra, err)
        assert message in err, (extra, err)
    with pytest.raises(ConfigError, match="not read by craft: pgd"):
        TransferSpec(name="t", attack="transfer", version="plus")
    with pytest.raises(ConfigError, match="not read by craft: autoattack"):
        TransferSpec(name="t", attack="transfer", craft="autoattack", loss="margin")


def test_schema_2_rows_read_with_no_source_and_their_eps_as_budget(tmp_path):
    """A schema-2 samples file written with pyarrow directly: the upgrade fills source_model "" and
    eps_input = eps (NaN for clean). Caught with the 2 -> 3 step removed (version refused)."""
    old = [c for c in SAMPLE_COLUMNS if c not in ("source_model", "eps_input", "embedding_cosine", "target", "true_rank",
                                                  "target_hit", "target_sample")]
    values = {"run_id": "r", "model": "m", "modality": "image", "dataset": "d", "label": 0, "attack": "pgd",
              "adversarial": True, "norm": "Linf", "severity": 0, "config_hash": "h", "clean_pred": 0, "pred": 0,
              "correct": True, "seed": 0, "attacked": True, "broken_by": "", "perturbation_norm": 0.0,
              "margin": 1.0, "valid": True}
    frame = pd.DataFrame([{**values, "sample_id": "a", "threat": "linf-pgd", "eps": 4 / 255},
                          {**values, "sample_id": "b", "threat": "clean", "attack": "clean", "adversarial": False,
                           "norm": "", "eps": math.nan}])[old]
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.replace_schema_metadata({b"rlbind_bench.schema_version": b"2"}), tmp_path / "s.parquet")
    got = read_table(tmp_path / "s.parquet")
    assert list(got["source_model"]) == ["", ""]
    assert got["eps_input"].iloc[0] == 4 / 255
    assert math.isnan(got["eps_input"].iloc[1])
