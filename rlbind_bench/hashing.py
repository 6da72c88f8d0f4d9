"""The one content hash of a configuration: what `config_hash` and `run_id` are made of.

Torch-free, so that the `check` gate starts without loading torch.
"""

from __future__ import annotations

import hashlib
import json


def config_hash(obj: dict) -> str:
    """16 hex digits of sha256 over canonical JSON (sorted keys; non-JSON values by str())."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
