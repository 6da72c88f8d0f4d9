"""Whole-process measurements: wall time and peak resident memory of one `rlbind-bench` command, and the
LanguageBind-size tower check (one process per modality: 1 sample, 1 PGD step, probes off).

Peak memory is the child's own ru_maxrss from wait4 (not this process's, not other children's), so a
benchmark that measures several commands in a row gets each one's figure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The released towers' per-modality probe data: demo digit sets, and for depth (no demo set) real photos
# turned into 16-bit depth maps in millimetres.
TOWER_DATASETS = {"image": "demo-digits-image", "audio": "demo-digits-audio", "thermal": "demo-digits-thermal-sim",
                  "video": "demo-digits-video"}


@dataclass(frozen=True)
class Measured:
    argv: list[str]
    seconds: float
    peak_rss_bytes: int
    returncode: int
    output: str  # stdout and stderr together, the last 4,000 characters


def run_measured(argv: list[str], env: dict | None = None) -> Measured:
    """Run `python -m rlbind_bench ARGV` in a fresh process; its wall time and its own peak RSS."""
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "rlbind_bench", *argv], stdout=log,
                                stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        log.seek(0)
        output = log.read().decode(errors="replace")[-4000:]
    return Measured(list(argv), seconds, usage.ru_maxrss * 1024, proc.returncode, output)


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc; None elsewhere): the interpreter start and the imports a
    run pays before its first line of work."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return max(0.0, time.time() - (boot + ticks / os.sysconf("SC_CLK_TCK")))


def started_as_cli() -> bool:
    """Whether this process was started to run one rlbind-bench command (the console script or `python -m
    rlbind_bench`), so that its age is that command's start-up, not a notebook's or a test session's."""
    first = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    return first.name == "rlbind-bench" or (first.name == "__main__.py" and first.parent.name == "rlbind_bench")


def depth_folder(root: Path) -> Path:
    """ROOT/<class>/<name>.png: the real photos of data/photos.py as 16-bit depth maps (grey level x 40 mm,
    so up to 10.2 m: the whole of LanguageBind's max_depth range)."""
    import cv2

    from rlbind_bench.data.photos import prepare_photos

    photos = prepare_photos(Path(root) / "photos")
    out = Path(root) / "depth"
    for src in sorted(photos.rglob("*.png")):
        dest = out / src.parent.name / src.name
        if not dest.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            grey = cv2.imread(str(src), cv2.IMREAD_GRAYSCALE)
            cv2.imwrite(str(dest), grey.astype(np.uint16) * 40)
    return out


def tower_run_argv(modality: str, checkpoint: Path, out: Path, work: Path) -> list[str]:
    """The tower check's command: the released tower on 1 sample, L-inf PGD with 1 step at 1/255, no probes."""
    data = (["--datasets", TOWER_DATASETS[modality]] if modality in TOWER_DATASETS
            else ["--dataset-dir", f"{modality}={depth_folder(work)}"])
    return ["run", "--model", str(checkpoint), "--modalities", modality, *data, "--n-samples", "1",
            "--threats", "linf-pgd", "--eps", "1/255", "--steps", "1", "--probe-samples", "0", "--no-progress",
            "--out", str(out)]
