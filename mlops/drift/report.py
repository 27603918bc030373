"""The drift report as JSON and as one self-contained HTML file.

The HTML holds a per-column table (type, method, statistic, p-value, threshold, drifted), the dataset
verdict, and for every compared column a Plotly chart of the reference and current distributions
(shares per bin on 30 bins over both samples, or per category: the 20 most frequent). Plotly.js is the
copy the plotly Python package ships, inlined once in the file: the report opens with no network.
Chart data are histograms, never the rows, so the file's size does not grow with the data.
"""

from __future__ import annotations

import html
import json
import os
from functools import cache

import numpy as np
import pyarrow as pa

from .select import DriftReport, category_counts, column_values

HISTOGRAM_BINS = 30
TOP_CATEGORIES = 20


def to_json(report: DriftReport, indent: int | None = 2) -> str:
    return json.dumps(report.to_dict(), indent=indent, allow_nan=False)


@cache
def plotly_js() -> str:
    """The plotly.min.js bundled with the plotly Python package (the same file static/vendor serves)."""
    import plotly

    path = os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")
    with open(path, encoding="utf-8") as f:
        return f.read()


def distribution(column_type: str, reference: pa.ChunkedArray, current: pa.ChunkedArray) -> dict:
    """Reference and current shares per bin (numerical) or per category, for one overlay chart."""
    if column_type == "numerical":
        ref, cur, *_ = column_values("numerical", reference, current)
        if len(ref) == 0 or len(cur) == 0:
            return {"x": [], "reference": [], "current": [], "kind": "bins"}
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins=HISTOGRAM_BINS)
        centres = (edges[:-1] + edges[1:]) / 2
        return {
            "x": [float(f"{c:.6g}") for c in centres],
            "reference": (np.histogram(ref, edges)[0] / len(ref)).round(6).tolist(),
            "current": (np.histogram(cur, edges)[0] / len(cur)).round(6).tolist(),
            "kind": "bins",
        }
    categories, ref_counts, cur_counts = category_counts(reference, current)
    ref_shares = ref_counts / max(ref_counts.sum(), 1)
    cur_shares = cur_counts / max(cur_counts.sum(), 1)
    top = np.argsort(-(ref_shares + cur_shares), kind="stable")[:TOP_CATEGORIES]
    return {
        "x": [str(categories[i]) for i in top],
        "reference": ref_shares[top].round(6).tolist(),
        "current": cur_shares[top].round(6).tolist(),
        "kind": "categories",
    }


def _figure(name: str, data: dict) -> dict:
    return {
        "data": [
            {
                "type": "bar",
                "name": "reference",
                "x": data["x"],
                "y": data["reference"],
                "marker": {"color": "#6c757d"},
            },
            {"type": "bar", "name": "current", "x": data["x"], "y": data["current"], "marker": {"color": "#d63384"}},
        ],
        "layout": {
            "title": {"text": name},
            "barmode": "overlay" if data["kind"] == "bins" else "group",
            "bargap": 0.05,
            "height": 280,
            "margin": {"l": 40, "r": 10, "t": 40, "b": 40},
            "yaxis": {"title": {"text": "share"}},
            "legend": {"orientation": "h"},
        },
    }


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def to_html(report: DriftReport, reference: pa.Table, current: pa.Table, title: str = "Data drift report") -> str:
    """The whole report as one HTML document with Plotly.js inlined (no network needed to open it)."""
    data = report.to_dict()
    verdict = "Dataset drift detected" if report.dataset_drift else "No dataset drift"
    rows = []
    figures = {}
    for i, column in enumerate(report.columns):
        chart_id = f"chart-{i}"
        figures[chart_id] = _figure(
            column.column, distribution(column.type, reference.column(column.column), current.column(column.column))
        )
        rows.append(
            "<tr class='{cls}'><td><a href='#{cid}'>{name}</a></td><td>{type}</td><td>{method}</td><td>{stat}</td>"
            "<td>{p}</td><td>{thr}</td><td>{drifted}</td></tr>".format(
                cls="drifted" if column.drifted else "",
                cid=chart_id,
                name=html.escape(column.column),
                type=html.escape(column.type),
                method=html.escape(column.method),
                stat=_number(column.statistic),
                p=_number(column.p_value),
                thr=_number(column.threshold),
                drifted="yes" if column.drifted else "no",
            )
        )
    skipped = "".join(
        f"<li>{html.escape(item['column'])}: {html.escape(item['reason'])}</li>" for item in data["skipped"]
    )
    charts = "".join(f"<div class='chart' id='{cid}'></div>" for cid in figures)
    # `</` inside a script would end it early: JSON escapes it.
    figures_json = json.dumps(figures, allow_nan=False).replace("</", "<\\/")
    data_json = json.dumps(data, allow_nan=False).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #212529; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #dee2e6; padding: .3rem .6rem; text-align: left; }}
tr.drifted td {{ background: #f8d7da; }} .verdict {{ font-size: 1.3rem; font-weight: 600; }}
.verdict.drift {{ color: #b02a37; }} .verdict.ok {{ color: #146c43; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 1rem; }}
</style>
<script>{plotly_js()}</script>
</head><body>
<h1>{html.escape(title)}</h1>
<p class="verdict {"drift" if report.dataset_drift else "ok"}" id="verdict">{verdict}</p>
<p>{data["number_of_drifted_columns"]} of {data["number_of_columns"]} columns drifted (share {report.drift_share:.3f};
the dataset drifts at {report.drift_share_threshold:g}). Reference: {report.reference_rows:,} rows; current:
{report.current_rows:,} rows.</p>
<table id="columns"><thead><tr><th>column</th><th>type</th><th>method</th><th>statistic</th><th>p-value</th>
<th>threshold</th><th>drifted</th></tr></thead><tbody>{"".join(rows)}</tbody></table>
{f"<h2>Not compared</h2><ul>{skipped}</ul>" if skipped else ""}
<h2>Distributions (reference vs current)</h2>
<div class="charts">{charts}</div>
<script id="report-data" type="application/json">{data_json}</script>
<script>
const figures = {figures_json};
for (const [id, figure] of Object.entries(figures)) {{
  Plotly.newPlot(id, figure.data, figure.layout, {{displaylogo: false, responsive: true}});
}}
</script>
</body></html>
"""
