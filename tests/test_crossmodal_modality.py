"""`crossmodal-pgd` with `target: modality:M` (threats/crossmodal.py, threats/crossmodal_targets.py): thermal images
attacked towards image samples of another class, on a tiny bound encoder (one fixed random linear tower per
modality on 8x8 images) and class folders of random PNGs named in a datasets.yaml written here. The target set,
the hit and the true rank are recomputed in the tests from the files and the towers."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from rlbind_bench.config import RunConfig, RunRequest
from rlbind_bench.data.readers import index_named
from rlbind_bench.encoders.base import BoundEncoder
from rlbind_bench.errors import ConfigError, UserError
from rlbind_bench.modalities import PreprocessConfig, get_handler
from rlbind_bench.runner import run_evaluation
from rlbind_bench.threats.base import AttackContext, AttackSetup
from rlbind_bench.threats.crossmodal import CrossModalPGD
from rlbind_bench.threats.registry import spec_from_dict
from rlbind_bench.zeroshot import ZeroShotClassifier

CLASSES = ["ant", "bee", "cat", "dog", "eel"]
SIZE = 8
DIM = 6
K = 3  # target_per_class in these tests
PER_CLASS = 5  # files per class folder (more than K: the selection matters)
EPS = 8 / 255


class TwoTowers(BoundEncoder):
    """A fixed random linear tower per modality on the 3x8x8 input; class texts embedded by a fixed random
    vector per class word."""

    name = "two-towers"

    def __init__(self, modalities=("image", "thermal")):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self._modalities = tuple(modalities)
        self.towers = torch.nn.ModuleDict({m: torch.nn.Linear(3 * SIZE * SIZE, DIM) for m in ("image", "thermal")})
        for p in self.towers.parameters():
            p.data = torch.randn(p.shape, generator=g)
            p.requires_grad_(False)
        self.words = {c: torch.randn(DIM, generator=g) for c in CLASSES}

    @property
    def modalities(self):
        return self._modalities

    def preprocess_config(self, modality):
        return PreprocessConfig(image_size=SIZE)

    def encode(self, modality, x):
        return self.towers[modality](x.flatten(1) - 0.5)  # centred: no shared component dominates

    def encode_text(self, texts):
        return torch.stack([next(v for c, v in self.words.items() if c in t) for t in texts])

    def logit_scale(self, modality):
        return 100.0

    def fingerprint(self):
        return "two-towers-v1"


def class_folder(root, classes, seed):
    """ROOT/<class>/<class><k>.png: random 8x8 images, each class around its own mean colour."""
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True)
        mean = np.random.default_rng(100 + CLASSES.index(name) if name in CLASSES else 99).uniform(0.2, 0.8, 3)
        for k in range(PER_CLASS):
            pixels = np.clip(mean + rng.uniform(-0.2, 0.2, (SIZE, SIZE, 3)), 0, 1)
            Image.fromarray((pixels * 255).astype(np.uint8)).save(root / name / f"{name}{k}.png")
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Data root with a thermal set, an image set, the image set's copy with an extra class and its classes
    listed in another order, and a catalogue naming them (plus a depth set, and an image set lacking a class)."""
    root = tmp_path_factory.mktemp("xmodal")
    class_folder(root / "thermal", CLASSES, seed=1)
    class_folder(root / "image", CLASSES, seed=2)
    shutil.copytree(root / "image", root / "image-more")
    class_folder(root / "image-more-extra", ["fox"], seed=3)
    shutil.move(root / "image-more-extra" / "fox", root / "image-more" / "fox")
    reordered = ["fox", *reversed(CLASSES)]
    catalogue = root / "datasets.yaml"
    catalogue.write_text(f"""datasets:
  t-thermal: {{modality: thermal, path: thermal, templates: ["a {{}}."]}}
  t-image: {{modality: image, path: image, templates: ["a {{}}."]}}
  t-image-reordered: {{modality: image, path: image-more, classes: {reordered}, templates: ["a {{}}."]}}
  t-image-short: {{modality: image, path: image, classes: {CLASSES[:-1]}, templates: ["a {{}}."]}}
  t-depth: {{modality: depth, path: image, templates: ["a {{}}."]}}
""")
    return root, catalogue


