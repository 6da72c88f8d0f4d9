"""Safe checkpoint reading: configs are JSON data, weights are tensors, nothing executes.

Safetensors first; a pickle (`pytorch_model.bin`) only through `torch.load(weights_only=True)`, which
refuses any object that is not a tensor or a plain container. Remote code is refused outright.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from rlbind_bench.errors import CheckpointError
from rlbind_bench.files import file_sha256, write_text_atomic
from rlbind_bench.paths import user_cache_dir

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HUB_ALLOW_PATTERNS = ["config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json",
                      "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json"]


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"checkpoint {folder} has no config.json")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint {folder}: config.json is not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"checkpoint {folder}: config.json is not a JSON object")
    if "auto_map" in config or config.get("trust_remote_code"):
        raise CheckpointError(f"checkpoint {folder} asks to run its own code (auto_map/trust_remote_code); "
                              "rlbind-bench never executes code from checkpoints")
    return config


def weights_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"checkpoint {folder} has no weights ({' or '.join(WEIGHT_FILES)})")


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read weights without executing anything from the file."""
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read {path}: corrupt or truncated safetensors ({exc})") from exc
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (zip), EOFError: all mean "not safe weights"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"refusing or unable to read {path} as plain tensors: {first}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a flat state dict of tensors")
    return state


def cached_file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, cached by (absolute path, size, mtime) under the user cache: the weights are
    hashed once, and a copied or re-downloaded checkpoint gets the same digest as the original."""
    path = Path(path).resolve()
    st = path.stat()
    key = hashlib.sha256(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    entry = user_cache_dir() / "digests" / f"{key}.sha256"
    try:
        cached = entry.read_text().strip()
        if len(cached) == 64:
            return cached
    except OSError:
        pass
    digest = file_sha256(path)
    with contextlib.suppress(OSError):  # an unwritable cache only costs the next run a re-hash
        write_text_atomic(entry, digest + "\n")
    return digest


def tower_fingerprint(folder: Path) -> str:
    """sha256 (16 hex) of config.json and the weights' content: independent of where the checkpoint lies, so
    the rows' config_hash stays the same for a copied or re-downloaded checkpoint (the path goes to run.json)."""
    h = hashlib.sha256()
    h.update((folder / "config.json").read_bytes())
    w = weights_file(folder)
    h.update(f"{w.name}:{cached_file_sha256(w)}".encode())
    return h.hexdigest()[:16]


def resolve_checkpoint(ref: str) -> Path:
    """A local folder as is; otherwise a hub id, downloaded (or taken from the HF cache)."""
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"checkpoint {ref} is a file; give the checkpoint folder (config.json + weights)")
        return path
    if ref.count("/") != 1 or ref.startswith((".", "/", "~")):
        raise CheckpointError(f"checkpoint {ref} does not exist")
    try:
        # huggingface_hub pulls in an HTTP stack; only hub ids need it, local folders never do.
        from huggingface_hub import snapshot_download

        local = snapshot_download(repo_id=ref, allow_patterns=HUB_ALLOW_PATTERNS,
                                  local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1")
    except Exception as exc:  # offline, unknown repo, auth: all the same to the user
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot fetch {ref} from the Hugging Face hub and it is not in the local cache "
                              f"({type(exc).__name__}: {reason})") from exc
    return Path(local)
