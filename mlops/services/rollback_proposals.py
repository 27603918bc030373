"""Guarded rollback: when a newly promoted version performs worse than the one it replaced, on the same window,
the portal proposes going back: an approval request (`rollback=True`) with the evidence, for an admin to decide.

The comparison reads the batches' metrics (each batch, logged predictions cut into batches included, knows the
version it was for): the followed version's batches of the monitor's last `window_hours`, against the replaced
version's batches of the same window when it still served enough labelled rows there (a canary, a shadow, a
promotion inside the window), else of the `window_hours` before the new version's first batch. The metric is
the one of the monitor's first enabled metric check, else accuracy (classification) or RMSE (regression). A
version is worse when its metric is more than ROLLBACK_TOLERANCE (relative) on the bad side of the other's,
both on at least ROLLBACK_MIN_ROWS labelled rows. One proposal per pair of versions, whatever its fate.
"""

from __future__ import annotations

import datetime
import math

from django.db import transaction
from django.utils import timezone

from ..models import ApprovalRequest, ModelVersion, Monitor, MonitorCheck, MonitoringBatch, RegisteredModel, TaskType
from .stages import open_approval_request

# Performance metrics where a higher value is worse: a check's bound is their ceiling, every other metric's a floor.
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mape", "log_loss"})
ROLLBACK_TOLERANCE = 0.02
ROLLBACK_MIN_ROWS = 50
DEFAULT_METRIC = {TaskType.CLASSIFICATION: "accuracy", TaskType.REGRESSION: "rmse"}


def window_performance(batches: list[MonitoringBatch]) -> dict[str, float]:
    """Metrics of a window from its batches' metrics, each weighted by the batch's labelled rows (RMSE as the
    root of the weighted mean square). Exact for accuracy, MAE, MAPE and the mean error; an approximation
    for rank metrics such as ROC AUC. `rows` is the labelled rows behind them."""
    totals: dict[str, float] = {}
    weights: dict[str, float] = {}
    for batch in batches:
        perf = batch.performance or {}
        weight = float(perf.get("rows") or batch.labelled_rows or 0)
        if weight <= 0:
            continue
        for name, value in perf.items():
            if name == "rows" or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not math.isfinite(value):
                continue
            totals[name] = totals.get(name, 0.0) + weight * (value * value if name == "rmse" else value)
            weights[name] = weights.get(name, 0.0) + weight
    result = {name: totals[name] / weights[name] for name in totals}
    if "rmse" in result:
        result["rmse"] = math.sqrt(result["rmse"])
    if weights:
        result["rows"] = max(weights.values())
    return result


def comparison_metric(monitor: Monitor) -> str | None:
    check = monitor.checks.filter(enabled=True, kind=MonitorCheck.Kind.METRIC).order_by("id").first()
    if check is not None:
        return check.rule
    return DEFAULT_METRIC.get(monitor.task)


def _side(monitor: Monitor, version: ModelVersion, start: datetime.datetime, end: datetime.datetime) -> dict:
    batches = list(
        monitor.batches.filter(version=version, end__gt=start, end__lte=end).only("id", "performance", "labelled_rows")
    )
    metrics = window_performance(batches)
    return {
        "version": version.version,
        "version_id": version.pk,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "batches": len(batches),
        "labelled_rows": int(metrics.get("rows", 0)),
        "metrics": metrics,
    }


def replaced_version(monitor: Monitor, current: ModelVersion) -> tuple[ModelVersion, MonitoringBatch] | None:
    """The version the current one replaced (the newest other version with batches) and the current
    version's first batch; None when either is missing."""
    first = monitor.batches.filter(version=current).order_by("start", "id").first()
    if first is None:
        return None
    before = (
        monitor.batches.exclude(version=current)
        .filter(version__isnull=False)
        .select_related("version")
        .order_by("-end", "-id")
        .first()
    )
    return (before.version, first) if before is not None else None


def is_worse(new: float, old: float, *, lower_is_better: bool) -> bool:
    change = new - old if lower_is_better else old - new
    return change > ROLLBACK_TOLERANCE * max(abs(old), 1e-9)


def compare_versions(*, monitor: Monitor, now: datetime.datetime | None = None) -> dict | None:
    """The evidence of a rollback: both versions' metrics on the same window and the verdict; None when there
    is no replaced version, no metric, or too few labelled rows on either side to say."""
    now = now or timezone.now()
    current = monitor.current_version()
    metric = comparison_metric(monitor)
    if current is None or metric is None:
        return None
    found = replaced_version(monitor, current)
    if found is None:
        return None
    previous, first = found
    window = datetime.timedelta(hours=monitor.window_hours)
    new = _side(monitor, current, now - window, now)
    old = _side(monitor, previous, now - window, now)
    same_window = old["labelled_rows"] >= ROLLBACK_MIN_ROWS
    if not same_window:
        old = _side(monitor, previous, first.start - window, first.start)
    if new["labelled_rows"] < ROLLBACK_MIN_ROWS or old["labelled_rows"] < ROLLBACK_MIN_ROWS:
        return None
    new_value, old_value = new["metrics"].get(metric), old["metrics"].get(metric)
    if new_value is None or old_value is None:
        return None
    lower = metric in LOWER_IS_BETTER
    worse = is_worse(new_value, old_value, lower_is_better=lower)
    return {
        "monitor": monitor.pk,
        "monitor_name": monitor.name,
        "follows": monitor.follows,
        "metric": metric,
        "lower_is_better": lower,
        "tolerance": ROLLBACK_TOLERANCE,
        "from_version": current.pk,
        "from_version_number": current.version,
        "to_version": previous.pk,
        "to_version_number": previous.version,
        "same_window": same_window,
        "new": new,
        "previous": old,
        "worse": worse,
        "new_value": new_value,
        "previous_value": old_value,
        "summary": (
            f"{metric} {new_value:.4g} on version {current.version} ({new['labelled_rows']} labelled rows) against "
            f"{old_value:.4g} on version {previous.version} ({old['labelled_rows']} labelled rows)"
            + (" on the same window" if same_window else " in the window before the promotion")
        ),
    }


def propose_rollback(*, monitor: Monitor, now: datetime.datetime | None = None) -> ApprovalRequest | None:
    """Propose going back to the replaced version when the followed one does worse (see the module docstring).

    Opens an approval request under the model's policy (the stage or the protected alias the monitor follows)
    marked as a rollback, with the evidence; returns it, or None when nothing is proposed (no evidence, not
    worse, or this pair was proposed before).
    """
    evidence = compare_versions(monitor=monitor, now=now)
    if evidence is None or not evidence["worse"]:
        return None
    with transaction.atomic():
        RegisteredModel.objects.select_for_update().get(pk=monitor.model_id)
        proposed = ApprovalRequest.objects.filter(
            version_id=evidence["to_version"], rollback=True, evidence__from_version=evidence["from_version"]
        )
        if proposed.exists():
            return None
        previous = ModelVersion.objects.select_related("model").get(pk=evidence["to_version"])
        reason = f"Rollback proposed by monitor {monitor.name}: {evidence['summary']}."
        if monitor.follow_alias:
            request = open_approval_request(previous, None, alias=monitor.follow_alias, reason=reason, rollback=True)
        else:
            request = open_approval_request(
                previous, None, stage=monitor.follow_stage, archive=True, reason=reason, rollback=True
            )
        request.rollback = True
        request.evidence = evidence
        if not request.reason:
            request.reason = reason
        request.save(update_fields=["rollback", "evidence", "reason"])
    return request
