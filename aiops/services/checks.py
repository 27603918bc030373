"""Uptime checks: create, edit, pause and delete them, test one before saving, and read their history.

Validation names the field the API shows (`interval_seconds`, `cron`, `config.url`, ...). Reads for
pages and the API are here too, each one query for a whole list of checks: uptime over 24 h / 7 d /
30 d (from the hourly counts), daily uptime bars, a latency series bucketed in SQL, down periods,
and the incidents a check opened (through its alert's dedup key). Running checks and pings are in
`check_runs`.
"""

from __future__ import annotations

import datetime
import math
import re
import zoneinfo
from dataclasses import dataclass
from typing import Any

from croniter import croniter
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.errors import InvalidInput, NotFound

from ..checks import heartbeat, runner
from ..checks.config import validate_config
from ..models import SEVERITY_RANK, Alert, Check, CheckHourlyStat, CheckOutage, CheckResult, Incident, Ping
from ..models.checks import MAX_INTERVAL_SECONDS
from .actor import Actor, user_of
from .check_runs import ALERT_SOURCE, Claim, alert_for, schedule_of, store_outcomes

MAX_HEARTBEAT_SECONDS = 365 * 86400
LABEL_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
EDITABLE = (
    "name", "config", "service", "severity", "labels", "owner", "description", "interval_seconds", "timeout_seconds",
    "retries", "upside_down", "period_seconds", "grace_seconds", "cron", "tz",
)  # fmt: skip
AUDITED = (*EDITABLE, "kind", "paused")
# Changing one of these runs an active check soon, or moves a heartbeat's deadline.
SCHEDULE_FIELDS = {"config", "interval_seconds", "timeout_seconds", "period_seconds", "grace_seconds", "cron", "tz"}


def create_check(
    *,
    actor: Actor,
    name: str,
    kind: str,
    config: dict[str, Any] | None = None,
    service: str = "",
    severity: str = "error",
    labels: dict[str, str] | None = None,
    owner: User | None = None,
    description: str = "",
    interval_seconds: int = 60,
    timeout_seconds: float = 10.0,
    retries: int = 0,
    paused: bool = False,
    upside_down: bool = False,
    period_seconds: int | None = None,
    grace_seconds: int = 300,
    cron: str = "",
    tz: str = "UTC",
) -> Check:
    """Create a check. An active one runs at once (then every interval); a heartbeat waits for its first ping."""
    if kind not in Check.Kind.values:
        raise InvalidInput(f"unknown kind {kind!r}; one of {', '.join(Check.Kind.values)}.", field="kind")
    values = _validated(
        kind,
        {
            "name": name, "config": config, "service": service, "severity": severity, "labels": labels,
            "owner": owner, "description": description, "interval_seconds": interval_seconds,
            "timeout_seconds": timeout_seconds, "retries": retries, "upside_down": upside_down,
            "period_seconds": period_seconds, "grace_seconds": grace_seconds, "cron": cron, "tz": tz,
        },
    )  # fmt: skip
    now = timezone.now()
    check = Check(kind=kind, paused=bool(paused), created_by=user_of(actor), created_at=now, updated_at=now, **values)
    check.status = Check.Status.PAUSED if check.paused else Check.Status.NEW
    check.next_due_at = None if check.is_heartbeat else now
    with transaction.atomic():
        check.save()
        audit.record(
            action=audit.Action.CREATE, actor=actor, obj=check,
            changes=audit.diff({}, audit.snapshot(check, AUDITED)),
        )  # fmt: skip
    return check


def update_check(*, check: Check, actor: Actor, **changes: Any) -> Check:
    """Change the given fields (`kind` cannot change: its results would mean something else)."""
    if "kind" in changes and changes.pop("kind") != check.kind:
        raise InvalidInput("cannot change; create a new check of the other kind.", field="kind")
    if "paused" in changes:
        paused = bool(changes.pop("paused"))
        if paused != check.paused:
            check = set_paused(check=check, paused=paused, actor=actor)
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise InvalidInput("not a field of a check.", field=unknown[0])
    if not changes:
        return check
    current = {name: getattr(check, name) for name in EDITABLE}
    values = _validated(check.kind, {**current, **changes})
    with transaction.atomic():
        check = Check.objects.select_for_update().get(pk=check.pk)
        before = audit.snapshot(check, AUDITED)
        for name, value in values.items():
            setattr(check, name, value)
        moved = {name for name in SCHEDULE_FIELDS if before.get(name) != audit.snapshot(check, [name])[name]}
        check.updated_at = timezone.now()
        if moved and not check.paused:
            check.next_due_at = _fresh_due(check, timezone.now())
        check.save()
        changed = audit.diff(before, audit.snapshot(check, AUDITED))
        if changed:
            audit.record(action=audit.Action.UPDATE, actor=actor, obj=check, changes=changed)
    return check


