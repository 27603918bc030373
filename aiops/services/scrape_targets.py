"""Scrape targets: Prometheus text or OpenMetrics endpoints the portal scrapes itself.

Writes by people (`save_scrape_target`, `delete_scrape_target`) validate, write and audit in one
transaction; `test_scrape_target` scrapes once without storing (the "Test" button);
`collect_targets` is what the `collection` workers run for the targets the dispatcher claimed.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.encryption import encrypt
from opsportal.errors import InvalidInput

from ..metrics import scrape, store
from ..models import ScrapeTarget
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

TARGET_FIELDS = ("name", "url", "interval_seconds", "timeout_seconds", "auth", "username", "labels", "enabled")
PREVIEW_SAMPLES = 20


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
    apply_values(target, {"name": name, "url": url, "auth": auth, "username": username, "enabled": enabled})
    target.name = valid_name(target.name)
    target.url = valid_url(target.url, "url")
    if interval_seconds is not None or created:
        target.interval_seconds = valid_seconds(
            interval_seconds if interval_seconds is not None else target.interval_seconds,
            "interval_seconds", minimum=1, maximum=MAX_INTERVAL_SECONDS,
        )  # fmt: skip
    if timeout_seconds is not None:
        target.timeout_seconds = valid_seconds(
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
        target.labels = valid_labels(labels)
    check_auth(target, secret)
    ensure_unique(ScrapeTarget, target.name, target.pk)
    if secret is not None and target.auth != ScrapeTarget.Auth.NONE:
        target.secret_encrypted = encrypt(secret)
    if created or enabled:
        target.next_due_at = timezone.now()
    target.save()
    record_change(target, actor, created, before, TARGET_FIELDS, secret if target.auth != "none" else None)
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
        headers=auth_headers(target),
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
    probe.url = valid_url(url, "url")
    probe.timeout_seconds = valid_seconds(
        timeout_seconds, "timeout_seconds", minimum=0.1, maximum=MAX_TIMEOUT_SECONDS, integer=False
    )
    probe.labels = valid_labels(labels)
    if secret:
        probe.secret_encrypted = encrypt(secret)
    elif target is not None:
        probe.secret_encrypted = target.secret_encrypted
    check_auth(probe, secret or None)
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
