"""benchmarks/device.sh --dry-run: the one-shot GPU benchmark runs end to end on CPU (tiny towers) and leaves one
Markdown block per stage with finite numbers; the project's PGD and torchattacks' agree on robust accuracy, and
so do the project's AutoAttack and pyautoattack."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADER = "#### Device benchmark, "
# stage -> how its block's title starts
TITLES = {"env": "environment", "pgd": "PGD-", "agreement": "bf16 agreement", "batch": "auto batch size",
          "autoattack": "AutoAttack standard", "plan": "cost plan of the full suite"}
NUMBER = re.compile(r"^-?\d+(\.\d+)?(e[-+]?\d+)?( x)?$")


def _blocks(text: str) -> dict[str, str]:
    found = {}
    for chunk in text.split(HEADER)[1:]:
        for stage, title in TITLES.items():
            if chunk.startswith(title):
                assert stage not in found, f"two {stage} blocks"
                found[stage] = chunk
    return found


def _rows(block: str) -> list[list[str]]:
    """The data rows of the block's table (header and separator left out), as stripped cells."""
    lines = [ln for ln in block.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def _numbers(cells: list[str]) -> list[float]:
    out = []
    for c in cells:
        c = c.replace("(differ)", "").replace("*", "").strip()
        if NUMBER.match(c):
            out.append(float(c.removesuffix(" x")))
    return out


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("device") / "bench.md"
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "device.sh"), "--dry-run", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out.read_text()


@pytest.mark.slow
def test_every_stage_leaves_a_block_with_finite_numbers(dry_run):
    blocks = _blocks(dry_run)
    assert set(blocks) == set(TITLES), f"missing: {set(TITLES) - set(blocks)}"
    assert "failed" not in dry_run
    for stage, block in blocks.items():
        assert "CPU (dry run)" in block.splitlines()[0], stage
        if stage == "env":
            assert re.search(r"bf16: peak [\d.]+ TFLOP/s", block)
            continue
        rows = _rows(block)
        assert rows, stage
        for row in rows:
            assert not any(re.match(r"-?(nan|inf)", c.lower()) for c in row), (stage, row)
            values = _numbers(row)
            assert values, (stage, row)
            assert all(math.isfinite(v) for v in values), (stage, row)
    assert [r[0] for r in _rows(blocks["pgd"])] == ["fp32", "bf16"]
    assert [r[0] for r in _rows(blocks["plan"])] == ["image", "audio", "thermal", "video", "**all 4**"]


@pytest.mark.slow
def test_project_and_peers_agree_on_robust_accuracy(dry_run):
    blocks = _blocks(dry_run)
    for row in _rows(blocks["pgd"]):
        project, peer = row[8], row[9]
        assert project == peer, f"{row[0]}: project PGD {project} != torchattacks {peer}"
        assert 0 < float(peer) < 1  # the chosen eps leaves some samples and breaks some: a real comparison
    aa = {r[0]: r[2] for r in _rows(blocks["autoattack"])}
    assert aa["rlbind-bench AutoAttack standard"] == aa["pyautoattack"]
    assert "robust accuracy: equal" in blocks["autoattack"]
