"""Threshold rules over stored series (above/below a value for a duration), alerting through raise_alert."""

from __future__ import annotations

import datetime
import math
from collections import Counter, defaultdict
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.errors import InvalidInput

from ..metrics import promql, query
from ..models import SEVERITY_RANK, Alert, Series, ThresholdRule, ThresholdState
from .actor import Actor
from .alerts import raise_alert
from .metric_fields import apply_values, ensure_unique, record_change, valid_name, valid_seconds
from .metrics import series_url

ALERT_SOURCE = "metrics"
MAX_FOR_SECONDS = 7 * 86400
STALE_SECONDS = 300
DEDUP_PREFIX = "threshold:"
THRESHOLD_FIELDS = (
    "name", "selector", "comparison", "value", "for_seconds", "severity", "service", "description", "enabled",
)  # fmt: skip


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
    apply_values(
        rule,
        {"name": name, "selector": selector, "comparison": comparison, "severity": severity, "service": service,
         "description": description, "enabled": enabled},
    )  # fmt: skip
    rule.name = valid_name(rule.name)
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
        rule.for_seconds = valid_seconds(for_seconds, "for_seconds", minimum=0, maximum=MAX_FOR_SECONDS)
    if rule.severity not in SEVERITY_RANK:
        raise InvalidInput(f"must be one of {', '.join(SEVERITY_RANK)}.", field="severity")
    ensure_unique(ThresholdRule, rule.name, rule.pk)
    if not rule.enabled and not created:
        # A disabled rule is no longer evaluated: what it fired resolves now rather than never.
        for state in rule.states.filter(firing=True).select_related("series"):
            _resolve(rule, state.series)
        rule.states.all().delete()
        rule.state = ThresholdRule.State.OK
    rule.save()
    record_change(rule, actor, created, before, THRESHOLD_FIELDS, None)
    return rule


@transaction.atomic
def delete_threshold_rule(*, rule: ThresholdRule, actor: Actor) -> None:
    """Delete the rule; the alerts it fired are resolved."""
    for state in rule.states.filter(firing=True).select_related("series"):
        _resolve(rule, state.series)
    audit.record(action=audit.Action.DELETE, actor=actor, obj=rule, changes={"name": [rule.name, None]})
    rule.delete()


def _dedup_key(rule: ThresholdRule, series: Series) -> str:
    return f"{DEDUP_PREFIX}{rule.pk}:{series.pk}"


def alerts_raised(rule: ThresholdRule) -> QuerySet[Alert]:
    """The alerts the rule raised (one per breaching series and firing), newest first."""
    return Alert.objects.filter(
        integration__internal_source=ALERT_SOURCE, fingerprint__startswith=f"{DEDUP_PREFIX}{rule.pk}:"
    )


def firing_alert_counts(rule_ids: Iterable[int]) -> dict[int, int]:
    """How many alerts each of these rules has firing now (one query; rules with none are left out)."""
    prefixes = [f"{DEDUP_PREFIX}{pk}:" for pk in rule_ids]
    if not prefixes:
        return {}
    wanted = Q()
    for prefix in prefixes:
        wanted |= Q(fingerprint__startswith=prefix)
    firing = Alert.objects.filter(wanted, integration__internal_source=ALERT_SOURCE, status=Alert.Status.FIRING)
    counts: Counter[int] = Counter()
    for fingerprint in firing.values_list("fingerprint", flat=True).iterator(chunk_size=5000):
        counts[int(fingerprint.split(":", 2)[1])] += 1
    return dict(counts)


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
                breach = current_breach(rule, times, values, stamp)
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


def current_breach(
    rule: ThresholdRule, times: list[float], values: list[float], now: float
) -> tuple[float, float] | None:
    """(start of the current breach, latest value) when the latest fresh sample breaches, else None."""
    if not times or times[-1] <= now - STALE_SECONDS or not rule.breaches(values[-1]):
        return None
    index = len(values) - 1
    while index > 0 and rule.breaches(values[index - 1]):
        index -= 1
    return times[index], values[-1]


def _dt(stamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC)
