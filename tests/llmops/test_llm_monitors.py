"""LLM monitors: each metric measured over its window in SQL, a breach raising the AIOps alert with a link to the
matching traces, recovery resolving it, too few samples doing neither, and rules that cannot mean anything refused."""

from __future__ import annotations

import datetime
from urllib.parse import parse_qs, urlparse

import pytest
from django.utils import timezone

from aiops.models import Alert
from llmops.models import GuardCall, LLMMonitor, Score
from llmops.services import guardrails, monitors
from llmops.services.base import InvalidInput

from . import factories
from .test_trace_pages import stored_trace

pytestmark = pytest.mark.django_db


def _alert(monitor: LLMMonitor) -> Alert | None:
    return Alert.objects.filter(fingerprint=monitor.dedup_key).order_by("-id").first()


def _traces(*, at: datetime.datetime, count: int, errors: int = 0, **fields) -> None:
    for index in range(count):
        stored_trace(start=at + datetime.timedelta(seconds=index), error=index < errors, **fields)


def test_an_error_burst_fires_an_alert_linking_to_the_failing_traces_and_recovery_resolves_it(operator):
    now = timezone.now()
    monitor = monitors.create_monitor(actor=operator, name="support errors", metric="error_rate",
                                      service="support-bot", threshold=0.1, window_minutes=15, min_samples=5,
                                      severity="error")  # fmt: skip
    _traces(at=now - datetime.timedelta(minutes=10), count=10, errors=4)
    _traces(at=now - datetime.timedelta(minutes=10), count=5, errors=5, service="other-bot")

    done = monitors.evaluate_monitor(monitor_id=monitor.pk, now=now)

    assert done.value == pytest.approx(0.4) and done.samples == 10 and done.fired
    monitor.refresh_from_db()
    assert monitor.state == "firing" and monitor.last_value == pytest.approx(0.4)
    alert = _alert(monitor)
    assert alert.status == "firing" and alert.severity == "error" and alert.service == "support-bot"
    assert "40.0 % above 10.0 %" in alert.title
    assert alert.labels["monitor_id"] == str(monitor.pk)
    link = urlparse(next(link["href"] for link in alert.links if link["text"] == "Traces"))
    query = parse_qs(link.query)
    assert link.path == "/llmops/traces/"
    assert query["service"] == ["support-bot"] and query["status"] == ["error"] and "since" in query

    # Twenty minutes on, the errors left the window and fresh traffic is healthy.
    later = now + datetime.timedelta(minutes=20)
    _traces(at=later - datetime.timedelta(minutes=5), count=10, errors=0)
    done = monitors.evaluate_monitor(monitor_id=monitor.pk, now=later)
    assert done.value == 0 and done.resolved
    assert _alert(monitor).status == "resolved"
    monitor.refresh_from_db()
    assert monitor.state == "ok"
    assert list(monitor.readings.order_by("at").values_list("breached", flat=True)) == [True, False]


def test_too_few_traces_neither_fire_nor_resolve(operator):
    now = timezone.now()
    monitor = monitors.create_monitor(actor=operator, name="errors", metric="error_rate", threshold=0.1,
                                      window_minutes=15, min_samples=5)  # fmt: skip
    _traces(at=now - datetime.timedelta(minutes=5), count=3, errors=3)
    done = monitors.evaluate_monitor(monitor_id=monitor.pk, now=now)
    assert done.state == "no_data" and not done.fired and _alert(monitor) is None
    _traces(at=now - datetime.timedelta(minutes=4), count=5, errors=5)
    assert monitors.evaluate_monitor(monitor_id=monitor.pk, now=now).state == "firing"
    # Silence afterwards is not a recovery: the alert stays open.
    silent = now + datetime.timedelta(hours=1)
    assert monitors.evaluate_monitor(monitor_id=monitor.pk, now=silent).state == "firing"
    assert _alert(monitor).status == "firing"


def test_p95_latency_of_a_models_generations(operator):
    now = timezone.now()
    monitor = monitors.create_monitor(actor=operator, name="slow", metric="p95_latency", model="gpt-4o-mini",
                                      threshold=2000, window_minutes=30, min_samples=1)  # fmt: skip
    at = now - datetime.timedelta(minutes=10)
    for latency in range(1, 21):
        stored_trace(start=at, latency_ms=latency * 200.0)
    stored_trace(start=at, latency_ms=90_000.0, model="claude-3-haiku")
    done = monitors.evaluate_monitor(monitor_id=monitor.pk, now=now)
    # Each generation lasts 0.8 x the trace's latency minus 100 ms: 60 .. 3100 ms, p95 interpolated.
    durations = sorted(latency * 200.0 * 0.8 - 100 for latency in range(1, 21))
    position = 19 * 0.95
    expected = durations[18] + (durations[19] - durations[18]) * (position - 18)
    assert done.samples == 20 and done.value == pytest.approx(expected) and done.fired
    assert "ms above 2000 ms" in _alert(monitor).title