def threat(target_dataset="t-image", **extra):
    return spec_from_dict({"attack": "crossmodal-pgd", "name": "xm-img", "norm": "Linf", "eps": [EPS], "steps": 10,
                           "target": "modality:image", "target_dataset": target_dataset, "target_per_class": K,
                           "modalities": ["thermal"], **extra}, "test")


def prepared(world, encoder, target_dataset="t-image", **extra):
    root, catalogue = world
    attack = CrossModalPGD(threat(target_dataset, **extra))
    attack.prepare(AttackSetup("thermal", None, {}, torch.device("cpu"), None, None, encoder, list(CLASSES),
                               lambda name: index_named(name, root, catalogue)))
    return attack


class Recording(ZeroShotClassifier):
    """Remembers the last input it embedded: the attacked point, embedded last by `run`."""

    def embed(self, x):
        self.last = x.detach().clone()
        return super().embed(x)


def thermal_batch(world):
    root, _ = world
    handler, cfg = get_handler("thermal"), PreprocessConfig(image_size=SIZE)
    files = sorted((root / "thermal").rglob("*.png"))
    ids = [f.relative_to(root / "thermal").as_posix() for f in files]
    x = torch.stack([handler.load(f, cfg) for f in files])
    y = torch.tensor([CLASSES.index(f.parent.name) for f in files])
    return x, y, ids


def classifier(encoder):
    texts = F.normalize(encoder.encode_text(CLASSES), dim=-1)
    return Recording(encoder, "thermal", texts).eval()


def attack_batch(attack, clf, x, y, ids, seed=0):
    with torch.no_grad():
        logits = clf(x)
    ctx = AttackContext("thermal", seed, ids, logits, 0.0, 1.0, len(CLASSES), torch.device("cpu"))
    return attack.run(clf, x, y, attack.cells("thermal")[0], ctx)


def reference_target_set(world, encoder, folder="image"):
    """The selection rule written out again: per class, the K sample ids with the smallest sha256; their image
    embeddings, normalised."""
    root, _ = world
    handler, cfg = get_handler("image"), PreprocessConfig(image_size=SIZE)
    ids, labels = [], []
    for c, name in enumerate(CLASSES):
        names = sorted((f"{name}/{p.name}" for p in (root / folder / name).glob("*.png")),
                       key=lambda s: hashlib.sha256(s.encode()).hexdigest())[:K]
        ids += names
        labels += [c] * len(names)
    with torch.no_grad():
        emb = encoder.encode("image", torch.stack([handler.load(root / folder / i, cfg) for i in ids]))
    return ids, torch.tensor(labels), F.normalize(emb, dim=-1)


@pytest.fixture(scope="module")
def encoder():
    return TwoTowers().eval()


def test_hits_and_true_ranks_match_the_target_set_recomputed_here(world, encoder):
    """The target sample is one of the K selected images of the target class; the hit is "the nearest of the
    K x C image embeddings is of the target class" and the true rank is the label's rank by cosine to the class
    means, both recomputed from the towers at the point the model last embedded. Break seen caught: the rank
    taken from the text logits; the hit as pred == target; the K largest id hashes kept; the loss aimed at the
    class texts; the cosine negated."""
    attack = prepared(world, encoder)
    clf = classifier(encoder)
    x, y, ids = thermal_batch(world)
    res = attack_batch(attack, clf, x, y, ids)
    ref_ids, ref_labels, ref_emb = reference_target_set(world, encoder)
    assert sorted(attack.targets.sample_ids) == sorted(ref_ids)
    assert (res.target != y).all()
    for t, sample in zip(res.target.tolist(), res.target_sample, strict=True):
        assert sample in ref_ids
        assert sample.split("/")[0] == CLASSES[t]
    with torch.no_grad():
        emb = F.normalize(encoder.encode("thermal", clf.last), dim=-1)
    sims = emb @ ref_emb.T
    assert torch.equal(res.target_hit, ref_labels[sims.argmax(1)] == res.target)
    means = F.normalize(torch.stack([ref_emb[ref_labels == c].mean(0) for c in range(len(CLASSES))]), dim=-1)
    class_sims = emb @ means.T
    expected = torch.tensor([1 + int((class_sims[i] > class_sims[i, y[i]]).sum()) for i in range(len(y))])
    assert torch.equal(res.true_rank, expected)
    # The attack aimed at its own target sample: its cosine to it rose from the clean point's.
    rows = [ref_ids.index(s) for s in res.target_sample]
    with torch.no_grad():
        clean = F.normalize(encoder.encode("thermal", x), dim=-1)
    gain = (emb * ref_emb[rows]).sum(1) - (clean * ref_emb[rows]).sum(1)
    assert (gain > 0).float().mean() >= 0.9


