"""The demo family's trainable modality towers: small per-sample CNNs projecting into the text space.

Each tower is well under 1M parameters and normalised with GroupNorm/LayerNorm only (no BatchNorm, no
dropout: eval outputs of one sample never depend on the rest of the batch):
- image, thermal: a small residual CNN over the normalised [B, 3, S, S] pixels, global average pool,
  LayerNorm, Linear -> D;
- audio: the same kind of CNN over LanguageBind's 3-chunk kaldi fbank [B, 3, mel, target_length]
  (64 mel bins, 100 frames = 1 s at a 10 ms shift; longer clips are chunked by KaldiFbank);
- video: a lighter frame CNN applied to every frame, a residual temporal conv over the frame features,
  mean over time, LayerNorm, Linear -> D.
Every tower carries a learnable temperature (log scale, init log(1/0.07), as CLIP/LanguageBind), so that a
contrastive trainer updating `tower.parameters()` learns it too.

Parameter names and shapes are those of the committed zoo checkpoints (zoo/demo/*/model.safetensors).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

INIT_LOGIT_SCALE = 1.0 / 0.07

# Tower architectures. "cnn": stem conv (kernel = stride = `stem`) then one stage per width; each stage is
# a stride-2 conv (except the first) followed by `depth` residual conv blocks. "video": a "cnn" frame
# encoder + a residual temporal conv (kernel `temporal_kernel`) + mean over time.
DEFAULT_TOWERS: dict[str, dict] = {
    "image": {"kind": "cnn", "stem": 2, "widths": [32, 64, 128, 160], "depth": 1},
    "thermal": {"kind": "cnn", "stem": 2, "widths": [32, 64, 128, 160], "depth": 1},
    "audio": {"kind": "cnn", "stem": 2, "widths": [32, 64, 128, 160], "depth": 1},
    "video": {"kind": "video", "stem": 4, "widths": [32, 64, 128], "depth": 1, "temporal_kernel": 3},
}


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


class ConvBlock(nn.Module):
    """conv3x3 -> GroupNorm -> GELU, optionally residual (same shape)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, residual: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm = nn.GroupNorm(_groups(cout), cout)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.norm(self.conv(x)))
        return x + y if self.residual else y


class ConvNet(nn.Module):
    """[B, 3, H, W] -> [B, widths[-1]] (global average pool). Per-sample: no batch statistics."""

    def __init__(self, widths: Sequence[int], stem: int = 2, depth: int = 1, in_channels: int = 3):
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths:
            raise ValueError("a CNN tower needs at least one width")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], stem, stride=stem, bias=False),
                                  nn.GroupNorm(_groups(widths[0]), widths[0]), nn.GELU())
        layers: list[nn.Module] = []
        prev = widths[0]
        for i, w in enumerate(widths):
            if i > 0:
                layers.append(ConvBlock(prev, w, stride=2))
            layers.extend(ConvBlock(w, w, residual=True) for _ in range(int(depth)))
            prev = w
        self.stages = nn.Sequential(*layers)
        self.out_dim = prev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean(dim=(-2, -1))


class VideoNet(nn.Module):
    """[B, 3, T, H, W] (LanguageBind's layout) -> [B, C]: frame CNN, residual temporal conv, mean over T."""

    def __init__(self, widths: Sequence[int], stem: int = 4, depth: int = 1, temporal_kernel: int = 3):
        super().__init__()
        self.frames = ConvNet(widths, stem=stem, depth=depth)
        c = self.frames.out_dim
        k = int(temporal_kernel)
        self.temporal = nn.Conv1d(c, c, k, padding=k // 2, groups=1, bias=False)
        self.temporal_norm = nn.GroupNorm(_groups(c), c)
        self.out_dim = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        feats = self.frames(frames).view(b, t, -1).transpose(1, 2)  # [B, C, T]
        feats = feats + F.gelu(self.temporal_norm(self.temporal(feats)))
        return feats.mean(dim=-1)


# Backbone per architecture "kind"; a new kind is one entry here.
BACKBONES: dict[str, type[nn.Module]] = {"cnn": ConvNet, "video": VideoNet}


class DemoTower(nn.Module):
    """One modality's trainable part: backbone -> LayerNorm -> Linear to the text space, and its temperature."""

    def __init__(self, arch: dict, embed_dim: int):
        super().__init__()
        kind = arch.get("kind", "cnn")
        opts = {k: v for k, v in arch.items() if k != "kind"}
        if kind not in BACKBONES:
            raise ValueError(f"unknown demo tower kind {kind!r} (known: {', '.join(BACKBONES)})")
        self.backbone = BACKBONES[kind](**opts)
        self.norm = nn.LayerNorm(self.backbone.out_dim)
        self.projection = nn.Linear(self.backbone.out_dim, embed_dim, bias=False)
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(INIT_LOGIT_SCALE)))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.projection(self.norm(self.backbone(pixel_values)))
