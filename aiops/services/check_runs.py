"""Running checks: claim the due ones, run them, store the results, move their state, raise alerts.

The dispatcher (`run_due_checks`, called by the `aiops.tasks.run_checks_due` task on queue `checks`)
claims due checks with `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite's IMMEDIATE
transactions serialise the claim instead), and in the same transaction moves their `next_due_at` to
the end of a lease (now + timeout + margin): two dispatchers never claim the same check, and the
checks of a worker that dies mid-run are due again when the lease ends. It runs the batch on asyncio
(`aiops.checks.runner`) and stores it in one transaction: results in one INSERT, hourly counts in
one upsert, the checks' state in one UPDATE, and each check's next time on its own grid.

Going down calls `raise_alert(source="check", dedup_key="check:<id>")`; the first success after
that resolves it. Heartbeats are evaluated here when their deadline passes, and by `record_ping`.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from opsportal.errors import NotFound, ServiceError

from ..checks import heartbeat, runner, schedule
from ..models import Check, CheckHourlyStat, CheckOutage, CheckResult, Ping
from ..models.checks import PING_BODY_MAX_BYTES
from .alerts import raise_alert

logger = logging.getLogger(__name__)

ALERT_SOURCE = "check"
MAX_ERROR_CHARS = 4000
STATE_FIELDS = [
    "status",
    "status_changed_at",
    "consecutive_failures",
    "last_result_at",
    "last_latency_ms",
    "last_error",
    "next_due_at",
]


@dataclass(frozen=True)
class Claim:
    """A check claimed for one run: what the runner needs, and the due time it was claimed at."""

    id: int
    kind: str
    config: dict[str, Any]
    timeout: float
    upside_down: bool
    due: datetime.datetime | None
    claimed_at: datetime.datetime

    def spec(self) -> runner.CheckSpec:
        return runner.CheckSpec(
            kind=self.kind, config=self.config, timeout=self.timeout, upside_down=self.upside_down, id=self.id
        )


def claim_due_checks(*, limit: int, now: datetime.datetime | None = None) -> list[Claim]:
    """Claim up to `limit` due, unpaused checks (oldest due first) and lease them to this caller."""
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(
            Check.objects.due(now)
            .order_by("next_due_at")
            .select_for_update(skip_locked=True)
            .values_list("id", "kind", "config", "timeout_seconds", "upside_down", "next_due_at")[:limit]
        )
        if not rows:
            return []
        longest = max(row[3] for row in rows)
        lease = now + datetime.timedelta(seconds=longest + settings.AIOPS_CHECKS_LEASE_MARGIN_SECONDS)
        Check.objects.filter(id__in=[row[0] for row in rows]).update(next_due_at=lease)
    return [Claim(*row, claimed_at=now) for row in rows]


def run_due_checks(
    *,
    budget_seconds: float = 10.0,
    batch: int | None = None,
    concurrency: int | None = None,
    on_full_batch: Callable[[], None] | None = None,
) -> int:
    """Claim, run and store batches of due checks until none is due or `budget_seconds` have passed.

    `on_full_batch` is called (once) when a batch came back full: more checks are due than one
    dispatcher takes at a time, so the caller can bring another worker in. Returns the checks run.
    """
    batch = batch or settings.AIOPS_CHECKS_BATCH
    concurrency = concurrency or settings.AIOPS_CHECKS_CONCURRENCY
    started = time.monotonic()
    total = 0
    while time.monotonic() - started < budget_seconds:
        claims = claim_due_checks(limit=batch)
        if not claims:
            break
        if len(claims) == batch and on_full_batch is not None:
            on_full_batch()
            on_full_batch = None
        active = [claim for claim in claims if claim.kind != Check.Kind.HEARTBEAT]
        if active:
            outcomes = runner.run_many([claim.spec() for claim in active], concurrency=concurrency)
            store_outcomes(list(zip(active, outcomes, strict=True)))
        late = [claim.id for claim in claims if claim.kind == Check.Kind.HEARTBEAT]
        if late:
            evaluate_heartbeats(check_ids=late)
        total += len(claims)
    return total


def store_outcomes(pairs: list[tuple[Claim, runner.Outcome]]) -> None:
    """Store a batch's results and apply each check's transition, in one transaction.

    A check deleted meanwhile is skipped; one paused meanwhile keeps its result but not a new state;
    one edited meanwhile keeps the next run its edit set.
    """
    now = timezone.now()
    with transaction.atomic():
        current = {
            check.pk: check
            for check in Check.objects.filter(pk__in=[claim.id for claim, _ in pairs])
            .select_for_update()
            .order_by("pk")
            .only("id", "name", "kind", "service", "severity", "labels", "retries", "paused", "interval_seconds",
                  "updated_at", *STATE_FIELDS)
        }  # fmt: skip
        results: list[CheckResult] = []
        changed: list[Check] = []
        events: list[tuple[Check, str, str]] = []
        for claim, outcome in pairs:
            check = current.get(claim.id)
            if check is None:
                continue
            results.append(_result(check, outcome))
            if check.paused:
                continue
            event = _apply(check, up=outcome.up, at=outcome.at, error=outcome.error, retries=check.retries)
            check.last_latency_ms = outcome.latency_ms
            if check.updated_at <= claim.claimed_at:
                check.next_due_at = schedule.next_due(due=claim.due, now=now, interval_seconds=check.interval_seconds)
            changed.append(check)
            if event:
                events.append((check, event, outcome.error))
        _store_results(results)
        _update_states(changed)
        _after_transitions(events)


def evaluate_heartbeats(*, check_ids: Iterable[int], now: datetime.datetime | None = None) -> int:
    """Mark down the claimed heartbeats that are late; set the others' deadline. Returns how many went down."""
    now = now or timezone.now()
    down = 0
    with transaction.atomic():
        checks = Check.objects.filter(pk__in=list(check_ids), paused=False).select_for_update().order_by("pk")
        results, events = [], []
        for check in checks:
            plan = schedule_of(check)
            reason = heartbeat.late_reason(
                plan, last_success_at=check.last_success_at, started_at=check.started_at, now=now
            )
            if reason is None:
                # A ping came in since the claim: it set the deadline, which the lease overwrote.
                check.next_due_at = heartbeat.deadline(
                    plan, last_success_at=check.last_success_at, started_at=check.started_at
                )
                check.save(update_fields=["next_due_at"])
                continue
            outcome = runner.Outcome(up=False, error=reason, at=now)
            results.append(_result(check, outcome))
            event = _apply(check, up=False, at=now, error=reason, retries=0)
            # Nothing is due until the next ping (a late success still measures the run from its start).
            check.next_due_at = None
            check.save(update_fields=STATE_FIELDS)
            down += 1
            if event:
                events.append((check, event, reason))
        _store_results(results)
        _after_transitions(events)
    return down


