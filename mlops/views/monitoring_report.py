"""The HTML download of a batch's drift report: one self-contained file (Plotly inlined, no network).

When the batch's rows were kept (as Parquet, up to MLOPS_BATCH_KEEP_BYTES) and the reference's file is
there, the report is `mlops.drift.report.to_html` on the rows, the same document `manage.py drift_report
--format html` writes. Otherwise it is built from what is stored: the batch's drift result, its data
quality, and distributions read off the reference's and the batch's profiles.
"""

from __future__ import annotations

import html
import json

from ..drift import ColumnSchema, DriftInputError, DriftOptions, compare, read_table
from ..drift.report import plotly_js, to_html
from ..models import MonitoringBatch
from .monitoring_common import overlay

CHART_COLUMNS = 200


def _title(batch: MonitoringBatch) -> str:
    return f"{batch.monitor.model.name} / {batch.monitor.name}: batch #{batch.pk} drift report"


def _local_path(field) -> str | None:
    if not field:
        return None
    try:
        return field.path
    except NotImplementedError:  # a storage without local files
        return None


def from_rows(batch: MonitoringBatch, options: DriftOptions) -> str | None:
    """The report on the kept rows, or None when the rows or the reference's file are not there."""
    reference = batch.reference
    current_path, reference_path = _local_path(batch.file), _local_path(reference.file if reference else None)
    if not current_path or not reference_path or not reference.spec:
        return None
    try:
        current, ref = read_table(current_path), read_table(reference_path)
    except DriftInputError:
        return None
    specs = reference.spec.get("columns", [])
    names = [c["name"] for c in specs if c["name"] in current.column_names and c["name"] in ref.column_names]
    if not names:
        return None
    schema = {c["name"]: ColumnSchema(c["name"], c["type"], c.get("role", "feature")) for c in specs}
    options = DriftOptions(
        columns={n: o for n, o in options.columns.items() if n in names},
        method=options.method,
        threshold=options.threshold,
        drift_share=options.drift_share,
    )
    current, ref = current.select(names), ref.select(names)
    report = compare(ref, current, schema={n: schema[n] for n in names}, options=options)
    return to_html(report, ref, current, title=_title(batch))


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def from_profiles(batch: MonitoringBatch) -> str:
    """The report from the stored drift result, quality and profiles (no rows needed)."""
    drift = batch.drift or {}
    rows, figures = [], {}
    for index, column in enumerate(drift.get("columns", [])):
        chart_id = f"chart-{index}"
        if index < CHART_COLUMNS:
            figure = overlay(batch.reference, batch, column["column"], "current")
            if figure is not None:
                figure["layout"]["title"] = {"text": column["column"]}
                figures[chart_id] = {"data": figure["data"], "layout": figure["layout"]}
        rows.append(
            "<tr class='{cls}'><td>{link}</td><td>{type}</td><td>{method}</td><td>{stat}</td><td>{p}</td>"
            "<td>{thr}</td><td>{drifted}</td></tr>".format(
                cls="drifted" if column.get("drifted") else "",
                link=(
                    f"<a href='#{chart_id}'>{html.escape(column['column'])}</a>"
                    if chart_id in figures
                    else html.escape(column["column"])
                ),
                type=html.escape(str(column.get("type", ""))),
                method=html.escape(str(column.get("method", ""))),
                stat=_number(column.get("statistic")),
                p=_number(column.get("p_value")),
                thr=_number(column.get("threshold")),
                drifted="yes" if column.get("drifted") else "no",
            )
        )
    quality = "".join(
        "<tr><td>{c}</td><td>{m:.2%}</td><td>{n}</td><td>{o:.2%}</td><td>{t:.2%}</td></tr>".format(
            c=html.escape(q["column"]),
            m=q.get("missing_share", 0),
            n=html.escape(", ".join(f"{k} ({v})" for k, v in list((q.get("new_categories") or {}).items())[:5])),
            o=q.get("out_of_range_share", 0),
            t=q.get("type_mismatch_share", 0),
        )
        for q in batch.quality or []
    )
    skipped = "".join(
        f"<li>{html.escape(item['column'])}: {html.escape(item['reason'])}</li>" for item in drift.get("skipped", [])
    )
    verdict = "Dataset drift detected" if drift.get("dataset_drift") else "No dataset drift"
    figures_json = json.dumps(figures, allow_nan=False).replace("</", "<\\/")
    data_json = json.dumps(drift, allow_nan=False).replace("</", "<\\/")
    charts = "".join(f"<div class='chart' id='{cid}'></div>" for cid in figures)
    title = html.escape(_title(batch))
    window = f"{batch.start:%Y-%m-%d %H:%M} to {batch.end:%Y-%m-%d %H:%M} UTC"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #212529; }}
table {{ border-collapse: collapse; margin-bottom: 1rem; }}
th, td {{ border: 1px solid #dee2e6; padding: .3rem .6rem; text-align: left; }}
tr.drifted td {{ background: #f8d7da; }} .verdict {{ font-size: 1.3rem; font-weight: 600; }}
.verdict.drift {{ color: #b02a37; }} .verdict.ok {{ color: #146c43; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 1rem; }}
</style>
<script>{plotly_js()}</script>
</head><body>
<h1>{title}</h1>
<p class="verdict {"drift" if drift.get("dataset_drift") else "ok"}" id="verdict">{verdict}</p>
<p>{drift.get("number_of_drifted_columns", 0)} of {drift.get("number_of_columns", 0)} columns drifted
(share {drift.get("drift_share") or 0:.3f}; the dataset drifts at {drift.get("drift_share_threshold", 0.5):g}).
Batch: {batch.rows:,} rows, {window}. Built from the stored profiles: the rows were not kept.</p>
<table id="columns"><thead><tr><th>column</th><th>type</th><th>method</th><th>statistic</th><th>p-value</th>
<th>threshold</th><th>drifted</th></tr></thead><tbody>{"".join(rows)}</tbody></table>
{f"<h2>Not compared</h2><ul>{skipped}</ul>" if skipped else ""}
<h2>Data quality</h2>
<table id="quality"><thead><tr><th>column</th><th>missing</th><th>new categories</th><th>out of range</th>
<th>type mismatches</th></tr></thead><tbody>{quality}</tbody></table>
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


def batch_html(batch: MonitoringBatch, options: DriftOptions) -> str:
    """The report document: from the kept rows when there are some, else from the stored profiles."""
    return from_rows(batch, options) or from_profiles(batch)
