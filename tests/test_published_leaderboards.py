"""The committed leaderboards are what `rlbind-bench leaderboard` writes from their committed run folders: their
Markdown pages regenerate byte for byte (no hand edits), and the bound-threat board shows what issue #17 asks
of the demo zoo (embedding-space robustness, X->Y retrieval clean and attacked, transfer from demo/backbone,
audio at dB budgets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlbind_bench.cli import main

REPO = Path(__file__).resolve().parents[1]
BOUND = REPO / "leaderboards" / "demo-bound"


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("board") / "demo-bound"
    runs = sorted((BOUND / "runs").iterdir())
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)  # the committed pages name their runs by these relative paths
        assert main(["leaderboard", *(str(r.relative_to(REPO)) for r in runs), "--reference", "demo/backbone",
                     "--out", str(out)]) == 0
    return out


def test_the_bound_threat_board_regenerates_from_its_runs(regenerated):
    pages = sorted(p.name for p in BOUND.glob("*.md"))
    assert {"index.md", "retrieval.md", "audio.md", "image.md", "thermal.md", "video.md"} <= set(pages)
    for name in pages:
        assert (regenerated / name).read_text() == (BOUND / name).read_text(), name


def test_the_bound_threat_board_answers_the_issue(regenerated):
    index = (regenerated / "index.md").read_text()
    assert "[Retrieval: R@K clean and attacked](retrieval.md)" in index
    for modality in ("image", "thermal", "audio", "video"):
        page = (regenerated / f"{modality}.md").read_text()
        assert "Embedding-space robustness" in page, modality
        assert "transfer-linf from demo/backbone" in page, modality
    assert "-30 dB" in (regenerated / "audio.md").read_text()
    retrieval = (regenerated / "retrieval.md").read_text()
    for pair in ("audio:image", "image:audio", "video:audio"):
        assert f"| {pair} | class |" in retrieval
    assert "R@1 query Linf 4/255" in retrieval


def test_robustbench_entries_hold_white_box_label_attacks_only(regenerated):
    """RobustBench's robust_acc is a white-box attack on the label: PGD at L-inf and at dB budgets, not the
    label-free embedding threat, the targeted one or transfer. Break seen caught: the filter removed."""
    import json

    entries = json.loads((regenerated / "models" / "demo_backbone.json").read_text())["robustbench"]
    threats = {e["threat"] for e in entries}
    assert {"linf-pgd", "linf-pgd-db"} <= threats
    assert not threats & {"embedding-linf", "crossmodal-linf", "crossmodal-to-image",
                          "transfer-linf from demo/backbone", "transfer-linf"}