def schedule_of(check: Check) -> heartbeat.Schedule:
    return heartbeat.Schedule(
        period_seconds=check.period_seconds, grace_seconds=check.grace_seconds, cron=check.cron, tz=check.tz
    )


def record_ping(
    *,
    ping_uuid: str,
    kind: str,
    exit_status: int | None = None,
    body: bytes = b"",
    remote_addr: str | None = None,
    user_agent: str = "",
    method: str = "GET",
) -> Ping:
    """A heartbeat's ping: success (or exit status 0), start, or fail (or a non-zero exit status).

    A success makes the check up at once (resolving its alert); a fail is down at once (raising it); a
    start opens a run that must succeed within the grace time. A paused check records the ping only.
    """
    now = timezone.now()
    if exit_status is not None:
        kind = Ping.Kind.SUCCESS if exit_status == 0 else Ping.Kind.FAIL
    with transaction.atomic():
        check = Check.objects.select_for_update().filter(ping_uuid=ping_uuid, kind=Check.Kind.HEARTBEAT).first()
        if check is None:
            raise NotFound("no heartbeat check has this ping URL.", field="uuid")
        text = storable(body[:PING_BODY_MAX_BYTES].decode("utf-8", errors="replace"))
        user_agent = storable(user_agent)
        remote_addr = remote_addr if _is_address(remote_addr) else None
        duration_ms = None
        if kind != Ping.Kind.START and check.started_at is not None:
            duration_ms = round((now - check.started_at).total_seconds() * 1000, 3)
        ping = Ping.objects.create(
            check_obj=check, at=now, kind=kind, exit_status=exit_status, body=text, remote_addr=remote_addr,
            user_agent=user_agent[:300], method=method[:10], duration_ms=duration_ms,
        )  # fmt: skip
        check.last_ping_at = now
        fields = ["last_ping_at"]
        if check.paused:
            check.save(update_fields=fields)
            return ping
        plan = schedule_of(check)
        if kind == Ping.Kind.START:
            check.started_at = now
            check.next_due_at = heartbeat.deadline(plan, last_success_at=check.last_success_at, started_at=now)
            check.save(update_fields=[*fields, "started_at", "next_due_at"])
            return ping
        up = kind == Ping.Kind.SUCCESS
        error = "" if up else _fail_text(exit_status, text)
        outcome = runner.Outcome(
            up=up, latency_ms=duration_ms, error=error, at=now, details={"ping": ping.pk, "method": method}
        )
        event = _apply(check, up=up, at=now, error=error, retries=0)
        check.last_latency_ms = duration_ms
        check.started_at = None
        if up:
            check.last_success_at = now
            check.next_due_at = heartbeat.deadline(plan, last_success_at=now, started_at=None)
        else:
            check.next_due_at = None
        check.save(update_fields=[*fields, *STATE_FIELDS, "started_at", "last_success_at"])
        _store_results([_result(check, outcome)])
        _after_transitions([(check, event, error)] if event else [])
    return ping


