"""Per-modality leaderboard tables (a renderer-neutral view) and their Markdown rendering.

Every string that comes from results (model names, datasets, threats, check names) is untrusted: it is
escaped for Markdown *and* HTML (GitHub renders inline HTML in Markdown) by `md_escape` at render time,
never before, so the views keep raw text and each renderer escapes for its own target.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field

import pandas as pd

from rlbind_bench.files import slugify
from rlbind_bench.leaderboard.merge import CONFLICT_FLAG, Merged
from rlbind_bench.leaderboard.metrics import (
    DatasetAggregate,
    aggregate,
    cell_label,
    eps_unit,
    is_adversarial,
    is_clean,
    is_corruption,
)

CHECK_MARK = "⚠"
CONFLICT_MARK = "‡"
REFERENCE_MARK = "(reference)"
# Inline Markdown that could change what a cell shows: emphasis, code, links/images ([ ]), table
# separators, GFM strikethrough and math ($). < > & " ' are left to HTML escaping: a backslash in front of
# an entity would print the entity itself.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")
# Block syntax only matters at the start of a line: headings, lists, quotes, ordered lists.
_MD_LEADING = re.compile(r"^(\d*)([#+\-=]|(?<=\d)[.)](?=\s|$))")


def md_escape(text, line_start: bool = False) -> str:
    """Escape for a Markdown table cell, heading or list item that may hold inline HTML: backslash the
    Markdown punctuation, then HTML-escape (&, <, >, quotes), and flatten newlines (they would end the row).
    line_start: the text begins a line, so block syntax (# - + = 1.) is escaped too."""
    text = _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))
    if line_start:
        text = _MD_LEADING.sub(r"\1\\\2", text)
    return html.escape(text, quote=True)


@dataclass
class Cell:
    """One table cell. kind: acc (fraction, shown in %), ratio (mCE, in %), num (shown as is), text, int."""

    kind: str
    value: float | str | None = None
    ci: tuple[float, float] | None = None
    delta_pts: float | None = None  # vs the reference model, percentage points
    marks: tuple[str, ...] = ()

    @property
    def sort_key(self):
        if self.kind == "text":
            return str(self.value or "")
        return None if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)) else self.value

    def plain(self) -> str:
        """Unescaped display text (renderers escape it)."""
        v = self.value
        if self.kind == "text":
            text = str(v)
        elif v is None or (isinstance(v, float) and math.isnan(v)):
            text = "—"
        elif self.kind == "int":
            text = str(int(v))
        elif self.kind == "num":
            text = f"{v:.3f}"
        else:
            text = f"{v * 100:.1f}"
            if self.ci is not None and not any(math.isnan(x) for x in self.ci):
                text += f" [{self.ci[0] * 100:.1f}, {self.ci[1] * 100:.1f}]"
            if self.delta_pts is not None and not math.isnan(self.delta_pts):
                text += f" (Δ {self.delta_pts:+.1f})"
        return " ".join([text, *self.marks])


@dataclass
class TableView:
    title: str
    columns: list[str]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)  # raw text footnotes


@dataclass
class DatasetView:
    dataset: str
    tables: list[TableView]


@dataclass
class ModalityView:
    modality: str
    slug: str
    datasets: list[DatasetView]


def _acc_cell(row, ref_row, notes: list[str], model: str, column: str) -> Cell:
    if row is None:
        return Cell("acc")
    marks = []
    if row.checks_failed:
        marks.append(CHECK_MARK)
        notes.append(f"{CHECK_MARK} {model} — {column}: failed sanity checks {row.checks_failed.replace(',', ', ')}")
    if CONFLICT_FLAG in (row.flags or ""):
        marks.append(CONFLICT_MARK)
        notes.append(f"{CONFLICT_MARK} {model} — {column}: measured under different configs across runs; "
                     "the newest run is shown")
    delta = None
    if ref_row is not None and ref_row is not row:
        delta = (row.accuracy - ref_row.accuracy) * 100
    return Cell("acc", float(row.accuracy), (float(row.ci_low), float(row.ci_high)), delta, tuple(marks))


def _model_cell(model: str, reference: str | None) -> Cell:
    return Cell("text", model, marks=(REFERENCE_MARK,) if model == reference else ())