def test_cost_per_hour_is_the_windows_spend_scaled_to_an_hour(operator):
    now = timezone.now()
    monitor = monitors.create_monitor(actor=operator, name="spend", metric="cost_per_hour", service="support-bot",
                                      threshold=1.0, window_minutes=30)  # fmt: skip
    _traces(at=now - datetime.timedelta(minutes=20), count=4, cost="0.2")
    _traces(at=now - datetime.timedelta(hours=2), count=4, cost="5")
    done = monitors.evaluate_monitor(monitor_id=monitor.pk, now=now)
    assert done.value == pytest.approx(1.6) and done.fired
    assert "$1.6000 above $1.0000" in _alert(monitor).title


def test_cost_per_day_under_its_bound_stays_ok(operator):
    now = timezone.now()
    monitor = monitors.create_monitor(actor=operator, name="daily", metric="cost_per_day", threshold=10,
                                      window_minutes=60)  # fmt: skip
    _traces(at=now - datetime.timedelta(minutes=20), count=2, cost="0.1")
    done = monitors.evaluate_monitor(monitor_id=monitor.pk, now=now)
    assert done.value == pytest.approx(4.8) and done.state == "ok" and _alert(monitor) is None


def test_guard_violation_rate_of_a_policy(operator):
    now = timezone.now()
    policy = guardrails.create_policy(name="support", actor=operator, checks=[{"check": "pii"}])
    monitor = monitors.create_monitor(actor=operator, name="pii leaks", metric="guard_violation_rate",
                                      guard_policy=policy, threshold=0.2, min_samples=4)  # fmt: skip
    for text in ["my mail is ana@example.com", "call me on +44 20 7946 0958", "where is my parcel?", "thanks!"]:
        guardrails.guard(text=text, direction="input", actor=operator, policy_name="support")
    GuardCall.objects.create(policy_name="other", direction="input", allowed=False, violated=1, latency_ms=1,
                             at=now - datetime.timedelta(minutes=1))  # fmt: skip
    done = monitors.evaluate_monitor(monitor_id=monitor.pk, now=timezone.now())
    assert done.samples == 4 and done.value == pytest.approx(0.5) and done.fired


def test_online_evaluation_pass_rate_below_its_bound(operator):
    now = timezone.now()
    version = factories.prompt(actor=operator, name="support").versions.get()
    monitor = monitors.create_monitor(actor=operator, name="quality", metric="eval_pass_rate", score_name="helpful",
                                      prompt_version=version, comparison="below", threshold=0.8,
                                      min_samples=5)  # fmt: skip
    for index in range(10):
        Score.objects.create(trace_id=f"{index:032x}", span_id=f"{index:016x}", name="helpful", value=1,
                             source="evaluator", passed=index < 6, prompt_version=version,
                             created_at=now - datetime.timedelta(minutes=5))  # fmt: skip
    Score.objects.create(trace_id="f" * 32, name="helpful", value=0, source="evaluator", passed=True,
                         created_at=now - datetime.timedelta(minutes=5))  # fmt: skip
    done = monitors.evaluate_monitor(monitor_id=monitor.pk, now=now)
    assert done.samples == 10 and done.value == pytest.approx(0.6) and done.fired
    assert "60.0 % below 80.0 %" in _alert(monitor).title


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"metric": "error_rate", "threshold": 5}, "threshold"),
        ({"metric": "error_rate", "threshold": 0.1, "score_name": "helpful"}, "score_name"),
        ({"metric": "guard_violation_rate", "threshold": 0.1, "service": "bot"}, "service"),
        ({"metric": "latency", "threshold": 1}, "metric"),
        ({"metric": "cost_per_hour", "threshold": 1, "window_minutes": 0}, "window_minutes"),
    ],
)
def test_rules_that_cannot_mean_anything_are_refused_naming_the_field(operator, fields, field):
    with pytest.raises(InvalidInput) as refused:
        monitors.create_monitor(actor=operator, name="bad", **fields)
    assert refused.value.field == field
    assert not LLMMonitor.objects.exists()


def test_deleting_or_disabling_a_firing_monitor_resolves_its_alert(operator):
    now = timezone.now()
    _traces(at=now - datetime.timedelta(minutes=5), count=4, errors=4)
    first = monitors.create_monitor(actor=operator, name="a", metric="error_rate", threshold=0.1, min_samples=1)
    second = monitors.create_monitor(actor=operator, name="b", metric="error_rate", threshold=0.1, min_samples=1)
    for monitor in (first, second):
        monitors.evaluate_monitor(monitor_id=monitor.pk, now=now)
        monitor.refresh_from_db()
    second_key = second.dedup_key
    monitors.update_monitor(monitor=first, actor=operator, enabled=False)
    monitors.delete_monitor(monitor=second, actor=operator)
    assert _alert(first).status == "resolved"
    assert Alert.objects.get(fingerprint=second_key).status == "resolved"
    first.refresh_from_db()
    assert first.state == "new"
