"""Metric collection: targets, sources, watched queries and threshold rules; collecting, storing, querying.

Writes by people (`save_*`, `delete_*`) validate, write and audit in one transaction. Collection runs
in workers (queue `collection`): `dispatch_due_collection` claims the targets and watched queries
that are due (`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so two dispatchers never claim the
same row), moves their `next_due_at` on (a worker that was down does not cause a burst of back-dated
scrapes: the next run is now, then every interval) and sends `aiops.tasks.collect_targets` /
`collect_queries` tasks, in batches, timed to each run (a countdown within the dispatch horizon).
Any number of `collection` workers share those tasks.

Reads for pages (series by labels, chart data, label names and values) are here too, so views stay
thin: `find_series`, `series_chart`, `label_names`, `label_values`, `run_query_range`.
"""

from __future__ import annotations

import datetime
import logging
import math
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection, transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from opsportal import enqueue
from opsportal.audit import services as audit
from opsportal.encryption import decrypt, encrypt
from opsportal.errors import InvalidInput
from opsportal.outbound import OutboundRefused, check_outbound_url

from ..metrics import http as metrics_http
from ..metrics import partitions, promql, query, remote, rollups, scrape, store
from ..models import (
    SEVERITY_RANK,
    PromSource,
    ScrapeTarget,
    Series,
    ThresholdRule,
    ThresholdState,
    WatchedQuery,
)
from .actor import Actor
from .alerts import raise_alert

logger = logging.getLogger(__name__)

ALERT_SOURCE = "metrics"
MAX_INTERVAL_SECONDS = 86400
MAX_TIMEOUT_SECONDS = 300
MAX_FOR_SECONDS = 7 * 86400
DISPATCH_HORIZON_SECONDS = 5.0
DISPATCH_BATCH = 1000
TASK_BATCH = 50
FIRST_PULL_SECONDS = 3600
MAX_PULL_POINTS = 10_000
STALE_SECONDS = 300
MAX_ERROR_CHARS = 2000
PREVIEW_SAMPLES = 20
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TARGET_FIELDS = ("name", "url", "interval_seconds", "timeout_seconds", "auth", "username", "labels", "enabled")
SOURCE_FIELDS = ("name", "base_url", "timeout_seconds", "auth", "username", "enabled")
QUERY_FIELDS = ("name", "source", "query", "interval_seconds", "step_seconds", "labels", "enabled")
THRESHOLD_FIELDS = (
    "name", "selector", "comparison", "value", "for_seconds", "severity", "service", "description", "enabled",
)  # fmt: skip

# --- Validation -----------------------------------------------------------------------------------------------


def _name(value: object, field: str = "name", *, metric: bool = False) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("required.", field=field)
    value = value.strip()
    limit = 200 if metric else 100
    if len(value) > limit:
        raise InvalidInput(f"at most {limit} characters.", field=field)
    if metric and not promql.METRIC_NAME.fullmatch(value):
        raise InvalidInput(
            "must be a metric name: letters, digits, '_' and ':', not starting with a digit.", field=field
        )
    return value


