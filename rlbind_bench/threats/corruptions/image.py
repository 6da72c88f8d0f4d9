"""ImageNet-C corruptions (Hendrycks & Dietterich, 2019) for image, thermal and depth inputs.

The 15 common corruptions and the 4 validation ones (speckle_noise, gaussian_blur, spatter, saturate)
are those of `imagecorruptions` 1.1.2, vendored in `ic/` (see its NOTICE), with the same arithmetic.
Their randomness is made per-sample: the library drew from numpy's *global* RNG and, for impulse_noise,
from skimage's random_noise with a fresh, unseeded generator; the vendored functions take both sources as
an argument (`ic.Draws`), seeded here from the sample's generator (`draws_for`). numpy's global state is
never read or written, and calls from several threads do not share any state.

Inputs are float [3, H, W] in [0, 1], H and W >= 32 (the library's minimum). The image is quantised to
uint8 (the library's input type), corrupted, and the result is rounded (the library's own ``corrupt()``
truncates, which darkens every pixel by half a level on average) and returned as float32 [3, H, W].
Any size works: fog builds its plasma map at the next power of two above max(H, W) (256 for 224 inputs).

Thermal and depth inputs are grey maps replicated to 3 channels (LanguageBind's loaders). They are
corrupted as grey: the grey map (channel mean) is replicated, corrupted, and collapsed back to one grey
value per pixel, so colour corruptions (saturate, spatter, frost, brightness) cannot invent colour. The
collapse is the channel mean, except for the per-pixel noises, whose three channels carry independent
noise: averaging them would cut gaussian/speckle noise std by sqrt(3) and smear salt-and-pepper into
grey specks, so for those the first channel is kept (one grey sensor, one noise draw per pixel).
On grey maps saturate is the identity at severities 1-3 (they scale a saturation that is 0) and a
luminance change at 4-5 (which add saturation, then collapse back to grey).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from skimage.filters import gaussian

import rlbind_bench.threats.corruptions.ic as ic
from rlbind_bench.threats.corruptions.base import child_seed, register

IMAGE_MODALITIES = ("image", "thermal", "depth")
GREY_MODALITIES = ("thermal", "depth")
MIN_SIDE = 32

# name -> family, in imagecorruptions' order (15 common, then the 4 validation corruptions). Families
# follow ImageNet-C (brightness is a weather corruption there).
IMAGE_CORRUPTIONS: dict[str, str] = {
    "gaussian_noise": "noise",
    "shot_noise": "noise",
    "impulse_noise": "noise",
    "defocus_blur": "blur",
    "glass_blur": "blur",
    "motion_blur": "blur",
    "zoom_blur": "blur",
    "snow": "weather",
    "frost": "weather",
    "fog": "weather",
    "brightness": "weather",
    "contrast": "digital",
    "elastic_transform": "digital",
    "pixelate": "digital",
    "jpeg_compression": "digital",
    "speckle_noise": "noise",
    "gaussian_blur": "blur",
    "spatter": "weather",
    "saturate": "digital",
}
# Corruptions that draw independent noise per channel (see the module docstring, grey inputs).
PER_CHANNEL_NOISE = frozenset({"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"})



def draws_for(rng: np.random.Generator) -> ic.Draws:
    """The two random sources of a vendored corruption, seeded from the sample's generator. The order of
    the two child seeds is fixed: cached corruptions and earlier results were made with it."""
    legacy = np.random.RandomState(np.random.MT19937(child_seed(rng)))
    return ic.Draws(legacy=legacy, skimage=np.random.default_rng(child_seed(rng)))


def _check_image(x: torch.Tensor) -> None:
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected an image tensor [3, H, W], got shape {tuple(x.shape)}")
    if min(x.shape[1:]) < MIN_SIDE:
        raise ValueError(f"image corruptions need H, W >= {MIN_SIDE} (imagecorruptions' minimum), "
                         f"got {tuple(x.shape[1:])}")


def _to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    x = x.detach().to("cpu", torch.float32).clamp(0.0, 1.0)
    return x.mul(255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def _as_float_hwc(out, height: int, width: int) -> np.ndarray:
    """The library's result (PIL image or array, float or uint8, maybe grey) as float64 [H, W, 3] in 0..255."""
    arr = np.asarray(out, dtype=np.float64)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    arr = arr[..., :3]
    if arr.shape[:2] != (height, width):
        # No corruption of 1.1.2 changes the size at any size tried (32..300, odd sizes); should one
        # return a pixel more or less, it is resampled back rather than cropped, keeping the whole view.
        import cv2

        arr = cv2.resize(arr, (width, height), interpolation=cv2.INTER_LINEAR)
    return arr


