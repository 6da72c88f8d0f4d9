"""Retrieval under attack: metrics against hand computation, the caption layouts on tiny format-true copies
(real photos, real speech, a real MP4), the PGD on either side against a trained demo model, and the
`retrieve` command end to end on tiny LanguageBind-format checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from digit_folders import DEMO_MODEL, write_digit_folders

from rlbind_bench.cli import main
from rlbind_bench.errors import ConfigError, DatasetError
from rlbind_bench.retrieval.layouts import Where, index_retrieval
from rlbind_bench.retrieval.metrics import rank_queries, summarise_ranks
from rlbind_bench.retrieval.spec import load_retrieval_sets

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ metrics
def test_ranks_and_average_precision_match_a_hand_computation():
    scores = np.array([[0.9, 0.8, 0.8, 0.3, 0.1],   # relevant: 1, 3
                       [0.5, 0.5, 0.5, 0.2, 0.7],   # relevant: 0, 2 (tied with non-relevant 1)
                       [0.1, 0.2, 0.3, 0.4, 0.5]])  # relevant: 4
    relevant = np.array([[0, 1, 0, 1, 0], [1, 0, 1, 0, 0], [0, 0, 0, 0, 1]], dtype=bool)
    r = rank_queries(scores, relevant)
    # q0: order 0, 2 (tie with 1: non-relevant first), 1, 3, 4 -> relevant at ranks 3 and 4: AP = (1/3 + 2/4) / 2.
    # q1: order 4, then the tie 1 (non-relevant), 0, 2 -> relevant at ranks 3 and 4: AP = (1/3 + 2/4) / 2.
    # q2: the relevant item scores highest -> rank 1, AP 1.
    assert r.first_rank.tolist() == [3, 3, 1]
    assert r.ap == pytest.approx([(1 / 3 + 2 / 4) / 2, (1 / 3 + 2 / 4) / 2, 1.0])
    assert r.n_relevant.tolist() == [2, 2, 1]
    s = summarise_ranks(r.first_rank, r.ap)
    assert (s["r1"], s["r5"], s["r10"]) == pytest.approx((1 / 3, 1.0, 1.0))
    assert s["map"] == pytest.approx(((1 / 3 + 2 / 4) + 1.0) / 3)
    assert s["r1_low"] < 1 / 3 < s["r1_high"]
    assert s["map_low"] < s["map"] < s["map_high"]


def test_a_constant_model_ranks_every_relevant_item_last():
    """Ties count against the query: an attack that collapses embeddings must not score as perfect retrieval."""
    r = rank_queries(np.zeros((2, 6)), np.array([[1, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0]], dtype=bool))
    assert r.first_rank.tolist() == [6, 5]
    assert r.ap == pytest.approx([1 / 6, (1 / 5 + 2 / 6) / 2])


# ------------------------------------------------------------------------------------------------ layouts
CAPTIONS = {"cat": "a cat lying on a sofa", "coffee": "a cup of coffee on a table",
            "rocket": "a rocket on the launch pad", "astronaut": "an astronaut in a white suit"}


@pytest.fixture(scope="module")
def coco_copy(photo_dir, tmp_path_factory) -> Path:
    """Karpathy's dataset_coco.json (filepath + filename, sentences[raw], split) over real photos as JPEG."""
    from PIL import Image

    root = tmp_path_factory.mktemp("coco")
    (root / "val2014").mkdir()
    images = []
    for n, cls in enumerate(CAPTIONS):
        name = f"COCO_val2014_{n + 1:012d}.jpg"
        Image.open(photo_dir / cls / f"{cls}0.png").convert("RGB").save(root / "val2014" / name)
        images.append({"filepath": "val2014", "filename": name, "imgid": n, "split": "test", "cocoid": n + 1,
                       "sentences": [{"raw": CAPTIONS[cls], "tokens": CAPTIONS[cls].split(), "imgid": n},
                                     {"raw": f"a photo of a {cls}.", "tokens": [], "imgid": n}]})
    # A train image that is not on disk: the test split must not look for it.
    images.append({"filepath": "train2014", "filename": "COCO_train2014_000000000009.jpg", "split": "train",
                   "sentences": [{"raw": "absent"}]})
    (root / "dataset_coco.json").write_text(json.dumps({"images": images, "dataset": "coco"}))
    return root


