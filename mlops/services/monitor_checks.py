"""Monitor checks: their set-up, their evaluation on each batch and over a scheduled window, and breaches.

A check measures one thing of a batch (or of a window of batches): the dataset's drift share, one column's
drift statistic, a data-quality share, or a performance metric, and compares it with its bound. A failing
check opens a `Breach` and raises an AIOps alert (`aiops.services.raise_alert`, source `mlops`, one alert
key per check) with the model, version, monitor and check as labels and a link to the report, so it becomes
an incident with the usual routing; the first passing evaluation after it resolves both. A breach of a
check that names a retraining hook queues that hook's call.

Per-batch checks run in the worker once a batch is stored (`evaluate_batch`, task
`mlops.tasks.evaluate_monitor_batch`; a sweeper re-enqueues batches still unevaluated). Window checks run
every `schedule_minutes` over the batches of the last `window_hours` of the version the monitor follows
(`evaluate_window`, beat task `mlops.tasks.evaluate_monitors`): drift from the merged batch profiles
(`mlops.drift.profiles.merge_profiles` + `window_drift`, no rows re-read), quality from the merged profile,
metrics weighted by each batch's labelled rows.
"""

from __future__ import annotations

import datetime
import logging
import math
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.enqueue import enqueue_on_commit, resend
from opsportal.errors import InvalidInput, NotAllowed

from ..aiops_bridge import raise_alert
from ..drift.profiles import BatchProfile, ProfileSpec, merge_profiles, window_drift
from ..drift.quality import profile_quality
from ..drift.select import DRIFT_SHARE, ColumnOptions, DriftOptions
from ..models import (
    Breach,
    ModelVersion,
    Monitor,
    MonitorCheck,
    MonitoringBatch,
    RetrainingHook,
    VersionEvent,
)
from .history import Actor, record_event
from .retraining import request_retraining
from .rollback_proposals import LOWER_IS_BETTER, propose_rollback, window_performance

logger = logging.getLogger(__name__)

SOURCE = "mlops"
SEVERITIES = ("critical", "error", "warning", "info")
# Quality rules and the share each reads off a column's quality (mlops.drift.quality.ColumnQuality.to_dict).
QUALITY_RULES = {
    "missing_share": "missing_share",
    "new_categories": "new_category_share",
    "out_of_range": "out_of_range_share",
    "type_mismatches": "type_mismatch_share",
}
EVALUATE_BATCH_TASK = "mlops.tasks.evaluate_monitor_batch"
EVALUATE_MONITOR_TASK = "mlops.tasks.evaluate_monitor"
# Batches still unevaluated this long after they arrived are re-enqueued (their task was lost).
SWEEP_AFTER = datetime.timedelta(minutes=2)
SWEEP_LIMIT = 500


class CheckInvalid(InvalidInput):
    """A check's kind, column, rule, bound or hook is refused (400, on that field)."""


@dataclass
class Measurement:
    """What one evaluation of a check found: the value, whether it fails, and why, in words and numbers."""

    value: float | None
    breached: bool
    message: str
    evidence: dict = field(default_factory=dict)


# --- Set-up ---------------------------------------------------------------------------------------------------


def _clean_check(
    monitor: Monitor, *, name: str, kind: str, scope: str, column: str, rule: str, bound: float | None,
    severity: str, retraining: RetrainingHook | None,
) -> dict:  # fmt: skip
    name = (name or "").strip()
    if not name:
        raise CheckInvalid("required.", field="name")
    if kind not in MonitorCheck.Kind.values:
        raise CheckInvalid(f"choose from {', '.join(MonitorCheck.Kind.values)}.", field="kind")
    if scope not in MonitorCheck.Scope.values:
        raise CheckInvalid(f"choose from {', '.join(MonitorCheck.Scope.values)}.", field="scope")
    if severity not in SEVERITIES:
        raise CheckInvalid(f"choose from {', '.join(SEVERITIES)}.", field="severity")
    column, rule = (column or "").strip(), (rule or "").strip()
    if bound is not None:
        try:
            bound = float(bound)
        except (TypeError, ValueError):
            raise CheckInvalid("must be a number.", field="bound") from None
        if not math.isfinite(bound):
            raise CheckInvalid("must be a finite number.", field="bound")
    schema = monitor.schema or {}
    if kind == MonitorCheck.Kind.DATASET_DRIFT:
        column, rule = "", ""
        if bound is not None and not 0 < bound <= 1:
            raise CheckInvalid("the share of drifted columns: above 0 and at most 1.", field="bound")
    elif kind == MonitorCheck.Kind.COLUMN_DRIFT:
        rule = ""
        if not column:
            raise CheckInvalid("name the column whose drift is checked.", field="column")
        if schema and column not in schema:
            raise CheckInvalid(f"the monitor's schema has no column {column!r}.", field="column")
        if bound is not None and bound <= 0:
            raise CheckInvalid("the p-value or distance threshold: above 0.", field="bound")
    elif kind == MonitorCheck.Kind.QUALITY:
        if rule not in QUALITY_RULES:
            raise CheckInvalid(f"choose from {', '.join(QUALITY_RULES)}.", field="rule")
        if column and schema and column not in schema:
            raise CheckInvalid(f"the monitor's schema has no column {column!r}.", field="column")
        if bound is None or not 0 <= bound < 1:
            raise CheckInvalid("the largest share allowed: at least 0 and below 1.", field="bound")
    else:
        column = ""
        if not rule:
            raise CheckInvalid("name the metric, e.g. accuracy, f1, roc_auc, rmse or mae.", field="rule")
        if bound is None:
            raise CheckInvalid(
                f"required: the {'ceiling' if rule in LOWER_IS_BETTER else 'floor'} of {rule}.", field="bound"
            )
    if retraining is not None and retraining.model_id != monitor.model_id:
        raise CheckInvalid("the retraining hook belongs to another model.", field="retraining")
    return {
        "name": name, "kind": kind, "scope": scope, "column": column, "rule": rule, "bound": bound,
        "severity": severity, "retraining": retraining,
    }  # fmt: skip