def delete_check(*, check: Check, actor: Actor) -> None:
    """Delete a check with its results and pings; an alert it has firing is resolved."""
    with transaction.atomic():
        if check.status == Check.Status.DOWN or CheckOutage.objects.filter(check_obj=check, ended_at=None).exists():
            alert_for(check, down=False)
        audit.record(action=audit.Action.DELETE, actor=actor, obj=check, changes={"name": [check.name, None]})
        check.delete()


def set_paused(*, check: Check, paused: bool, actor: Actor) -> Check:
    """Pause (maintenance: not run, no alerts) or resume a check; resumed, it starts afresh (status new)."""
    return bulk_set_paused(check_ids=[check.pk], paused=paused, actor=actor)[0] if check.pk else check


def bulk_set_paused(*, check_ids: list[int], paused: bool, actor: Actor) -> list[Check]:
    """Pause or resume the checks with these ids; NotFound names the first id that does not exist."""
    ids = []
    for value in check_ids:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{value!r} is not a check id.", field="ids")
        ids.append(value)
    if not ids:
        raise InvalidInput("give at least one check id.", field="ids")
    now = timezone.now()
    with transaction.atomic():
        checks = list(Check.objects.filter(pk__in=ids).select_for_update().order_by("pk"))
        missing = sorted(set(ids) - {check.pk for check in checks})
        if missing:
            raise NotFound(f"no check with id {missing[0]}.", field="ids")
        changed = [check for check in checks if check.paused != paused]
        for check in changed:
            check.paused = paused
            check.status = Check.Status.PAUSED if paused else Check.Status.NEW
            check.status_changed_at = now
            check.consecutive_failures = 0
            check.updated_at = now
            if not paused:
                check.started_at = None
                check.next_due_at = _fresh_due(check, now)
        Check.objects.bulk_update(
            changed,
            [
                "paused",
                "status",
                "status_changed_at",
                "consecutive_failures",
                "updated_at",
                "started_at",
                "next_due_at",
            ],
        )
        if changed:
            audit.record_many(
                action=audit.Action.STATE, actor=actor, objs=changed, changes={"paused": [not paused, paused]}
            )
    return checks


def test_check(
    *, kind: str, config: dict[str, Any] | None = None, timeout_seconds: float = 10.0, upside_down: bool = False
) -> runner.Outcome:
    """Run a check once, as configured, without saving anything; the result as it would be stored."""
    if kind == Check.Kind.HEARTBEAT:
        raise InvalidInput("a heartbeat is not run by the portal: save it and ping its URL.", field="kind")
    config = validate_config(kind, config)
    timeout = _number(timeout_seconds, "timeout_seconds", 0.1, 120)
    spec = runner.CheckSpec(kind=kind, config=config, timeout=timeout, upside_down=bool(upside_down))
    return runner.run_many([spec])[0]


def run_check_now(*, check: Check) -> CheckResult:
    """Run an active check at once and store the result like a scheduled run (its next run moves on)."""
    if check.is_heartbeat:
        raise InvalidInput("a heartbeat is not run by the portal: ping its URL.", field="kind")
    now = timezone.now()
    claim = Claim(
        id=check.pk, kind=check.kind, config=check.config, timeout=check.timeout_seconds,
        upside_down=check.upside_down, due=None, claimed_at=now,
    )  # fmt: skip
    outcome = runner.run_many([claim.spec()])[0]
    store_outcomes([(claim, outcome)])
    return CheckResult.objects.filter(check_obj=check).order_by("-at", "-id").first()


def prune_check_history(*, now: datetime.datetime | None = None, chunk: int = 10_000) -> dict[str, int]:
    """Delete results, pings and hourly counts older than their retention (settings), a chunk at a time."""
    now = now or timezone.now()
    kept = (
        (CheckResult, "at", settings.AIOPS_CHECK_RESULT_RETENTION_DAYS),
        (Ping, "at", settings.AIOPS_CHECK_PING_RETENTION_DAYS),
        (CheckHourlyStat, "hour", settings.AIOPS_CHECK_STATS_RETENTION_DAYS),
    )
    deleted = {}
    for model, field, days in kept:
        old = model.objects.filter(**{f"{field}__lt": now - datetime.timedelta(days=days)})
        total = 0
        while ids := list(old.order_by().values_list("pk", flat=True)[:chunk]):
            total += model.objects.filter(pk__in=ids).delete()[0]
        deleted[model._meta.model_name] = total
    return deleted


