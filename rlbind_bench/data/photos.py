"""A tiny real-photo dataset from the photos that ship inside scikit-image (CC0 / public domain)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# class name -> skimage.data function; each photo gives three crops.
PHOTOS = {"cat": "chelsea", "coffee": "coffee", "rocket": "rocket", "astronaut": "astronaut"}
CROPS = [(0, 0), (24, 36), (48, 12)]
# A larger set for parity tests that want more samples and classes (30 images, 10 classes): the four above
# and six more photos, three of them greyscale (saved as such, so loaders must convert them to RGB).
MORE_PHOTOS = {**PHOTOS, "cameraman": "camera", "moon": "moon", "coins": "coins", "galaxy": "hubble_deep_field",
               "retina": "retina", "microscopy": "immunohistochemistry"}


def prepare_photos(root: Path, photos: dict[str, str] = PHOTOS) -> Path:
    """Write ROOT/<class>/<class><k>.png (by default 12 images, 4 classes); idempotent and deterministic."""
    import skimage.data
    from PIL import Image

    root = Path(root)
    for cls, fn in photos.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        img = getattr(skimage.data, fn)()
        for k, (dy, dx) in enumerate(CROPS):
            path = root / cls / f"{cls}{k}.png"
            if not path.is_file():
                Image.fromarray(np.ascontiguousarray(img[dy:, dx:])).save(path)
    return root