@pytest.fixture(scope="module")
def clotho_copy(real_wav_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clotho")
    (root / "evaluation").mkdir()
    lines = ["file_name,caption_1,caption_2,caption_3,caption_4,caption_5"]
    for k, name in enumerate(["Distorted AM Radio noise.wav", "birds in the park.wav", "07 ambient bell.wav"]):
        shutil.copy(real_wav_dir / f"{k + 1}.wav", root / "evaluation" / name)
        lines.append(f'{name},"a woman says {k + 1}",a voice counts,"someone speaks, clearly",a number is read,'
                     f"speech {k}")
    (root / "clotho_captions_evaluation.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def catalogue(coco_copy, clotho_copy):
    """The bundled entries, COCO and Clotho pointed at the tiny copies (what --dataset-path does)."""
    import dataclasses

    sets = load_retrieval_sets(REPO / "datasets.yaml")
    for name, path in (("coco-karpathy-test", coco_copy), ("clotho-evaluation", clotho_copy)):
        sets[name] = dataclasses.replace(sets[name], path=str(path))
    return sets


def test_karpathy_split_json_is_read(catalogue):
    index = index_retrieval(catalogue["coco-karpathy-test"], Path("/nonexistent"), Where({}), None)
    images, texts = index.items["image"], index.items["text"]
    assert [i.item_id for i in images] == [f"val2014/COCO_val2014_{n:012d}.jpg" for n in range(1, 5)]
    assert len(texts) == 8
    assert [t.group for t in texts] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert texts[0].text == CAPTIONS["cat"]
    assert texts[0].group == images[0].group
    assert texts[3].text == "a photo of a coffee."


def test_clotho_csv_is_read(catalogue):
    index = index_retrieval(catalogue["clotho-evaluation"], Path("/nonexistent"))
    audio = index.items["audio"]
    assert [a.item_id for a in audio] == ["Distorted AM Radio noise.wav", "birds in the park.wav",
                                          "07 ambient bell.wav"]
    assert len(index.items["text"]) == 15
    assert index.items["text"][2].text == "someone speaks, clearly"
    assert index.hints["audio"]["clip_seconds"] > 0


def test_audiocaps_csv_groups_captions_per_clip_and_skips_clips_gone_from_youtube(catalogue, real_wav_dir, tmp_path):
    (tmp_path / "test").mkdir()
    shutil.copy(real_wav_dir / "1.wav", tmp_path / "test" / "Y--0w1YA1Hm4.wav")  # a downloader's naming
    shutil.copy(real_wav_dir / "2.wav", tmp_path / "test" / "-3bGlOhRkAo_30.wav")  # another's
    rows = ["audiocap_id,youtube_id,start_time,caption", "103541,--0w1YA1Hm4,30,A vehicle driving as a man speaks",
            "103542,--0w1YA1Hm4,30,An engine runs while a man talks", "97153,-3bGlOhRkAo,30,Birds chirp",
            "97154,-3bGlOhRkAo,30,Birds sing in the wind", "11111,gone_from_yt,0,A dog barks"]
    (tmp_path / "test.csv").write_text("\n".join(rows) + "\n")
    import dataclasses

    spec = dataclasses.replace(catalogue["audiocaps-test"], path=str(tmp_path))
    with pytest.warns(UserWarning, match="1 of 3 listed clips"):
        index = index_retrieval(spec, tmp_path)
    assert [a.path.name for a in index.items["audio"]] == ["Y--0w1YA1Hm4.wav", "-3bGlOhRkAo_30.wav"]
    assert [t.group for t in index.items["text"]] == [0, 0, 1, 1]
    assert index.hints["audio"] == {"clip_seconds": 10.0}


def test_msrvtt_json_and_1ka_csv_are_read(catalogue, real_video, tmp_path):
    (tmp_path / "videos" / "TestVideo").mkdir(parents=True)
    for v in ("video7010", "video7011"):
        shutil.copy(real_video, tmp_path / "videos" / "TestVideo" / f"{v}.mp4")
    info = {"info": {"year": 2016}, "videos": [
        {"category": 9, "url": "https://www.youtube.com/watch?v=x", "video_id": "video7010", "split": "test", "id": 7010},
        {"category": 3, "url": "https://www.youtube.com/watch?v=y", "video_id": "video7011", "split": "test", "id": 7011}],
        "sentences": [{"caption": "a car drives by", "video_id": "video7010", "sen_id": 1},
                      {"caption": "a man talks on the phone", "video_id": "video7011", "sen_id": 2},
                      {"caption": "a person in a car", "video_id": "video7011", "sen_id": 3}]}
    (tmp_path / "test_videodatainfo.json").write_text(json.dumps(info))
    (tmp_path / "MSRVTT_JSFUSION_test.csv").write_text(
        "key,vid_key,video_id,sentence\nret0,msr7010,video7010,a car drives by\n")
    import dataclasses

    full = index_retrieval(dataclasses.replace(catalogue["msrvtt-test"], path=str(tmp_path)), tmp_path)
    assert [v.item_id for v in full.items["video"]] == ["TestVideo/video7010.mp4", "TestVideo/video7011.mp4"]
    assert [t.group for t in full.items["text"]] == [0, 1, 1]
    one_k = index_retrieval(dataclasses.replace(catalogue["msrvtt-1ka"], path=str(tmp_path)), tmp_path)
    assert len(one_k.items["video"]) == 1
    assert one_k.items["text"][0].text == "a car drives by"


def test_malformed_and_missing_sets_are_one_line_errors(catalogue, tmp_path):
    import dataclasses

    spec = dataclasses.replace(catalogue["coco-karpathy-test"], path=str(tmp_path))
    with pytest.raises(DatasetError, match=r"caption file .*dataset_coco\.json not found; get it from"):
        index_retrieval(spec, tmp_path)
    (tmp_path / "dataset_coco.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not readable JSON"):
        index_retrieval(spec, tmp_path)
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": [
        {"filename": "x.jpg", "split": "test", "sentences": [{"raw": "a"}]}]}))
    with pytest.raises(DatasetError, match="1 of 1 listed media files are missing"):
        index_retrieval(spec, tmp_path)


