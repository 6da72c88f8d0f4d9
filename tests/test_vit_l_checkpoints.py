"""`checkpoint build --size vit-l`: LanguageBind's released configuration per modality tower
(encoders/released_configs.py), as docs/vit-l-checkpoints.md cites it; loaded by languagebind's own classes and
run end to end, one process per modality, within this machine's memory (slow: 1.7 GB per checkpoint)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlbind_bench.encoders.released_configs import LOGIT_SCALE_INIT, PROJECTION_DIM, RELEASED, TEXT, VISION

DOC = Path(__file__).resolve().parents[1] / "docs" / "vit-l-checkpoints.md"
MODALITIES = ("image", "video", "audio", "thermal", "depth")


def _doc_rows() -> dict[str, tuple[str, dict]]:
    """modality -> (hub repository, {key: value}) from the doc's per-modality table."""
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in MODALITIES:
            pairs = dict(p.strip().split(" ", 1) for p in cells[2].split(","))
            rows[cells[0]] = (cells[1], {k: _value(v) for k, v in pairs.items()})
    return rows


def _value(text: str):
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def test_doc_table_is_the_builders_table():
    rows = _doc_rows()
    assert set(rows) == set(RELEASED)
    for modality, tower in RELEASED.items():
        repo, extras = rows[modality]
        assert repo == tower.repo, modality
        assert extras == tower.vision_extras, modality


def test_doc_states_the_shared_sizes():
    text = DOC.read_text()
    shared = (f"hidden {VISION['hidden_size']}, {VISION['num_hidden_layers']} layers, "
              f"{VISION['num_attention_heads']} heads, MLP {VISION['intermediate_size']}, patch {VISION['patch_size']}")
    assert shared in text
    assert (f"{TEXT['num_hidden_layers']} layers, width {TEXT['hidden_size']}, {TEXT['num_attention_heads']} heads, "
            f"MLP {TEXT['intermediate_size']}") in text
    assert re.search(rf"\| projection \| {PROJECTION_DIM} \|", text)
    assert f"| logit scale init | {LOGIT_SCALE_INIT}" in text


@pytest.mark.slow
@pytest.mark.parametrize("modality", MODALITIES)
def test_released_tower_loads_and_runs(modality, tmp_path, record_property):
    """Built, loaded by languagebind's own class with every released setting, then `run` in its own process:
    1 sample, 1 PGD step, probes off; peak memory and time recorded (benchmarks/vit_l_towers.py publishes them)."""
    import psutil
    import torch

    from rlbind_bench import _compat
    from rlbind_bench.encoders.checkpoint_factory import build_languagebind_checkpoint
    from rlbind_bench.plan.measure import run_measured, tower_run_argv

    ckpt = build_languagebind_checkpoint(tmp_path / "ckpt", modality, size="vit-l")
    lb = _compat.import_languagebind()
    model = lb.model_dict[modality].from_pretrained(str(ckpt)).eval()
    vc = model.config.vision_config
    for key, value in {**VISION, **RELEASED[modality].vision_extras}.items():
        # _compat's non-square embeddings shim keeps the saved int under its own name (image_size becomes [h, w]).
        got = getattr(vc, "_rlbind_image_size", vc.image_size) if key == "image_size" else getattr(vc, key)
        assert got == value, (modality, key)
    tc = model.config.text_config
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size"):
        assert getattr(tc, key) == TEXT[key], (modality, key)
    assert model.config.projection_dim == PROJECTION_DIM
    assert abs(float(model.logit_scale) - LOGIT_SCALE_INIT) < 1e-4
    if RELEASED[modality].vision_extras.get("lora_r"):
        assert any("lora" in name for name, _ in model.named_parameters())
    del model
    torch.cuda.empty_cache()

    measured = run_measured(tower_run_argv(modality, ckpt, tmp_path / "out", tmp_path))
    assert measured.returncode == 0, measured.output
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["checks_not_run"]  # probes off, and said so
    record_property("seconds", round(measured.seconds, 1))
    record_property("peak_rss_gib", round(measured.peak_rss_bytes / 2**30, 2))
    print(f"vit-l {modality}: {measured.seconds:.1f} s, peak RSS {measured.peak_rss_bytes / 2**30:.2f} GiB")
    assert measured.peak_rss_bytes < 0.8 * psutil.virtual_memory().total
