"""Silence and correlation-rule pages: operators mute alerts, admins decide how alerts group."""

from __future__ import annotations

import datetime
import html
import re

import pytest
from django.utils import timezone

from aiops import services
from aiops.models import CorrelationRule, Incident, Silence
from opsportal.audit.models import AuditEntry
from tests.helpers import client_for

from .factories import am_alert, fire
from .pages import text_of

pytestmark = pytest.mark.django_db


# --- Silences -----------------------------------------------------------------------------------------------


def test_operator_creates_and_expires_a_silence(operator, alertmanager):
    integration, token = alertmanager
    client = client_for(operator)
    response = client.post(
        "/aiops/silences/",
        {"matchers": "service=checkout\nenv=~prod|staging", "duration_hours": 2, "comment": "db-3 maintenance"},
        follow=True,
    )
    assert "Silence created." in text_of(response)
    silence = Silence.objects.get()
    assert silence.matchers == [
        {"label": "service", "op": "=", "value": "checkout"},
        {"label": "env", "op": "=~", "value": "prod|staging"},
    ]
    fire(integration, token, am_alert(env="prod"))
    body = client.get("/aiops/silences/").content.decode()
    active = body[body.index('id="active-silences"') : body.index("Expired and scheduled")]
    assert "service=checkout env=~prod|staging" in html.unescape(active)
    assert "db-3 maintenance" in active and "by otto" in active
    assert re.search(r'<td class="text-end">1</td>', active), "one alert suppressed"
    assert not Incident.objects.exists()

    response = client.post(f"/aiops/silences/{silence.pk}/expire/", follow=True)
    assert "Silence expired." in text_of(response)
    body = response.content.decode()
    active = body[body.index('id="active-silences"') : body.index("Expired and scheduled")]
    assert "No active silences." in active and "db-3 maintenance" not in active
    assert "db-3 maintenance" in body[body.index("Expired and scheduled") :]
    assert AuditEntry.objects.for_object("aiops", "silence", silence.pk).count() == 2


@pytest.mark.parametrize(
    ("matchers", "error"),
    [
        ("service=checkout\nnonsense", "Line 2"),
        ("service=checkout\nnonsense", "nonsense"),
        ("=checkout", "Line 1"),
        ("env=~prod(", "Line 1"),
        ("", "This field is required."),
    ],
)
def test_bad_matcher_lines_name_the_line(operator, matchers, error):
    response = client_for(operator).post(
        "/aiops/silences/", {"matchers": matchers, "duration_hours": 1, "comment": "x"}
    )
    assert response.status_code == 200
    errors = " ".join(re.findall(r'<div class="invalid-feedback d-block">(.*?)</div>', response.content.decode()))
    assert error in html.unescape(errors)
    assert not Silence.objects.exists()


def test_matcher_values_may_contain_operators_and_quotes(operator):
    client_for(operator).post(
        "/aiops/silences/",
        {"matchers": 'summary=a!=b\nservice="checkout"\npath!~/api/.*', "duration_hours": 1, "comment": "x"},
    )
    assert Silence.objects.get().matchers == [
        {"label": "summary", "op": "=", "value": "a!=b"},
        {"label": "service", "op": "=", "value": "checkout"},
        {"label": "path", "op": "!~", "value": "/api/.*"},
    ]


def test_viewers_see_silences_but_cannot_create_or_expire(viewer, operator):
    silence = services.create_silence(
        matchers=[{"label": "service", "op": "=", "value": "batch"}],
        ends_at=timezone.now() + datetime.timedelta(hours=1),
        comment="nightly batch",
        actor=operator,
    )
    client = client_for(viewer)
    body = client.get("/aiops/silences/").content.decode()
    assert "nightly batch" in body and "New silence" not in body and ">Expire</button>" not in body
    assert client.post("/aiops/silences/", {"matchers": "a=b", "duration_hours": 1, "comment": "x"}).status_code == 403
    assert client.post(f"/aiops/silences/{silence.pk}/expire/").status_code == 403


# --- Correlation rules --------------------------------------------------------------------------------------


