"""Matplotlib figures for the leaderboard: accuracy vs eps (per modality and norm, clean at eps 0) and
corruption severity curves (mean accuracy over corruptions per severity, clean at severity 0).

Each plot comes back as PNG and SVG bytes; the HTML page embeds the PNG, the folder keeps both.
Labels come from results: matplotlib would read ``$...$`` in them as mathtext (and may fail to parse
it), so dollar signs are escaped; text is never interpreted any other way.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import pandas as pd

from rlbind_bench.files import slugify
from rlbind_bench.leaderboard.metrics import is_adversarial, is_clean, is_corruption


@dataclass
class Plot:
    name: str  # file stem, unique within the leaderboard
    modality: str
    title: str
    png: bytes
    svg: bytes


def _label(text: str) -> str:
    return str(text).replace("$", r"\$")


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=True)  # headless; no display in CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    return plt, fig, ax


def _render(plt, fig, ax, title: str) -> tuple[bytes, bytes]:
    ax.set_title(_label(title), fontsize=10)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    png, svg = io.BytesIO(), io.BytesIO()
    # Fixed metadata: identical inputs give identical files (no dates, no matplotlib version in SVG ids).
    fig.savefig(png, format="png", metadata={"Software": None})
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "rlbind-bench", "svg.fonttype": "path"}):
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return png.getvalue(), svg.getvalue()


def eps_curves(table: pd.DataFrame, modality: str, slug: str) -> list[Plot]:
    plots = []
    rows = table[table["modality"] == modality]
    adv = rows[is_adversarial(rows)]
    for norm, ng in adv.groupby("norm", sort=True):
        plt, fig, ax = _figure()
        for (model, dataset, threat), tg in ng.groupby(["model", "dataset", "threat"], sort=True):
            clean = rows[is_clean(rows) & (rows["model"] == model) & (rows["dataset"] == dataset)]
            tg = tg.sort_values("eps")
            xs = tg["eps"].tolist()
            ys = tg["accuracy"].tolist()
            if len(clean):
                xs, ys = [0.0, *xs], [float(clean["accuracy"].iloc[0]), *ys]
            if norm == "Linf":
                xs = [x * 255 for x in xs]
            ax.plot(xs, ys, marker="o", label=_label(f"{model} · {dataset} · {threat}"))
        # The multiplication sign is meant: Linf eps are shown in units of 1/255.
        ax.set_xlabel(_label("eps (×1/255)" if norm == "Linf" else f"eps ({norm or 'no norm'})"))  # noqa: RUF001
        ax.set_ylabel("accuracy")
        title = f"{modality}: accuracy vs eps ({norm})"
        png, svg = _render(plt, fig, ax, title)
        plots.append(Plot(f"{slug}-acc-vs-eps-{slugify(norm or 'none')}", modality, title, png, svg))
    return plots


def severity_curves(table: pd.DataFrame, modality: str, slug: str) -> list[Plot]:
    rows = table[table["modality"] == modality]
    corr = rows[is_corruption(rows)]
    if corr.empty:
        return []
    plt, fig, ax = _figure()
    for (model, dataset), g in corr.groupby(["model", "dataset"], sort=True):
        per_sev = g.groupby("severity")["accuracy"].mean().sort_index()
        xs, ys = per_sev.index.tolist(), per_sev.tolist()
        clean = rows[is_clean(rows) & (rows["model"] == model) & (rows["dataset"] == dataset)]
        if len(clean) and not math.isnan(float(clean["accuracy"].iloc[0])):
            xs, ys = [0, *xs], [float(clean["accuracy"].iloc[0]), *ys]
        ax.plot(xs, ys, marker="o", label=_label(f"{model} · {dataset}"))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # severities are levels, not a continuum
    ax.set_xlabel("severity (0 = clean)")
    ax.set_ylabel("mean accuracy over corruptions")
    title = f"{modality}: corruption severity"
    png, svg = _render(plt, fig, ax, title)
    return [Plot(f"{slug}-corruption-severity", modality, title, png, svg)]


def all_plots(table: pd.DataFrame, modalities: dict[str, str]) -> list[Plot]:
    """modalities: modality -> its unique file slug (ModalityView.slug)."""
    out = []
    for modality, slug in modalities.items():
        out += eps_curves(table, modality, slug) + severity_curves(table, modality, slug)
    return out
