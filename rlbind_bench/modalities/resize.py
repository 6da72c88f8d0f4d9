"""Image geometry in front of the input space: how a decoded RGB photo becomes [3, S, S] in [0, 1].

Two settings of `PreprocessConfig` pick it, each a registry (so a backend names what its upstream does):
- `resize_backend`: "tensor" converts the photo to float first, resizes with antialiasing and clamps to [0, 1]
  (LanguageBind's processors work on tensors); "pil" resizes the 8-bit PIL image (torchvision's functional
  on a PIL image calls PIL's resampler) and only then converts, as open_clip's eval transform does, so
  the input space holds exactly the pixels open_clip's own pipeline feeds its model.
- `resize_mode` (open_clip's `resize_mode`): "shortest" (short side to S, centre crop), "longest" (long side
  to S, centred pad with `fill_color`), "squash" (both sides to S, aspect ratio lost).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from rlbind_bench.errors import ConfigError
from rlbind_bench.modalities.base import PreprocessConfig

INTERPOLATIONS = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR}

# mode -> fn(image (PIL or [C,H,W] tensor), size, interpolation, fill) -> image of [size, size]
Resizer = Callable[[object, int, InterpolationMode, int], object]
RESIZE_MODES: dict[str, Resizer] = {}
# backend -> fn(RGB PIL image, cfg) -> [3, S, S] float tensor in [0, 1]
RESIZE_BACKENDS: dict[str, Callable[[Image.Image, PreprocessConfig], torch.Tensor]] = {}


def _register(table: dict, name: str):
    def deco(fn):
        table[name] = fn
        return fn
    return deco


@_register(RESIZE_MODES, "shortest")
def _shortest(img, size: int, interpolation: InterpolationMode, fill: int):
    img = TF.resize(img, size, interpolation=interpolation, antialias=True)
    return TF.center_crop(img, [size, size])


@_register(RESIZE_MODES, "squash")
def _squash(img, size: int, interpolation: InterpolationMode, fill: int):
    return TF.resize(img, [size, size], interpolation=interpolation, antialias=True)


@_register(RESIZE_MODES, "longest")
def _longest(img, size: int, interpolation: InterpolationMode, fill: int):
    # open_clip's ResizeKeepRatio(longest=1) then CenterCropOrPad, to the pixel: the long side becomes `size`
    # (rounded as open_clip rounds), the short side is padded symmetrically (the odd pixel after).
    _, h, w = TF.get_dimensions(img)
    ratio = max(h / size, w / size)
    img = TF.resize(img, [round(h / ratio), round(w / ratio)], interpolation=interpolation, antialias=True)
    _, h, w = TF.get_dimensions(img)
    if h < size or w < size:
        pad_w, pad_h = max(size - w, 0), max(size - h, 0)
        img = TF.pad(img, [pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2], fill=fill)
        _, h, w = TF.get_dimensions(img)
    top, left = round((h - size) / 2.0), round((w - size) / 2.0)
    return TF.crop(img, top, left, size, size)


def _geometry(cfg: PreprocessConfig) -> tuple[Resizer, InterpolationMode]:
    if cfg.resize_mode not in RESIZE_MODES:
        raise ConfigError(f"unknown image resize_mode {cfg.resize_mode!r} (known: {', '.join(RESIZE_MODES)})")
    if cfg.interpolation not in INTERPOLATIONS:
        raise ConfigError(f"unknown image interpolation {cfg.interpolation!r} (known: {', '.join(INTERPOLATIONS)})")
    return RESIZE_MODES[cfg.resize_mode], INTERPOLATIONS[cfg.interpolation]


@_register(RESIZE_BACKENDS, "tensor")
def _tensor_backend(img: Image.Image, cfg: PreprocessConfig) -> torch.Tensor:
    resize, interpolation = _geometry(cfg)
    # The fill is a 0-255 colour (open_clip's convention); the float image is in [0, 1].
    return resize(TF.to_tensor(img), cfg.image_size, interpolation, cfg.fill_color / 255.0).clamp_(0.0, 1.0)


@_register(RESIZE_BACKENDS, "pil")
def _pil_backend(img: Image.Image, cfg: PreprocessConfig) -> torch.Tensor:
    resize, interpolation = _geometry(cfg)
    return TF.to_tensor(resize(img, cfg.image_size, interpolation, cfg.fill_color))


def to_input_space(img: Image.Image, cfg: PreprocessConfig) -> torch.Tensor:
    """RGB PIL image -> [3, S, S] in [0, 1], with the geometry and resampler `cfg` names."""
    backend = RESIZE_BACKENDS.get(cfg.resize_backend)
    if backend is None:
        raise ConfigError(f"unknown image resize_backend {cfg.resize_backend!r} (known: {', '.join(RESIZE_BACKENDS)})")
    return backend(img, cfg)


def describe(cfg: PreprocessConfig) -> str:
    """The geometry in words, for InputSpace.description (hashed into config_hash: the default's words are
    the ones the input space always had, so LanguageBind and demo rows keep their hashes)."""
    s, interp = cfg.image_size, cfg.interpolation
    words = {"shortest": f"resize({s}, {interp}) + center crop",
             "squash": f"resize({s}x{s}, {interp}), aspect ratio not kept",
             "longest": f"resize(long side {s}, {interp}) + centred pad (fill {cfg.fill_color})"}
    text = words.get(cfg.resize_mode, f"resize mode {cfg.resize_mode}({s}, {interp})")
    return text if cfg.resize_backend == "tensor" else f"8-bit {cfg.resize_backend.upper()} {text}"
