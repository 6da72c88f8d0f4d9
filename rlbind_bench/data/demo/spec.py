"""What the demo benchmark is made of: classes, splits, dataset names, scales, and the records its builders
share.

Two kinds of dataset: the fine-tune set (the ten digits in four modalities, one class list, so cross-modal
alignment means something) and held-out zero-shot sets never used in fine-tuning (Fashion-MNIST in image,
simulated thermal and video; spoken letters in audio)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rlbind_bench.constants import MODALITIES

CLASS_NAMES: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPLITS: tuple[str, ...] = ("train", "val", "test")

IMAGE_DATASET = "demo-digits-image"
AUDIO_DATASET = "demo-digits-audio"
THERMAL_DATASET = "demo-digits-thermal-sim"
VIDEO_DATASET = "demo-digits-video"
DIGITS_DATASETS: tuple[str, ...] = (IMAGE_DATASET, AUDIO_DATASET, THERMAL_DATASET, VIDEO_DATASET)

# Held-out sets. Class ids are folder names; the reader prompts them with "_" read as a space ("ankle boot").
FASHION_CLASSES: tuple[str, ...] = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                                    "sneaker", "bag", "ankle_boot")  # Fashion-MNIST label order
LETTER_CLASSES: tuple[str, ...] = tuple("abcdefghijklmnopqrstuvwxyz")
FASHION_IMAGE_DATASET = "demo-fashion-image"
FASHION_THERMAL_DATASET = "demo-fashion-thermal-sim"
FASHION_VIDEO_DATASET = "demo-fashion-video"
LETTERS_AUDIO_DATASET = "demo-letters-audio"
HELDOUT_DATASETS: tuple[str, ...] = (FASHION_IMAGE_DATASET, LETTERS_AUDIO_DATASET, FASHION_THERMAL_DATASET,
                                     FASHION_VIDEO_DATASET)

DATASETS: tuple[str, ...] = DIGITS_DATASETS + HELDOUT_DATASETS
DATASET_MODALITIES: dict[str, str] = {IMAGE_DATASET: "image", AUDIO_DATASET: "audio",
                                      THERMAL_DATASET: "thermal", VIDEO_DATASET: "video",
                                      FASHION_IMAGE_DATASET: "image", LETTERS_AUDIO_DATASET: "audio",
                                      FASHION_THERMAL_DATASET: "thermal", FASHION_VIDEO_DATASET: "video"}
DATASET_CLASSES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(DIGITS_DATASETS, CLASS_NAMES),
    **dict.fromkeys((FASHION_IMAGE_DATASET, FASHION_THERMAL_DATASET, FASHION_VIDEO_DATASET), FASHION_CLASSES),
    LETTERS_AUDIO_DATASET: LETTER_CLASSES,
}
# A modality the harness does not know would only fail later, when a run reads the dataset.
if not set(DATASET_MODALITIES.values()) <= set(MODALITIES):
    raise ImportError(f"demo modalities {sorted(DATASET_MODALITIES.values())} not all in {MODALITIES}")

IMAGE_SIZE = 64


@dataclass(frozen=True)
class Scale:
    image: tuple[int, int, int]  # per class: train, val, test
    thermal: tuple[int, int, int]
    video: tuple[int, int, int]
    audio_tts: tuple[int | None, int | None]  # per class: at most this many train / val TTS clips (None: all)


SCALES: dict[str, Scale] = {
    "full": Scale(image=(300, 30, 50), thermal=(300, 30, 50), video=(100, 20, 40), audio_tts=(None, None)),
    "tiny": Scale(image=(3, 2, 2), thermal=(3, 2, 2), video=(2, 1, 2), audio_tts=(4, 2)),
}


@dataclass(frozen=True)
class Row:
    """One sample of a dataset, as manifest.csv lists it."""

    sample_id: str
    split: str
    label: int
    source: str
    licence: str


@dataclass
class BuildContext:
    seed: int
    scale: Scale
    scale_name: str
    sources: dict[str, Path]  # what sources.ensure_sources found
    workers: int