def test_targeted_success_is_higher_than_under_random_noise(world, encoder):
    """Random sign noise of the whole budget is the floor. Break seen caught: the loss aimed at the text
    embeddings (success near noise's), the cosine negated (success 0)."""
    attack = prepared(world, encoder)
    clf = classifier(encoder)
    x, y, ids = thermal_batch(world)
    res = attack_batch(attack, clf, x, y, ids)
    g = torch.Generator().manual_seed(5)
    noisy = (x + (torch.randint(0, 2, x.shape, generator=g) * 2 - 1).float() * EPS).clamp(0, 1)
    with torch.no_grad():
        noisy_hit = attack.targets.hits(encoder.encode("thermal", noisy), res.target)
    success = res.target_hit.float().mean()
    assert success >= 0.6
    assert success > noisy_hit.float().mean() + 0.3


def test_rows_are_deterministic_per_sample(world, encoder):
    """Twice the same; a shuffled batch or a sample alone gets its own row; another run seed, other target
    samples. Break seen caught: the target sample drawn by position in the batch."""
    attack = prepared(world, encoder)
    clf = classifier(encoder)
    x, y, ids = thermal_batch(world)
    first = attack_batch(attack, clf, x, y, ids)
    again = attack_batch(attack, clf, x, y, ids)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    shuffled = attack_batch(attack, clf, x[order], y[order], [ids[i] for i in order])
    alone = attack_batch(attack, clf, x[7:8], y[7:8], ids[7:8])
    for other, index in ((again, torch.arange(len(x))), (shuffled, order), (alone, torch.tensor([7]))):
        assert torch.equal(other.target, first.target[index])
        assert other.target_sample == [first.target_sample[i] for i in index.tolist()]
        assert torch.equal(other.target_hit, first.target_hit[index])
        assert torch.equal(other.true_rank, first.true_rank[index])
    reseeded = attack_batch(attack, clf, x, y, ids, seed=1)
    assert reseeded.target_sample != first.target_sample
    # More than one sample of a class is aimed at: the choice is per sample, not per class.
    per_class = {}
    for t, s in zip(first.target.tolist(), first.target_sample, strict=True):
        per_class.setdefault(t, set()).add(s)
    assert max(len(s) for s in per_class.values()) > 1


def test_classes_are_matched_by_name_not_index(world, encoder):
    """The target set listed in another class order, with an extra class: the same targets and target samples
    as in the original order. Break seen caught: matching by integer index (target samples of other classes)."""
    clf = classifier(encoder)
    x, y, ids = thermal_batch(world)
    plain = attack_batch(prepared(world, encoder), clf, x, y, ids)
    reordered_attack = prepared(world, encoder, "t-image-reordered")
    assert "fox" not in {s.split("/")[0] for s in reordered_attack.targets.sample_ids}
    reordered = attack_batch(reordered_attack, clf, x, y, ids)
    assert reordered.target_sample == plain.target_sample
    assert torch.equal(reordered.target_hit, plain.target_hit)
    assert torch.equal(reordered.true_rank, plain.true_rank)