def _url(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("required.", field=field)
    value = value.strip()
    if len(value) > 2000:
        raise InvalidInput("at most 2000 characters.", field=field)
    try:
        check_outbound_url(value)
    except OutboundRefused as exc:
        raise InvalidInput(f"{exc}.", field=field) from None
    return value


def _seconds(value: object, field: str, *, minimum: float, maximum: float, integer: bool = True) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput("must be a number of seconds.", field=field)
    if integer and int(value) != value:
        raise InvalidInput("must be a whole number of seconds.", field=field)
    if not minimum <= value <= maximum:
        raise InvalidInput(f"must be between {minimum:g} and {maximum:g} seconds.", field=field)
    return int(value) if integer else float(value)


def _labels(value: object, field: str = "labels") -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("must be an object of label names to strings.", field=field)
    for key, item in value.items():
        if not isinstance(key, str) or not LABEL_NAME.fullmatch(key) or key.startswith("__"):
            raise InvalidInput(f"{key!r} is not a label name (letters, digits, '_'; not '__...').", field=field)
        if not isinstance(item, str):
            raise InvalidInput(f"the value of {key!r} must be a string.", field=field)
    return dict(value)


def _auth(obj: ScrapeTarget | PromSource, secret: str | None) -> None:
    if obj.auth not in ScrapeTarget.Auth.values:
        raise InvalidInput(f"must be one of {', '.join(ScrapeTarget.Auth.values)}.", field="auth")
    if obj.auth == ScrapeTarget.Auth.BASIC and not obj.username:
        raise InvalidInput("required for basic auth.", field="username")
    has_secret = bool(secret) if secret is not None else bool(obj.secret_encrypted)
    if obj.auth == ScrapeTarget.Auth.BEARER and not has_secret:
        raise InvalidInput("required for bearer auth (the token).", field="secret")
    if obj.auth == ScrapeTarget.Auth.NONE:
        obj.username = ""
        obj.secret_encrypted = ""


def _headers(obj: ScrapeTarget | PromSource) -> dict[str, str]:
    """The Authorization header; ValueError when the secret cannot be decrypted (SECRET_KEY changed)."""
    secret = decrypt(obj.secret_encrypted) if obj.auth != ScrapeTarget.Auth.NONE else ""
    return metrics_http.auth_header(obj.auth, obj.username, secret)


def _apply(obj: Any, values: dict[str, Any]) -> None:
    for key, value in values.items():
        if value is not None:
            setattr(obj, key, value.strip() if isinstance(value, str) and key != "query" else value)


def _unique(model: type, name: str, pk: int | None, field: str = "name") -> None:
    if model.objects.filter(**{f"{field}__iexact": name}).exclude(pk=pk).exists():
        raise InvalidInput(f"{name!r} is taken.", field=field)


def _record(obj: Any, actor: Actor, created: bool, before: dict, fields: Iterable[str], secret: str | None) -> None:
    changes = audit.diff(before, audit.snapshot(obj, fields))
    if secret is not None:
        changes["secret"] = ["***", "*** (changed)"]
    audit.record(action=audit.Action.CREATE if created else audit.Action.UPDATE, actor=actor, obj=obj, changes=changes)


# --- Scrape targets ---------------------------------------------------------------------------------------------


@transaction.atomic
def save_scrape_target(
    *,
    actor: Actor,
    target: ScrapeTarget | None = None,
    name: str | None = None,
    url: str | None = None,
    interval_seconds: int | None = None,
    timeout_seconds: float | None = None,
    auth: str | None = None,
    username: str | None = None,
    secret: str | None = None,
    labels: dict[str, str] | None = None,
    enabled: bool | None = None,
) -> ScrapeTarget:
    """Create or update a scrape target; the secret (bearer token or password) is stored encrypted."""
    created = target is None
    target = target or ScrapeTarget()
    before = {} if created else audit.snapshot(target, TARGET_FIELDS)
    _apply(target, {"name": name, "url": url, "auth": auth, "username": username, "enabled": enabled})
    target.name = _name(target.name)
    target.url = _url(target.url, "url")
    if interval_seconds is not None or created:
        target.interval_seconds = _seconds(
            interval_seconds if interval_seconds is not None else target.interval_seconds,
            "interval_seconds", minimum=1, maximum=MAX_INTERVAL_SECONDS,
        )  # fmt: skip
    if timeout_seconds is not None:
        target.timeout_seconds = _seconds(
            timeout_seconds, "timeout_seconds", minimum=0.1, maximum=MAX_TIMEOUT_SECONDS, integer=False
        )
    if target.timeout_seconds > target.interval_seconds and timeout_seconds is None:
        target.timeout_seconds = float(target.interval_seconds)
    if target.timeout_seconds > target.interval_seconds:
        raise InvalidInput(
            f"the timeout ({target.timeout_seconds:g} s) must not exceed the interval ({target.interval_seconds} s).",
            field="timeout_seconds",
        )
    if labels is not None:
        target.labels = _labels(labels)
    _auth(target, secret)
    _unique(ScrapeTarget, target.name, target.pk)
    if secret is not None and target.auth != ScrapeTarget.Auth.NONE:
        target.secret_encrypted = encrypt(secret)
    if created or enabled:
        target.next_due_at = timezone.now()
    target.save()
    _record(target, actor, created, before, TARGET_FIELDS, secret if target.auth != "none" else None)
    return target


@transaction.atomic
def delete_scrape_target(*, target: ScrapeTarget, actor: Actor) -> None:
    """Delete the target; its series and samples stay until retention removes them."""
    audit.record(action=audit.Action.DELETE, actor=actor, obj=target, changes={"name": [target.name, None]})
    target.delete()


@dataclass
class ScrapeReport:
    """One scrape, as the test and "scrape now" answers show it."""

    ok: bool
    error: str
    duration_seconds: float
    samples_scraped: int
    stored: int = 0
    preview: list[dict[str, Any]] = field(default_factory=list)


def _spec(target: ScrapeTarget) -> scrape.TargetSpec:
    return scrape.TargetSpec(
        id=target.pk or 0,
        name=target.name,
        url=target.url,
        timeout=target.timeout_seconds,
        headers=_headers(target),
        labels=dict(target.labels),
    )


def _report(outcome: scrape.ScrapeOutcome, stored: int = 0) -> ScrapeReport:
    return ScrapeReport(
        ok=outcome.ok,
        error=outcome.error[:MAX_ERROR_CHARS],
        duration_seconds=round(outcome.duration, 4),
        samples_scraped=outcome.scraped,
        stored=stored,
        preview=[{"name": name, "labels": labels, "value": value} for name, labels, value in outcome.preview],
    )


def test_scrape_target(
    *,
    url: str,
    name: str = "test",
    auth: str = ScrapeTarget.Auth.NONE,
    username: str = "",
    secret: str = "",
    timeout_seconds: float = 10.0,
    labels: dict[str, str] | None = None,
    target: ScrapeTarget | None = None,
) -> ScrapeReport:
    """Scrape once without storing anything (the "Test" button before saving); the first samples come back.

    With `target`, its stored secret is used when `secret` is empty (editing a target without retyping it).
    """
    probe = ScrapeTarget(name=name or "test", url=url, auth=auth, username=username or "", labels=labels or {})
    probe.url = _url(url, "url")
    probe.timeout_seconds = _seconds(
        timeout_seconds, "timeout_seconds", minimum=0.1, maximum=MAX_TIMEOUT_SECONDS, integer=False
    )
    probe.labels = _labels(labels)
    if secret:
        probe.secret_encrypted = encrypt(secret)
    elif target is not None:
        probe.secret_encrypted = target.secret_encrypted
    _auth(probe, secret or None)
    try:
        spec = _spec(probe)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="secret") from None
    (outcome,) = scrape.scrape([spec], preview=PREVIEW_SAMPLES)
    return _report(outcome)


