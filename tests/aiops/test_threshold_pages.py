"""Threshold rule pages as people use them: the list (matches, breaching, firing) in a fixed number of queries,
the form with its live preview and field errors, the rule page with its series and alerts, enable/disable/delete,
viewers read only."""

from __future__ import annotations

import datetime
import html
import re
from urllib.parse import parse_qs, urlparse

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aiops import services
from aiops.metrics import partitions, store
from aiops.models import Alert, Incident, Series, ThresholdRule
from opsportal.audit.models import AuditEntry
from tests.aiops.pages import json_script, text_of
from tests.helpers import client_for

pytestmark = pytest.mark.django_db

LIST = "/aiops/metrics/thresholds/"
NEW = "/aiops/metrics/thresholds/new/"
PREVIEW = "/aiops/metrics/thresholds/preview/"


@pytest.fixture(autouse=True)
def _fresh_caches():
    store.CACHE.clear()
    partitions.forget_known()
    yield
    store.CACHE.clear()
    partitions.forget_known()


def temperature(room: str, values: list[float], *, end: datetime.datetime | None = None, every: int = 15) -> None:
    """`values` every `every` seconds, the last one at `end` (now)."""
    key = store.series_key("temperature_celsius", {"job": "dc", "room": room, "service": "cooling"})
    stamp = (end or timezone.now()).timestamp()
    store.write_samples([(key, stamp - every * (len(values) - 1 - i), value) for i, value in enumerate(values)])


def hot_rule(actor, **values) -> ThresholdRule:
    fields = {"name": "Server room too hot", "selector": 'temperature_celsius{job="dc"}', "comparison": "above",
              "value": 30, "for_seconds": 60, "severity": "critical"}  # fmt: skip
    fields.update(values)
    return services.save_threshold_rule(actor=actor, **fields)


def rule_form(**values) -> dict:
    data = {"name": "Hot", "selector": 'temperature_celsius{job="dc"}', "comparison": "above", "value": "30",
            "for_seconds": "60", "severity": "warning", "service": "", "description": "", "enabled": "on"}  # fmt: skip
    data.update(values)
    return {k: v for k, v in data.items() if v is not None}


def row_of(page: str, element_id: str) -> str:
    match = re.search(rf'<tr id="{element_id}">(.*?)</tr>', page, flags=re.S)
    assert match, f"no row #{element_id}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def field_error(page: str, name: str) -> str:
    """The error text shown under the field `name` (form_field.html's invalid-feedback, or the selector's)."""
    if name == "selector":
        match = re.search(r'<div id="selector-problem"[^>]*>(.*?)</div>', page, flags=re.S)
        return html.unescape(match.group(1).strip()) if match else ""
    match = re.search(rf'name="{name}".*?<div class="invalid-feedback d-block">(.*?)</div>', page, flags=re.S)
    return html.unescape(match.group(1).strip()) if match else ""


@pytest.fixture
def firing_rule(operator) -> ThresholdRule:
    """Room a has been above 30 for over a minute (firing), b is fine, c only just crossed (pending)."""
    rule = hot_rule(operator)
    temperature("a", [25, 31, 32, 33, 34, 35, 36])
    temperature("b", [20, 21, 22, 21, 20, 21, 22])
    temperature("c", [20, 21, 22, 21, 20, 21, 31])
    services.evaluate_threshold_rules()
    services.process_pending_alerts()
    return rule


# --- The list ---------------------------------------------------------------------------------------


def test_the_list_shows_matches_breaching_and_firing_from_the_alerts(operator, viewer, firing_rule):
    quiet = services.save_threshold_rule(
        actor=operator, name="Node down", selector='up{job="node"}', comparison="below", value=1, for_seconds=30
    )
    services.save_threshold_rule(actor=operator, rule=quiet, enabled=False)
    response = client_for(viewer).get(LIST)
    assert response.status_code == 200
    body = response.content.decode()
    hot = row_of(body, f"threshold-{firing_rule.pk}")
    assert hot.startswith("Firing Server room too hot")
    assert 'temperature_celsius{job="dc"}' in hot and "> 30 for 60 s" in hot and "Critical" in hot
    # 3 series match, a and c breach, only a fires (one open alert).
    assert re.search(r"yes 3 2 1 \d+ (seconds|minutes?) ago", hot), hot
    down = row_of(body, f"threshold-{quiet.pk}")
    assert down.startswith("Disabled Node down") and "< 1 for 30 s" in down and "no 0 0 0 never" in down
    assert "New threshold rule" not in body  # viewers read only
    assert "Threshold rules" in text_of(response)