def _columns(rows: pd.DataFrame) -> list[tuple[tuple, str]]:
    keys = rows[["threat", "norm", "eps", "severity"]].drop_duplicates()
    keys = keys.sort_values(["threat", "norm", "eps", "severity"], kind="stable")
    units = dict(zip(rows["threat"], rows["attack"].map(eps_unit), strict=True))  # dB threats label "-30 dB"
    return [(tuple(k), cell_label(*k, unit=units.get(k.threat, ""))) for k in keys.itertuples(index=False)]


def _lookup(rows: pd.DataFrame) -> dict:
    out = {}
    for r in rows.itertuples():
        eps = "nan" if math.isnan(r.eps) else f"{r.eps:.8g}"
        out[(r.model, r.threat, r.norm, eps, int(r.severity))] = r
    return out


def _get(lookup: dict, model: str, key: tuple):
    threat, norm, eps, severity = key
    eps = "nan" if math.isnan(eps) else f"{eps:.8g}"
    return lookup.get((model, threat, norm, eps, int(severity)))


def _adversarial_table(grp: pd.DataFrame, models: list[str], aggs: dict, reference: str | None) -> TableView:
    notes: list[str] = []
    clean_rows = grp[is_clean(grp)]
    adv = grp[is_adversarial(grp)]
    look = _lookup(grp)
    cols = _columns(clean_rows) + _columns(adv)
    auc_names = sorted({name for m in models for name in aggs[m].auc})
    # a model without the rank cell has no place in that order (rank_order lists it after the ranked ones)
    unranked = [m for m in models if math.isnan(aggs[m].rank_acc)]
    rows = []
    for position, m in enumerate(models, start=1):
        row = [Cell("int", None if m in unranked else position), _model_cell(m, reference)]
        for key, label in cols:
            ref = _get(look, reference, key) if reference else None
            row.append(_acc_cell(_get(look, m, key), ref, notes, m, label))
        for name in auc_names:
            value = aggs[m].auc.get(name, math.nan)
            ref_auc = aggs[reference].auc.get(name) if reference in aggs and reference != m else None
            delta = (value - ref_auc) * 100 if ref_auc is not None else None
            row.append(Cell("acc", value, None, delta))
        clean = clean_rows[clean_rows["model"] == m]
        row.append(Cell("int", int(clean["n"].iloc[0]) if len(clean) else None))
        rows.append(row)
    sources = sorted(set(adv["source_model"].fillna("").astype(str)) - {""}) if "source_model" in adv.columns else []
    if sources:  # transfer columns are labelled "<threat> from <source>" by the rows themselves
        notes.append(f"Transfer from {', '.join(sources)}: inputs crafted on the source model and evaluated on "
                     "each model (black-box); an upper bound on robustness, never used for the rank.")
    cell = aggs[models[0]].rank_cell if models else None
    columns = [rank_column(cell), "Model", *(label for _, label in cols), *(f"AUC {n}" for n in auc_names), "n"]
    notes.append(RANK_NOTE)
    if unranked:
        notes.append(f"Not ranked ({len(unranked)} models, listed last): no {cell.label if cell else 'clean'} cell, "
                     "so their place among the ranked models is unknown.")
    return TableView("Clean and adversarial accuracy (%)", columns, rows, notes)


RANK_NOTE = ("Rank: by accuracy under the strongest attack present (AutoAttack, then PGD), Linf first, at the eps "
             "most models were evaluated at; the lowest of several threats of that attack; ties by clean accuracy. "
             "Without an attack: by clean accuracy.")


def rank_column(cell) -> str:
    return f"Rank ({cell.label})" if cell is not None else "Rank (clean)"


def rank_order(aggs: dict[str, DatasetAggregate]) -> list[str]:
    """Models best first: rank accuracy, then clean accuracy, then name (deterministic); no number last."""
    def key(m: str):
        a = aggs[m]
        return (-(a.rank_acc if not math.isnan(a.rank_acc) else -1.0),
                -(a.clean_acc if not math.isnan(a.clean_acc) else -1.0), m)

    return sorted(aggs, key=key)