def scrape_target_now(*, target: ScrapeTarget, actor: Actor) -> ScrapeReport:
    """Scrape `target` at once and store the result, as a scheduled scrape would (its schedule is unchanged)."""
    outcomes = _scrape_and_store([target], preview=PREVIEW_SAMPLES)
    outcome, stored = outcomes[0]
    audit.record(
        action=audit.Action.UPDATE, actor=actor, obj=target,
        message=f"Scraped now: {'up' if outcome.ok else 'down'} ({outcome.error or f'{outcome.scraped} samples'}).",
    )  # fmt: skip
    return _report(outcome, stored)


def collect_targets(*, target_ids: list[int]) -> int:
    """Scrape the enabled targets among `target_ids` concurrently and store them; the samples stored."""
    targets = list(ScrapeTarget.objects.filter(pk__in=target_ids, enabled=True))
    return sum(stored for _, stored in _scrape_and_store(targets))


def _scrape_and_store(targets: list[ScrapeTarget], *, preview: int = 0) -> list[tuple[scrape.ScrapeOutcome, int]]:
    specs, failed = [], []
    for target in targets:
        try:
            specs.append(_spec(target))
        except ValueError as exc:
            failed.append(scrape.ScrapeOutcome(target_id=target.pk, started=time.time(), error=str(exc)))
    outcomes = scrape.scrape(specs, preview=preview) + failed
    by_id = {outcome.target_id: outcome for outcome in outcomes}
    now = timezone.now()
    samples: list = []
    kinds: dict = {}
    for outcome in outcomes:
        samples += outcome.samples
        kinds.update(outcome.kinds)
    with transaction.atomic():
        written = store.write_samples(samples, kinds=kinds, now=now)
        for target in targets:
            outcome = by_id[target.pk]
            target.last_run_at = datetime.datetime.fromtimestamp(outcome.started, datetime.UTC)
            target.last_ok = outcome.ok
            target.last_error = outcome.error[:MAX_ERROR_CHARS]
            target.last_duration_seconds = outcome.duration
            target.last_sample_count = outcome.scraped
        ScrapeTarget.objects.bulk_update(
            targets, ["last_run_at", "last_ok", "last_error", "last_duration_seconds", "last_sample_count"]
        )
    stored = written.samples == len(samples)
    return [(by_id[t.pk], len(by_id[t.pk].samples) if stored else 0) for t in targets]


