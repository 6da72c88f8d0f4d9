"""Write docs/zoo-models.md from the model cards in zoo/demo/*/training.json (do not edit the page by hand):
per model its recipe, seed, steps, training time here, logit scale and clean val accuracy per dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zoo", type=Path, default=ROOT / "zoo" / "demo")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "zoo-models.md")
    args = ap.parse_args()
    cards, earlier = {}, {}
    for d in sorted(args.zoo.iterdir()):
        if (d / "training.json").is_file():
            cards[d.name] = json.loads((d / "training.json").read_text())
            # a model trained in phases (the backbone) keeps the earlier phases' cards in phase*/
            earlier[d.name] = [json.loads(p.read_text()) for p in sorted(d.glob("phase*/training.json"))]
    datasets = sorted({k for c in cards.values() for k in c.get("final_metrics", {})})
    lines = ["# The demo zoo's models (written by scripts/zoo_table.py from zoo/demo/*/training.json; do not edit)", "",
             "Clean accuracy on the val split (up to 200 samples per dataset) as each model's card records it. "
             "Seconds: the training's wall time on this 2-core machine (other jobs may have shared it).", "",
             "| model | recipe | seed | steps | seconds | logit scale | " + " | ".join(datasets) + " |",
             "|---" * (6 + len(datasets)) + "|"]
    for name, card in cards.items():
        recipe = card["recipe"]
        phases = [*earlier[name], card]
        steps = " + ".join(str(sum(h["steps"] for h in c["history"])) for c in phases)
        seconds = sum(c["seconds"] for c in phases)
        scales = {m: s for c in phases for h in c["history"] for m, s in (h.get("logit_scale") or {}).items()}
        scale = ", ".join(f"{m} {s:.1f}" for m, s in sorted(scales.items())) or "–"  # noqa: RUF001
        metrics = card.get("final_metrics", {})
        cells = [f"{metrics[d]['val_accuracy']:.3f}" if d in metrics else "–" for d in datasets]  # noqa: RUF001
        lines.append(f"| demo/{name} | {recipe['name']} | {recipe['seed']} | {steps} | {seconds:.0f} | "
                     f"{scale} | " + " | ".join(cells) + " |")
    args.out.write_text("\n".join([*lines, ""]))


if __name__ == "__main__":
    main()
