# Vendored from imagecorruptions 1.1.2 (corruptions.py), Apache-2.0, by Michaelis et al.,
# https://github.com/bethgelab/imagecorruptions. Modified: see NOTICE in this folder (the random source is
# passed in, skimage's multichannel=True is channel_axis=-1, zoom_blur logs instead of printing).
"""The noise and blur corruptions: fn(x: PIL image, severity 1..5, draws) -> array in 0..255."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import skimage as sk
from skimage.filters import gaussian

from rlbind_bench.threats.corruptions.ic.helpers import Draws, _motion_blur, clipped_zoom, disk

log = logging.getLogger(__name__)


def gaussian_noise(x, severity, draws: Draws):
    c = [.08, .12, 0.18, 0.26, 0.38][severity - 1]

    x = np.array(x) / 255.
    return np.clip(x + draws.legacy.normal(size=x.shape, scale=c), 0, 1) * 255


def shot_noise(x, severity, draws: Draws):
    c = [60, 25, 12, 5, 3][severity - 1]

    x = np.array(x) / 255.
    return np.clip(draws.legacy.poisson(x * c) / float(c), 0, 1) * 255


def impulse_noise(x, severity, draws: Draws):
    c = [.03, .06, .09, 0.17, 0.27][severity - 1]

    x = sk.util.random_noise(np.array(x) / 255., mode='s&p', amount=c, rng=draws.skimage)
    return np.clip(x, 0, 1) * 255


def speckle_noise(x, severity, draws: Draws):
    c = [.15, .2, 0.35, 0.45, 0.6][severity - 1]

    x = np.array(x) / 255.
    return np.clip(x + x * draws.legacy.normal(size=x.shape, scale=c), 0, 1) * 255


def gaussian_blur(x, severity, draws: Draws):
    c = [1, 2, 3, 4, 6][severity - 1]

    x = gaussian(np.array(x) / 255., sigma=c, channel_axis=-1)
    return np.clip(x, 0, 1) * 255


# sigma, max_delta, iterations
GLASS_BLUR = [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)]


def glass_blur(x, severity, draws: Draws):
    """The library's per-pixel loop (slow: image.py runs a vectorised copy with the same output)."""
    c = GLASS_BLUR[severity - 1]

    x = np.uint8(
        gaussian(np.array(x) / 255., sigma=c[0], channel_axis=-1) * 255)
    x_shape = np.array(x).shape

    # locally shuffle pixels
    for _ in range(c[2]):
        for h in range(x_shape[0] - c[1], c[1], -1):
            for w in range(x_shape[1] - c[1], c[1], -1):
                dx, dy = draws.legacy.randint(-c[1], c[1], size=(2,))
                h_prime, w_prime = h + dy, w + dx
                # swap
                x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]

    return np.clip(gaussian(x / 255., sigma=c[0], channel_axis=-1), 0,
                   1) * 255


def defocus_blur(x, severity, draws: Draws):
    c = [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)][severity - 1]

    x = np.array(x) / 255.
    kernel = disk(radius=c[0], alias_blur=c[1])

    channels = []
    if len(x.shape) < 3 or x.shape[2] < 3:
        channels = np.array(cv2.filter2D(x, -1, kernel))
    else:
        for d in range(3):
            channels.append(cv2.filter2D(x[:, :, d], -1, kernel))
        channels = np.array(channels).transpose((1, 2, 0))

    return np.clip(channels, 0, 1) * 255


def motion_blur(x, severity, draws: Draws):
    shape = np.array(x).shape
    c = [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)][severity - 1]
    x = np.array(x)

    angle = draws.legacy.uniform(-45, 45)
    x = _motion_blur(x, radius=c[0], sigma=c[1], angle=angle)

    if len(x.shape) < 3 or x.shape[2] < 3:
        gray = np.clip(np.array(x).transpose((0, 1)), 0, 255)
        # (sic: the library's condition; a 2-D input raises IndexError on shape[2])
        if len(shape) >= 3 or shape[2] >= 3:
            return np.stack([gray, gray, gray], axis=2)
        else:
            return gray
    else:
        return np.clip(x, 0, 255)


def zoom_blur(x, severity, draws: Draws):
    c = [np.arange(1, 1.11, 0.01),
         np.arange(1, 1.16, 0.01),
         np.arange(1, 1.21, 0.02),
         np.arange(1, 1.26, 0.02),
         np.arange(1, 1.31, 0.03)][severity - 1]

    x = (np.array(x) / 255.).astype(np.float32)
    out = np.zeros_like(x)

    set_exception = False
    for zoom_factor in c:
        if len(x.shape) < 3 or x.shape[2] < 3:
            x_channels = np.array([x, x, x]).transpose((1, 2, 0))
            zoom_layer = clipped_zoom(x_channels, zoom_factor)
            zoom_layer = zoom_layer[:x.shape[0], :x.shape[1], 0]
        else:
            zoom_layer = clipped_zoom(x, zoom_factor)
            zoom_layer = zoom_layer[:x.shape[0], :x.shape[1], :]

        try:
            out += zoom_layer
        except ValueError:
            set_exception = True
            out[:zoom_layer.shape[0], :zoom_layer.shape[1]] += zoom_layer

    if set_exception:
        # The library printed this; the recovery is fine, and a print would break into the progress display.
        log.debug('ValueError for zoom blur, Exception handling')
    x = (x + out) / (len(c) + 1)
    return np.clip(x, 0, 1) * 255