# --- Prometheus-compatible sources and watched queries ---------------------------------------------------------


@transaction.atomic
def save_prom_source(
    *,
    actor: Actor,
    source: PromSource | None = None,
    name: str | None = None,
    base_url: str | None = None,
    timeout_seconds: float | None = None,
    auth: str | None = None,
    username: str | None = None,
    secret: str | None = None,
    enabled: bool | None = None,
) -> PromSource:
    """Create or update a Prometheus-compatible source (its API root, e.g. http://prometheus:9090)."""
    created = source is None
    source = source or PromSource()
    before = {} if created else audit.snapshot(source, SOURCE_FIELDS)
    _apply(source, {"name": name, "base_url": base_url, "auth": auth, "username": username, "enabled": enabled})
    source.name = _name(source.name)
    source.base_url = _url(source.base_url, "base_url").rstrip("/")
    if timeout_seconds is not None:
        source.timeout_seconds = _seconds(
            timeout_seconds, "timeout_seconds", minimum=0.1, maximum=MAX_TIMEOUT_SECONDS, integer=False
        )
    _auth(source, secret)
    _unique(PromSource, source.name, source.pk)
    if secret is not None and source.auth != PromSource.Auth.NONE:
        source.secret_encrypted = encrypt(secret)
    source.save()
    _record(source, actor, created, before, SOURCE_FIELDS, secret if source.auth != "none" else None)
    return source


@transaction.atomic
def delete_prom_source(*, source: PromSource, actor: Actor) -> None:
    """Delete the source and its watched queries (their stored series stay until retention)."""
    audit.record(action=audit.Action.DELETE, actor=actor, obj=source, changes={"name": [source.name, None]})
    source.delete()


@dataclass
class SourceReport:
    ok: bool
    error: str
    duration_seconds: float


def test_prom_source(*, source: PromSource) -> SourceReport:
    """Ask the source for `1` (an instant query): proves the URL, the auth and that it speaks the API."""
    spec = remote.QuerySpec(
        id=0, name="test", base_url=source.base_url, query="vector(1)", start=0, end=0, step=1,
        timeout=source.timeout_seconds, headers=_headers(source), labels={},
    )  # fmt: skip
    now = time.time()
    spec.start, spec.end = now - 60, now
    (outcome,) = remote.pull([spec])
    return SourceReport(
        ok=outcome.ok, error=outcome.error[:MAX_ERROR_CHARS], duration_seconds=round(outcome.duration, 4)
    )