def _corruption_table(grp: pd.DataFrame, models: list[str], aggs: dict, reference: str | None) -> TableView:
    notes: list[str] = []
    corr = grp[is_corruption(grp)]
    severities = sorted(corr["severity"].unique().tolist())
    corruptions = sorted(corr["threat"].unique().tolist())
    look = _lookup(grp)
    has_mce = reference is not None and any(not math.isnan(aggs[m].mce) for m in models)
    rows = []
    for m in models:
        a: DatasetAggregate = aggs[m]
        ref: DatasetAggregate | None = aggs.get(reference) if reference and reference != m else None
        row = [_model_cell(m, reference),
               Cell("acc", a.mean_corruption_acc, None,
                    (a.mean_corruption_acc - ref.mean_corruption_acc) * 100 if ref else None)]
        if has_mce:
            row.append(Cell("ratio", a.mce))
        for c in corruptions:
            if len(severities) == 1:  # one severity: show the cell itself, with its CI and checks
                match = corr[corr["threat"] == c]
                key = (c, match["norm"].iloc[0], match["eps"].iloc[0], severities[0])
                refrow = _get(look, reference, key) if reference else None
                row.append(_acc_cell(_get(look, m, key), refrow, notes, m, cell_label(*key)))
            else:
                value = a.corruption_acc.get(c, math.nan)
                rv = ref.corruption_acc.get(c) if ref else None
                row.append(Cell("acc", value, None, (value - rv) * 100 if rv is not None else None))
        rows.append(row)
    sev_note = f"sev {severities[0]}" if len(severities) == 1 else f"mean over severities {severities}"
    columns = ["Model", "Mean corruption acc.", *(["mCE"] if has_mce else []),
               *(f"{c} ({sev_note})" for c in corruptions)]
    if has_mce:
        notes.append(f"mCE: mean over corruptions of sum_s error / sum_s error of {reference} (%; 100 = reference)")
    return TableView("Corruption accuracy (%)", columns, rows, notes)


def has_embedding_measures(frame: pd.DataFrame) -> pd.Series:
    """Cells of the embedding-space threats: they measured the cosine kept or a targeted success rate."""
    return frame["mean_cosine"].notna() | frame["target_success"].notna()


def _embedding_table(grp: pd.DataFrame, models: list[str]) -> TableView:
    """Per model and embedding-threat cell: the mean cosine kept and the accuracy (label-free attacks), or the
    targeted success rate (cross-modal targeted attacks)."""
    cells = grp[has_embedding_measures(grp)]
    look = _lookup(cells)
    columns, getters = [], []
    for key, label in _columns(cells):
        threat = cells[(cells["threat"] == key[0]) & (cells["norm"] == key[1])]
        if threat["mean_cosine"].notna().any():
            columns += [f"cos kept {label}", f"acc {label}"]
            getters += [(key, "mean_cosine", "num"), (key, "accuracy", "acc")]
        else:
            columns.append(f"target success {label}")
            getters.append((key, "target_success", "acc"))
    rows = []
    for m in models:
        row = [Cell("text", m)]
        for key, column, kind in getters:
            r = _get(look, m, key)
            row.append(Cell(kind, None if r is None else float(getattr(r, column))))
        rows.append(row)
    notes = ["cos kept: mean cos(f(x+δ), f(x)) of the raw embeddings (1: unmoved); the fractions of samples "
             "keeping at least 0.9, 0.7 and 0.5 are in leaderboard.parquet. target success: % of samples whose "
             "attacked embedding's nearest class text is the attack's target class."]
    return TableView("Embedding-space robustness", ["Model", *columns], rows, notes)


def build_views(merged: Merged, reference: str | None = None) -> list[ModalityView]:
    table = merged.table
    all_aggs = aggregate(table, reference)
    views = []
    used_slugs: set[str] = {"index"}
    for modality in merged.modalities:
        slug = slugify(modality, "modality")
        while slug in used_slugs:
            slug += "_"
        used_slugs.add(slug)
        datasets = []
        mod_rows = table[table["modality"] == modality]
        for dataset, grp in mod_rows.groupby("dataset", sort=True):
            aggs = {a.model: a for a in all_aggs if a.modality == modality and a.dataset == dataset}
            models = rank_order(aggs)
            ref = reference if reference in aggs else None
            tables = []
            if (is_clean(grp) | is_adversarial(grp)).any():
                tables.append(_adversarial_table(grp, models, aggs, ref))
            if is_corruption(grp).any():
                tables.append(_corruption_table(grp, models, aggs, ref))
            if has_embedding_measures(grp).any():
                tables.append(_embedding_table(grp, models))
            datasets.append(DatasetView(dataset, tables))
        views.append(ModalityView(modality, slug, datasets))
    return views