@transaction.atomic
def save_check(
    *, monitor: Monitor, actor: Actor, name: str, kind: str, scope: str = MonitorCheck.Scope.BATCH,
    column: str = "", rule: str = "", bound: float | None = None, severity: str = "warning",
    retraining: RetrainingHook | None = None, enabled: bool = True, check: MonitorCheck | None = None,
) -> MonitorCheck:  # fmt: skip
    """Create a check on `monitor` (`check` None) or change `check`. What it measures is judged from the next
    evaluation on; disabling a check resolves its open breach."""
    fields = _clean_check(
        monitor, name=name, kind=kind, scope=scope, column=column, rule=rule, bound=bound, severity=severity,
        retraining=retraining,
    )  # fmt: skip
    fields["enabled"] = bool(enabled)
    creating = check is None
    check = MonitorCheck(monitor=monitor) if creating else MonitorCheck.objects.select_for_update().get(pk=check.pk)
    before = {} if creating else audit.snapshot(check, fields)
    measured = ("kind", "scope", "column", "rule", "bound")
    changed_measure = not creating and any(getattr(check, key) != fields[key] for key in measured)
    for key, value in fields.items():
        setattr(check, key, value)
    if changed_measure or not check.enabled:
        check.state, check.last_value = MonitorCheck.State.UNKNOWN, None
    check.save()
    audit.record(
        action="create" if creating else "update", actor=actor, obj=check,
        changes=audit.diff(before, audit.snapshot(check, fields)),
        message=f"Check {check.name} ({check.get_kind_display()}, {check.get_scope_display()}) on {monitor}",
    )  # fmt: skip
    if not check.enabled:
        _resolve_open(check, "the check was disabled")
    return check


@transaction.atomic
def delete_check(*, check: MonitorCheck, actor: Actor) -> None:
    """Delete the check; its open breach is resolved first, so its incident does not stay open for nothing."""
    check = MonitorCheck.objects.select_for_update().select_related("monitor__model").get(pk=check.pk)
    _resolve_open(check, "the check was deleted")
    audit.record(action="delete", actor=actor, obj=check, message=f"Check {check.name} on {check.monitor}")
    check.delete()


# --- Measuring ------------------------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return f"{value:.1%}"