@transaction.atomic
def save_watched_query(
    *,
    actor: Actor,
    watched: WatchedQuery | None = None,
    source: PromSource | None = None,
    name: str | None = None,
    query: str | None = None,
    interval_seconds: int | None = None,
    step_seconds: int | None = None,
    labels: dict[str, str] | None = None,
    enabled: bool | None = None,
) -> WatchedQuery:
    """Create or update a watched query; its series are stored under `name` (a metric name)."""
    created = watched is None
    watched = watched or WatchedQuery()
    before = {} if created else audit.snapshot(watched, QUERY_FIELDS)
    if source is not None:
        watched.source = source
    if created and source is None:
        raise InvalidInput("required.", field="source")
    _apply(watched, {"name": name, "query": query, "enabled": enabled})
    watched.name = _name(watched.name, metric=True)
    if not isinstance(watched.query, str) or not watched.query.strip():
        raise InvalidInput("required (a PromQL expression).", field="query")
    if interval_seconds is not None or created:
        watched.interval_seconds = _seconds(
            interval_seconds if interval_seconds is not None else watched.interval_seconds,
            "interval_seconds", minimum=1, maximum=MAX_INTERVAL_SECONDS,
        )  # fmt: skip
    if step_seconds is not None or created:
        watched.step_seconds = _seconds(
            step_seconds if step_seconds is not None else watched.step_seconds,
            "step_seconds", minimum=1, maximum=MAX_INTERVAL_SECONDS,
        )  # fmt: skip
    if labels is not None:
        watched.labels = _labels(labels)
    _unique(WatchedQuery, watched.name, watched.pk)
    if created or enabled:
        watched.next_due_at = timezone.now()
    watched.save()
    _record(watched, actor, created, before, QUERY_FIELDS, None)
    return watched


@transaction.atomic
def delete_watched_query(*, watched: WatchedQuery, actor: Actor) -> None:
    audit.record(action=audit.Action.DELETE, actor=actor, obj=watched, changes={"name": [watched.name, None]})
    watched.delete()


def _pull_window(watched: WatchedQuery, now: float) -> tuple[float, float] | None:
    """The steps to pull: after the last one stored, on the step's grid, at most MAX_PULL_POINTS of them."""
    step = watched.step_seconds
    end = math.floor(now / step) * step
    if watched.last_end_at is not None:
        start = watched.last_end_at.timestamp() + step
    else:
        start = end - max(FIRST_PULL_SECONDS, step)
    start = max(start, end - MAX_PULL_POINTS * step)
    start = math.ceil(start / step) * step
    return (start, end) if start <= end else None


def collect_queries(*, query_ids: list[int]) -> int:
    """Pull the enabled watched queries among `query_ids` concurrently and store their new steps."""
    watched_list = list(
        WatchedQuery.objects.select_related("source").filter(pk__in=query_ids, enabled=True, source__enabled=True)
    )
    return _pull_and_store(watched_list)


def run_watched_query_now(*, watched: WatchedQuery, actor: Actor) -> WatchedQuery:
    """Pull `watched` at once (the steps since its last pull) and store them."""
    _pull_and_store([watched])
    watched.refresh_from_db()
    audit.record(
        action=audit.Action.UPDATE, actor=actor, obj=watched,
        message=f"Pulled now: {'ok' if watched.last_ok else watched.last_error}.",
    )  # fmt: skip
    return watched


def _pull_and_store(watched_list: list[WatchedQuery]) -> int:
    now = time.time()
    specs, windows, failed = [], {}, {}
    for watched in watched_list:
        window = _pull_window(watched, now)
        if window is None:
            continue
        try:
            headers = _headers(watched.source)
        except ValueError as exc:
            failed[watched.pk] = str(exc)
            continue
        windows[watched.pk] = window
        specs.append(
            remote.QuerySpec(
                id=watched.pk,
                name=watched.name,
                base_url=watched.source.base_url,
                query=watched.query,
                start=window[0],
                end=window[1],
                step=watched.step_seconds,
                timeout=watched.source.timeout_seconds,
                headers=headers,
                labels=dict(watched.labels),
            )
        )
    outcomes = {outcome.query_id: outcome for outcome in remote.pull(specs)}
    stamp = timezone.now()
    written = 0
    with transaction.atomic():
        samples = [sample for outcome in outcomes.values() if outcome.ok for sample in outcome.samples]
        written = store.write_samples(samples, now=stamp).samples
        changed = []
        for watched in watched_list:
            outcome = outcomes.get(watched.pk)
            if outcome is None and watched.pk not in failed:
                continue
            watched.last_run_at = stamp
            watched.last_ok = outcome is not None and outcome.ok
            watched.last_error = (failed.get(watched.pk) or (outcome.error if outcome else ""))[:MAX_ERROR_CHARS]
            watched.last_duration_seconds = outcome.duration if outcome else 0.0
            watched.last_sample_count = len(outcome.samples) if outcome else 0
            if outcome is not None and outcome.ok:
                watched.last_end_at = datetime.datetime.fromtimestamp(windows[watched.pk][1], datetime.UTC)
            changed.append(watched)
        WatchedQuery.objects.bulk_update(
            changed,
            ["last_run_at", "last_ok", "last_error", "last_duration_seconds", "last_sample_count", "last_end_at"],
        )
    return written


