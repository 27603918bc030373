"""What the Monitoring tab, the batch report and its HTML download share: column order,
distribution overlays from profiles, quality and performance rows, and breaches with their incidents."""

from __future__ import annotations

import datetime
from urllib.parse import urlencode

from django.urls import reverse

from .. import aiops_bridge as aiops_services
from .. import monitoring_charts as charts
from ..drift.profiles import ColumnProfile, ProfileSpec
from ..models import Breach, MonitoringBatch, ReferenceDataset, RegisteredModel


def monitoring_url(model: RegisteredModel, **params: object) -> str:
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return reverse("mlops:monitoring", args=[model.name]) + (f"?{query}" if query else "")


def batch_url(model: RegisteredModel, pk: int) -> str:
    return reverse("mlops:batch", args=[model.name, pk])


def column_order(reference: ReferenceDataset | None, drift_results: list[dict]) -> list[str]:
    """The reference's profiled columns (features first, then prediction and target), then any other
    column a batch's drift result names."""
    names: list[str] = []
    if reference is not None and reference.spec:
        spec_columns = reference.spec.get("columns", [])
        rank = {"feature": 0, "prediction": 1, "target": 2}
        names = [c["name"] for c in sorted(spec_columns, key=lambda c: rank.get(c.get("role", "feature"), 0))]
    seen = set(names)
    for drift in drift_results:
        for column in drift.get("columns", []):
            if column["column"] not in seen:
                seen.add(column["column"])
                names.append(column["column"])
    return names


def column_results(batch: MonitoringBatch) -> dict[str, dict]:
    return {column["column"]: column for column in (batch.drift or {}).get("columns", [])}


def overlay(reference: ReferenceDataset | None, batch: MonitoringBatch, column: str, label: str) -> dict | None:
    """The column's reference-versus-batch distribution chart, or None when a profile lacks the column."""
    if reference is None or not reference.spec or not reference.profile or not batch.profile:
        return None
    spec = next((c for c in reference.spec.get("columns", []) if c["name"] == column), None)
    ref = (reference.profile.get("columns") or {}).get(column)
    cur = (batch.profile.get("columns") or {}).get(column)
    if spec is None or ref is None or cur is None:
        return None
    column_spec = ProfileSpec.from_dict({"columns": [spec]}).columns[column]
    data = charts.distribution(column_spec, ColumnProfile.from_dict(ref), ColumnProfile.from_dict(cur))
    return charts.distribution_overlay(column, data, label)


def quality_rows(batch: MonitoringBatch) -> list[dict]:
    """The batch's data quality per column, with a flag on columns where something is off."""
    rows = []
    for row in batch.quality or []:
        row = dict(row)
        row["new_categories_list"] = list((row.get("new_categories") or {}).items())[:5]
        row["problem"] = bool(
            row.get("missing") or row.get("type_mismatches") or row.get("out_of_range") or row.get("new_categories")
        )
        rows.append(row)
    return rows


HEADLINE_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse", "mape", "r2")
# Counts the metrics carry along (rows scored, per-class support): not a measure of how well the model does.
COUNT_METRICS = ("rows", "support")


def metric_names(*performances: dict) -> list[str]:
    """The metrics in these results, headline ones first (accuracy, F1 ... MAE, R²), then per-class ones
    (``f1[churned]``) by name; counts left out."""
    names = {
        name
        for performance in performances
        for name, value in (performance or {}).items()
        if isinstance(value, int | float) and not isinstance(value, bool) and name.split("[")[0] not in COUNT_METRICS
    }
    rank = {name: i for i, name in enumerate(HEADLINE_METRICS)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def performance_rows(batch: MonitoringBatch, reference: ReferenceDataset | None) -> list[dict]:
    """Each metric of the batch next to the reference's value."""
    ref = (reference.performance if reference else None) or {}
    names = metric_names(batch.performance, ref)
    rows = []
    for name in names:
        value, base = (batch.performance or {}).get(name), ref.get(name)
        delta = value - base if isinstance(value, int | float) and isinstance(base, int | float) else None
        worse = None
        if delta is not None and delta != 0:
            worse = delta > 0 if name in charts.ERROR_METRICS else delta < 0
        rows.append({"name": name, "value": value, "reference": base, "delta": delta, "worse": worse})
    return rows


def breaches_with_incidents(breaches: list[Breach]) -> list[Breach]:
    """Each breach with `.incident` (its alert's incident link, or None) set: one query for all of them."""
    links = aiops_services.raised_alert_links(source="mlops", dedup_keys=[b.dedup_key for b in breaches])
    for breach in breaches:
        occurrences = links.get(breach.dedup_key, [])
        # The occurrence this breach raised: the first seen from its opening on (an earlier breach of the
        # same check raised the older ones).
        after = [o for o in occurrences if o.first_seen_at >= breach.opened_at - datetime.timedelta(minutes=5)]
        breach.incident = after[-1] if after else (occurrences[0] if occurrences else None)
    return breaches