# --------------------------------------------------------------------------------------------- Markdown
def markdown_table(view: TableView) -> str:
    lines = ["| " + " | ".join(md_escape(c) for c in view.columns) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(view.columns))) + "|"]
    # Numeric cells are built from numbers and constant marks only; text cells carry results' strings.
    lines += ["| " + " | ".join(md_escape(c.plain()) if c.kind == "text" else c.plain() for c in row) + " |"
              for row in view.rows]
    text = "\n".join(lines) + "\n"
    if view.notes:
        text += "\n" + "\n".join(f"- {md_escape(n)}" for n in dict.fromkeys(view.notes)) + "\n"
    return text


def _legend(reference: str | None) -> str:
    text = ("Accuracy in % with the 95% Wilson interval in brackets. "
            f"{CHECK_MARK}: a failed gradient-masking sanity check (do not trust that number); "
            f"{CONFLICT_MARK}: measured under different configs across runs.")
    if reference:
        text += f" Δ: percentage points against the reference model {md_escape(reference)}."
    return text


def modality_markdown(view: ModalityView, reference: str | None, plots: list[str]) -> str:
    parts = [f"# Leaderboard: {md_escape(view.modality)}\n", _legend(reference) + "\n"]
    for ds in view.datasets:
        parts.append(f"## Dataset {md_escape(ds.dataset)}\n")
        for t in ds.tables:
            parts.append(f"### {md_escape(t.title)}\n")
            parts.append(markdown_table(t))
    if plots:
        parts.append("## Plots\n")
        parts.extend(f"![{md_escape(p)}](plots/{p})\n" for p in plots)
    return "\n".join(parts)


def index_markdown(merged: Merged, views: list[ModalityView], reference: str | None, model_files: dict[str, str],
                   check_definitions: dict[str, dict], pages: dict[str, str] | None = None) -> str:
    """pages: other pages of the same folder to link (title -> file name), e.g. the retrieval page."""
    parts = ["# rlbind-bench leaderboard\n", _legend(reference) + "\n", "## Modalities\n",
             "| Modality | Datasets | Models |", "|---|---:|---:|"]
    for v in views:
        n_models = merged.table[merged.table["modality"] == v.modality]["model"].nunique()
        parts.append(f"| [{md_escape(v.modality)}]({v.slug}.md) | {len(v.datasets)} | {n_models} |")
    if pages:
        parts += ["", "## Other pages\n"] + [f"- [{md_escape(t)}]({md_escape(f)})" for t, f in pages.items()]
    parts += ["", "## Models\n", "| Model | JSON |", "|---|---|"]
    for m in merged.models:
        mark = f" {REFERENCE_MARK}" if m == reference else ""
        parts.append(f"| {md_escape(m + mark)} | [models/{model_files[m]}](models/{model_files[m]}) |")
    parts += ["", "## Runs\n", "| Source | Run id | Finished | Device | Git |", "|---|---|---|---|---|"]
    for f in merged.folders:
        prov = f.run.get("provenance") or {}
        parts.append("| " + " | ".join(md_escape(x) for x in (f.source, f.run_id, f.run.get("finished", ""),
                                                              f.run.get("device", ""), prov.get("git") or "")) + " |")
    if merged.conflicts:
        parts += ["", "## Config conflicts (newest run shown)\n"]
        parts += [f"- {md_escape(c.describe(), line_start=True)}" for c in merged.conflicts]
    if check_definitions:
        parts += ["", "## Sanity checks\n"]
        parts += [f"- {md_escape(name, line_start=True)}: {md_escape(d.get('raised_if', ''))} → {md_escape(d.get('meaning', ''))}"
                  for name, d in sorted(check_definitions.items()) if isinstance(d, dict)]
    return "\n".join(parts) + "\n"