def measure(check: MonitorCheck, *, drift: dict, quality: list[dict], performance: dict) -> Measurement | None:
    """The check's measurement on one batch's (or window's) results; None when they do not say (no labelled
    rows yet for a metric, a column that was skipped or is not profiled)."""
    if check.kind == MonitorCheck.Kind.DATASET_DRIFT:
        columns = drift.get("columns") or []
        if not columns:
            return None
        drifted = [c["column"] for c in columns if c.get("drifted")]
        share = len(drifted) / len(columns)
        threshold = check.bound if check.bound is not None else drift.get("drift_share_threshold") or DRIFT_SHARE
        breached = share >= threshold
        named = f": {', '.join(drifted[:10])}{' ...' if len(drifted) > 10 else ''}" if drifted else ""
        return Measurement(
            share, breached, f"{len(drifted)} of {len(columns)} columns drifted ({_pct(share)}, "
            f"dataset drift at {_pct(threshold)}){named}",
            {"drift_share": share, "threshold": threshold, "drifted_columns": drifted},
        )  # fmt: skip
    if check.kind == MonitorCheck.Kind.COLUMN_DRIFT:
        entry = next((c for c in drift.get("columns") or [] if c.get("column") == check.column), None)
        if entry is None:
            return None
        p_value = entry.get("p_value")
        is_test = p_value is not None
        value = p_value if is_test else entry.get("statistic")
        if value is None:
            return None
        threshold = check.bound if check.bound is not None else entry.get("threshold")
        breached = (value < threshold) if is_test else (value >= threshold)
        measure_name = "p-value" if is_test else "distance"
        verdict = "drifted" if breached else "did not drift"
        return Measurement(
            float(value), breached,
            f"column {check.column} {verdict}: {entry.get('method')} {measure_name} {value:.4g} "
            f"({'below' if is_test else 'at or above'} {threshold:g} is drift)",
            {"column": check.column, "method": entry.get("method"), "statistic": entry.get("statistic"),
             "p_value": p_value, "threshold": threshold},
        )  # fmt: skip
    if check.kind == MonitorCheck.Kind.QUALITY:
        key = QUALITY_RULES[check.rule]
        rows = [q for q in quality if not check.column or q.get("column") == check.column]
        if not rows:
            return None
        worst = max(rows, key=lambda q: q.get(key) or 0.0)
        share = float(worst.get(key) or 0.0)
        breached = share > check.bound
        evidence = {"column": worst.get("column"), "rule": check.rule, "share": share, "bound": check.bound}
        if check.rule == "new_categories" and worst.get("new_categories"):
            evidence["new_categories"] = dict(list(worst["new_categories"].items())[:20])
        return Measurement(
            share, breached,
            f"{check.rule.replace('_', ' ')} of column {worst.get('column')}: {_pct(share)} "
            f"(at most {_pct(check.bound)} allowed)",
            evidence,
        )  # fmt: skip
    value = performance.get(check.rule)
    if value is None or not isinstance(value, int | float):
        return None
    value = float(value)
    ceiling = check.rule in LOWER_IS_BETTER
    breached = value > check.bound if ceiling else value < check.bound
    if breached:
        where = "above the ceiling" if ceiling else "below the floor"
    else:
        where = "within the ceiling" if ceiling else "above the floor"
    return Measurement(
        value, breached, f"{check.rule} {value:.4g} ({where} {check.bound:g})",
        {"metric": check.rule, "value": value, "bound": check.bound, "ceiling": ceiling,
         "labelled_rows": performance.get("rows")},
    )  # fmt: skip


def drift_options(monitor: Monitor) -> DriftOptions:
    """The monitor's drift settings (`Monitor.options`) as the engine takes them."""
    options = monitor.options or {}
    columns = {
        name: ColumnOptions(method=column.get("method"), threshold=column.get("threshold"))
        for name, column in (options.get("columns") or {}).items()
    }
    return DriftOptions(
        columns=columns, method=options.get("method"), threshold=options.get("threshold"),
        drift_share=float(options.get("drift_share") or DRIFT_SHARE),
    )  # fmt: skip


# --- Breaches -------------------------------------------------------------------------------------------------


def dedup_key(check: MonitorCheck) -> str:
    """The alert key of a check: one alert (and incident) per check while it fails."""
    return f"mlops:check:{check.pk}"


def _absolute(path: str) -> str:
    return f"{settings.OPSPORTAL_BASE_URL}{path}"


def _alert(breach: Breach, check: MonitorCheck, *, resolve: bool = False) -> None:
    """Raise (or resolve) the check's alert; an admin having disabled MLOps's integration leaves a note."""
    monitor = check.monitor
    model = monitor.model
    if breach.batch_id is not None:
        link = {"href": _absolute(breach.batch.get_absolute_url()), "text": f"Batch #{breach.batch_id} report"}
    else:
        link = {"href": _absolute(monitor.get_absolute_url()), "text": f"Monitor {monitor.name}"}
    version = str(breach.version.version) if breach.version is not None else ""
    try:
        raise_alert(
            source=SOURCE,
            dedup_key=breach.dedup_key,
            title=f"{model.name}{' v' + version if version else ''}: {check.name}",
            severity=check.severity,
            service=model.name,
            description=breach.message,
            labels={
                "model": model.name,
                "version": version,
                "monitor": monitor.name,
                "check": check.name,
                "check_kind": check.kind,
            },
            links=[link],
            resolve=resolve,
        )
    except NotAllowed as exc:
        logger.warning("Breach #%s raised no alert: %s", breach.pk, exc)
        breach.evidence = {**breach.evidence, "alert_error": str(exc)}
        breach.save(update_fields=["evidence"])


