"""What a run records about where its numbers came from: versions, git commit, device, times."""

from __future__ import annotations

import importlib.metadata as md
import platform
import subprocess
import time
from pathlib import Path

import torch

from rlbind_bench import __version__

# Packages whose versions can change a number; recorded in every run.json.
RECORDED_PACKAGES = ("torch", "torchvision", "torchaudio", "transformers", "languagebind", "torchattacks",
                     "pyautoattack", "numpy", "scipy", "scikit-image", "opencv-python", "opencv-python-headless",
                     "Pillow", "pandas", "pyarrow")


def provenance() -> dict:
    versions = {}
    for pkg in RECORDED_PACKAGES:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"rlbind_bench": __version__, "packages": versions, "python": platform.python_version(),
            "platform": platform.platform(), "git": git_hash()}


def git_hash() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def iso_time(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def cpu_model() -> str:
    """The processor's model name (Linux: /proc/cpuinfo), else the architecture. CPU float sums differ between
    processor models, so rows are bit-reproducible on the same model, not always across models."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.machine()} {cpu_model()} ({torch.get_num_threads()} threads)"