def test_firing_counts_the_open_alerts_not_the_resolved(operator, firing_rule):
    temperature("a", [20], end=timezone.now() + datetime.timedelta(seconds=1))
    services.evaluate_threshold_rules(now=timezone.now() + datetime.timedelta(seconds=2))
    assert Alert.objects.get().status == "resolved"
    row = row_of(client_for(operator).get(LIST).content.decode(), f"threshold-{firing_rule.pk}")
    assert row.startswith("Pending") and re.search(r"yes 3 1 0 ", row), row


def test_the_list_filters_by_state_and_names_an_unknown_one(operator, firing_rule):
    ok = services.save_threshold_rule(
        actor=operator, name="Cold", selector="temperature_celsius", comparison="below", value=-40
    )
    services.evaluate_threshold_rules()
    client = client_for(operator)
    firing = client.get(LIST, {"state": "firing"}).content.decode()
    assert f'id="threshold-{firing_rule.pk}"' in firing and f'id="threshold-{ok.pk}"' not in firing
    calm = client.get(LIST, {"state": ["ok", "disabled"]}).content.decode()
    assert f'id="threshold-{ok.pk}"' in calm and f'id="threshold-{firing_rule.pk}"' not in calm
    odd = client.get(LIST, {"state": "burning"})
    assert "Filter state: “burning” — not a value it knows" in text_of(odd)
    assert f'id="threshold-{ok.pk}"' in odd.content.decode()  # shown without the filter
    partial = client.get(LIST, {"state": "firing"}, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in partial and f'id="threshold-{firing_rule.pk}"' in partial


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def test_the_list_takes_a_fixed_number_of_queries(operator):
    client = client_for(operator)
    for room in "abcd":
        temperature(room, [25.0, 35.0])
    hot_rule(operator)
    services.save_threshold_rule(actor=operator, name="Any dc", selector='{job="dc"}', comparison="above", value=1)
    services.evaluate_threshold_rules()
    few = _queries(client, LIST)
    for i in range(8):
        services.save_threshold_rule(
            actor=operator, name=f"rule {i}", selector=f'temperature_celsius{{room="{"abcd"[i % 4]}"}}',
            comparison="above", value=30,
        )  # fmt: skip
    services.save_threshold_rule(actor=operator, name="By name", selector='{__name__=~"temp.*"}', comparison="above",
                                 value=1)  # fmt: skip
    services.evaluate_threshold_rules()
    services.process_pending_alerts()
    assert Alert.objects.filter(status="firing").count() >= 8
    assert _queries(client, LIST) == few
    body = client.get(LIST).content.decode()
    by_name = ThresholdRule.objects.get(name="By name")
    assert re.search(r"yes 4 4 [04] ", row_of(body, f"threshold-{by_name.pk}"))
    one_room = ThresholdRule.objects.get(name="rule 0")
    assert re.search(r"yes 1 1 [01] ", row_of(body, f"threshold-{one_room.pk}"))


# --- The form and its preview ---------------------------------------------------------------------


def test_a_rule_is_created_from_the_form_and_audited(operator):
    client = client_for(operator)
    page = client.get(NEW)
    assert page.status_code == 200 and 'hx-get="/aiops/metrics/thresholds/preview/"' in page.content.decode()
    response = client.post(NEW, rule_form(name="Too hot", value="30.5", for_seconds="120", severity="critical",
                                          service="cooling"))  # fmt: skip
    rule = ThresholdRule.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{LIST}{rule.pk}/"
    assert (rule.name, rule.value, rule.for_seconds, rule.severity, rule.service, rule.enabled) == (
        "Too hot", 30.5, 120, "critical", "cooling", True,
    )  # fmt: skip
    assert AuditEntry.objects.filter(object_id=str(rule.pk), action="create").exists()
    shown = client.get(response["Location"])
    assert "Threshold rule Too hot saved." in text_of(shown)


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"selector": 'temperature_celsius{job="dc"'}, "selector", "unexpected end"),
        ({"selector": "rate(x[5m])"}, "selector", ""),
        ({"selector": ""}, "selector", "required"),
        ({"value": "hot"}, "value", "Enter a number."),
        ({"value": ""}, "value", "required"),
        ({"for_seconds": "-5"}, "for_seconds", ""),
        ({"for_seconds": str(8 * 86400)}, "for_seconds", ""),
        ({"comparison": "equal"}, "comparison", "Select a valid choice"),
        ({"severity": "apocalyptic"}, "severity", "Select a valid choice"),
        ({"name": ""}, "name", "required"),
    ],
)
def test_bad_input_is_a_form_error_under_its_field_and_nothing_is_saved(operator, values, field, message):
    response = client_for(operator).post(NEW, rule_form(**values))
    assert response.status_code == 400
    error = field_error(response.content.decode(), field)
    assert error, f"no error under {field}"
    assert message.lower() in error.lower()
    assert not ThresholdRule.objects.exists() and not AuditEntry.objects.filter(action="create").exists()