def _fresh_due(check: Check, now: datetime.datetime) -> datetime.datetime | None:
    """When a check that was just created, edited or resumed is next looked at."""
    if not check.is_heartbeat:
        return now
    # A heartbeat that was pinged before gets a whole period from now; one never pinged waits for its first.
    return heartbeat.deadline(schedule_of(check), last_success_at=now if check.last_ping_at else None, started_at=None)


def _validated(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """The fields of a check of `kind`, checked; InvalidInput names the first bad one."""
    out: dict[str, Any] = {}
    name = values.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("required.", field="name")
    if len(name.strip()) > 200:
        raise InvalidInput("at most 200 characters.", field="name")
    out["name"] = name.strip()
    out["config"] = validate_config(kind, values.get("config"))
    for key, limit in (("service", 200), ("description", 5000)):
        value = values.get(key) or ""
        if not isinstance(value, str) or len(value) > limit:
            raise InvalidInput(f"a string of at most {limit} characters.", field=key)
        out[key] = value.strip()
    severity = values.get("severity") or "error"
    if severity not in SEVERITY_RANK:
        raise InvalidInput(f"one of {', '.join(SEVERITY_RANK)}.", field="severity")
    out["severity"] = severity
    out["labels"] = _labels(values.get("labels"))
    owner = values.get("owner")
    if owner is not None and not isinstance(owner, User):
        raise InvalidInput("must be a user.", field="owner")
    out["owner"] = owner
    interval = values.get("interval_seconds", 60)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise InvalidInput("at least 1 second (a whole number of seconds).", field="interval_seconds")
    if interval > MAX_INTERVAL_SECONDS:
        raise InvalidInput(f"at most {MAX_INTERVAL_SECONDS} seconds (a day).", field="interval_seconds")
    out["interval_seconds"] = interval
    out["timeout_seconds"] = float(_number(values.get("timeout_seconds", 10.0), "timeout_seconds", 0.1, 120))
    retries = values.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
        raise InvalidInput("a whole number from 0 to 100.", field="retries")
    out["retries"] = retries
    out["upside_down"] = bool(values.get("upside_down", False))
    out.update(_heartbeat_schedule(kind, values))
    return out


def _heartbeat_schedule(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    period = values.get("period_seconds")
    cron = (values.get("cron") or "").strip()
    tz = (values.get("tz") or "UTC").strip()
    grace = values.get("grace_seconds", 300)
    if kind != Check.Kind.HEARTBEAT:
        return {"period_seconds": None, "grace_seconds": 300, "cron": "", "tz": "UTC"} | (
            {} if not (period or cron) else _refuse_schedule(period, cron)
        )
    if period is not None and cron:
        raise InvalidInput("give a period or a cron expression, not both.", field="cron")
    if cron:
        if len(cron) > 100 or not croniter.is_valid(cron):
            raise InvalidInput(f"{cron!r} is not a cron expression (e.g. '0 3 * * *').", field="cron")
    elif period is None:
        period = 86400
    if period is not None and (isinstance(period, bool) or not isinstance(period, int) or period < 1):
        raise InvalidInput("at least 1 second (a whole number of seconds).", field="period_seconds")
    if period is not None and period > MAX_HEARTBEAT_SECONDS:
        raise InvalidInput(f"at most {MAX_HEARTBEAT_SECONDS} seconds (a year).", field="period_seconds")
    if isinstance(grace, bool) or not isinstance(grace, int) or not 1 <= grace <= MAX_HEARTBEAT_SECONDS:
        raise InvalidInput(f"a whole number of seconds from 1 to {MAX_HEARTBEAT_SECONDS}.", field="grace_seconds")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"{tz!r} is not a time zone (e.g. 'Europe/Berlin').", field="tz") from None
    return {"period_seconds": period, "grace_seconds": grace, "cron": cron, "tz": tz}


def _refuse_schedule(period: object, cron: str) -> dict[str, Any]:
    field = "cron" if cron else "period_seconds"
    raise InvalidInput("only heartbeat checks have a period or cron schedule; use interval_seconds.", field=field)


def _labels(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("an object of label names to string values.", field="labels")
    if len(value) > 64:
        raise InvalidInput("at most 64 labels.", field="labels")
    for key, item in value.items():
        if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
            raise InvalidInput(f"{key!r} is not a label name (letters, digits, '_', '.', '-').", field="labels")
        if not isinstance(item, str) or len(item) > 1024:
            raise InvalidInput("a string of at most 1024 characters.", field=f"labels.{key}")
    return dict(value)


def _number(value: object, field: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidInput(f"a number from {low:g} to {high:g}.", field=field)
    return value


# --- Reads -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Uptime:
    """Share of successful runs, in percent (None: no runs in that window). Windows are whole hours."""

    day: float | None
    week: float | None
    month: float | None


def uptime(*, check_ids: list[int], now: datetime.datetime | None = None) -> dict[int, Uptime]:
    """Uptime over the last 24 h, 7 d and 30 d of each check, in one query over the hourly counts."""
    if not check_ids:
        return {}
    hour = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
    starts = {name: hour - datetime.timedelta(hours=hours - 1) for name, hours in (("d", 24), ("w", 168), ("m", 720))}
    aggregates = {}
    for name, start in starts.items():
        aggregates[f"up_{name}"] = Sum("up", filter=Q(hour__gte=start))
        aggregates[f"total_{name}"] = Sum("total", filter=Q(hour__gte=start))
    rows = (
        CheckHourlyStat.objects.filter(check_obj_id__in=check_ids, hour__gte=starts["m"])
        .values("check_obj_id")
        .annotate(**aggregates)
        .order_by()
    )
    found = {
        row["check_obj_id"]: Uptime(*(_percent(row[f"up_{name}"], row[f"total_{name}"]) for name in ("d", "w", "m")))
        for row in rows
    }
    return {check_id: found.get(check_id, Uptime(None, None, None)) for check_id in check_ids}


def _percent(up: int | None, total: int | None) -> float | None:
    return round(100.0 * (up or 0) / total, 3) if total else None


@dataclass(frozen=True)
class LatencyPoint:
    """A bucket of a check's runs: its start, mean latency, whether every run was up, and how many runs."""

    at: datetime.datetime
    latency_ms: float | None
    up: bool
    runs: int


def latency_series(
    *, check: Check, since: datetime.datetime, until: datetime.datetime | None = None, max_points: int = 1500
) -> list[LatencyPoint]:
    """A check's latency from `since` to `until`, at most `max_points` buckets, aggregated in SQL."""
    until = until or timezone.now()
    if until <= since:
        raise InvalidInput("must be after since.", field="until")
    bucket = max(1, math.ceil((until - since).total_seconds() / max(1, max_points)))
    table = connection.ops.quote_name(CheckResult._meta.db_table)
    if connection.vendor == "postgresql":
        epoch = "floor(extract(epoch from at) / %s)::bigint"
    else:
        epoch = "CAST(strftime('%%s', at) AS INTEGER) / %s"
    sql = (
        f"SELECT {epoch} AS bucket, AVG(latency_ms), MIN(CASE WHEN up THEN 1 ELSE 0 END), COUNT(*) "  # noqa: S608
        f"FROM {table} WHERE check_id = %s AND at >= %s AND at < %s GROUP BY bucket ORDER BY bucket"
    )
    params = [
        bucket, check.pk, connection.ops.adapt_datetimefield_value(since),
        connection.ops.adapt_datetimefield_value(until),
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        LatencyPoint(
            at=datetime.datetime.fromtimestamp(int(index) * bucket, datetime.UTC),
            latency_ms=round(mean, 3) if mean is not None else None,
            up=bool(all_up),
            runs=runs,
        )
        for index, mean, all_up, runs in rows
    ]


def down_periods(
    *, check: Check, since: datetime.datetime, until: datetime.datetime | None = None
) -> list[tuple[datetime.datetime, datetime.datetime | None]]:
    """The check's outages overlapping [since, until], oldest first; an open one ends with None."""
    until = until or timezone.now()
    outages = (
        CheckOutage.objects.filter(check_obj=check, started_at__lt=until)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=since))
        .order_by("started_at")
        .values_list("started_at", "ended_at")
    )
    return list(outages)


def incidents_opened(*, check: Check) -> Any:
    """The incidents the check's alerts opened or joined, newest first (a queryset)."""
    alerts = Alert.objects.filter(
        integration__internal_source=ALERT_SOURCE, fingerprint=check.dedup_key, incident__isnull=False
    ).values("incident_id")
    return Incident.objects.filter(pk__in=alerts).order_by("-created_at")


def ping_url(check: Check, base_url: str) -> str:
    """The heartbeat's ping URL on `base_url` (the UUID in it is the secret)."""
    return f"{base_url.rstrip('/')}/ping/{check.ping_uuid}"
