"""Build LanguageBind-format checkpoints (HF folder: config.json, model.safetensors, tokenizer files).

The hub is unreachable in CI and on many laptops, so tests, the interim demo and the benchmarks build
small checkpoints with languagebind's own classes, in exactly the format the hub serves: the loader
cannot tell them apart from downloaded ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from rlbind_bench import _compat
from rlbind_bench.encoders.released_configs import LOGIT_SCALE_INIT, released_configs

# A byte-level BPE vocabulary small enough to build here: 256 byte symbols, the same with the end-of-word
# marker, a few merges, and the two CLIP specials last (CLIP pools the text at the highest token id).
_COMMON_MERGES = ["t h", "a </w>", "th e</w>", "o f</w>", "p h", "ph o", "pho t", "phot o</w>", "i n", "e r"]


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def write_clip_tokenizer(folder: Path) -> int:
    """Write vocab.json, merges.txt and the tokenizer configs; return the vocabulary size."""
    symbols = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    for merge in _COMMON_MERGES:
        merged = merge.replace(" ", "")
        vocab.setdefault(merged, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_COMMON_MERGES) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "do_lower_case": True}))
    return len(vocab)


@dataclass(frozen=True)
class TowerSize:
    """Width and depth of both towers. `tiny` runs in milliseconds on a CPU; `vit-b` and `vit-l` are the
    real sizes, for throughput figures (ViT-L/14 is LanguageBind's size)."""

    hidden: int
    layers: int
    heads: int
    mlp: int
    patch: int
    projection: int
    text_hidden: int
    text_layers: int
    text_heads: int


TOWER_SIZES: dict[str, TowerSize] = {
    "tiny": TowerSize(64, 2, 4, 128, 32, 32, 64, 2, 4),
    "small": TowerSize(192, 4, 4, 768, 32, 128, 128, 2, 4),
    "vit-b": TowerSize(768, 12, 12, 3072, 16, 512, 512, 12, 8),
    "vit-l": TowerSize(1024, 24, 16, 4096, 14, 768, 768, 12, 12),
}
# Sizes built with LanguageBind's released configuration of each tower (encoders/released_configs.py), not the
# demo-sized extras below.
RELEASED_SIZES = frozenset({"vit-l"})

# Modality-specific vision_config extras, as LanguageBind's own checkpoints carry them.
_MODALITY_EXTRAS: dict[str, dict] = {
    "image": {},
    "thermal": {},
    "depth": {"max_depth": 10},
    "audio": {"num_mel_bins": 64, "target_length": 256, "audio_sample_rate": 16000,
              "audio_mean": -4.2677393, "audio_std": 4.5689974},
    "video": {"add_time_attn": True, "num_frames": 4, "video_decode_backend": "decord"},
}


def build_languagebind_checkpoint(out_dir: str | Path, modality: str, size: str = "tiny", seed: int = 0,
                                  lora_r: int = 0, text_state: dict | None = None,
                                  **vision_overrides) -> Path:
    """Create a random-init LanguageBind checkpoint for `modality` with languagebind's own classes. `vit-l`
    takes every setting from LanguageBind's released tower for that modality (released_configs.RELEASED); the
    other sizes use demo-sized inputs (_MODALITY_EXTRAS: 4 video frames, 64 mel bins).

    `text_state` (a text tower state dict) makes several modality checkpoints share one text tower, as
    LanguageBind's released checkpoints do.
    """
    lb = _compat.import_languagebind()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = write_clip_tokenizer(out)
    if size in RELEASED_SIZES:
        text_config, vision_config = released_configs(modality, vocab_size)
        vision_config["lora_r"] = lora_r or vision_config.get("lora_r", 0)
        vision_config.update(vision_overrides)
        projection = vision_config["projection_dim"]
    else:
        dims = TOWER_SIZES[size]
        text_config = {
            "vocab_size": vocab_size, "hidden_size": dims.text_hidden, "intermediate_size": dims.text_hidden * 4,
            "num_hidden_layers": dims.text_layers, "num_attention_heads": dims.text_heads,
            "max_position_embeddings": 77, "projection_dim": dims.projection,
        }
        vision_config = {
            "hidden_size": dims.hidden, "intermediate_size": dims.mlp, "num_hidden_layers": dims.layers,
            "num_attention_heads": dims.heads, "patch_size": dims.patch, "image_size": 224,
            "projection_dim": dims.projection, "lora_r": lora_r, **_MODALITY_EXTRAS[modality], **vision_overrides,
        }
        projection = dims.projection
    # CLIP pools the text at the end-of-text token, the tokenizer's highest id.
    text_config.update(bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)
    config_cls = lb.config_dict[modality]
    model_cls = lb.model_dict[modality]
    config = config_cls(text_config=text_config, vision_config=vision_config, projection_dim=projection,
                        logit_scale_init_value=LOGIT_SCALE_INIT)
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    if text_state is not None:
        own = {k: v for k, v in model.state_dict().items() if k.startswith(("text_model.", "text_projection."))}
        missing = set(own) - set(text_state)
        if missing:
            raise ValueError(f"text_state lacks {sorted(missing)[:3]}")
        model.load_state_dict({**model.state_dict(), **{k: text_state[k] for k in own}})
    model.save_pretrained(out, safe_serialization=True)
    return out


def text_tower_state(folder: str | Path) -> dict[str, torch.Tensor]:
    """The text tower of a saved checkpoint, to share it with another modality's checkpoint."""
    state = load_file(str(Path(folder) / "model.safetensors"))
    return {k: v for k, v in state.items() if k.startswith(("text_model.", "text_projection."))}
