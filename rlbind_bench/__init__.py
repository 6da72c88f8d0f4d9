"""rlbind-bench: robustness benchmark and trainer for bound multimodal encoders."""

# The one place the version is written: pyproject.toml reads it from here (dynamic version), and
# `rlbind-bench --version`, run.json provenance and the wheel's metadata follow it.
__version__ = "0.1.0"
