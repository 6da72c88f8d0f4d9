"""The 19 corruptions of imagecorruptions 1.1.2, vendored (Apache-2.0; LICENSE and NOTICE in this folder).

Vendored so that the package does not depend on `imagecorruptions` at run time: its metadata requires
`opencv-python` (the GUI build, which would sit beside opencv-python-headless) and it imports pkg_resources.
The arithmetic is the library's; what changed is listed in NOTICE. The main change: the random source is
an argument, `Draws`, instead of numpy's global RNG, so a call is a pure function of (x, severity, draws).

Each function: fn(x: PIL RGB image, severity: 1..5, draws: Draws) -> PIL image or array in 0..255, as
the library returns it. tests/test_vendored_corruptions.py checks every one against the library.
"""

from __future__ import annotations

from rlbind_bench.threats.corruptions.ic.digital import (
    contrast,
    elastic_transform,
    jpeg_compression,
    pixelate,
    saturate,
)
from rlbind_bench.threats.corruptions.ic.helpers import Draws
from rlbind_bench.threats.corruptions.ic.noise_blur import (
    GLASS_BLUR,
    defocus_blur,
    gaussian_blur,
    gaussian_noise,
    glass_blur,
    impulse_noise,
    motion_blur,
    shot_noise,
    speckle_noise,
    zoom_blur,
)
from rlbind_bench.threats.corruptions.ic.weather import brightness, fog, frost, snow, spatter

# The library's corruption_tuple order: the 15 common corruptions, then the 4 validation ones.
CORRUPTIONS = {fn.__name__: fn for fn in (
    gaussian_noise, shot_noise, impulse_noise, defocus_blur, glass_blur, motion_blur, zoom_blur, snow, frost,
    fog, brightness, contrast, elastic_transform, pixelate, jpeg_compression, speckle_noise, gaussian_blur,
    spatter, saturate)}

__all__ = ["CORRUPTIONS", "GLASS_BLUR", "Draws"]
