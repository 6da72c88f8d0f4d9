"""LanguageBind's released configuration per modality tower, for `checkpoint build --size vit-l`.

The values are those of the checkpoints on the hub (LanguageBind/LanguageBind_{Image,Video_FT,Audio_FT,Thermal,
Depth}): read from the hub commits where one was seen, else from the repository's training scripts; `source`
says which, and docs/vit-l-checkpoints.md cites each (a test keeps that table equal to this one). The
`languagebind` package's config defaults differ (num_frames 8 for every modality, num_mel_bins 0...), which is
why the builder must not rely on them. The README recommends the fully fine-tuned (FT) video and audio towers;
thermal and depth exist only as LoRA-tuned towers, so their checkpoints carry LoRA weights (rank 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Shared by every released tower: OpenCLIP ViT-L/14 (DataComp.XL) vision trunk and the frozen 12-layer,
# 768-wide OpenCLIP text tower, projected to 768; CLIP BPE vocabulary; temperature initialised at 1/0.07.
VISION = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
          "patch_size": 14, "image_size": 224, "hidden_act": "gelu", "layer_norm_eps": 1e-5}
TEXT = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
        "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "gelu", "layer_norm_eps": 1e-5}
PROJECTION_DIM = 768
LOGIT_SCALE_INIT = 2.6592  # ln(1 / 0.07): the scripts' --init-temp 0.07; the hub configs' logit_scale_init_value


@dataclass(frozen=True)
class ReleasedTower:
    repo: str  # the hub repository whose configuration this is
    vision_extras: dict = field(default_factory=dict)  # LanguageBind's own vision_config keys
    source: str = ""  # where the extras were read


RELEASED: dict[str, ReleasedTower] = {
    "image": ReleasedTower(
        "LanguageBind/LanguageBind_Image",
        {"lora_r": 0, "add_time_attn": False, "num_frames": 1},
        "README: the image encoder is OpenCLIP ViT-L/14 unchanged (no LoRA, no temporal attention)"),
    "video": ReleasedTower(
        "LanguageBind/LanguageBind_Video_FT",
        {"lora_r": 0, "add_time_attn": True, "num_frames": 8, "video_decode_backend": "decord"},
        "training script (num frames 8, add-time-attn); FT = full tuning, so lora_r 0; model zoo table: 8 frames"),
    "audio": ReleasedTower(
        "LanguageBind/LanguageBind_Audio_FT",
        {"lora_r": 0, "add_time_attn": False, "num_frames": 1, "num_mel_bins": 112, "target_length": 1036,
         "audio_sample_rate": 16000, "audio_mean": -4.2677393, "audio_std": 4.5689974},
        "hub config, commit 8a8faf2 (Audio_FT: num_mel_bins 112, target_length 1036, lora_r 0)"),
    "thermal": ReleasedTower(
        "LanguageBind/LanguageBind_Thermal",
        {"lora_r": 2, "lora_alpha": 16, "lora_dropout": 0.0, "add_time_attn": False, "num_frames": 1},
        "training script (LoRA r 2); lora_alpha/dropout as in the Audio LoRA hub config; hub JSON not seen"),
    "depth": ReleasedTower(
        "LanguageBind/LanguageBind_Depth",
        {"lora_r": 2, "lora_alpha": 16, "lora_dropout": 0.0, "add_time_attn": False, "num_frames": 1,
         "max_depth": 10},
        "training script (LoRA r 2, max-depth 10); lora_alpha/dropout as in the Audio LoRA hub config; hub JSON not seen"),
}


def released_configs(modality: str, text_vocab: int) -> tuple[dict, dict]:
    """(text_config, vision_config) of the released `modality` tower; the text vocabulary is padded to CLIP's
    49,408 rows so the embedding table has the real size even though the tokenizer built here is smaller."""
    tower = RELEASED[modality]
    text = {**TEXT, "vocab_size": max(TEXT["vocab_size"], text_vocab), "projection_dim": PROJECTION_DIM}
    vision = {**VISION, "projection_dim": PROJECTION_DIM, **tower.vision_extras}
    return text, vision
