"""Limits on alert labels and annotations: oversized input is cut with a visible mark, never lost or refused."""

from __future__ import annotations

import copy

import pytest
from django.test import override_settings

from aiops import services
from aiops.models import Alert, Incident
from aiops.parsers import DEFAULT_LIMITS, TRUNCATED_NOTE, cut_key, cut_text, parse

from . import factories

BIG = "x" * 100_000


def _generic(**fields) -> dict:
    return {"title": "Disk full", "source": "db-1", **fields}


def test_a_long_label_value_is_cut_with_a_mark_saying_how_much_and_the_raw_payload_stays_whole() -> None:
    payload = _generic(labels={"env": "prod", "blob": BIG})
    alert = parse("generic", payload).alerts[0]

    value = alert.labels["blob"]
    assert len(value) <= DEFAULT_LIMITS.label_value_length
    assert value.startswith("x" * 900)
    assert value.endswith(f"\u2026 [cut {100_000 - value.index(chr(0x2026)):,} characters]")
    assert alert.labels["env"] == "prod"
    assert alert.raw["labels"]["blob"] == BIG
    assert "labels.blob: 100,000 characters, cut (at most 1,024)" in alert.annotations[TRUNCATED_NOTE]


def test_a_long_annotation_and_description_are_cut_to_their_own_limit() -> None:
    payload = _generic(annotations={"runbook": "r" * 20_000}, description="d" * 30_000)
    alert = parse("generic", payload).alerts[0]

    assert 16_000 < len(alert.annotations["runbook"]) <= DEFAULT_LIMITS.annotation_value_length
    assert "\u2026 [cut " in alert.annotations["runbook"]
    assert len(alert.description) <= DEFAULT_LIMITS.annotation_value_length
    assert alert.description.endswith("characters]")
    note = alert.annotations[TRUNCATED_NOTE]
    assert "annotations.runbook: 20,000 characters" in note and "description: 30,000 characters" in note


def test_long_keys_are_shortened_and_stay_distinct() -> None:
    first, second = "k" * 300 + "a", "k" * 300 + "b"
    alert = parse("generic", _generic(labels={first: "1", second: "2"})).alerts[0]

    keys = sorted(alert.labels)
    assert len(keys) == 2
    assert all(len(key) <= DEFAULT_LIMITS.label_key_length and "\u2026" in key for key in keys)
    assert {alert.labels[cut_key(first, 128)], alert.labels[cut_key(second, 128)]} == {"1", "2"}
    assert "a key of 301 characters shortened" in alert.annotations[TRUNCATED_NOTE]


def test_labels_beyond_the_count_are_dropped_keeping_the_first_sent() -> None:
    labels = {f"label{i:03}": str(i) for i in range(100)}
    alert = parse("generic", _generic(labels=labels)).alerts[0]

    assert list(alert.labels) == [f"label{i:03}" for i in range(64)]
    assert "labels: 36 of 100 dropped (at most 64)" in alert.annotations[TRUNCATED_NOTE]
    assert len(alert.raw["labels"]) == 100


def test_annotations_beyond_the_count_are_dropped() -> None:
    annotations = {f"note{i:03}": "n" for i in range(70)}
    alert = parse("generic", _generic(annotations=annotations)).alerts[0]

    assert len(alert.annotations) == 64 + 1  # the first 64, and the note saying 6 were dropped
    assert "annotations: 6 of 70 dropped" in alert.annotations[TRUNCATED_NOTE]


def test_an_alert_within_the_limits_gets_no_note() -> None:
    alert = parse("generic", _generic(labels={"env": "prod"}, annotations={"summary": "s"})).alerts[0]
    assert TRUNCATED_NOTE not in alert.annotations
    assert alert.labels == {"env": "prod"}