def test_retrieval_entries_stay_out_of_the_classification_catalogue(tmp_path):
    from rlbind_bench.config import load_datasets

    assert "demo-digits-retrieval" not in load_datasets(REPO / "datasets.yaml")
    demo = load_retrieval_sets(REPO / "datasets.yaml")["demo-digits-retrieval"]
    assert set(demo.members) == {"image", "audio", "video"}
    assert "same-class" in demo.description
    import argparse

    from rlbind_bench.cli.lists import LISTERS

    listed = dict(LISTERS["datasets"](argparse.Namespace(datasets_file=REPO / "datasets.yaml")))
    assert listed["clotho-evaluation"].startswith("retrieval (text, audio)")
    assert "get it: https://zenodo.org/records/4783391" in listed["clotho-evaluation"]
    bad = tmp_path / "d.yaml"
    bad.write_text("datasets:\n  x: {task: ranking, modality: image, path: x}\n")
    with pytest.raises(ConfigError, match="unknown task 'ranking'"):
        load_datasets(bad)


# ------------------------------------------------------------------------------------------------ attacks
@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The trained demo backbone and 20 real handwritten digits (2 per class) with one text per class."""
    from rlbind_bench.encoders.registry import load_encoder
    from rlbind_bench.modalities import get_handler

    root = write_digit_folders(tmp_path_factory.mktemp("digits"), per_class=2)
    enc = load_encoder(str(DEMO_MODEL)).eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    files = sorted(root.rglob("*.png"))
    names = sorted({f.parent.name for f in files})
    cfg = enc.preprocess_config("image")
    x = torch.stack([get_handler("image").load(f, cfg) for f in files])
    labels = torch.tensor([names.index(f.parent.name) for f in files])
    with torch.no_grad():
        zt = F.normalize(enc.encode_text([f"a photo of the digit {n}." for n in names]).float(), dim=-1)
    return {"enc": enc, "x": x, "labels": labels, "zt": zt, "ids": [f.name for f in files], "root": root}


def _image_to_text_r1(enc, x, labels, zt) -> float:
    with torch.no_grad():
        z = F.normalize(enc.encode("image", x).float(), dim=-1)
    relevant = (labels[:, None] == torch.arange(len(zt))[None, :]).numpy()
    return float(rank_queries((z @ zt.T).numpy(), relevant).hits(1).mean())


def test_query_attack_beats_random_noise_of_the_same_budget_and_stays_in_the_ball(digits, one_thread):
    from rlbind_bench.retrieval.attack import RetrievalAttack, perturb

    enc, x, labels, zt = digits["enc"], digits["x"], digits["labels"], digits["zt"]
    eps = 16 / 255  # the demo backbone's digits hold at 4/255 (R@1 0.95 -> 0.90); 16/255 breaks most
    relevant = labels[:, None] == torch.arange(len(zt))[None, :]
    x_adv = perturb(enc, "image", x, digits["ids"], relevant, zt, RetrievalAttack(eps=eps, steps=5), 0.0, 1.0, "t")
    g = torch.Generator().manual_seed(0)
    x_noise = (x + eps * torch.randn(x.shape, generator=g).sign()).clamp(0, 1)
    clean, adv, noise = (_image_to_text_r1(enc, v, labels, zt) for v in (x, x_adv, x_noise))
    assert clean >= 0.5, clean  # a trained model: something to attack
    assert adv <= clean - 0.5, (clean, adv)  # measured: clean 0.95, attacked 0.20, noise 0.95
    assert adv < noise, (adv, noise)
    assert float((x_adv - x).abs().max()) <= eps + 1e-6
    assert x_adv.min() >= 0
    assert x_adv.max() <= 1
    assert float((x_adv - x).abs().max()) > eps / 2  # it moved


def test_query_attack_is_deterministic_per_item_whatever_the_batch(digits, one_thread):
    from rlbind_bench.retrieval.attack import RetrievalAttack, perturb

    enc, x, labels, zt, ids = digits["enc"], digits["x"], digits["labels"], digits["zt"], digits["ids"]
    relevant = labels[:, None] == torch.arange(len(zt))[None, :]
    attack = RetrievalAttack(eps=4 / 255, steps=3, seed=7)
    whole = perturb(enc, "image", x[:6], ids[:6], relevant[:6], zt, attack, 0.0, 1.0, "s")
    again = perturb(enc, "image", x[:6], ids[:6], relevant[:6], zt, attack, 0.0, 1.0, "s")
    part = perturb(enc, "image", x[3:9], ids[3:9], relevant[3:9], zt, attack, 0.0, 1.0, "s")
    assert torch.equal(whole, again)
    assert torch.allclose(whole[3:], part[:3], atol=1e-6)
    other_seed = perturb(enc, "image", x[:6], ids[:6], relevant[:6], zt, RetrievalAttack(eps=4 / 255, steps=3, seed=8),
                         0.0, 1.0, "s")
    assert not torch.equal(whole, other_seed)


def test_run_attacks_both_sides_of_a_class_relevance_set(digits, tmp_path, one_thread):
    """A `classes` set of a user's datasets file, through run_retrieval: attacked R@1 below clean on the query
    side (images vs texts) and on the gallery side (texts vs perturbed images); settings stored."""
    from rlbind_bench.retrieval.run import RetrievalConfig, RetrievalRequest, run_retrieval

    catalogue = tmp_path / "datasets.yaml"
    catalogue.write_text(
        f"datasets:\n  digits:\n    modality: image\n    path: {digits['root']}\n"
        "  digit-retrieval:\n    task: retrieval\n    layout: classes\n    members: {image: digits}\n"
        '    templates: ["a photo of the digit {}."]\n')
    cfg = RetrievalConfig(model="demo-backbone", datasets=["digit-retrieval"], pairs=["image:text", "text:image"],
                          eps=[0, 16 / 255], sides=["query", "gallery"], steps=5, seed=3)
    out = run_retrieval(RetrievalRequest(cfg, tmp_path / "out", datasets_file=catalogue, encoder=digits["enc"]))
    s = out.summary.set_index(["pair", "side"])
    assert set(s.index) == {("image:text", "none"), ("image:text", "query"), ("text:image", "none"),
                            ("text:image", "gallery")}
    assert s.loc[("image:text", "query"), "r1"] < s.loc[("image:text", "none"), "r1"]
    assert s.loc[("text:image", "gallery"), "map"] < s.loc[("text:image", "none"), "map"]
    assert (s["relevance"] == "class").all()
    assert 8 / 255 < s.loc[("text:image", "gallery"), "max_perturbation"] <= 16 / 255 + 1e-6
    rows = out.rows[(out.rows["pair"] == "text:image") & (out.rows["side"] == "none")]
    assert len(rows) == 10
    assert (rows["n_relevant"] == 2).all()
    assert (rows["n_gallery"] == 20).all()
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["kind"] == "retrieval"
    assert run["attack"]["steps"] == 5
    assert run["attack"]["seed"] == 3
    assert run["attack"]["step_size"] == {f"{16 / 255:.8g}": pytest.approx(2.5 * (16 / 255) / 5)}
    assert "every item of the query's class is relevant" in run["relevance"]["digit-retrieval"]
    assert [n.split(": ")[1].split(";")[0] for n in run["notes"]] == ["the gallery side is text, which has no input space to perturb",
                                                        "the query side is text, which has no input space to perturb"]
    stored = pd.read_parquet(tmp_path / "out" / "retrieval_summary.parquet")
    assert stored["config_hash"].nunique() == 4


# ------------------------------------------------------------------------------------------------ command
@pytest.fixture
def user_catalogue(tmp_path, photo_dir, real_wav_dir) -> Path:
    """The bundled catalogue plus a class-relevance set of real photos and real speech (X->Y)."""
    audio = tmp_path / "speech"
    for k, cls in enumerate(("astronaut", "cat", "coffee", "rocket")):
        (audio / cls).mkdir(parents=True)
        shutil.copy(real_wav_dir / f"{k}.wav", audio / cls / f"{k}.wav")
    text = (REPO / "datasets.yaml").read_text()
    text += (f"  my-photos:\n    modality: image\n    path: {photo_dir}\n"
             f"  my-speech:\n    modality: audio\n    path: {audio}\n    clip_seconds: 1.0\n"
             "  my-pairs:\n    task: retrieval\n    layout: classes\n    members: {image: my-photos, audio: my-speech}\n"
             '    templates: ["a photo of a {}."]\n')
    path = tmp_path / "datasets.yaml"
    path.write_text(text)
    return path


def test_retrieve_command_end_to_end_and_leaderboard(checkpoints, coco_copy, clotho_copy, user_catalogue, tmp_path,
                                                     one_thread, capsys):
    model = f"image={checkpoints['image']},audio={checkpoints['audio']}"
    out = tmp_path / "ret"
    code = main(["retrieve", "--model", model, "--datasets", "coco-karpathy-test,clotho-evaluation,my-pairs",
                 "--datasets-file", str(user_catalogue), "--dataset-path", f"coco-karpathy-test={coco_copy}",
                 "--dataset-path", f"clotho-evaluation={clotho_copy}", "--pairs", "text:image,audio:text,audio:image",
                 "--eps", "0,1/255", "--side", "query,gallery", "--steps", "1", "--n-items", "2", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    summary = pd.read_parquet(out / "retrieval_summary.parquet")
    cells = set(zip(summary["dataset"], summary["pair"], summary["side"], strict=True))
    assert cells == {("coco-karpathy-test", "text:image", "none"), ("coco-karpathy-test", "text:image", "gallery"),
                     ("clotho-evaluation", "audio:text", "none"), ("clotho-evaluation", "audio:text", "query"),
                     ("my-pairs", "text:image", "none"), ("my-pairs", "text:image", "gallery"),
                     ("my-pairs", "audio:text", "none"), ("my-pairs", "audio:text", "query"),
                     ("my-pairs", "audio:image", "none"), ("my-pairs", "audio:image", "query"),
                     ("my-pairs", "audio:image", "gallery")}
    rows = pd.read_parquet(out / "retrieval.parquet")
    coco = rows[(rows["dataset"] == "coco-karpathy-test") & (rows["side"] == "none")]
    assert len(coco) == 4
    assert (coco["n_gallery"] == 2).all()
    assert (summary["max_perturbation"] <= 1 / 255 + 1e-6).all()
    run = json.loads((out / "run.json").read_text())
    assert run["items"]["my-pairs"] == {"text": 4, "image": 2, "audio": 2}
    assert run["items"]["coco-karpathy-test"] == {"text": 4, "image": 2}  # only the kept images' captions
    assert any("query side is text" in n for n in run["notes"])
    assert run["provenance"]["packages"]["torch"]
    assert "R@1" in capsys.readouterr().out
    board = tmp_path / "board"
    assert main(["leaderboard", str(out), "--out", str(board)]) == 0
    page = (board / "retrieval.md").read_text()
    assert "| R@1 clean | R@1 gallery Linf 1/255 | R@1 query Linf 1/255 |" in page
    assert "| audio:image | class |" in page
    assert "| text:image | paired |" in page


@pytest.mark.parametrize(("argv", "message"), [
    (["--datasets", "no-such-set"], "unknown retrieval set 'no-such-set'"),
    (["--datasets", "demo-digits-retrieval", "--pairs", "image:image"], "two different modalities"),
    (["--datasets", "demo-digits-retrieval", "--side", "sideways"], "--side must be among query, gallery"),
    (["--datasets", "demo-digits-retrieval", "--eps=-1/255"], "eps must be >= 0"),
    (["--datasets", "clotho-evaluation", "--dataset-path", "clotho-evaluation=/no/such/dir"], "folder does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    code = main(["retrieve", "--model", "demo/backbone", *argv, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_unreadable_files_are_skipped_and_listed(digits, tmp_path):
    from rlbind_bench.retrieval.run import RetrievalConfig, RetrievalRequest, run_retrieval

    root = tmp_path / "imgs"
    for cls in ("one", "two"):
        (root / cls).mkdir(parents=True)
        shutil.copy(next((digits["root"] / cls).glob("*.png")), root / cls / "ok.png")
    (root / "two" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    catalogue = tmp_path / "datasets.yaml"
    catalogue.write_text(f"datasets:\n  d:\n    modality: image\n    path: {root}\n  r:\n    task: retrieval\n"
                         '    layout: classes\n    members: {image: d}\n    templates: ["the digit {}."]\n')
    out = run_retrieval(RetrievalRequest(RetrievalConfig(model="m", datasets=["r"], pairs=["text:image"]),
                                         tmp_path / "out", datasets_file=catalogue, encoder=digits["enc"]))
    assert out.run["items"]["r"] == {"text": 2, "image": 2}
    assert [line.split(":")[0] for line in out.run["skipped_files"]["r"]] == ["two/broken.png"]
    assert (out.rows["n_gallery"] == 2).all()


def test_retrieve_refuses_a_classification_results_folder(tmp_path, capsys):
    (tmp_path / "summary.parquet").write_bytes(b"")  # what `run` leaves; its run.json must not be overwritten
    code = main(["retrieve", "--model", "demo/backbone", "--datasets", "demo-digits-retrieval", "--out", str(tmp_path)])
    assert code == 2
    assert "holds classification results" in capsys.readouterr().err
