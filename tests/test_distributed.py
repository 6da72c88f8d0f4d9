"""Runs that span processes: torchrun with 2 ranks (gloo on CPU), a SIGKILL mid-run then the same command again,
Ctrl-C mid-run then the same command again. Each must end with the results of one uninterrupted process:
samples.parquet and summary.parquet equal in every column (exactly), run.json equal but for its times and
command line (and, for torchrun, which rank wrote which part).

The run: the committed demo backbone on 20 real digits, the quick suite (clean, three corruptions) with L-inf
and L2 PGD-20 at eps 1/255 (barely ever broken, so every sample costs its 20 steps), in shards of 4 samples:
5 shard parts of a few seconds each, so that a run can be caught between its first part and its last.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from digit_folders import DEMO_MODEL, TEMPLATE, write_digit_folders

SHARD_SIZE, N_SAMPLES = 4, 20
N_PARTS = N_SAMPLES // SHARD_SIZE
# The run.json keys a rerun may change: times, and where the probes' results came from (the same results).
RUN_TIMES = ("started", "finished", "seconds", "command", "probe_sources")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digit_folders(tmp_path_factory.mktemp("digits"), per_class=N_SAMPLES // 10)


def _cmd(digits: Path, out: Path, launcher: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, *(launcher or ("-m",)), "rlbind_bench", "run", "--model", str(DEMO_MODEL),
            "--suite", "quick", "--eps", "1/255", "--steps", "20", "--dataset-dir", f"image={digits}",
            "--templates", TEMPLATE, "--out", str(out), "--no-progress", "--batch-size", "4"]


def _env(out: Path) -> dict[str, str]:
    # One corruption cache per results folder, as one user rerunning one command would have.
    return dict(os.environ, RLBIND_SHARD_SIZE=str(SHARD_SIZE), OMP_NUM_THREADS="1", RLBIND_DIST_BACKEND="gloo",
                PYTHONWARNINGS="ignore", RLBIND_CACHE_DIR=str(out.parent / f"{out.name}-cache"))


def _run(cmd: list[str], out: Path) -> None:
    proc = subprocess.run(cmd, env=_env(out), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _parts(out: Path) -> list[Path]:
    return sorted((out / "parts").glob("*/*.parquet"))


def _interrupt_mid_run(digits: Path, out: Path, sig: int) -> tuple[int, str]:
    """Start the run, wait until its first part exists while it is still running, send `sig`; (exit code, stderr)."""
    with open(out.parent / f"{out.name}.stderr", "w+") as err:
        proc = subprocess.Popen(_cmd(digits, out), env=_env(out), stdout=subprocess.DEVNULL, stderr=err, text=True)
        deadline = time.monotonic() + 600
        while not _parts(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        running = proc.poll() is None
        if running:
            proc.send_signal(sig)
        proc.wait(timeout=600)
        err.seek(0)
        stderr = err.read()
    assert running, f"the run ended (exit {proc.returncode}) before it could be interrupted: {stderr[-2000:]}"
    done = _parts(out)
    assert 1 <= len(done) < N_PARTS, f"{len(done)} of {N_PARTS} parts when interrupted: not mid-run"
    assert not (out / "samples.parquet").exists()
    return proc.returncode, stderr


def _run_json(out: Path, drop=RUN_TIMES) -> dict:
    run = json.loads((out / "run.json").read_text())
    return {k: v for k, v in run.items() if k not in drop}


def _assert_same_results(out: Path, ref: Path, drop=RUN_TIMES) -> None:
    for table in ("samples.parquet", "summary.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / table), pd.read_parquet(ref / table), check_exact=True)
    assert _run_json(out, drop) == _run_json(ref, drop)


@pytest.fixture(scope="module")
def reference(digits, tmp_path_factory):
    """One uninterrupted process."""
    out = tmp_path_factory.mktemp("reference") / "out"
    _run(_cmd(digits, out), out)
    assert len(_parts(out)) == N_PARTS
    samples = pd.read_parquet(out / "samples.parquet")
    assert len(samples) == N_SAMPLES * (1 + 3 + 2)
    assert samples["attacked"].any()
    return out


def test_sigkill_mid_run_then_rerun_resumes(digits, reference, tmp_path):
    """SIGKILL once the first shard part exists (and the process is still running), then the same command: the
    parts written before the kill are kept as they are (not recomputed), the others are computed, and every
    column of both tables and run.json (but for its times and command) equal the uninterrupted run's.

    Seen to catch (each made the test fail): a rerun that recomputes existing parts (the `if part.is_file()` skip
    removed in runner.py: the kept parts were rewritten), part names that depend on the process (`os.getpid()`
    added to the name: 6 parts, the killed run's beside the rerun's own), and a run_id that depends on the start
    time (`"t": started` hashed into it: the kept parts' rows carry another run_id)."""
    out = tmp_path / "killed"
    returncode, _ = _interrupt_mid_run(digits, out, signal.SIGKILL)
    assert returncode == -signal.SIGKILL
    kept = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _parts(out)}
    _run(_cmd(digits, out), out)
    assert len(_parts(out)) == N_PARTS
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in kept} == kept  # resumed, not recomputed
    _assert_same_results(out, reference)


def test_ctrl_c_mid_run_exits_130_then_rerun_resumes(digits, reference, tmp_path):
    """Ctrl-C (SIGINT) once the first part exists: exit 130 with one line and no traceback, no tables written;
    the same command then ends with the uninterrupted run's results (every column, run.json but for times).

    Seen to catch: the `except KeyboardInterrupt` of cli/__init__.py removed (exit 1 with a traceback)."""
    out = tmp_path / "interrupted"
    returncode, err = _interrupt_mid_run(digits, out, signal.SIGINT)
    assert returncode == 130, err[-2000:]
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert lines[-1].startswith("rlbind-bench: interrupted")
    assert "Traceback" not in err
    _run(_cmd(digits, out), out)
    _assert_same_results(out, reference)


def test_two_torchrun_ranks_share_the_shards_and_equal_one_process(digits, reference, tmp_path):
    """torchrun with 2 ranks: run.json records world_size 2 and which rank wrote each part; both ranks wrote parts,
    every part was written by exactly one rank (shard k by rank k mod 2, none computed twice), and both tables
    equal one process's in every column (run.json too, but for times, world size and the writers).

    Seen to catch: every rank doing every shard (the `shard % world != rank` skip removed in runner.py: every
    part listed with ranks [0, 1])."""
    out = tmp_path / "multi"
    launcher = ("-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m")
    _run(_cmd(digits, out, launcher), out)
    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 2
    parts = _parts(out)
    assert len(parts) == N_PARTS
    writers = run["parts"]
    assert sorted(writers) == sorted(p.relative_to(out / "parts").as_posix() for p in parts)
    assert {name: ranks for name, ranks in writers.items() if len(ranks) != 1} == {}  # no shard computed twice
    assert {name: ranks[0] for name, ranks in writers.items()} == {
        name: int(Path(name).name.split("-")[0]) % 2 for name in writers}  # shard k on rank k mod 2
    assert {ranks[0] for ranks in writers.values()} == {0, 1}  # both ranks wrote parts
    assert len(list((out / "parts").glob("*/*.rank-*.json"))) == N_PARTS
    single = json.loads((reference / "run.json").read_text())
    assert single["world_size"] == 1
    assert all(r == [0] for r in single["parts"].values())
    assert sorted(single["parts"]) == sorted(writers)
    _assert_same_results(out, reference, drop=(*RUN_TIMES, "world_size", "parts"))