# --- Dispatch ---------------------------------------------------------------------------------------------------


def _claim(model: type, now: datetime.datetime, horizon: datetime.datetime) -> dict[float, list[int]]:
    """Claim the rows due before `horizon` and move them on; {run time: ids} of the runs to send."""
    runs: dict[float, list[int]] = defaultdict(list)
    rows = model.objects.filter(enabled=True, next_due_at__lte=horizon).order_by("next_due_at")
    if connection.features.has_select_for_update_skip_locked:
        rows = rows.select_for_update(skip_locked=True)
    claimed = list(rows.only("pk", "interval_seconds", "next_due_at")[:DISPATCH_BATCH])
    for row in claimed:
        interval = datetime.timedelta(seconds=row.interval_seconds)
        due = max(row.next_due_at, now)  # a missed schedule is not caught up with a burst
        while due <= horizon:
            runs[due.timestamp()].append(row.pk)
            due += interval
        row.next_due_at = due
    model.objects.bulk_update(claimed, ["next_due_at"])
    return runs


def dispatch_due_collection(*, now: datetime.datetime | None = None) -> int:
    """Claim the due targets and watched queries and send their collection tasks; how many runs were sent."""
    now = now or timezone.now()
    horizon = now + datetime.timedelta(seconds=DISPATCH_HORIZON_SECONDS)
    sent = 0
    with transaction.atomic():
        for model, task in (
            (ScrapeTarget, "aiops.tasks.collect_targets"),
            (WatchedQuery, "aiops.tasks.collect_queries"),
        ):
            for run_at, ids in sorted(_claim(model, now, horizon).items()):
                countdown = max(0.0, run_at - now.timestamp())
                for start in range(0, len(ids), TASK_BATCH):
                    enqueue.enqueue_on_commit(task, ids[start : start + TASK_BATCH], countdown=countdown or None)
                sent += len(ids)
    return sent


# --- Storage maintenance ------------------------------------------------------------------------------------------


def roll_up_metrics() -> int:
    """Roll up the complete 5-minute buckets since the checkpoint; rollup rows written."""
    return rollups.roll_up()


def maintain_metric_storage() -> partitions.Maintenance:
    """Create partitions ahead, drop those past retention, delete series not seen for the rollup retention."""
    with transaction.atomic():
        return partitions.maintain()


# --- Threshold rules ----------------------------------------------------------------------------------------------


