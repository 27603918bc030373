"""LLM monitors: create, change and delete them, and evaluate one (`evaluate_monitor`, every minute by beat).

An evaluation measures the metric over the window in SQL (`llmops.monitoring.rules`), stores a reading,
and moves the state: a breach with enough samples fires the AIOps alert `llmops-monitor-<id>`
(`aiops.services.raise_alert`, source "llmops", repeated while it lasts, so the incident's last-seen time
moves), a value back within the bound resolves it; too few samples neither fire nor resolve (a silent
feature has not recovered). The alert links to the traces list filtered to the monitor's scope and window.
"""

from __future__ import annotations

import datetime
import logging
import math
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from opsportal.audit import services as audit

from .. import aiops_bridge as aiops_services
from ..models import LLMMonitor, LLMMonitorReading
from ..monitoring import rules
from .base import Actor, InvalidInput, user_of

logger = logging.getLogger(__name__)

MONITOR_FIELDS = ("name", "description", "metric", "service", "model", "prompt_version", "guard_policy",
                  "score_name", "window_minutes", "comparison", "threshold", "min_samples", "severity",
                  "enabled")  # fmt: skip
SCOPE_FIELDS = ("service", "model", "prompt_version", "guard_policy", "score_name")
MAX_WINDOW_MINUTES = 7 * 24 * 60
# Readings older than this are pruned as new ones arrive: the chart shows the last day at one a minute.
READING_RETENTION = datetime.timedelta(days=7)
ALERT_SOURCE = "llmops"


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation found and did."""

    monitor_id: int
    value: float | None
    samples: int
    state: str
    fired: bool = False
    resolved: bool = False


def _clean(monitor: LLMMonitor) -> None:
    """Refuse what would make a rule meaningless, naming the field."""
    if monitor.metric not in LLMMonitor.Metric.values:
        raise InvalidInput(f"must be one of {', '.join(LLMMonitor.Metric.values)}", field="metric")
    if not isinstance(monitor.threshold, int | float) or isinstance(monitor.threshold, bool):
        raise InvalidInput("must be a number", field="threshold")
    if not math.isfinite(monitor.threshold) or monitor.threshold < 0:
        raise InvalidInput("must be a number of at least 0", field="threshold")
    if monitor.is_rate and monitor.threshold > 1:
        raise InvalidInput("a rate is a fraction from 0 to 1 (0.05 is 5 %)", field="threshold")
    if not isinstance(monitor.window_minutes, int) or not 1 <= monitor.window_minutes <= MAX_WINDOW_MINUTES:
        raise InvalidInput(f"must be from 1 to {MAX_WINDOW_MINUTES} minutes", field="window_minutes")
    applies = rules.applies(monitor.metric)
    for field in SCOPE_FIELDS:
        value = getattr(monitor, f"{field}_id" if field in ("prompt_version", "guard_policy") else field)
        if value and field not in applies:
            raise InvalidInput(f"does not apply to {monitor.get_metric_display().lower()}", field=field)
    try:
        monitor.full_clean(exclude=["created_by", "state", "last_value", "last_samples"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise InvalidInput(" ".join(messages), field=field) from None


def _apply(monitor: LLMMonitor, fields: dict) -> None:
    unknown = set(fields) - set(MONITOR_FIELDS)
    if unknown:
        raise InvalidInput("is not a monitor field", field=sorted(unknown)[0])
    for key, value in fields.items():
        setattr(monitor, key, value.strip() if isinstance(value, str) else value)


@transaction.atomic
def create_monitor(*, actor: Actor, **fields: object) -> LLMMonitor:
    """A new monitor (MONITOR_FIELDS); the next beat evaluates it."""
    monitor = LLMMonitor(created_by=user_of(actor))
    _apply(monitor, fields)
    _clean(monitor)
    monitor.save()
    rule = f"{monitor.metric} {monitor.comparison} {monitor.threshold}"
    audit.record(action="create", actor=actor, obj=monitor, message=f"LLM monitor {monitor.name}: {rule}")
    return monitor


@transaction.atomic
def update_monitor(*, monitor: LLMMonitor, actor: Actor, **fields: object) -> LLMMonitor:
    """Change a monitor; a changed rule is judged afresh at the next evaluation (its alert stays until then).

    Disabling a firing monitor resolves its alert: nothing would evaluate it any more.
    """
    before = audit.snapshot(monitor, list(fields))
    _apply(monitor, fields)
    _clean(monitor)
    if not monitor.enabled and monitor.state != LLMMonitor.State.NEW:
        if monitor.state == LLMMonitor.State.FIRING:
            aiops_services.raise_alert(source=ALERT_SOURCE, dedup_key=monitor.dedup_key, resolve=True)
        monitor.state, monitor.state_since = LLMMonitor.State.NEW, timezone.now()
    monitor.updated_at = timezone.now()
    monitor.save()
    changes = audit.diff(before, audit.snapshot(monitor, list(fields)))
    if changes:
        audit.record(action="update", actor=actor, obj=monitor, changes=changes)
    return monitor


@transaction.atomic
def delete_monitor(*, monitor: LLMMonitor, actor: Actor) -> None:
    """Delete a monitor and resolve its alert, if firing (nobody is left to resolve it)."""
    if monitor.state == LLMMonitor.State.FIRING:
        aiops_services.raise_alert(source=ALERT_SOURCE, dedup_key=monitor.dedup_key, resolve=True)
    audit.record(action="delete", actor=actor, obj=monitor)
    monitor.delete()


def enabled_monitors() -> list[int]:
    return list(LLMMonitor.objects.filter(enabled=True).order_by("id").values_list("id", flat=True))


def traces_url(monitor: LLMMonitor, since: datetime.datetime) -> str:
    """The traces list filtered to the monitor's scope and window (absolute, for the incident's link)."""
    params = {"since": since.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")}
    if "service" in rules.applies(monitor.metric):
        params.update({"service": monitor.service, "model": monitor.model})
    if monitor.prompt_version_id:
        params["prompt_version"] = str(monitor.prompt_version_id)
    if monitor.metric == LLMMonitor.Metric.ERROR_RATE:
        params["status"] = "error"
    if monitor.metric == LLMMonitor.Metric.EVAL_PASS_RATE:
        params["model"] = monitor.model
        if monitor.score_name:
            params["score"] = monitor.score_name
    query = urlencode({key: value for key, value in params.items() if value})
    return f"{settings.OPSPORTAL_BASE_URL}{reverse('llmops:traces')}?{query}"


def _alert_fields(monitor: LLMMonitor, value: float, since: datetime.datetime) -> dict:
    shown = monitor.format_value(value)
    bound = monitor.format_value(monitor.threshold)
    labels = {"monitor_id": str(monitor.pk), "metric": monitor.metric, "service": monitor.service or "llmops"}
    if monitor.model:
        labels["model"] = monitor.model
    if monitor.prompt_version_id:
        labels["prompt_version"] = str(monitor.prompt_version)
    return {
        "title": f"{monitor.name}: {monitor.get_metric_display().lower()} {shown} {monitor.comparison} {bound}",
        "severity": monitor.severity,
        "service": monitor.service or "llmops",
        "description": (
            f"{monitor.get_metric_display()} of {monitor.scope()} over the last {monitor.window_minutes} min "
            f"is {shown}, {monitor.comparison} the bound {bound}."
        ),
        "labels": labels,
        "links": [
            {"href": traces_url(monitor, since), "text": "Traces"},
            {"href": f"{settings.OPSPORTAL_BASE_URL}{monitor.get_absolute_url()}", "text": "Monitor"},
        ],
    }


def evaluate_monitor(*, monitor_id: int, now: datetime.datetime | None = None) -> Evaluation | None:
    """Measure one monitor, store the reading, fire or resolve its alert. None when the monitor is gone."""
    now = now or timezone.now()
    with transaction.atomic():
        monitor = LLMMonitor.objects.select_for_update(skip_locked=True).filter(pk=monitor_id).first()
        if monitor is None:
            return None
        measured = rules.measure(monitor, now)
        since, _ = rules.window(monitor, now)
        # Cost is a sum (zero spend is a value); rates and latency need min_samples to mean anything.
        needs_samples = monitor.is_rate or monitor.metric == LLMMonitor.Metric.P95_LATENCY
        enough = measured.value is not None and (not needs_samples or measured.samples >= monitor.min_samples)
        breached = enough and monitor.breached(measured.value)
        previous = monitor.state
        if not enough:
            state = LLMMonitor.State.FIRING if previous == LLMMonitor.State.FIRING else LLMMonitor.State.NO_DATA
        else:
            state = LLMMonitor.State.FIRING if breached else LLMMonitor.State.OK
        fired = resolved = False
        if breached:
            aiops_services.raise_alert(source=ALERT_SOURCE, dedup_key=monitor.dedup_key,
                                       **_alert_fields(monitor, measured.value, since))  # fmt: skip
            fired = previous != LLMMonitor.State.FIRING
        elif enough and previous == LLMMonitor.State.FIRING:
            recovered = f"Back within the bound: {monitor.format_value(measured.value)}."
            aiops_services.raise_alert(source=ALERT_SOURCE, dedup_key=monitor.dedup_key, resolve=True,
                                       description=recovered)  # fmt: skip
            resolved = True
        LLMMonitorReading.objects.create(monitor=monitor, at=now, value=measured.value, samples=measured.samples,
                                         breached=breached)  # fmt: skip
        LLMMonitorReading.objects.filter(monitor=monitor, at__lt=now - READING_RETENTION).delete()
        updates = {"last_value": measured.value, "last_samples": measured.samples, "last_evaluated_at": now,
                   "state": state}  # fmt: skip
        if state != previous:
            updates["state_since"] = now
        LLMMonitor.objects.filter(pk=monitor.pk).update(**updates)
    if fired or resolved:
        logger.info("LLM monitor %s %s at %s", monitor.name, "fired" if fired else "resolved", measured.value)
    return Evaluation(monitor_id=monitor.pk, value=measured.value, samples=measured.samples, state=state,
                      fired=fired, resolved=resolved)  # fmt: skip
