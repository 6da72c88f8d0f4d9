"""Write a leaderboard folder from merged results: Markdown, model JSON, HTML, plots, merged Parquet."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rlbind_bench.errors import UserError
from rlbind_bench.files import write_bytes_atomic
from rlbind_bench.leaderboard.entries import build_entries, model_slugs
from rlbind_bench.leaderboard.html import render_page
from rlbind_bench.leaderboard.merge import Merged
from rlbind_bench.leaderboard.plots import all_plots
from rlbind_bench.leaderboard.render import build_views, index_markdown, modality_markdown
from rlbind_bench.leaderboard.schema import LEADERBOARD_SCHEMA
from rlbind_bench.results.store import check_writable, write_table_atomic


@dataclass
class Written:
    out: Path
    files: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


def _check_definitions(merged: Merged) -> dict[str, dict]:
    defs: dict[str, dict] = {}
    for f in merged.folders:
        found = f.run.get("check_definitions")
        if isinstance(found, dict):
            defs.update(found)
    return defs


def write_leaderboard(merged: Merged, out: Path, reference: str | None = None,
                      pages: dict[str, str] | None = None) -> Written:
    if reference is not None and reference not in merged.models:
        raise UserError(f"--reference {reference!r} is not a model in these results "
                        f"(models: {', '.join(merged.models)})")
    out = Path(out)
    check_writable(out)
    written = Written(out)

    def put(rel: str, data: bytes) -> None:
        write_bytes_atomic(out / rel, data)
        written.files.append(out / rel)

    views = build_views(merged, reference)
    model_files = model_slugs(merged.models)
    plots = all_plots(merged.table, {v.modality: v.slug for v in views})
    # Files this command owns in models/ and plots/ are replaced as a whole: a model or modality that
    # left the results must not linger in the published folder.
    keep = {f"models/{name}" for name in model_files.values()}
    keep |= {f"plots/{p.name}.{ext}" for p in plots for ext in ("png", "svg")}
    for sub, patterns in (("models", ("*.json",)), ("plots", ("*.png", "*.svg"))):
        for pattern in patterns:
            for stale in sorted((out / sub).glob(pattern)) if (out / sub).is_dir() else []:
                if f"{sub}/{stale.name}" not in keep:
                    stale.unlink()
                    written.removed.append(stale)
    for p in plots:
        put(f"plots/{p.name}.png", p.png)
        put(f"plots/{p.name}.svg", p.svg)
    for v in views:
        names = [f"{p.name}.png" for p in plots if p.modality == v.modality]
        put(f"{v.slug}.md", modality_markdown(v, reference, names).encode())
    put("index.md", index_markdown(merged, views, reference, model_files, _check_definitions(merged), pages).encode())
    for model, entry in build_entries(merged, reference).items():
        text = json.dumps(entry, indent=2, sort_keys=True, allow_nan=False, default=str) + "\n"
        put(f"models/{model_files[model]}", text.encode())
    put("index.html", render_page(merged, views, plots, reference, model_files).encode())
    write_table_atomic(out / "leaderboard.parquet", merged.table, LEADERBOARD_SCHEMA)
    written.files.append(out / "leaderboard.parquet")
    return written
