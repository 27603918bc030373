"""The trace dashboards: requests, error rate, p50/p95 latency, tokens and cost by model, prompt version and
user, per hour or day, for the filtered traces; figures read back from the page's chart data."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from . import factories
from .pages import json_script, text_of
from .test_trace_pages import stored_trace

pytestmark = pytest.mark.django_db


def _series(figure: dict) -> dict[str, list]:
    return {trace.get("name", ""): trace["y"] for trace in figure["data"]}


@pytest.fixture
def two_hours(operator):
    """Three traces in one hour, one in the next: two models, two users, one prompt version, one error."""
    version = factories.prompt(actor=operator, name="support").versions.get()
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - datetime.timedelta(hours=3)
    at = hour + datetime.timedelta(minutes=10)
    stored_trace(start=at, model="gpt-4o-mini", user="ana", prompt_version=version, latency_ms=100, cost="0.01")
    stored_trace(start=at, model="gpt-4o-mini", user="ana", prompt_version=version, latency_ms=300, cost="0.02",
                 error=True)  # fmt: skip
    stored_trace(start=at, model="claude-3-haiku", user="ben", latency_ms=500, cost="0.04")
    stored_trace(start=at + datetime.timedelta(hours=1), model="gpt-4o-mini", user="ben", latency_ms=1000, cost="0.1")
    return version


def test_dashboard_buckets_requests_errors_and_latency_per_hour(client, viewer, two_hours):
    client.force_login(viewer)
    response = client.get(reverse("llmops:dashboards"), {"window": "24h"})
    assert response.status_code == 200
    requests = _series(json_script(response, "trace-requests"))
    assert requests["requests"] == [3, 1]
    assert requests["error rate (%)"] == [pytest.approx(33.33, abs=0.01), 0]
    latency = _series(json_script(response, "trace-latency"))
    assert latency["p50"] == [300, 1000]
    assert latency["p95"] == [pytest.approx(480), 1000]
    tokens = _series(json_script(response, "trace-tokens"))
    assert tokens["input"] == [126, 42] and tokens["output"] == [51, 17]
    text = text_of(response)
    assert "Requests 4" in text and "Errors 1 (25.0%)" in text and "per hour" in text


def test_cost_is_broken_down_by_model_prompt_version_and_user(client, viewer, two_hours):
    client.force_login(viewer)
    response = client.get(reverse("llmops:dashboards"), {"window": "24h"})
    by_model = _series(json_script(response, "trace-cost-model"))
    assert by_model["gpt-4o-mini"] == [pytest.approx(0.03), pytest.approx(0.1)]
    assert by_model["claude-3-haiku"] == [pytest.approx(0.04), 0]
    by_prompt = _series(json_script(response, "trace-cost-prompt"))
    assert by_prompt == {"support v1": [pytest.approx(0.03)]}
    by_user = _series(json_script(response, "trace-cost-user"))
    assert by_user["ana"] == [pytest.approx(0.03), 0] and by_user["ben"] == [pytest.approx(0.04), pytest.approx(0.1)]


def test_filters_narrow_the_dashboard_and_a_week_is_bucketed_by_day(client, viewer, two_hours):
    client.force_login(viewer)
    response = client.get(reverse("llmops:dashboards"), {"window": "24h", "user": "ben"})
    assert _series(json_script(response, "trace-requests"))["requests"] == [1, 1]
    by_model = _series(json_script(response, "trace-cost-model"))
    assert set(by_model) == {"gpt-4o-mini", "claude-3-haiku"}
    weekly = client.get(reverse("llmops:dashboards"))
    assert "per day" in text_of(weekly)
    assert sum(_series(json_script(weekly, "trace-requests"))["requests"]) == 4
    assert 'href="/llmops/traces/?window=7d"' in weekly.content.decode()


def test_an_empty_window_draws_empty_charts(client, viewer):
    client.force_login(viewer)
    response = client.get(reverse("llmops:dashboards"), {"window": "1h"})
    assert response.status_code == 200
    assert _series(json_script(response, "trace-requests"))["requests"] == []
    assert "Requests 0" in text_of(response)