@transaction.atomic
def save_threshold_rule(
    *,
    actor: Actor,
    rule: ThresholdRule | None = None,
    name: str | None = None,
    selector: str | None = None,
    comparison: str | None = None,
    value: float | None = None,
    for_seconds: int | None = None,
    severity: str | None = None,
    service: str | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> ThresholdRule:
    """Create or update a threshold rule over stored series (`selector` is a PromQL series selector)."""
    created = rule is None
    rule = rule or ThresholdRule()
    before = {} if created else audit.snapshot(rule, THRESHOLD_FIELDS)
    _apply(
        rule,
        {"name": name, "selector": selector, "comparison": comparison, "severity": severity, "service": service,
         "description": description, "enabled": enabled},
    )  # fmt: skip
    rule.name = _name(rule.name)
    if not rule.selector:
        raise InvalidInput('required (a series selector such as up{job="node"}).', field="selector")
    promql.parse_selector(rule.selector, field="selector")
    if rule.comparison not in ThresholdRule.Comparison.values:
        raise InvalidInput(f"must be one of {', '.join(ThresholdRule.Comparison.values)}.", field="comparison")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidInput("must be a finite number.", field="value")
        rule.value = float(value)
    if rule.value is None:
        raise InvalidInput("required.", field="value")
    if for_seconds is not None:
        rule.for_seconds = _seconds(for_seconds, "for_seconds", minimum=0, maximum=MAX_FOR_SECONDS)
    if rule.severity not in SEVERITY_RANK:
        raise InvalidInput(f"must be one of {', '.join(SEVERITY_RANK)}.", field="severity")
    _unique(ThresholdRule, rule.name, rule.pk)
    rule.save()
    _record(rule, actor, created, before, THRESHOLD_FIELDS, None)
    return rule


@transaction.atomic
def delete_threshold_rule(*, rule: ThresholdRule, actor: Actor) -> None:
    """Delete the rule; the alerts it fired are resolved."""
    for state in rule.states.filter(firing=True).select_related("series"):
        _resolve(rule, state.series)
    audit.record(action=audit.Action.DELETE, actor=actor, obj=rule, changes={"name": [rule.name, None]})
    rule.delete()


def series_url(series: Series) -> str:
    """Where a person sees the series: the metric explorer page when it is installed, else the series API."""
    try:
        path = f"{reverse('aiops:metric_explorer')}?series={series.pk}"
    except NoReverseMatch:
        path = f"{reverse('api:aiops:metrics-series')}?match[]={quote(series.selector())}"
    return f"{settings.OPSPORTAL_BASE_URL}{path}"


def _dedup_key(rule: ThresholdRule, series: Series) -> str:
    return f"threshold:{rule.pk}:{series.pk}"


def _fire(rule: ThresholdRule, series: Series, value: float) -> None:
    word = "above" if rule.comparison == ThresholdRule.Comparison.ABOVE else "below"
    shown = query.format_value(value)
    title = f"{rule.name}: {series.name} {word} {query.format_value(rule.value)} ({shown})"
    selector = series.selector()
    raise_alert(
        source=ALERT_SOURCE,
        dedup_key=_dedup_key(rule, series),
        title=title[:250],
        severity=rule.severity,
        service=rule.service or series.labels.get("service", ""),
        description=rule.description
        or f"{selector} is {shown}, {word} {query.format_value(rule.value)} for at least {rule.for_seconds} s.",
        labels={**series.labels, "alertname": rule.name, "metric": series.name},
        annotations={
            "series": selector[:1000],
            "series_id": str(series.pk),
            "value": shown,
            "threshold": f"{word} {query.format_value(rule.value)} for {rule.for_seconds} s",
            "rule_id": str(rule.pk),
        },
        links=[{"href": series_url(series), "text": "Series"}],
    )


def _resolve(rule: ThresholdRule, series: Series) -> None:
    raise_alert(source=ALERT_SOURCE, dedup_key=_dedup_key(rule, series), resolve=True)


def evaluate_threshold_rules(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Evaluate every enabled rule on the stored samples; fire and resolve their alerts.

    A series breaches while its latest sample (at most 5 minutes old) is above/below the value; it
    fires once the breach has lasted `for_seconds`, counted from the first sample of the current
    run of breaching samples (so a worker restart loses nothing). It resolves when a sample no
    longer breaches, when its samples stop (stale), or when it no longer matches the selector.
    """
    now = now or timezone.now()
    stamp = now.timestamp()
    counts = {"rules": 0, "firing": 0, "pending": 0, "fired": 0, "resolved": 0}
    rules = list(ThresholdRule.objects.filter(enabled=True))
    states_by_rule: dict[int, dict[int, ThresholdState]] = defaultdict(dict)
    for state in ThresholdState.objects.filter(rule__in=rules).select_related("series"):
        states_by_rule[state.rule_id][state.series_id] = state
    for rule in rules:
        counts["rules"] += 1
        states = states_by_rule[rule.pk]
        try:
            selector = promql.parse_selector(rule.selector)
            matched = query.select_series(selector, since=stamp - rule.for_seconds - STALE_SECONDS)
            data = query.raw_points([s.id for s in matched], stamp - rule.for_seconds - 2 * STALE_SECONDS, stamp)
        except InvalidInput as exc:
            ThresholdRule.objects.filter(pk=rule.pk).update(last_error=str(exc), last_evaluated_at=now)
            continue
        seen = set()
        firing = pending = 0
        with transaction.atomic():
            for series in matched:
                times, values = data[series.id]
                breach = _breach(rule, times, values, stamp)
                state = states.get(series.id)
                if breach is None:
                    continue
                seen.add(series.id)
                since, value = breach
                is_firing = times[-1] - since >= rule.for_seconds
                if state is None:
                    state = ThresholdState(rule=rule, series=series, breached_since=_dt(since), value=value)
                if is_firing and not state.firing:
                    _fire(rule, series, value)
                    counts["fired"] += 1
                state.firing = state.firing or is_firing
                state.breached_since = _dt(since)
                state.value = value
                state.updated_at = now
                state.save()
                firing += state.firing
                pending += not state.firing
            for series_id, state in states.items():
                if series_id in seen:
                    continue
                if state.firing:
                    _resolve(rule, state.series)
                    counts["resolved"] += 1
                state.delete()
            rule.state = (
                ThresholdRule.State.FIRING
                if firing
                else ThresholdRule.State.PENDING
                if pending
                else ThresholdRule.State.OK
            )
            rule.last_evaluated_at = now
            rule.last_error = ""
            rule.save(update_fields=["state", "last_evaluated_at", "last_error"])
        counts["firing"] += firing
        counts["pending"] += pending
    return counts


def _breach(rule: ThresholdRule, times: list[float], values: list[float], now: float) -> tuple[float, float] | None:
    """(start of the current breach, latest value) when the latest fresh sample breaches, else None."""
    if not times or times[-1] <= now - STALE_SECONDS or not rule.breaches(values[-1]):
        return None
    index = len(values) - 1
    while index > 0 and rule.breaches(values[index - 1]):
        index -= 1
    return times[index], values[-1]


def _dt(stamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC)


# --- Reading (API and pages) ----------------------------------------------------------------------------------------


def run_query_range(*, query_text: str, start: float, end: float, step: float) -> query.QueryResult:
    """Evaluate a PromQL-subset query over [start, end] (unix seconds) at `step` (InvalidInput naming `query`)."""
    return query.query_range(query_text, start=start, end=end, step=step)


def run_query_instant(*, query_text: str, at: float) -> query.QueryResult:
    return query.query_instant(query_text, at=at)


def find_series(*, selector: str, since: datetime.datetime | None = None, limit: int = 1000) -> list[Series]:
    """The series a selector such as `node_load1{instance=~"web.*"}` matches, at most `limit` (a page's picker)."""
    parsed = promql.parse_selector(selector)
    found = query.select_series(parsed, since=since.timestamp() if since else None, limit=query.MAX_SERIES)
    return sorted(found, key=lambda s: (s.name, sorted(s.labels.items())))[:limit]


def series_chart(
    *,
    series_ids: list[int],
    start: datetime.datetime,
    end: datetime.datetime,
    function: str | None = None,
    range_seconds: float = 300.0,
    points: int = 600,
) -> list[query.SeriesPoints]:
    """Chart data for stored series over [start, end]: about `points` points each (raw or rollups by step).

    `function` (e.g. "rate" for counters, "max_over_time") is applied over `range_seconds` windows;
    None shows the values. Unknown ids are left out; each result carries its series_id and metric.
    """
    series = list(Series.objects.filter(pk__in=series_ids))
    if function is not None and function not in promql.RANGE_FUNCTIONS:
        raise InvalidInput(f"must be one of {', '.join(promql.RANGE_FUNCTIONS)}.", field="function")
    span = max(1.0, (end - start).total_seconds())
    step = max(1.0, math.ceil(span / max(1, points)))
    return query.evaluate_series(
        series, start=start.timestamp(), end=end.timestamp(), step=step, function=function, range_seconds=range_seconds
    )


def label_names(*, matches: list[str] | None = None, start: float | None = None) -> list[str]:
    return query.label_names(matches or [], start=start)


def label_values(*, label: str, matches: list[str] | None = None, start: float | None = None) -> list[str]:
    if label != "__name__" and not LABEL_NAME.fullmatch(label):
        raise InvalidInput(f"invalid label name: {label!r}.", field="label")
    return query.label_values(label, matches or [], start=start)


def series_matching(*, matches: list[str], start: float | None = None) -> list[Series]:
    return query.series_matching(matches, start=start)
