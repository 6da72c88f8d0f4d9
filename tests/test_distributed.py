"""torchrun sharding (gloo on CPU) and resume after SIGKILL give the rows of one uninterrupted process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pandas as pd

ROW_COLUMNS = ["run_id", "model", "modality", "dataset", "sample_id", "label", "threat", "eps", "severity",
               "config_hash", "clean_pred", "pred", "correct", "perturbation_norm", "margin"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _args(checkpoints, photo_dir, out):
    return ["run", "--model", str(checkpoints["image"]), "--dataset-dir", f"image={photo_dir}", "--templates",
            "a photo of a {}.", "--threats", "linf-pgd", "--eps", "2/255", "--steps", "3", "--out", str(out),
            "--no-progress", "--batch-size", "2"]


def _env(tmp_path):
    env = dict(os.environ, RLBIND_SHARD_SIZE="3", OMP_NUM_THREADS="1", RLBIND_DIST_BACKEND="gloo",
               PYTHONWARNINGS="ignore")
    env["RLBIND_CACHE_DIR"] = str(tmp_path / "cache")
    return env


def _rows(out):
    return pd.read_parquet(out / "samples.parquet")[ROW_COLUMNS]


def test_two_torchrun_ranks_equal_one_process(checkpoints, photo_dir, tmp_path):
    env = _env(tmp_path)
    single, multi = tmp_path / "single", tmp_path / "multi"
    subprocess.run([sys.executable, "-m", "rlbind_bench"] + _args(checkpoints, photo_dir, single), env=env,
                   check=True, capture_output=True, timeout=600)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(_free_port()), "-m", "rlbind_bench"]
                          + _args(checkpoints, photo_dir, multi), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((multi / "parts").rglob("*.parquet"))) == 4  # 12 samples / shard size 3
    pd.testing.assert_frame_equal(_rows(single), _rows(multi))


def test_sigkill_at_several_points_then_resume(checkpoints, photo_dir, tmp_path):
    env = _env(tmp_path)
    reference = tmp_path / "ref"
    subprocess.run([sys.executable, "-m", "rlbind_bench"] + _args(checkpoints, photo_dir, reference), env=env,
                   check=True, capture_output=True, timeout=600)
    expected = _rows(reference)
    for delay in (4.0, 7.0, 10.0):
        out = tmp_path / f"killed-{delay}"
        proc = subprocess.Popen([sys.executable, "-m", "rlbind_bench"] + _args(checkpoints, photo_dir, out), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        subprocess.run([sys.executable, "-m", "rlbind_bench"] + _args(checkpoints, photo_dir, out), env=env,
                       check=True, capture_output=True, timeout=600)
        pd.testing.assert_frame_equal(expected, _rows(out))


def test_ctrl_c_stops_cleanly_and_resumes(checkpoints, photo_dir, tmp_path):
    env = _env(tmp_path)
    reference = tmp_path / "ref"
    subprocess.run([sys.executable, "-m", "rlbind_bench"] + _args(checkpoints, photo_dir, reference), env=env,
                   check=True, capture_output=True, timeout=600)
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "rlbind_bench"] + _args(checkpoints, photo_dir, out), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode != 0:  # interrupted (it may also have finished first on a fast machine)
        assert proc.returncode == 130, err[-2000:]
        lines = [x for x in err.strip().splitlines() if x.strip()]
        assert lines[-1].startswith("rlbind-bench: interrupted") and "Traceback" not in err
        assert not (out / "samples.parquet").exists()
    subprocess.run([sys.executable, "-m", "rlbind_bench"] + _args(checkpoints, photo_dir, out), env=env,
                   check=True, capture_output=True, timeout=600)
    pd.testing.assert_frame_equal(_rows(reference), _rows(out))