def test_a_run_records_the_columns_and_the_summary_reads_the_flag(world, encoder, tmp_path):
    """Through run_evaluation: rows carry target, target_sample, target_hit; target_success is the mean flag;
    config_hash covers target_dataset and the target samples kept. Break seen caught: the runner not passing the
    encoder (RuntimeError); the target set left out of cell_config (same hash on other target data); matching by
    index; target_success as pred == target."""
    root, catalogue = world
    attacks = tmp_path / "attacks"
    attacks.mkdir()
    common = (f"attack: crossmodal-pgd\nnorm: Linf\neps: [{EPS}]\nsteps: 5\ntarget: modality:image\n"
              f"target_per_class: {K}\nmodalities: [thermal]\n")
    (attacks / "xa.yaml").write_text(common + "target_dataset: t-image\n")
    (attacks / "xb.yaml").write_text(common + "target_dataset: t-image-reordered\n")
    cfg = RunConfig(model="two-towers", datasets=["t-thermal"], threats=["xa", "xb"], batch_size=8)
    out = run_evaluation(RunRequest(config=cfg, out=tmp_path / "out", data_root=root, datasets_file=catalogue,
                                    attacks_dir=attacks, progress=False, encoder=encoder, corruption_cache=False))
    rows = out.samples
    xa, xb = rows[rows["threat"] == "xa"], rows[rows["threat"] == "xb"]
    assert len(xa) == len(CLASSES) * PER_CLASS
    assert (xa["target"] != xa["label"]).all()
    assert all(s.split("/")[0] == CLASSES[t] for s, t in zip(xa["target_sample"], xa["target"], strict=True))
    assert list(xa["target_sample"]) == list(xb["target_sample"])
    summary = out.summary.set_index("threat")
    assert summary.loc["xa", "target_success"] == pytest.approx(xa["target_hit"].mean())
    assert summary.loc["xa", "config_hash"] != summary.loc["xb", "config_hash"]
    clean = rows[rows["threat"] == "clean"]
    assert (~clean["target_hit"]).all()
    assert (clean["target_sample"] == "").all()
    # The same threat on other target data (one selected image gone): other target samples, another hash.
    other = tmp_path / "image-less"
    shutil.copytree(root / "image", other)
    (other / xa["target_sample"].iloc[0]).unlink()
    cfg = RunConfig(model="two-towers", datasets=["t-thermal"], threats=["xa"], batch_size=8)
    again = run_evaluation(RunRequest(config=cfg, out=tmp_path / "again", data_root=root, datasets_file=catalogue,
                                      attacks_dir=attacks, progress=False, encoder=encoder, corruption_cache=False,
                                      dataset_paths={"t-image": str(other)}))
    assert again.summary.set_index("threat").loc["xa", "config_hash"] != summary.loc["xa", "config_hash"]


def one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert len(text.splitlines()) == 1, text
    return text


def test_refusals_are_one_line(world, encoder):
    """Each refusal before the first batch, in one line naming the fix."""
    with pytest.raises(ConfigError) as exc:
        threat(modalities=["thermal", "image"])
    assert "cannot attack image datasets" in one_line(exc)
    with pytest.raises(ConfigError) as exc:
        threat(target_dataset="")
    assert "needs target_dataset" in one_line(exc)
    with pytest.raises(ConfigError) as exc:
        threat(loss="ce")
    assert "takes loss: cosine" in one_line(exc)
    with pytest.raises(ConfigError) as exc:
        threat(target="modality:smell")
    assert "unknown modality 'smell'" in one_line(exc)
    with pytest.raises(ConfigError) as exc:
        spec_from_dict({"attack": "crossmodal-pgd", "name": "x", "eps": [0.1], "target_dataset": "t-image"}, "x")
    assert "read only by target: modality:M" in one_line(exc)
    with pytest.raises(ConfigError) as exc:
        prepared(world, TwoTowers(modalities=("thermal",)))
    assert "no image tower" in one_line(exc)
    with pytest.raises(ConfigError) as exc:
        prepared(world, encoder, "t-depth")
    assert "is a depth dataset" in one_line(exc)
    with pytest.raises(ConfigError) as exc:
        prepared(world, encoder, "t-image-short")
    assert "lacks 1 of the attacked dataset's classes, e.g. 'eel'" in one_line(exc)
    with pytest.raises(UserError) as exc:
        prepared(world, encoder, "t-nowhere")
    assert "unknown dataset 't-nowhere'" in one_line(exc)
