"""Prometheus-compatible sources (Prometheus, Thanos, Mimir, VictoriaMetrics) and the queries watched on them.

The source stays the system of record: workers pull each watched query with `query_range` on its
interval (`collect_queries`) and store only the steps since the last pull, under the query's name.
"""

from __future__ import annotations

import datetime
import math
import time
from dataclasses import dataclass

from django.db import transaction
from django.db.models import CharField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Cast
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.audit.models import AuditEntry
from opsportal.encryption import encrypt
from opsportal.errors import InvalidInput

from ..metrics import remote, store
from ..models import PromSource, WatchedQuery
from .actor import Actor
from .metric_fields import (
    MAX_ERROR_CHARS,
    MAX_INTERVAL_SECONDS,
    MAX_TIMEOUT_SECONDS,
    apply_values,
    auth_headers,
    check_auth,
    ensure_unique,
    record_change,
    valid_labels,
    valid_name,
    valid_seconds,
    valid_url,
)

SOURCE_FIELDS = ("name", "base_url", "timeout_seconds", "auth", "username", "enabled")
QUERY_FIELDS = ("name", "source", "query", "interval_seconds", "step_seconds", "labels", "enabled")
FIRST_PULL_SECONDS = 3600
MAX_PULL_POINTS = 10_000


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
    apply_values(source, {"name": name, "base_url": base_url, "auth": auth, "username": username, "enabled": enabled})
    source.name = valid_name(source.name)
    source.base_url = valid_url(source.base_url, "base_url").rstrip("/")
    if timeout_seconds is not None:
        source.timeout_seconds = valid_seconds(
            timeout_seconds, "timeout_seconds", minimum=0.1, maximum=MAX_TIMEOUT_SECONDS, integer=False
        )
    check_auth(source, secret)
    ensure_unique(PromSource, source.name, source.pk)
    if secret is not None and source.auth != PromSource.Auth.NONE:
        source.secret_encrypted = encrypt(secret)
    source.save()
    record_change(source, actor, created, before, SOURCE_FIELDS, secret if source.auth != "none" else None)
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


def test_prom_source(
    *,
    source: PromSource | None = None,
    base_url: str | None = None,
    auth: str = PromSource.Auth.NONE,
    username: str = "",
    secret: str = "",
    timeout_seconds: float = 30.0,
) -> SourceReport:
    """Ask the source for `vector(1)`: proves the URL, the auth and that it speaks the API.

    With `base_url`, the values are tested unsaved (the form's "Test" button before saving); `source`,
    when given too, lends its stored secret if `secret` is empty (editing without retyping it).
    Without `base_url`, the saved `source` is tested as it is.
    """
    if base_url is not None:
        source = _probe(source, base_url, auth, username, secret, timeout_seconds)
    elif source is None:
        raise InvalidInput("required.", field="base_url")
    try:
        headers = auth_headers(source)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="secret") from None
    spec = remote.QuerySpec(
        id=0, name="test", base_url=source.base_url, query="vector(1)", start=0, end=0, step=1,
        timeout=source.timeout_seconds, headers=headers, labels={},
    )  # fmt: skip
    now = time.time()
    spec.start, spec.end = now - 60, now
    (outcome,) = remote.pull([spec])
    return SourceReport(
        ok=outcome.ok, error=outcome.error[:MAX_ERROR_CHARS], duration_seconds=round(outcome.duration, 4)
    )


TESTED = "Tested: "


def record_prom_source_test(*, source: PromSource, actor: Actor) -> SourceReport:
    """Test the saved `source` as it is and record the outcome in its history (the pages show the last one)."""
    report = test_prom_source(source=source)
    outcome = f"ok in {report.duration_seconds * 1000:.0f} ms" if report.ok else f"failed: {report.error}"
    audit.record(action=audit.Action.STATE, actor=actor, obj=source, message=f"{TESTED}{outcome}"[:300])
    return report


def with_last_test(sources: QuerySet[PromSource]) -> QuerySet[PromSource]:
    """`sources` annotated with their last recorded test: `last_test` ("ok in 12 ms", "failed: ...") and
    `last_test_at`, None if never tested; each a lookup on the audit log's per-object index."""
    tests = AuditEntry.objects.filter(
        app_label="aiops", model="promsource", object_id=Cast(OuterRef("pk"), CharField()), message__startswith=TESTED
    ).order_by("-at", "-id")
    return sources.annotate(
        last_test=Subquery(tests.values("message")[:1]), last_test_at=Subquery(tests.values("at")[:1])
    )


def _probe(
    saved: PromSource | None, base_url: str, auth: str, username: str, secret: str, timeout_seconds: float
) -> PromSource:
    """An unsaved source of these values (validated as a save would), the saved one's secret kept if none is typed."""
    probe = PromSource(name="test", auth=auth, username=(username or "").strip())
    probe.base_url = valid_url(base_url, "base_url").rstrip("/")
    probe.timeout_seconds = valid_seconds(
        timeout_seconds, "timeout_seconds", minimum=0.1, maximum=MAX_TIMEOUT_SECONDS, integer=False
    )
    if secret:
        probe.secret_encrypted = encrypt(secret)
    elif saved is not None:
        probe.secret_encrypted = saved.secret_encrypted
    check_auth(probe, secret or None)
    return probe


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
    apply_values(watched, {"name": name, "query": query, "enabled": enabled})
    watched.name = valid_name(watched.name, metric=True)
    if not isinstance(watched.query, str) or not watched.query.strip():
        raise InvalidInput("required (a PromQL expression).", field="query")
    if interval_seconds is not None or created:
        watched.interval_seconds = valid_seconds(
            interval_seconds if interval_seconds is not None else watched.interval_seconds,
            "interval_seconds", minimum=1, maximum=MAX_INTERVAL_SECONDS,
        )  # fmt: skip
    if step_seconds is not None or created:
        watched.step_seconds = valid_seconds(
            step_seconds if step_seconds is not None else watched.step_seconds,
            "step_seconds", minimum=1, maximum=MAX_INTERVAL_SECONDS,
        )  # fmt: skip
    if labels is not None:
        watched.labels = valid_labels(labels)
    ensure_unique(WatchedQuery, watched.name, watched.pk)
    if created or enabled:
        watched.next_due_at = timezone.now()
    watched.save()
    record_change(watched, actor, created, before, QUERY_FIELDS, None)
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
            headers = auth_headers(watched.source)
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