def _is_address(value: str | None) -> bool:
    try:
        ipaddress.ip_address(value or "")
    except ValueError:
        return False
    return True


def _fail_text(exit_status: int | None, body: str) -> str:
    said = body.strip().splitlines()[0][:200] if body.strip() else ""
    what = f"exit status {exit_status}" if exit_status is not None else "a /fail ping"
    return f"{what}: {said}" if said else what


def _apply(check: Check, *, up: bool, at: datetime.datetime, error: str, retries: int) -> str:
    """Move `check` to its state after a run (in memory); the event to act on ("down", "up" or "")."""
    step = schedule.transition(
        status=check.status, consecutive_failures=check.consecutive_failures, retries=retries, up=up
    )
    if step.status != check.status:
        check.status_changed_at = at
    check.status = step.status
    check.consecutive_failures = step.consecutive_failures
    check.last_result_at = at
    check.last_error = error[:MAX_ERROR_CHARS]
    return step.event


def _result(check: Check, outcome: runner.Outcome) -> CheckResult:
    return CheckResult(
        check_obj_id=check.pk,
        at=outcome.at,
        up=outcome.up,
        latency_ms=outcome.latency_ms,
        status_code=outcome.status_code,
        error=storable(outcome.error[:MAX_ERROR_CHARS]),
        details=storable(outcome.details),
    )


def storable(value: Any) -> Any:
    """`value` without NUL characters, which PostgreSQL stores in neither text nor JSON (a target's answer,
    a ping's body or a header may carry them; one must not fail a whole batch)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def _store_results(results: list[CheckResult]) -> None:
    """Insert the results and add them to their hours' counts (one upsert, PostgreSQL and SQLite alike)."""
    if not results:
        return
    if connection.vendor == "postgresql":
        # COPY: a batch's rows in one stream, without building (and the driver re-parsing) a huge INSERT.
        columns = "check_id, at, up, latency_ms, status_code, error, details"
        table = connection.ops.quote_name(CheckResult._meta.db_table)
        with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for r in results:
                copy.write_row(
                    (r.check_obj_id, r.at, r.up, r.latency_ms, r.status_code, r.error, json.dumps(r.details))
                )
    else:
        CheckResult.objects.bulk_create(results, batch_size=1000)
    hours: dict[tuple[int, datetime.datetime], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0])
    for result in results:
        counts = hours[(result.check_obj_id, result.at.replace(minute=0, second=0, microsecond=0))]
        counts[0] += 1
        counts[1] += result.up
        if result.latency_ms is not None:
            counts[2] += result.latency_ms
            counts[3] += 1
    table = connection.ops.quote_name(CheckHourlyStat._meta.db_table)
    upsert = (
        f"ON CONFLICT (check_id, hour) DO UPDATE SET total = {table}.total + excluded.total, "
        f"up = {table}.up + excluded.up, latency_sum_ms = {table}.latency_sum_ms + excluded.latency_sum_ms, "
        f"latency_count = {table}.latency_count + excluded.latency_count"
    )
    rows = [(check_id, hour, *counts) for (check_id, hour), counts in hours.items()]
    insert = f"INSERT INTO {table} (check_id, hour, total, up, latency_sum_ms, latency_count)"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One array per column: six parameters however many rows (a VALUES list costs the driver per row).
            columns = [list(column) for column in zip(*rows, strict=True)]
            cursor.execute(
                f"{insert} SELECT * FROM unnest(%s::bigint[], %s::timestamptz[], %s::integer[], %s::integer[], "  # noqa: S608
                f"%s::float8[], %s::integer[]) {upsert}",
                columns,
            )
        else:
            ops = connection.ops
            for start in range(0, len(rows), 150):
                chunk = rows[start : start + 150]
                params = [
                    value if index != 1 else ops.adapt_datetimefield_value(value)
                    for row in chunk
                    for index, value in enumerate(row)
                ]
                values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(chunk))
                cursor.execute(f"{insert} VALUES {values} {upsert}", params)