def test_the_fingerprint_is_stable_and_taken_from_the_values_as_sent() -> None:
    def fingerprint(value: str) -> str:
        return parse("alertmanager", _am({"alertname": "Big", "blob": value})).alerts[0].fingerprint

    assert fingerprint(BIG) == fingerprint(BIG)
    # Two values that differ only after the cut are two alerts, not one.
    assert fingerprint(BIG + "a") != fingerprint(BIG + "b")
    generic = _generic(labels={"blob": BIG})
    assert (
        parse("generic", generic).alerts[0].fingerprint
        == parse("generic", copy.deepcopy(generic)).alerts[0].fingerprint
    )


def test_cutting_twice_changes_nothing() -> None:
    """A resolve from raise_alert repeats the stored (already cut) labels: they must come out the same."""
    once = parse("generic", _generic(labels={"blob": BIG})).alerts[0]
    twice = parse("generic", _generic(labels=once.labels)).alerts[0]
    assert twice.labels == once.labels
    assert cut_text(once.labels["blob"], 1024) == once.labels["blob"]


def test_a_sender_fingerprint_longer_than_the_row_holds_is_hashed_stably() -> None:
    def fingerprint() -> str:
        return parse("generic", _generic(fingerprint="f" * 500)).alerts[0].fingerprint

    assert len(fingerprint()) <= 128
    assert fingerprint() == fingerprint()


def test_pagerduty_custom_details_and_alertmanager_group_labels_are_limited() -> None:
    event = {
        "routing_key": "r",
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "s" * 2000, "severity": "error", "custom_details": {"dump": BIG}},
    }
    alert = parse("pagerduty", event).alerts[0]
    assert len(alert.annotations["dump"]) <= DEFAULT_LIMITS.annotation_value_length
    assert len(alert.labels["source"]) <= DEFAULT_LIMITS.label_value_length
    assert len(alert.source) <= 500 and alert.source.endswith("characters]")

    body = _am({"alertname": "Big", "blob": BIG})
    body["commonLabels"] = {"blob": BIG}
    assert len(parse("alertmanager", body).meta["commonLabels"]["blob"]) <= DEFAULT_LIMITS.label_value_length


@override_settings(AIOPS_ALERT_LIMITS={"label_value_length": 100, "labels": 3})
def test_the_limits_are_tunable_in_settings() -> None:
    alert = parse("generic", _generic(labels={"a": "v" * 500, "b": "1", "c": "2", "d": "3"})).alerts[0]
    assert list(alert.labels) == ["a", "b", "c"]
    assert len(alert.labels["a"]) <= 100 and alert.labels["a"].endswith("characters]")


@pytest.mark.django_db
def test_an_oversized_alert_through_the_ingest_endpoint_is_kept_and_its_incident_holds_the_cut_value(alertmanager):
    integration, token = alertmanager
    sent = factories.am_alert(service="checkout", blob=BIG, **{f"extra{i}": "e" for i in range(80)})
    response = factories.deliver(integration, token, factories.am_payload(sent))
    assert response.status_code == 202, response.content
    services.process_pending_alerts()

    alert = Alert.objects.get()
    assert len(alert.labels) == 64 and len(alert.labels["blob"]) <= 1024
    assert alert.raw["labels"]["blob"] == BIG
    incident = Incident.objects.get()
    assert all(len(value) <= 1024 for value in incident.group_labels.values())
    # The same delivery again (a new group key, so not a retry) deduplicates into the same alert.
    again = factories.am_payload(sent, group_key="again")
    assert factories.deliver(integration, token, again).status_code == 202
    assert Alert.objects.get().times_seen == 2


@pytest.mark.django_db
def test_raise_alert_gets_the_same_limits():
    raised = services.raise_alert(source="mlops", dedup_key="big", title="Big", labels={"blob": BIG})
    assert len(raised.alert.labels["blob"]) <= 1024
    assert TRUNCATED_NOTE in raised.alert.annotations
    resolved = services.raise_alert(source="mlops", dedup_key="big", resolve=True)
    assert resolved.resolved and resolved.alert.labels == raised.alert.labels


def _am(labels: dict) -> dict:
    return {
        "version": "4",
        "status": "firing",
        "alerts": [{"status": "firing", "labels": labels, "startsAt": "2024-05-01T12:00:00Z"}],
    }
