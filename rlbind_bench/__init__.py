"""rlbind-bench: robustness benchmark and trainer for bound multimodal encoders."""

__version__ = "0.1.0"
