"""One self-contained static HTML page: a tab per modality, sortable tables, plots as base64 PNG.

No external resources: styles and the script are inline, images are data: URIs, and a Content-Security-
Policy forbids anything else (the page also works from file:// and as a CI artifact). Every string from
results is HTML-escaped (text and attributes); no result text ever reaches the script.

Open the page with ``#selftest`` appended to the URL and the script sorts each table by its first numeric
column (both directions), checks the order and writes a JSON verdict, with any script errors, into
``<pre id="selftest-result">`` (tests read it with headless Chromium's --dump-dom).
"""

from __future__ import annotations

import base64
import html

from rlbind_bench import __version__
from rlbind_bench.leaderboard.merge import Merged
from rlbind_bench.leaderboard.plots import Plot
from rlbind_bench.leaderboard.render import CHECK_MARK, CONFLICT_MARK, ModalityView, TableView

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem;color:#1b1f24}
h1{font-size:1.4rem}h2{font-size:1.2rem;margin-top:1.5rem}h3{font-size:1.05rem}h4{font-size:.95rem;color:#444}
nav{display:flex;gap:.25rem;border-bottom:1px solid #ccd;margin:1rem 0}
nav button{border:1px solid #ccd;border-bottom:none;background:#f4f5f7;padding:.4rem .9rem;cursor:pointer;
 border-radius:.3rem .3rem 0 0;font:inherit}
nav button[aria-selected=true]{background:#fff;font-weight:600;position:relative;top:1px}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-variant-numeric:tabular-nums}
th,td{border:1px solid #dde;padding:.25rem .5rem;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left;white-space:normal;max-width:28rem;overflow-wrap:anywhere}
th{background:#f4f5f7;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
ul.notes{font-size:.85rem;color:#555}figure{margin:1rem 0}figure img{max-width:100%;height:auto}
.legend{color:#444;max-width:60rem}#selftest-result{display:none}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var errors = [];
  window.addEventListener("error", function (e) { errors.push(String(e.message || e)); });
  var consoleError = console.error;
  console.error = function () {
    errors.push(Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };

  function value(row, idx, type) {
    var cell = row.cells[idx];
    if (!cell) { return null; }
    var raw = cell.getAttribute("data-sort");
    if (type === "num") {
      var f = parseFloat(raw);
      return isNaN(f) ? null : f;
    }
    return (raw === null ? cell.textContent : raw).toLowerCase();
  }

  function sortBy(th, dir) {
    var table = th.closest("table");
    var tbody = table.tBodies[0];
    var idx = Array.prototype.indexOf.call(th.parentNode.cells, th);
    var type = th.getAttribute("data-type") || "text";
    if (!dir) { dir = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending"; }
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.sort(function (a, b) {
      var x = value(a, idx, type), y = value(b, idx, type);
      if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }  // missing values last
      var c = x < y ? -1 : (x > y ? 1 : 0);
      return dir === "ascending" ? c : -c;
    });
    rows.forEach(function (r) { tbody.appendChild(r); });
    Array.prototype.forEach.call(th.parentNode.cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
  }

  function showTab(id) {
    Array.prototype.forEach.call(document.querySelectorAll("section.panel"), function (p) {
      p.hidden = p.id !== id;
    });
    Array.prototype.forEach.call(document.querySelectorAll("nav button"), function (b) {
      b.setAttribute("aria-selected", b.getAttribute("data-tab") === id ? "true" : "false");
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable th"), function (th) {
    th.tabIndex = 0;
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sortBy(th); } });
  });
  Array.prototype.forEach.call(document.querySelectorAll("nav button"), function (b) {
    b.addEventListener("click", function () { showTab(b.getAttribute("data-tab")); });
  });
  var first = document.querySelector("nav button");
  var wanted = location.hash.slice(1);
  if (wanted && document.getElementById(wanted) && document.getElementById(wanted).classList.contains("panel")) {
    showTab(wanted);
  } else if (first) {
    showTab(first.getAttribute("data-tab"));
  }

  function ordered(th, dir) {
    var idx = Array.prototype.indexOf.call(th.parentNode.cells, th);
    var vals = Array.prototype.map.call(th.closest("table").tBodies[0].rows, function (r) {
      return value(r, idx, "num");
    }).filter(function (v) { return v !== null; });
    for (var i = 1; i < vals.length; i++) {
      if (dir === "descending" ? vals[i] > vals[i - 1] : vals[i] < vals[i - 1]) { return false; }
    }
    return true;
  }

  if (location.hash === "#selftest") {
    var report = {tables: 0, sorted_columns: 0, ok: true, failures: [], errors: errors};
    try {
      var tables = document.querySelectorAll("table.sortable");
      report.tables = tables.length;
      Array.prototype.forEach.call(tables, function (t, k) {
        var th = t.querySelector("th[data-type=num]");
        if (!th) { return; }
        th.click();
        var firstDir = th.getAttribute("aria-sort");
        var okFirst = firstDir === "descending" && ordered(th, "descending");
        th.click();
        var okSecond = th.getAttribute("aria-sort") === "ascending" && ordered(th, "ascending");
        report.sorted_columns += 1;
        if (!okFirst || !okSecond) { report.ok = false; report.failures.push("table " + k); }
      });
      document.querySelector("nav button:last-child").click();
    } catch (e) {
      errors.push(String(e));
    }
    report.ok = report.ok && errors.length === 0 && report.tables > 0;
    var out = document.getElementById("selftest-result");
    out.textContent = JSON.stringify(report);
    out.setAttribute("data-status", report.ok ? "pass" : "fail");
  }
})();
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def table_html(view: TableView) -> str:
    head = "".join(f'<th scope="col" data-type="{"text" if i == 0 else "num"}">{_e(c)}</th>'
                   for i, c in enumerate(view.columns))
    body = []
    for row in view.rows:
        cells = []
        for c in row:
            key = c.sort_key
            cells.append(f'<td data-sort="{_e("" if key is None else key)}">{_e(c.plain())}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    out = (f"<h4>{_e(view.title)}</h4>\n<table class=\"sortable\"><thead><tr>{head}</tr></thead>"
           f"<tbody>{''.join(body)}</tbody></table>\n")
    if view.notes:
        out += "<ul class=\"notes\">" + "".join(f"<li>{_e(n)}</li>" for n in dict.fromkeys(view.notes)) + "</ul>\n"
    return out


def _img(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return (f'<figure><img alt="{_e(plot.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(plot.title)}</figcaption></figure>\n")


def render_page(merged: Merged, views: list[ModalityView], plots: list[Plot], reference: str | None,
                model_files: dict[str, str], title: str = "rlbind-bench leaderboard") -> str:
    legend = ("Accuracy in % with the 95% Wilson interval in brackets. Click a column header to sort. "
              f"{CHECK_MARK}: failed gradient-masking sanity check; {CONFLICT_MARK}: measured under different "
              "configs across runs (newest shown).")
    if reference:
        legend += f" Δ: percentage points against the reference model {reference}."
    tabs, panels = [], []
    for v in views:
        tab_id = f"tab-{v.slug}"
        tabs.append(f'<button type="button" role="tab" data-tab="{_e(tab_id)}">{_e(v.modality)}</button>')
        parts = [f'<section class="panel" id="{_e(tab_id)}" role="tabpanel"><h2>{_e(v.modality)}</h2>']
        for ds in v.datasets:
            parts.append(f"<h3>Dataset {_e(ds.dataset)}</h3>")
            parts += [table_html(t) for t in ds.tables]
        parts += [_img(p) for p in plots if p.modality == v.modality]
        parts.append("</section>")
        panels.append("\n".join(parts))
    runs = "".join(
        "<tr>" + "".join(f"<td>{_e(x)}</td>" for x in (f.source, f.run_id, f.run.get("finished", ""),
                                                       f.run.get("device", ""),
                                                       (f.run.get("provenance") or {}).get("git") or "")) + "</tr>"
        for f in merged.folders)
    models = "".join(f'<li><a href="models/{_e(model_files[m])}">{_e(m)}</a></li>' for m in merged.models)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="rlbind-bench {_e(__version__)}">
<title>{_e(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p class="legend">{_e(legend)}</p>
<nav role="tablist">{''.join(tabs)}</nav>
{chr(10).join(panels)}
<h2>Models</h2>
<ul>{models}</ul>
<h2>Runs</h2>
<table class="sortable"><thead><tr><th data-type="text">Source</th><th data-type="text">Run id</th>
<th data-type="text">Finished</th><th data-type="text">Device</th><th data-type="text">Git</th></tr></thead>
<tbody>{runs}</tbody></table>
<pre id="selftest-result"></pre>
<script>{SCRIPT}</script>
</body>
</html>
"""
