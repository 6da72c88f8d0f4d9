"""Names and numbers that several layers share; defined once here."""

from __future__ import annotations

# Every modality the harness knows, in the order tables list them.
MODALITIES: tuple[str, ...] = ("image", "thermal", "depth", "audio", "video")
# CLIP's cap on the learned temperature and the scale LanguageBind evaluates at (exp(4.6052) = 100).
LOGIT_SCALE: float = 100.0

# What `rlbind-bench run` evaluates when no --model is given (seed 0 of the demo zoo's RLBind; docs/zoo.md).
DEFAULT_DEMO_MODEL = "demo/rlbind-s0"
