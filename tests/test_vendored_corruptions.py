"""The vendored imagecorruptions (threats/corruptions/ic) against the real imagecorruptions 1.1.2, bit for bit.

The reference is the PyPI package (a test dependency only), run the way rlbind-bench ran it before it was
vendored: its module globals `np` and `sk` point, for one call, at proxies whose random sources are the
RandomState and Generator that `image.draws_for` derives from the sample's generator, and its numpy-2 /
scikit-image >= 0.19 breakages are fixed in the same proxies (np.float_, gaussian(multichannel=)), so
nothing outside the library module is patched. Every corruption x severity runs on real photos.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import skimage
import skimage.data
import skimage.util
import torch
import torch.nn.functional as F
from PIL import Image

from rlbind_bench.threats.corruptions import ic
from rlbind_bench.threats.corruptions import image as im
from rlbind_bench.threats.corruptions.base import child_seed, rng_for

SEED = 11
# (photo, H, W): small, so that the library's per-pixel glass_blur loop stays fast; one non-square size.
PHOTOS = [("astronaut", 64, 64), ("chelsea", 64, 64), ("coffee", 40, 72)]


class _Proxy:
    """Attribute access falls through to `target`, except for the names given as overrides."""

    def __init__(self, target: ModuleType | object, **overrides):
        self._target = target
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        return getattr(self._target, name)


def _library() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it imports pkg_resources, which warns about its own deprecation
        return importlib.import_module("imagecorruptions.corruptions")


@contextmanager
def _reference(rng: np.random.Generator):
    """imagecorruptions.corruptions with its randomness drawn from `rng` as rlbind-bench drew it before
    vendoring (a RandomState from the first child seed, skimage's generator from the second)."""
    lib = _library()
    np_random = np.random.RandomState(np.random.MT19937(child_seed(rng)))
    sk_rng = np.random.default_rng(child_seed(rng))
    sk_util = _Proxy(skimage.util, random_noise=functools.partial(skimage.util.random_noise, rng=sk_rng))
    real_gaussian = lib.gaussian

    def gaussian(image, *args, multichannel=None, **kwargs):  # scikit-image >= 0.19 dropped multichannel=
        if multichannel is not None:
            kwargs["channel_axis"] = -1 if multichannel else None
        return real_gaussian(image, *args, **kwargs)

    overrides = {"np": _Proxy(np, random=np_random, float_=np.float64),  # numpy 2 dropped np.float_
                 "sk": _Proxy(skimage, util=sk_util), "gaussian": gaussian, "print": lambda *a, **k: None}
    saved = {key: lib.__dict__[key] for key in overrides if key in lib.__dict__}
    lib.__dict__.update(overrides)
    try:
        yield lib
    finally:
        for key in overrides:
            lib.__dict__.pop(key, None)
        lib.__dict__.update(saved)


def _photo(name: str, height: int, width: int) -> np.ndarray:
    x = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1).float().div(255.0)
    x = F.interpolate(x[None], size=(height, width), mode="bilinear", antialias=True)[0].clamp(0, 1)
    return im._to_uint8_hwc(x)


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return [_photo(*p) for p in PHOTOS]


def _library_output(img: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    with _reference(rng) as lib:
        out = getattr(lib, name)(Image.fromarray(img), severity)
    return im._as_float_hwc(out, *img.shape[:2])


def test_reference_harness_restores_the_library(photos):
    _library_output(photos[0], "fog", 1, rng_for(SEED, "r", "fog", 1))
    lib = _library()
    assert lib.np is np
    assert lib.sk is skimage
    assert "print" not in vars(lib)
    assert not getattr(lib.gaussian, "__qualname__", "").startswith("_reference")


@pytest.mark.parametrize("name", list(im.IMAGE_CORRUPTIONS))
def test_vendored_equals_imagecorruptions(photos, name):
    """Per severity and photo: image.corrupt_hwc (the runtime path, glass_blur's vectorised copy
    included) and the vendored function itself both equal the library, bit for bit."""
    assert list(ic.CORRUPTIONS) == list(im.IMAGE_CORRUPTIONS)  # same names, the library's order
    for k, img in enumerate(photos):
        for severity in range(1, 6):
            sample = f"photo-{k}"
            reference = _library_output(img, name, severity, rng_for(SEED, sample, name, severity))
            runtime = im.corrupt_hwc(img, name, severity, rng_for(SEED, sample, name, severity))
            vendored = im._as_float_hwc(
                ic.CORRUPTIONS[name](Image.fromarray(img), severity,
                                     im.draws_for(rng_for(SEED, sample, name, severity))), *img.shape[:2])
            where = (name, severity, PHOTOS[k])
            assert runtime.dtype == reference.dtype == vendored.dtype, where
            assert np.array_equal(runtime, reference), (where, float(np.abs(runtime - reference).max()))
            assert np.array_equal(vendored, reference), (where, float(np.abs(vendored - reference).max()))


def test_random_corruptions_really_draw(photos):
    """Guards the parity test against a vacuous pass: the random corruptions' outputs depend on the seed."""
    for name in ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur", "motion_blur",
                 "snow", "frost", "fog", "spatter", "elastic_transform"):
        a = im.corrupt_hwc(photos[0], name, 3, np.random.default_rng(0))
        b = im.corrupt_hwc(photos[0], name, 3, np.random.default_rng(1))
        assert not np.array_equal(a, b), name


def test_frost_images_are_the_librarys():
    """The package-data frost images decode to the library's, pixel for pixel (all five it can pick)."""
    import cv2

    from rlbind_bench.threats.corruptions.ic.helpers import FROST_FILES, frost_image

    library_dir = Path(_library().__file__).parent / "frost"
    for idx, filename in enumerate(FROST_FILES):
        image = frost_image(idx)
        assert np.array_equal(image, cv2.imread(str(library_dir / filename))), filename
        assert not image.flags.writeable  # shared by every call through the cache


def test_cache_fingerprint_covers_the_vendored_code():
    from rlbind_bench.threats.corruptions import cache

    here = Path(cache.__file__).parent
    names = {p.relative_to(here).as_posix() for p in cache.code_files()}
    vendored = {p.relative_to(here).as_posix() for p in (here / "ic").rglob("*.py")}
    frost = {f"ic/frost/{f}" for f in ic.helpers.FROST_FILES}
    assert len(vendored) == 5
    assert vendored <= names
    assert frost <= names
    assert {"image.py", "base.py", "video.py", "audio.py"} <= names
    assert "cache.py" not in names