def _open(
    check: MonitorCheck, found: Measurement, *, version: ModelVersion | None, batch: MonitoringBatch | None,
    window: tuple[datetime.datetime, datetime.datetime] | None,
) -> Breach:  # fmt: skip
    monitor = check.monitor
    breach = Breach.objects.create(
        monitor_check=check, monitor=monitor, version=version, batch=batch,
        window_start=window[0] if window else (batch.start if batch else None),
        window_end=window[1] if window else (batch.end if batch else None),
        value=found.value, message=found.message[:500], evidence=audit._plain(found.evidence),
        dedup_key=dedup_key(check),
    )  # fmt: skip
    where = f"batch #{batch.pk}" if batch is not None else f"the last {monitor.window_hours} h"
    record_event(
        monitor.model, VersionEvent.Kind.BREACH_OPENED,
        f"Check {check.name} of monitor {monitor.name} breached on {where}: {found.message}", None,
        version=version, audit_action="breach", breach=breach.pk, check=check.pk, monitor=monitor.pk,
        batch=batch.pk if batch else None, value=found.value,
    )  # fmt: skip
    _alert(breach, check)
    if check.retraining_id is not None:
        request_retraining(breach=breach, hook=check.retraining)
    return breach


def _resolve(breach: Breach, check: MonitorCheck, why: str) -> None:
    breach.resolved_at = timezone.now()
    breach.save(update_fields=["resolved_at"])
    monitor = check.monitor
    record_event(
        monitor.model, VersionEvent.Kind.BREACH_RESOLVED,
        f"Check {check.name} of monitor {monitor.name} recovered: {why}", None,
        version=breach.version, audit_action="breach_resolved", breach=breach.pk, check=check.pk,
    )  # fmt: skip
    _alert(breach, check, resolve=True)


def _resolve_open(check: MonitorCheck, why: str) -> None:
    breach = check.breaches.filter(resolved_at__isnull=True).select_related("version", "batch").first()
    if breach is not None:
        _resolve(breach, check, why)


def apply(
    check: MonitorCheck, found: Measurement, *, version: ModelVersion | None, batch: MonitoringBatch | None = None,
    window: tuple[datetime.datetime, datetime.datetime] | None = None,
) -> Breach | None:  # fmt: skip
    """Record one measurement on the check: open a breach when it starts failing, resolve it when it passes.
    Returns the breach opened now, if any. In the caller's transaction; the check row is locked."""
    check = (
        MonitorCheck.objects.select_for_update(of=("self",))
        .select_related("monitor__model", "retraining")
        .get(pk=check.pk)
    )
    check.last_value, check.last_evaluated_at = found.value, timezone.now()
    check.state = MonitorCheck.State.BREACHED if found.breached else MonitorCheck.State.OK
    check.save(update_fields=["last_value", "last_evaluated_at", "state"])
    current = check.breaches.filter(resolved_at__isnull=True).select_related("version", "batch").first()
    if found.breached and current is None:
        return _open(check, found, version=version, batch=batch, window=window)
    if found.breached:
        current.value, current.evidence = found.value, {**current.evidence, "latest": audit._plain(found.evidence)}
        current.save(update_fields=["value", "evidence"])
    elif current is not None:
        _resolve(current, check, found.message)
    return None


# --- Evaluation -----------------------------------------------------------------------------------------------


@transaction.atomic
def evaluate_batch(*, batch: MonitoringBatch) -> list[Breach]:
    """Run the monitor's enabled per-batch checks on `batch` once (a second call finds it evaluated).

    A batch evaluated after a newer one (a sweeper's late retry) is marked evaluated without changing the
    checks' state: the newer batch already spoke for them. Returns the breaches opened.
    """
    batch = (
        MonitoringBatch.objects.select_for_update(of=("self",))
        .select_related("monitor__model", "version")
        .filter(pk=batch.pk)
        .first()
    )
    if batch is None or batch.evaluated_at is not None:
        return []
    newer = MonitoringBatch.objects.filter(
        monitor_id=batch.monitor_id, evaluated_at__isnull=False, end__gt=batch.end
    ).exists()
    opened: list[Breach] = []
    if not newer and batch.monitor.enabled:
        checks = batch.monitor.checks.filter(enabled=True, scope=MonitorCheck.Scope.BATCH)
        for check in checks:
            found = measure(
                check, drift=batch.drift or {}, quality=batch.quality or [], performance=batch.performance or {}
            )
            if found is None:
                continue
            breach = apply(check, found, version=batch.version, batch=batch)
            if breach is not None:
                opened.append(breach)
    batch.evaluated_at = timezone.now()
    batch.save(update_fields=["evaluated_at"])
    return opened