def _update_states(checks: list[Check]) -> None:
    """Write the state fields of many checks at once (Django's bulk_update builds a CASE per field and row,
    which costs more than running the checks)."""
    if not checks:
        return
    ops = connection.ops
    table = ops.quote_name(Check._meta.db_table)
    # One array per column on PostgreSQL (eight parameters for the whole batch); SQLite takes one row at a time.
    rows = [
        (
            check.pk, check.status, ops.adapt_datetimefield_value(check.status_changed_at), check.consecutive_failures,
            ops.adapt_datetimefield_value(check.last_result_at), check.last_latency_ms, check.last_error,
            ops.adapt_datetimefield_value(check.next_due_at),
        )
        for check in checks
    ]  # fmt: skip
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            columns = [list(column) for column in zip(*rows, strict=True)]
            cursor.execute(
                f"UPDATE {table} AS c SET status = v.status, status_changed_at = v.changed, "  # noqa: S608
                "consecutive_failures = v.failures, last_result_at = v.result_at, last_latency_ms = v.latency, "
                "last_error = v.error, next_due_at = v.due "
                "FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::integer[], %s::timestamptz[], "
                "%s::float8[], %s::text[], %s::timestamptz[]) AS v(id, status, changed, failures, result_at, latency, "
                "error, due) WHERE c.id = v.id",
                columns,
            )
        else:
            cursor.executemany(
                f"UPDATE {table} SET status = %s, status_changed_at = %s, consecutive_failures = %s, "  # noqa: S608
                "last_result_at = %s, last_latency_ms = %s, last_error = %s, next_due_at = %s WHERE id = %s",
                [(*row[1:], row[0]) for row in rows],
            )


def _after_transitions(events: list[tuple[Check, str, str]]) -> None:
    """Open and close outages, and raise or resolve each check's alert (in the caller's transaction)."""
    if not events:
        return
    downs = [(check, error) for check, event, error in events if event == "down"]
    ups = [check for check, event, _ in events if event == "up"]
    if ups:
        # Only a check with an open outage can have a firing alert (a new or resumed check that comes up
        # has nothing to resolve, and costs no call).
        open_outages = CheckOutage.objects.filter(check_obj__in=ups, ended_at__isnull=True)
        recovered = set(open_outages.values_list("check_obj_id", flat=True))
        open_outages.update(ended_at=timezone.now())
        for check in ups:
            if check.pk in recovered:
                alert_for(check, down=False)
    for check, error in downs:
        CheckOutage.objects.get_or_create(
            check_obj=check, ended_at=None, defaults={"started_at": check.status_changed_at, "error": error}
        )
        alert_for(check, down=True, error=error)


def alert_for(check: Check, *, down: bool, error: str = "") -> None:
    """Raise (down) or resolve the check's alert; a refusal (say, an admin disabled it) is logged, not raised."""
    labels = {str(k): str(v) for k, v in (check.labels or {}).items()}
    labels.update({"check": check.name, "check_kind": check.kind})
    try:
        with transaction.atomic():
            raise_alert(
                source=ALERT_SOURCE,
                dedup_key=check.dedup_key,
                title=f"{check.name} is down",
                severity=check.severity,
                service=check.service,
                description=error,
                labels=labels,
                links=[{"href": f"{settings.OPSPORTAL_BASE_URL}{check.get_absolute_url()}", "text": "Check"}],
                resolve=not down,
            )
    except ServiceError as exc:
        logger.warning("Check %s: could not %s its alert: %s", check.pk, "raise" if down else "resolve", exc)