def _glass_blur(image: Image.Image, severity: int, draws: ic.Draws) -> np.ndarray:
    """imagecorruptions' glass_blur with its per-pixel Python loop vectorised: the same output, bit for bit,
    about 100x faster (2 s -> 20 ms per 224x224 image: the loop was the slowest corruption of a run).

    The library walks the pixels in reverse raster order and, for an RGB array, its tuple "swap"
    ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` is a copy (the right side holds views, so x[h', w'] is
    written back with the value it already has): x[h, w] <- x[h + dy, w + dx], with the offsets drawn one
    pair per pixel. One batched randint draws the same numbers as the per-pixel calls (legacy RandomState
    consumes its stream element by element either way). A pixel read after it was written in the same
    pass holds its new value, so each write resolves, by pointer jumping, to the original pixel at the
    end of its chain of earlier writes."""
    sigma, delta, iterations = ic.GLASS_BLUR[severity - 1]
    x = np.uint8(gaussian(np.array(image) / 255., sigma=sigma, channel_axis=-1) * 255)
    if x.ndim != 3:  # a grey 2-D array really swaps: keep the library's loop
        return ic.CORRUPTIONS["glass_blur"](image, severity, draws)
    height, width = x.shape[:2]
    hs = np.arange(height - delta, delta, -1)
    ws = np.arange(width - delta, delta, -1)
    target = (hs[:, None] * width + ws[None, :]).ravel()  # flat pixel index written at time k
    h_of, w_of = np.repeat(hs, len(ws)), np.tile(ws, len(hs))
    order = np.full(height * width, np.iinfo(np.int64).max, dtype=np.int64)
    order[target] = np.arange(len(target))
    for _ in range(iterations):
        d = draws.legacy.randint(-delta, delta, size=(len(target), 2))
        source = (h_of + d[:, 1]) * width + (w_of + d[:, 0])
        written_before = order[source]  # time the source pixel was written in this pass (max: never)
        steps = np.arange(len(target))
        link = np.where(written_before < steps, written_before, steps)
        while True:
            jumped = link[link]
            if np.array_equal(jumped, link):
                break
            link = jumped
        flat = x.reshape(height * width, -1)
        flat[target] = flat[source[link]]
    return np.clip(gaussian(x / 255., sigma=sigma, channel_axis=-1), 0, 1) * 255


# Corruptions computed here instead of by the vendored library code, with identical output
# (tests/test_corruptions.py, tests/test_vendored_corruptions.py).
_FAST = {"glass_blur": _glass_blur}


def corrupt_hwc(image: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """One imagecorruptions corruption on a uint8 [H, W, 3] array, as float64 [H, W, 3] in 0..255."""
    height, width = image.shape[:2]
    fn = _FAST.get(name) or ic.CORRUPTIONS[name]
    return _as_float_hwc(fn(Image.fromarray(image), severity, draws_for(rng)), height, width)


def apply_image_corruption(x: torch.Tensor, name: str, severity: int, rng: np.random.Generator,
                           grey: bool = False) -> torch.Tensor:
    """`name` at `severity` on a float [3, H, W] image in [0, 1]; float32 [3, H, W] on x's device."""
    _check_image(x)
    if grey:
        x = x.mean(dim=0, keepdim=True).expand(3, -1, -1)
    out = corrupt_hwc(_to_uint8_hwc(x), name, severity, rng)
    if grey:
        plane = out[..., 0] if name in PER_CHANNEL_NOISE else out.mean(axis=2)
        out = np.repeat(plane[..., None], 3, axis=2)
    out = np.clip(np.rint(out), 0.0, 255.0) / 255.0
    return torch.from_numpy(out.astype(np.float32)).permute(2, 0, 1).contiguous().to(x.device)


def _make(name: str):
    def fn(x: torch.Tensor, severity: int, rng: np.random.Generator, modality: str) -> torch.Tensor:
        return apply_image_corruption(x, name, severity, rng, grey=modality in GREY_MODALITIES)

    fn.__name__ = name
    fn.__qualname__ = name
    return fn


for _name, _family in IMAGE_CORRUPTIONS.items():
    register(_name, IMAGE_MODALITIES, _family, f"imagecorruptions {_name}")(_make(_name))