def test_a_duplicate_name_is_refused_under_the_name(operator):
    hot_rule(operator, name="Hot")
    response = client_for(operator).post(NEW, rule_form(name="Hot"))
    assert response.status_code == 400 and field_error(response.content.decode(), "name")
    assert ThresholdRule.objects.count() == 1


def test_the_preview_counts_matches_and_shows_current_values_and_breaches(operator):
    temperature("a", [25, 31, 32, 33, 34, 35, 36])
    temperature("b", [20, 21, 22, 21, 20, 21, 22])
    temperature("c", [20, 21, 22, 21, 20, 21, 31])
    client = client_for(operator)
    everything = client.get(PREVIEW, {"selector": 'temperature_celsius{job="dc"}', "value": "30",
                                      "comparison": "above", "for_seconds": "60"})  # fmt: skip
    assert everything.status_code == 200
    text = text_of(everything)
    assert "Matches 3 series; of the first 3, 2 would breach now." in text
    body = everything.content.decode()
    rows = re.findall(r"<tr>\s*<td class=\"small\">(.*?)</tr>", body, flags=re.S)
    cells = [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", row)).split()).replace(" ,", ",") for row in rows]
    assert cells[0].startswith('temperature_celsius{job="dc",room="a",service="cooling"} 36 yes, for')
    assert cells[0].endswith("would fire")
    assert cells[1].endswith("22 no")
    assert "31 yes, for" in cells[2] and cells[2].endswith("not yet for 60 s")
    figure = json_script(everything, "preview-figure")
    assert len(figure["data"]) == 3 and figure["layout"]["shapes"][0]["y0"] == 30
    narrower = text_of(client.get(PREVIEW, {"selector": 'temperature_celsius{room=~"a|b"}', "value": "21.5",
                                            "comparison": "below"}))  # fmt: skip
    assert "Matches 2 series; of the first 2, 0 would breach now." in narrower
    no_value = text_of(client.get(PREVIEW, {"selector": "temperature_celsius", "value": ""}))
    assert "Matches 3 series." in no_value and "Enter a threshold" in no_value
    assert "Type a selector" in text_of(client.get(PREVIEW, {"selector": ""}))
    assert "Matches 0 series." in text_of(client.get(PREVIEW, {"selector": "nothing_here"}))


def test_a_bad_selector_in_the_preview_is_the_parsers_message_under_the_field(operator):
    response = client_for(operator).get(PREVIEW, {"selector": 'temperature_celsius{job="dc"', "value": "30"})
    assert response.status_code == 400
    body = response.content.decode()
    problem = re.search(r'<div id="selector-problem"[^>]*hx-swap-oob="true">(.*?)</div>', body, flags=re.S)
    assert problem and "unexpected end" in problem.group(1)
    assert "cannot be used" in text_of(response)


def test_editing_shows_the_stored_rule_and_its_preview_and_saves_changes(operator):
    temperature("a", [35, 36])
    rule = hot_rule(operator)
    client = client_for(operator)
    page = client.get(f"{LIST}{rule.pk}/edit/")
    body = page.content.decode()
    assert page.status_code == 200 and 'value="temperature_celsius{job=&quot;dc&quot;}"' in body
    assert 'name="value" value="30"' in body  # as typed, not 30.0
    assert "Matches 1 series" in text_of(page)
    response = client.post(f"{LIST}{rule.pk}/edit/", rule_form(name=rule.name, value="40", comparison="above"))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.value == 40 and rule.severity == "warning"
    assert AuditEntry.objects.filter(object_id=str(rule.pk), action="update").exists()


# --- One rule -------------------------------------------------------------------------------------


def test_the_rule_page_shows_its_series_values_states_and_the_alerts_it_raised(viewer, firing_rule):
    response = client_for(viewer).get(f"{LIST}{firing_rule.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    series = {s.labels["room"]: s for s in Series.objects.filter(name="temperature_celsius")}
    hot = row_of(body, f"series-{series['a'].pk}")
    assert hot.startswith('temperature_celsius{job="dc",room="a",service="cooling"} 36') and "Firing for" in hot
    assert "Pending breaching for" in row_of(body, f"series-{series['c'].pk}")
    assert "22" in row_of(body, f"series-{series['b'].pk}") and "within the threshold" in body
    link = re.search(rf'<tr id="series-{series["a"].pk}">.*?href="([^"]+)"', body, flags=re.S).group(1)
    parsed = urlparse(link.replace("&amp;", "&"))
    assert parsed.path == "/aiops/metrics/" and parse_qs(parsed.query)["q"] == [series["a"].selector()]
    text = text_of(response)
    assert "3 series" in text and "2 breaching · 1 firing" in text
    incident = Incident.objects.get()
    assert "Server room too hot: temperature_celsius above 30 (36)" in text
    assert f'href="/aiops/incidents/{incident.pk}/"' in body and "1 incident" in text
    assert json_script(response, "threshold-figure")["layout"]["shapes"][0]["y0"] == 30
    assert "Disable" not in text and "Delete" not in text  # viewers read only


def test_disabling_resolves_what_fired_and_enabling_brings_it_back(operator, firing_rule):
    client = client_for(operator)
    response = client.post(f"{LIST}{firing_rule.pk}/disable/")
    assert response.status_code == 302
    firing_rule.refresh_from_db()
    assert not firing_rule.enabled and firing_rule.state == "ok"
    assert Alert.objects.get().status == "resolved"
    assert "Disabled" in text_of(client.get(f"{LIST}{firing_rule.pk}/"))
    client.post(f"{LIST}{firing_rule.pk}/enable/")
    services.evaluate_threshold_rules()
    assert Alert.objects.filter(status="firing").count() == 1
    assert client.post(f"{LIST}{firing_rule.pk}/explode/").status_code == 404


def test_deleting_asks_first_then_resolves_the_alerts(operator, firing_rule):
    client = client_for(operator)
    confirm = client.get(f"{LIST}{firing_rule.pk}/delete/")
    assert confirm.status_code == 200 and "1 alert it has firing will be resolved" in text_of(confirm)
    assert ThresholdRule.objects.exists()
    response = client.post(f"{LIST}{firing_rule.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == LIST
    assert not ThresholdRule.objects.exists() and Alert.objects.get().status == "resolved"
    assert AuditEntry.objects.filter(object_id=str(firing_rule.pk), action="delete").exists()
    assert "Threshold rule Server room too hot deleted" in text_of(client.get(LIST))


def test_viewers_read_only_and_everything_needs_login(client, viewer, operator):
    rule = hot_rule(operator)
    reader = client_for(viewer)
    for url in (LIST, f"{LIST}{rule.pk}/", f"{PREVIEW}?selector=up"):
        assert reader.get(url).status_code == 200
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert reader.get(NEW).status_code == 403
    assert reader.post(NEW, rule_form(name="Sneaky")).status_code == 403
    assert reader.get(f"{LIST}{rule.pk}/edit/").status_code == 403
    assert reader.post(f"{LIST}{rule.pk}/disable/").status_code == 403
    assert reader.post(f"{LIST}{rule.pk}/delete/").status_code == 403
    rule.refresh_from_db()
    assert rule.enabled and ThresholdRule.objects.count() == 1


def test_the_rule_page_takes_the_same_queries_for_more_series_and_alerts(operator):
    client = client_for(operator)
    rule = hot_rule(operator, for_seconds=0)
    temperature("a", [35.0, 36.0])
    services.evaluate_threshold_rules()
    services.process_pending_alerts()
    one = _queries(client, f"{LIST}{rule.pk}/")
    for room in "bcdefg":
        temperature(room, [35.0, 36.0])
    services.evaluate_threshold_rules()
    services.process_pending_alerts()
    assert Alert.objects.filter(status="firing").count() == 7
    assert _queries(client, f"{LIST}{rule.pk}/") == one
    assert "7 breaching · 7 firing" in text_of(client.get(f"{LIST}{rule.pk}/"))