@dataclass
class WindowResult:
    """What a scheduled evaluation looked at and found (the API and pages show it)."""

    start: datetime.datetime
    end: datetime.datetime
    version: ModelVersion | None
    batches: int
    drift: dict
    quality: list[dict]
    performance: dict
    opened: list[Breach]


def window_results(
    monitor: Monitor, *, start: datetime.datetime, end: datetime.datetime, version: ModelVersion | None
) -> tuple[int, dict, list[dict], dict]:
    """Batches, drift, quality and performance of `version`'s batches ending in (start, end], from their
    profiles merged (drift only when the monitor has a reference with a profiling plan)."""
    batches = list(
        monitor.batches.filter(end__gt=start, end__lte=end, version=version)
        .only("id", "profile", "performance", "labelled_rows", "reference_id")
        .order_by("end", "id")
    )
    performance = window_performance(batches)
    reference = monitor.reference
    drift: dict = {}
    quality: list[dict] = []
    if reference is not None and reference.spec and reference.profile:
        profiles = [BatchProfile.from_dict(b.profile) for b in batches if b.reference_id == reference.pk and b.profile]
        if profiles:
            spec = ProfileSpec.from_dict(reference.spec)
            merged = merge_profiles(profiles)
            drift = window_drift(
                spec, BatchProfile.from_dict(reference.profile), merged, drift_options(monitor)
            ).to_dict()
            quality = [q.to_dict() for q in profile_quality(spec, merged)]
    return len(batches), drift, quality, performance


def evaluate_window(*, monitor: Monitor, now: datetime.datetime | None = None) -> WindowResult:
    """Run the monitor's enabled window checks over the last `window_hours` of the followed version's
    batches, then look for a worse newly promoted version (`rollback_proposals.propose_rollback`)."""
    now = now or timezone.now()
    start = now - datetime.timedelta(hours=monitor.window_hours)
    with transaction.atomic():
        monitor = (
            Monitor.objects.select_for_update(of=("self",)).select_related("model", "reference").get(pk=monitor.pk)
        )
        version = monitor.current_version()
        count, drift, quality, performance = window_results(monitor, start=start, end=now, version=version)
        opened: list[Breach] = []
        if monitor.enabled:
            for check in monitor.checks.filter(enabled=True, scope=MonitorCheck.Scope.WINDOW):
                found = measure(check, drift=drift, quality=quality, performance=performance) if count else None
                if found is None:
                    continue
                found.evidence = {**found.evidence, "batches": count}
                breach = apply(check, found, version=version, window=(start, now))
                if breach is not None:
                    opened.append(breach)
        Monitor.objects.filter(pk=monitor.pk).update(last_evaluated_at=now)
    if monitor.enabled:
        propose_rollback(monitor=monitor, now=now)
    return WindowResult(start, now, version, count, drift, quality, performance, opened)


def is_due(monitor: Monitor, now: datetime.datetime) -> bool:
    return monitor.last_evaluated_at is None or monitor.last_evaluated_at <= now - datetime.timedelta(
        minutes=monitor.schedule_minutes
    )


def enqueue_due_monitors(*, now: datetime.datetime | None = None) -> int:
    """Claim every enabled monitor whose schedule is due and enqueue its window evaluation; returns how many.

    The claim (last_evaluated_at moved to now, only if nobody moved it first) keeps two beats from
    evaluating one monitor twice; a lost task waits for the next period.
    """
    now = now or timezone.now()
    claimed = 0
    monitors = Monitor.objects.filter(enabled=True).only("id", "last_evaluated_at", "schedule_minutes")
    with transaction.atomic():
        for monitor in monitors:
            if not is_due(monitor, now):
                continue
            if Monitor.objects.filter(pk=monitor.pk, last_evaluated_at=monitor.last_evaluated_at).update(
                last_evaluated_at=now
            ):
                enqueue_on_commit(EVALUATE_MONITOR_TASK, monitor.pk)
                claimed += 1
    return claimed


def requeue_unevaluated_batches(*, older_than: datetime.timedelta = SWEEP_AFTER) -> int:
    """Re-enqueue the evaluation of batches still unevaluated (the broker was down, or a worker died)."""
    due = MonitoringBatch.objects.filter(evaluated_at__isnull=True, received_at__lt=timezone.now() - older_than)
    keys = list(due.order_by("received_at").values_list("pk", flat=True)[:SWEEP_LIMIT])
    return resend(EVALUATE_BATCH_TASK, keys)
