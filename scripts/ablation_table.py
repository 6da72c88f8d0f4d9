"""Print the stage-2 ablation table (Markdown) from scripts/ablate_stage2.sh's output folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

MODALITIES = ("image", "thermal", "audio", "video")


def main(out: Path, variants: list[str]) -> None:
    print("| stage-2 variant | " + " | ".join(f"{m} clean / 4/255" for m in MODALITIES) + " |")
    print("|---" * (len(MODALITIES) + 1) + "|")
    for name in variants:
        summary = pd.read_parquet(out / f"{name}-eval" / "summary.parquet")
        cells = []
        for m in MODALITIES:
            rows = summary[summary["modality"] == m]
            clean = rows[rows["threat"] == "clean"]["accuracy"]
            robust = rows[rows["threat"] != "clean"]["accuracy"]
            cells.append(f"{clean.iloc[0]:.3f} / {robust.iloc[0]:.3f}" if len(clean) and len(robust) else "–")  # noqa: RUF001 (the published tables use an en dash for "no value")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