def test_admin_creates_and_edits_a_rule(admin_user):
    client = client_for(admin_user)
    assert client.get("/aiops/rules/new/").status_code == 200
    response = client.post(
        "/aiops/rules/new/",
        {
            "name": "Cluster outages",
            "position": 10,
            "matchers": "env=prod\nseverity=~critical|error",
            "group_by": "cluster, alertname",
            "window_minutes": 30,
            "reopen_cooldown_minutes": 15,
            "auto_resolve": "on",
            "enabled": "on",
        },
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/aiops/rules/"
    assert "Rule saved." in text_of(response)
    rule = CorrelationRule.objects.get(name="Cluster outages")
    assert rule.group_by == ["cluster", "alertname"]
    assert rule.matchers == [
        {"label": "env", "op": "=", "value": "prod"},
        {"label": "severity", "op": "=~", "value": "critical|error"},
    ]
    assert (rule.position, rule.window_minutes, rule.reopen_cooldown_minutes) == (10, 30, 15)
    assert rule.auto_resolve and rule.enabled
    listing = text_of(response)
    assert "env=prod severity=~critical|error" in listing and "cluster, alertname" in listing

    # The edit form shows the rule as it was entered.
    edit = client.get(f"/aiops/rules/{rule.pk}/").content.decode()
    assert "env=prod\nseverity=~critical|error</textarea>" in edit
    assert 'value="cluster, alertname"' in edit
    response = client.post(
        f"/aiops/rules/{rule.pk}/",
        {
            "name": "Cluster outages",
            "position": 10,
            "matchers": "",
            "group_by": "cluster",
            "window_minutes": 30,
            "reopen_cooldown_minutes": 15,
        },
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.matchers == [] and rule.group_by == ["cluster"] and not rule.auto_resolve and not rule.enabled
    entries = AuditEntry.objects.for_object("aiops", "correlationrule", rule.pk)
    assert [e.action for e in entries] == ["update", "create"]
    assert entries[0].changes["group_by"] == [["cluster", "alertname"], ["cluster"]]


def test_bad_regex_in_a_rule_is_an_error_on_its_line(admin_user):
    response = client_for(admin_user).post(
        "/aiops/rules/new/",
        {
            "name": "bad",
            "position": 1,
            "matchers": "env=prod\nservice=~(checkout",
            "group_by": "service",
            "window_minutes": 5,
            "reopen_cooldown_minutes": 5,
        },
    )
    assert response.status_code == 400
    errors = html.unescape(
        " ".join(re.findall(r'class="invalid-feedback d-block">(.*?)</div>', response.content.decode()))
    )
    assert "Line 2" in errors and "regular expression" in errors
    assert not CorrelationRule.objects.filter(name="bad").exists()


def test_rule_needs_group_by_keys_and_a_unique_name(admin_user):
    client = client_for(admin_user)
    data = {
        "name": "x",
        "position": 1,
        "matchers": "",
        "group_by": " , ",
        "window_minutes": 5,
        "reopen_cooldown_minutes": 5,
    }
    response = client.post("/aiops/rules/new/", data)
    assert response.status_code == 400
    assert "At least one label key is required." in text_of(response)
    existing = CorrelationRule.objects.first()
    response = client.post("/aiops/rules/new/", {**data, "name": existing.name.upper(), "group_by": "service"})
    assert response.status_code == 400 and "already exists" in text_of(response)


def test_admin_deletes_a_rule(admin_user):
    rule = services.save_rule(actor=admin_user, name="temp", group_by=["service"])
    response = client_for(admin_user).post(f"/aiops/rules/{rule.pk}/", {"delete": "1"}, follow=True)
    assert "Rule temp deleted." in text_of(response)
    assert not CorrelationRule.objects.filter(pk=rule.pk).exists()


def test_viewers_and_operators_see_rules_but_cannot_edit(viewer, operator, admin_user):
    rule = services.save_rule(actor=admin_user, name="by cluster", group_by=["cluster"])
    for user in (viewer, operator):
        client = client_for(user)
        response = client.get("/aiops/rules/")
        assert response.status_code == 200
        assert "by cluster" in text_of(response) and f"/aiops/rules/{rule.pk}/" not in response.content.decode()
        assert "New rule" not in text_of(response)
        assert client.get(f"/aiops/rules/{rule.pk}/").status_code == 403
        assert client.get("/aiops/rules/new/").status_code == 403
        assert client.post(f"/aiops/rules/{rule.pk}/", {"delete": "1"}).status_code == 403
    assert CorrelationRule.objects.filter(pk=rule.pk).exists()
