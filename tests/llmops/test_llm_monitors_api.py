"""LLM monitors through the API: operators create, change and delete them; viewers read; bad rules are refused
naming the field."""

from __future__ import annotations

import pytest

from llmops.models import LLMMonitor

pytestmark = pytest.mark.django_db

URL = "/api/v1/llmops/monitors/"


def test_operators_create_change_and_delete_a_monitor(operator_api, viewer_api):
    created = operator_api.post(URL, {"name": "errors", "metric": "error_rate", "service": "support-bot",
                                      "threshold": 0.05, "window_minutes": 15}, format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["state"] == "new" and body["threshold"] == 0.05 and body["service"] == "support-bot"
    listed = viewer_api.get(URL).json()
    assert listed["count"] == 1 and listed["results"][0]["name"] == "errors"
    changed = operator_api.patch(f"{URL}{body['id']}/", {"threshold": 0.1}, format="json")
    assert changed.status_code == 200 and changed.json()["threshold"] == 0.1
    refused = viewer_api.post(URL, {"name": "x", "metric": "error_rate", "threshold": 0.1}, format="json")
    assert refused.status_code == 403
    assert operator_api.delete(f"{URL}{body['id']}/").status_code == 204
    assert not LLMMonitor.objects.exists()


def test_a_rate_bound_above_one_is_refused_naming_the_field(operator_api):
    refused = operator_api.post(URL, {"name": "bad", "metric": "error_rate", "threshold": 5}, format="json")
    assert refused.status_code == 400
    assert "threshold" in refused.content.decode()
    assert not LLMMonitor.objects.exists()
