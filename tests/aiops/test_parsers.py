"""Tests for aiops.parsers: sender payloads -> normalised alerts (pure Python, no database)."""

from __future__ import annotations

import copy
import json
import pickle
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from aiops.parsers import (
    GENERIC_SCHEMA_DOC,
    SEVERITIES,
    ParsedAlert,
    PayloadError,
    compute_fingerprint,
    normalise_severity,
    parse,
)

# --------------------------------------------------------------------------------------------------------------------
# Realistic payloads
# --------------------------------------------------------------------------------------------------------------------

# Alertmanager v4 webhook as sent by a kube-prometheus stack, grouped by namespace: one firing, one resolved alert.
ALERTMANAGER: dict[str, Any] = {
    "receiver": "opsportal",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "KubePodCrashLooping",
                "container": "api",
                "instance": "10.42.0.17:8080",
                "job": "kube-state-metrics",
                "namespace": "payments",
                "pod": "payments-api-7d9c6b5f4-x2kqz",
                "prometheus": "monitoring/k8s",
                "service": "payments-api",
                "severity": "warning",
            },
            "annotations": {
                "description": (
                    'Pod payments/payments-api-7d9c6b5f4-x2kqz (api) is in waiting state (reason: "CrashLoopBackOff").'
                ),
                "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
                "summary": "Pod is crash looping.",
            },
            "startsAt": "2024-03-14T09:26:53.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus-k8s-0:9090/graph?g0.expr=max_over_time%28kube_pod_container_status_waiting_reason%5B5m%5D%29+%3E%3D+1&g0.tab=1",
            "fingerprint": "4f1c9a2b7e3d5c60",
        },
        {
            "status": "resolved",
            "labels": {
                "alertname": "NodeFilesystemSpaceFillingUp",
                "device": "/dev/nvme0n1p1",
                "fstype": "ext4",
                "instance": "ip-10-0-3-21.eu-west-1.compute.internal",
                "job": "node-exporter",
                "mountpoint": "/",
                "namespace": "payments",
                "prometheus": "monitoring/k8s",
                "severity": "critical",
            },
            "annotations": {
                "description": (
                    "Filesystem on /dev/nvme0n1p1 at ip-10-0-3-21 has only 3.02% available space left "
                    "and is filling up fast."
                ),
                "summary": "Filesystem is predicted to run out of space within the next 4 hours.",
            },
            "startsAt": "2024-03-14T07:02:11.402Z",
            "endsAt": "2024-03-14T09:21:41.881549275Z",
            "generatorURL": "http://prometheus-k8s-0:9090/graph?g0.expr=node_filesystem_avail_bytes&g0.tab=1",
            "fingerprint": "b2e0d7f15a9c4e31",
        },
    ],
    "groupLabels": {"namespace": "payments"},
    "commonLabels": {"namespace": "payments", "prometheus": "monitoring/k8s"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager-main-0:9093",
    "version": "4",
    "groupKey": '{}/{severity=~"warning|critical"}:{namespace="payments"}',
    "truncatedAlerts": 0,
}

# Grafana unified alerting webhook (shape of Grafana 10/11 "webhook" contact point).
GRAFANA: dict[str, Any] = {
    "receiver": "OpsPortal",
    "status": "firing",
    "orgId": 1,
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "High memory usage",
                "grafana_folder": "Infra",
                "instance": "web-02:9100",
                "team": "blue",
                "zone": "us-1",
            },
            "annotations": {
                "description": "The system has high memory usage",
                "runbook_url": "https://myrunbook.com/runbook/1234",
                "summary": "This alert was triggered for zone us-1",
            },
            "startsAt": "2021-10-12T09:51:03.157076+02:00",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "https://play.grafana.org/alerting/grafana/1afz29v7z/view?orgId=1",
            "fingerprint": "c6eadffa33fcdf37",
            "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matcher=alertname%3DT2",
            "dashboardURL": "https://play.grafana.org/d/nEY0wqc7z?orgId=1",
            "panelURL": "https://play.grafana.org/d/nEY0wqc7z?orgId=1&viewPanel=4",
            "values": {"B": 44.23943737541908, "C": 1},
            "valueString": "[ var='B' labels={} value=44.23943737541908 ], [ var='C' labels={} value=1 ]",
            "imageURL": "",
            "orgId": 1,
        },
        {
            "status": "resolved",
            "labels": {"alertname": "High CPU usage", "team": "blue", "zone": "eu-1"},
            "annotations": {},
            "startsAt": "2021-10-12T09:56:03.157076+02:00",
            "endsAt": "2021-10-12T10:01:03.157076+02:00",
            "generatorURL": "https://play.grafana.org/alerting/grafana/2bgz9w7z/view?orgId=1",
            "fingerprint": "bc97ff14869b13e3",
            "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matcher=alertname%3DT1",
            "dashboardURL": "",
            "panelURL": "",
            "values": None,
            "valueString": "",
        },
    ],
    "groupLabels": {},
    "commonLabels": {"team": "blue"},
    "commonAnnotations": {},
    "externalURL": "https://play.grafana.org/",
    "version": "1",
    "groupKey": "{}:{}",
    "truncatedAlerts": 0,
    "title": "[FIRING:1, RESOLVED:1]  (blue)",
    "state": "alerting",
    "message": "**Firing**\n\nLabels:\n - alertname = High memory usage\n",
}

# PagerDuty Events API v2 examples (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ etc.).
PD_TRIGGER: dict[str, Any] = {
    "payload": {
        "summary": "Example alert on host1.example.com",
        "timestamp": "2015-07-17T08:42:58.315+0000",
        "severity": "info",
        "source": "monitoringtool:cloudvendor:central-region-dc-01:852559987:cluster/api-stats-prod-003",
        "component": "postgres",
        "group": "prod-datapipe",
        "class": "deploy",
        "custom_details": {"ping time": "1500ms", "load avg": 0.75},
    },
    "routing_key": "samplekeyhere",
    "dedup_key": "samplekeyhere",
    "images": [
        {
            "src": "https://www.pagerduty.com/wp-content/uploads/2016/05/pagerduty-logo-green.png",
            "href": "https://example.com/",
            "alt": "Example text",
        }
    ],
    "links": [{"href": "https://example.com/", "text": "Link text"}],
    "event_action": "trigger",
    "client": "Sample Monitoring Service",
    "client_url": "https://monitoring.example.com",
}
PD_ACKNOWLEDGE: dict[str, Any] = {
    "routing_key": "samplekeyhere",
    "dedup_key": "samplekeyhere",
    "event_action": "acknowledge",
}
PD_RESOLVE: dict[str, Any] = {
    "routing_key": "samplekeyhere",
    "dedup_key": "samplekeyhere",
    "event_action": "resolve",
}

GENERIC_SINGLE: dict[str, Any] = {
    "title": "Disk almost full on db-1",
    "severity": "crit",
    "source": "db-1.example.com",
    "service": "postgres",
    "description": "/var/lib/postgresql is 97% full.",
    "labels": {"env": "prod", "mount": "/var/lib/postgresql", "shard": 3},
    "annotations": {"runbook": "https://wiki.example.com/disk", "threshold": 95},
    "fingerprint": "db-1-disk-pg",
    "occurred_at": "2024-05-01T12:00:00Z",
    "links": ["https://grafana.example.com/d/disk", {"href": "https://wiki.example.com/disk", "text": "Runbook"}],
}


def mutated(base: dict[str, Any], change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """Deep copy of `base` with `change` applied (its return value is ignored)."""
    result = copy.deepcopy(base)
    change(result)
    return result


# --------------------------------------------------------------------------------------------------------------------
# Alertmanager
# --------------------------------------------------------------------------------------------------------------------


def test_alertmanager_firing_alert_maps_every_field() -> None:
    parsed = parse("alertmanager", copy.deepcopy(ALERTMANAGER))

    assert len(parsed.alerts) == 2
    assert parsed.alerts[0] == ParsedAlert(
        fingerprint="4f1c9a2b7e3d5c60",
        status="firing",
        action="trigger",
        severity="warning",
        title="Pod is crash looping.",
        description='Pod payments/payments-api-7d9c6b5f4-x2kqz (api) is in waiting state (reason: "CrashLoopBackOff").',
        service="payments-api",
        source="10.42.0.17:8080",
        labels=ALERTMANAGER["alerts"][0]["labels"],
        annotations=ALERTMANAGER["alerts"][0]["annotations"],
        starts_at=datetime(2024, 3, 14, 9, 26, 53, 123456, tzinfo=UTC),
        ends_at=None,
        generator_url=ALERTMANAGER["alerts"][0]["generatorURL"],
        links=[{"href": ALERTMANAGER["alerts"][0]["generatorURL"], "text": "Source"}],
        raw=ALERTMANAGER["alerts"][0],
    )


def test_alertmanager_resolved_alert() -> None:
    alert = parse("alertmanager", copy.deepcopy(ALERTMANAGER)).alerts[1]

    assert alert.status == "resolved"
    assert alert.action == "resolve"
    assert alert.severity == "critical"
    assert alert.fingerprint == "b2e0d7f15a9c4e31"
    assert alert.title == "Filesystem is predicted to run out of space within the next 4 hours."
    assert alert.description.startswith("Filesystem on /dev/nvme0n1p1 at ip-10-0-3-21 has only 3.02%")
    assert alert.service == "node-exporter"  # no "service" label -> "job"
    assert alert.source == "ip-10-0-3-21.eu-west-1.compute.internal"
    assert alert.starts_at == datetime(2024, 3, 14, 7, 2, 11, 402000, tzinfo=UTC)
    assert alert.ends_at == datetime(2024, 3, 14, 9, 21, 41, 881549, tzinfo=UTC)
    assert alert.starts_at.tzinfo is UTC


def test_alertmanager_meta() -> None:
    assert parse("alertmanager", copy.deepcopy(ALERTMANAGER)).meta == {
        "receiver": "opsportal",
        "status": "firing",
        "groupKey": '{}/{severity=~"warning|critical"}:{namespace="payments"}',
        "groupLabels": {"namespace": "payments"},
        "commonLabels": {"namespace": "payments", "prometheus": "monitoring/k8s"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager-main-0:9093",
        "truncatedAlerts": 0,
    }


def test_alertmanager_zero_end_time_means_none() -> None:
    payload = mutated(ALERTMANAGER, lambda p: p["alerts"][1].update(endsAt="0001-01-01T00:00:00Z"))
    assert parse("alertmanager", payload).alerts[1].ends_at is None


def test_alertmanager_firing_alert_never_has_end_time() -> None:
    payload = mutated(ALERTMANAGER, lambda p: p["alerts"][0].update(endsAt="2024-03-14T10:00:00Z"))
    assert parse("alertmanager", payload).alerts[0].ends_at is None


def test_alertmanager_unknown_keys_are_ignored() -> None:
    def add_unknown(p: dict[str, Any]) -> None:
        p["someFutureField"] = {"nested": [1, 2]}
        p["alerts"][0]["someFutureField"] = ["x"]
        p["alerts"][0]["silenceURL"] = "http://alertmanager/#/silences/new"  # Grafana-only key in an AM payload

    baseline = parse("alertmanager", copy.deepcopy(ALERTMANAGER))
    parsed = parse("alertmanager", mutated(ALERTMANAGER, add_unknown))

    assert parsed.meta == baseline.meta
    assert parsed.alerts[0].links == baseline.alerts[0].links
    assert parsed.alerts[0].title == baseline.alerts[0].title
    assert parsed.alerts[0].raw["someFutureField"] == ["x"]  # kept in raw only


def test_alertmanager_fallbacks_without_annotations_or_instance() -> None:
    def strip(p: dict[str, Any]) -> None:
        alert = p["alerts"][0]
        alert["annotations"] = {"message": "legacy message annotation"}
        alert["labels"] = {"alertname": "Watchdog", "priority": "P1"}
        del alert["generatorURL"]

    alert = parse("alertmanager", mutated(ALERTMANAGER, strip)).alerts[0]

    assert alert.title == "Watchdog"
    assert alert.description == "legacy message annotation"
    assert alert.severity == "critical"  # from labels.priority
    assert alert.service == ""
    assert alert.source == "http://alertmanager-main-0:9093"  # externalURL
    assert alert.generator_url == ""
    assert alert.links == []


def test_alertmanager_title_defaults_to_alert() -> None:
    payload = mutated(ALERTMANAGER, lambda p: p["alerts"][0].update(labels={"team": "db"}, annotations={}))
    alert = parse("alertmanager", payload).alerts[0]
    assert alert.title == "Alert"
    assert alert.severity == "warning"


def test_alertmanager_empty_alerts_is_fine() -> None:
    parsed = parse("alertmanager", mutated(ALERTMANAGER, lambda p: p.update(alerts=[])))
    assert parsed.alerts == []
    assert parsed.meta["receiver"] == "opsportal"


def test_alertmanager_version_may_be_absent() -> None:
    parsed = parse("alertmanager", mutated(ALERTMANAGER, lambda p: p.pop("version")))
    assert [a.fingerprint for a in parsed.alerts] == ["4f1c9a2b7e3d5c60", "b2e0d7f15a9c4e31"]


def test_alertmanager_null_annotations_and_group_labels() -> None:
    def nulls(p: dict[str, Any]) -> None:
        p["groupLabels"] = None
        p["alerts"][0]["annotations"] = None

    parsed = parse("alertmanager", mutated(ALERTMANAGER, nulls))
    assert parsed.meta["groupLabels"] == {}
    assert parsed.alerts[0].annotations == {}
    assert parsed.alerts[0].title == "KubePodCrashLooping"


def test_label_scalars_are_coerced_to_str() -> None:
    labels = {"alertname": "Up", "port": 9100, "ratio": 0.5, "canary": True, "empty": None}
    payload = mutated(ALERTMANAGER, lambda p: p["alerts"][0].update(labels=labels))
    alert = parse("alertmanager", payload).alerts[0]
    assert alert.labels == {"alertname": "Up", "port": "9100", "ratio": "0.5", "canary": "true", "empty": ""}


def test_missing_fingerprint_is_computed_from_labels() -> None:
    payload = mutated(ALERTMANAGER, lambda p: p["alerts"][0].update(fingerprint=""))
    alert = parse("alertmanager", payload).alerts[0]

    assert alert.fingerprint == compute_fingerprint(ALERTMANAGER["alerts"][0]["labels"])
    assert re.fullmatch(r"[0-9a-f]{32}", alert.fingerprint)

    reordered = dict(reversed(list(ALERTMANAGER["alerts"][0]["labels"].items())))
    payload2 = mutated(ALERTMANAGER, lambda p: p["alerts"][0].update(fingerprint=None, labels=reordered))
    assert parse("alertmanager", payload2).alerts[0].fingerprint == alert.fingerprint


# --------------------------------------------------------------------------------------------------------------------
# compute_fingerprint / normalise_severity
# --------------------------------------------------------------------------------------------------------------------


def test_compute_fingerprint_is_stable_and_order_independent() -> None:
    a = compute_fingerprint({"alertname": "Up", "instance": "a:9100", "job": "node"})
    b = compute_fingerprint({"job": "node", "instance": "a:9100", "alertname": "Up"})

    assert a == b
    assert len(a) == 32
    assert a == compute_fingerprint({"alertname": "Up", "instance": "a:9100", "job": "node"}, extra="")


@pytest.mark.parametrize(
    "other",
    [
        {"alertname": "Up", "instance": "b:9100", "job": "node"},  # different value
        {"alertname": "Up", "instance": "a:9100"},  # label missing
        {"alertname": "Up", "instance": "a:9100", "job": "node", "x": ""},  # extra empty label
        {"alertname": "Up", "instance": "a:9100job=node"},  # values glued together
    ],
)
def test_compute_fingerprint_differs_for_different_labels(other: dict[str, str]) -> None:
    assert compute_fingerprint(other) != compute_fingerprint({"alertname": "Up", "instance": "a:9100", "job": "node"})


def test_compute_fingerprint_extra_changes_result() -> None:
    labels = {"env": "prod"}
    assert compute_fingerprint(labels, extra="a|b") != compute_fingerprint(labels)
    assert compute_fingerprint(labels, extra="a|b") != compute_fingerprint(labels, extra="a|c")
    assert compute_fingerprint({}, extra="x") == compute_fingerprint({}, extra="x")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[(word, "critical") for word in ("critical", "CRIT", "page", "P1", "sev1", "Fatal", "emergency", "alert")],
        ("high", "critical"),
        *[(word, "error") for word in ("error", "ERR", "major", "p2", "Sev2")],
        *[(word, "warning") for word in ("warning", "warn", "Minor", "p3", "sev3", "medium")],
        *[(word, "info") for word in ("info", "informational", "low", "none", "OK", "p4", "p5", "sev4", "sev5")],
        ("debug", "info"),
        ("  Critical \n", "critical"),
        ("bogus", "warning"),
        ("", "warning"),
        (None, "warning"),
        (1, "warning"),
        (["critical"], "warning"),
    ],
)
def test_normalise_severity(value: object, expected: str) -> None:
    assert normalise_severity(value) == expected


def test_normalise_severity_default() -> None:
    assert normalise_severity("unknown", default="info") == "info"
    assert normalise_severity(None, default="critical") == "critical"
    assert normalise_severity("p2", default="info") == "error"
    with pytest.raises(ValueError, match="default"):
        normalise_severity("x", default="urgent")


# --------------------------------------------------------------------------------------------------------------------
# Grafana
# --------------------------------------------------------------------------------------------------------------------


def test_grafana_firing_alert_maps_every_field() -> None:
    alert = parse("grafana", copy.deepcopy(GRAFANA)).alerts[0]

    assert alert == ParsedAlert(
        fingerprint="c6eadffa33fcdf37",
        status="firing",
        action="trigger",
        severity="warning",
        title="This alert was triggered for zone us-1",
        description="The system has high memory usage",
        service="",
        source="web-02:9100",
        labels=GRAFANA["alerts"][0]["labels"],
        annotations=GRAFANA["alerts"][0]["annotations"],
        starts_at=datetime(2021, 10, 12, 7, 51, 3, 157076, tzinfo=UTC),
        ends_at=None,
        generator_url="https://play.grafana.org/alerting/grafana/1afz29v7z/view?orgId=1",
        links=[
            {"href": "https://play.grafana.org/alerting/grafana/1afz29v7z/view?orgId=1", "text": "Alert rule"},
            {"href": "https://play.grafana.org/d/nEY0wqc7z?orgId=1", "text": "Dashboard"},
            {"href": "https://play.grafana.org/d/nEY0wqc7z?orgId=1&viewPanel=4", "text": "Panel"},
            {
                "href": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matcher=alertname%3DT2",
                "text": "Silence",
            },
        ],
        raw=GRAFANA["alerts"][0],
    )
    assert alert.raw["values"] == {"B": 44.23943737541908, "C": 1}


def test_grafana_resolved_alert_skips_empty_urls() -> None:
    alert = parse("grafana", copy.deepcopy(GRAFANA)).alerts[1]

    assert alert.status == "resolved"
    assert alert.action == "resolve"
    assert alert.title == "High CPU usage"
    assert alert.description == ""
    assert alert.source == "https://play.grafana.org/"  # no instance label -> externalURL
    assert alert.ends_at == datetime(2021, 10, 12, 8, 1, 3, 157076, tzinfo=UTC)
    assert [link["text"] for link in alert.links] == ["Alert rule", "Silence"]


def test_grafana_meta() -> None:
    assert parse("grafana", copy.deepcopy(GRAFANA)).meta == {
        "receiver": "OpsPortal",
        "status": "firing",
        "groupKey": "{}:{}",
        "groupLabels": {},
        "commonLabels": {"team": "blue"},
        "commonAnnotations": {},
        "externalURL": "https://play.grafana.org/",
        "truncatedAlerts": 0,
        "orgId": 1,
        "title": "[FIRING:1, RESOLVED:1]  (blue)",
        "state": "alerting",
        "message": "**Firing**\n\nLabels:\n - alertname = High memory usage\n",
    }


def test_grafana_version_may_be_absent() -> None:
    parsed = parse("grafana", mutated(GRAFANA, lambda p: p.pop("version")))
    assert [a.fingerprint for a in parsed.alerts] == ["c6eadffa33fcdf37", "bc97ff14869b13e3"]


def test_grafana_rejects_alertmanager_version() -> None:
    with pytest.raises(PayloadError) as info:
        parse("grafana", copy.deepcopy(ALERTMANAGER))
    assert info.value.field == "version"
    assert str(info.value) == "version: unsupported version '4'; expected '1'"


# --------------------------------------------------------------------------------------------------------------------
# PagerDuty
# --------------------------------------------------------------------------------------------------------------------


def test_pagerduty_trigger_maps_every_field() -> None:
    parsed = parse("pagerduty", copy.deepcopy(PD_TRIGGER))
    source = "monitoringtool:cloudvendor:central-region-dc-01:852559987:cluster/api-stats-prod-003"

    assert parsed.meta == {"dedup_key": "samplekeyhere", "event_action": "trigger"}
    assert parsed.alerts == [
        ParsedAlert(
            fingerprint="samplekeyhere",
            status="firing",
            action="trigger",
            severity="info",
            title="Example alert on host1.example.com",
            description="",
            service="postgres",
            source=source,
            labels={"source": source, "component": "postgres", "group": "prod-datapipe", "class": "deploy"},
            annotations={"summary": "Example alert on host1.example.com", "ping time": "1500ms", "load avg": "0.75"},
            starts_at=datetime(2015, 7, 17, 8, 42, 58, 315000, tzinfo=UTC),
            ends_at=None,
            generator_url="https://monitoring.example.com",
            links=[
                {"href": "https://example.com/", "text": "Link text"},
                {"href": "https://monitoring.example.com", "text": "Sample Monitoring Service"},
            ],
            raw=PD_TRIGGER,
        )
    ]


def test_pagerduty_minimal_trigger_gets_generated_dedup_key() -> None:
    event = {
        "routing_key": "R0UT1NGKEY",
        "event_action": "trigger",
        "payload": {
            "summary": "DISK at 99% on machine prod-datapipe03.example.com",
            "source": "prod03",
            "severity": "critical",
        },
    }
    first = parse("pagerduty", copy.deepcopy(event))
    second = parse("pagerduty", copy.deepcopy(event))
    alert = first.alerts[0]

    assert re.fullmatch(r"[0-9a-f]{32}", alert.fingerprint)
    assert first.meta == {"dedup_key": alert.fingerprint, "event_action": "trigger"}
    assert second.alerts[0].fingerprint != alert.fingerprint
    assert alert.labels == {"source": "prod03"}
    assert alert.service == "prod03"  # no component -> source
    assert alert.severity == "critical"
    assert alert.starts_at is None
    assert alert.links == []
    assert alert.generator_url == ""


def test_pagerduty_blank_dedup_key_on_trigger_is_generated() -> None:
    parsed = parse("pagerduty", mutated(PD_TRIGGER, lambda p: p.update(dedup_key="")))
    assert re.fullmatch(r"[0-9a-f]{32}", parsed.meta["dedup_key"])


@pytest.mark.parametrize(("event", "status"), [(PD_ACKNOWLEDGE, "firing"), (PD_RESOLVE, "resolved")])
def test_pagerduty_acknowledge_and_resolve(event: dict[str, Any], status: str) -> None:
    parsed = parse("pagerduty", copy.deepcopy(event))
    alert = parsed.alerts[0]

    assert parsed.meta == {"dedup_key": "samplekeyhere", "event_action": event["event_action"]}
    assert len(parsed.alerts) == 1
    assert alert.fingerprint == "samplekeyhere"
    assert alert.status == status
    assert alert.action == event["event_action"]
    assert alert.labels == {}
    assert alert.annotations == {}
    assert alert.title == "samplekeyhere"
    assert alert.severity in SEVERITIES
    assert alert.ends_at is None
    assert alert.raw == event


def test_pagerduty_resolve_ignores_payload_problems() -> None:
    event = {**PD_RESOLVE, "payload": {"summary": "Recovered", "severity": "bogus", "timestamp": "whenever"}}
    alert = parse("pagerduty", event).alerts[0]
    assert alert.title == "Recovered"
    assert alert.severity == "warning"
    assert alert.starts_at is None


@pytest.mark.parametrize(
    ("custom_details", "expected"),
    [
        ({"nested": {"a": [1, 2]}, "n": 3, "s": "x"}, {"nested": '{"a": [1, 2]}', "n": "3", "s": "x"}),
        ([1, "two"], {"custom_details": '[1, "two"]'}),
        (42, {"custom_details": "42"}),
        ("free text", {"custom_details": "free text"}),
        (None, {}),
    ],
)
def test_pagerduty_custom_details_flattened(custom_details: object, expected: dict[str, str]) -> None:
    event = mutated(PD_TRIGGER, lambda p: p["payload"].update(custom_details=custom_details))
    annotations = parse("pagerduty", event).alerts[0].annotations
    assert annotations == {"summary": "Example alert on host1.example.com", **expected}


def test_pagerduty_long_summary_truncated_in_title_kept_in_description() -> None:
    summary = "x" * 1024
    alert = parse("pagerduty", mutated(PD_TRIGGER, lambda p: p["payload"].update(summary=summary))).alerts[0]
    assert len(alert.title) == 300
    assert alert.title.endswith("\u2026")
    assert alert.description == summary
    assert alert.annotations["summary"] == summary


# --------------------------------------------------------------------------------------------------------------------
# Generic
# --------------------------------------------------------------------------------------------------------------------


def test_generic_single_alert_maps_every_field() -> None:
    parsed = parse("generic", copy.deepcopy(GENERIC_SINGLE))

    assert parsed.meta == {}
    assert parsed.alerts == [
        ParsedAlert(
            fingerprint="db-1-disk-pg",
            status="firing",
            action="trigger",
            severity="critical",
            title="Disk almost full on db-1",
            description="/var/lib/postgresql is 97% full.",
            service="postgres",
            source="db-1.example.com",
            labels={"env": "prod", "mount": "/var/lib/postgresql", "shard": "3"},
            annotations={"runbook": "https://wiki.example.com/disk", "threshold": "95"},
            starts_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
            ends_at=None,
            generator_url="",
            links=[
                {"href": "https://grafana.example.com/d/disk", "text": "https://grafana.example.com/d/disk"},
                {"href": "https://wiki.example.com/disk", "text": "Runbook"},
            ],
            raw=GENERIC_SINGLE,
        )
    ]


def test_generic_list_of_alerts_with_defaults() -> None:
    body = {
        "alerts": [
            {"title": "Queue backlog", "labels": {"job": "worker"}, "source": "rabbitmq-1"},
            {
                "title": "Backup job finished late",
                "status": "resolved",
                "occurred_at": "2024-05-01T03:00:00+02:00",
                "resolved_at": "2024-05-01T03:40:00",
                "annotations": {"description": "from annotations", "nested": {"k": ["v"]}},
                "unknownKey": 1,
            },
        ],
        "sender": "cron",
    }
    first, second = parse("generic", body).alerts

    assert first.severity == "warning"
    assert first.status == "firing"
    assert first.action == "trigger"
    assert first.service == "worker"  # no service -> labels.job
    assert first.fingerprint == compute_fingerprint({"job": "worker"}, extra="Queue backlog|rabbitmq-1")
    assert first.raw is body["alerts"][0]

    assert second.status == "resolved"
    assert second.action == "resolve"
    assert second.starts_at == datetime(2024, 5, 1, 1, 0, tzinfo=UTC)
    assert second.ends_at == datetime(2024, 5, 1, 3, 40, tzinfo=UTC)  # no offset -> UTC
    assert second.description == "from annotations"
    assert second.annotations["nested"] == '{"k": ["v"]}'
    assert second.service == ""
    assert second.source == ""
    assert second.fingerprint == compute_fingerprint({}, extra="Backup job finished late|")


def test_generic_service_falls_back_to_source() -> None:
    alert = parse("generic", {"title": "Ping failed", "source": "router-7"}).alerts[0]
    assert alert.service == "router-7"


def test_generic_fingerprint_is_stable_and_distinguishes_alerts() -> None:
    def fp(body: dict[str, Any]) -> str:
        return parse("generic", body).alerts[0].fingerprint

    base = {"title": "Ping failed", "source": "router-7", "labels": {"site": "ams", "rack": "4"}}
    same = {"labels": {"rack": "4", "site": "ams"}, "source": "router-7", "title": "Ping failed", "severity": "p1"}

    assert fp(base) == fp(same)
    assert fp(base) != fp({**base, "source": "router-8"})
    assert fp(base) != fp({**base, "title": "Ping restored"})
    assert fp(base) != fp({**base, "labels": {"site": "ams", "rack": "5"}})


def test_generic_resolved_at_ignored_while_firing() -> None:
    alert = parse("generic", {"title": "t", "resolved_at": "2024-05-01T03:40:00Z"}).alerts[0]
    assert alert.ends_at is None


def test_generic_schema_doc_example_parses() -> None:
    match = re.search(r"```json\n(.*?)```", GENERIC_SCHEMA_DOC, re.DOTALL)
    assert match is not None
    parsed = parse("generic", json.loads(match.group(1)))

    assert [a.title for a in parsed.alerts] == ["Disk almost full on db-1", "Backup job finished late"]
    assert [a.severity for a in parsed.alerts] == ["critical", "warning"]
    assert [a.status for a in parsed.alerts] == ["firing", "resolved"]
    for field in ("title", "severity", "status", "source", "service", "labels", "fingerprint", "occurred_at", "links"):
        assert f"`{field}`" in GENERIC_SCHEMA_DOC


# --------------------------------------------------------------------------------------------------------------------
# Timestamps and titles
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01T00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T00:00:00.123456789Z", datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2024-01-01T00:00:00.1234567+01:00", datetime(2023, 12, 31, 23, 0, 0, 123456, tzinfo=UTC)),
        ("2024-01-01T00:00:00.5z", datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        ("2015-07-17T08:42:58.315+0000", datetime(2015, 7, 17, 8, 42, 58, 315000, tzinfo=UTC)),
        ("2024-06-30T23:30:00-05:00", datetime(2024, 7, 1, 4, 30, tzinfo=UTC)),
        ("2024-01-01 12:00:00", datetime(2024, 1, 1, 12, 0, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),
    ],
)
def test_timestamps(text: str, expected: datetime | None) -> None:
    alert = parse("generic", {"title": "t", "occurred_at": text}).alerts[0]
    assert alert.starts_at == expected
    if expected is not None:
        assert alert.starts_at is not None and alert.starts_at.utcoffset().total_seconds() == 0


def test_long_title_is_truncated_to_300() -> None:
    title = "word " * 100
    alert = parse("generic", {"title": title}).alerts[0]
    assert len(alert.title) == 300
    assert alert.title.endswith("\u2026")
    assert alert.title.startswith("word word")


def test_title_whitespace_is_collapsed() -> None:
    alert = parse("generic", {"title": "  Disk\n  full  "}).alerts[0]
    assert alert.title == "Disk full"


# --------------------------------------------------------------------------------------------------------------------
# Validation errors name their field
# --------------------------------------------------------------------------------------------------------------------


def _am(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    return mutated(ALERTMANAGER, change)


def _pd(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    return mutated(PD_TRIGGER, change)


ERROR_CASES: list[tuple[str, object, str]] = [
    # Alertmanager
    ("alertmanager", [ALERTMANAGER], "(body): must be a JSON object"),
    ("alertmanager", "not json", "(body): must be a JSON object"),
    ("alertmanager", _am(lambda p: p.update(version="3")), "version: unsupported version '3'; expected '4'"),
    ("alertmanager", _am(lambda p: p.pop("alerts")), "alerts: required"),
    ("alertmanager", _am(lambda p: p.update(alerts={"0": {}})), "alerts: must be a list"),
    ("alertmanager", _am(lambda p: p["alerts"].append("x")), "alerts[2]: must be a JSON object"),
    ("alertmanager", _am(lambda p: p["alerts"][1].pop("labels")), "alerts[1].labels: required"),
    ("alertmanager", _am(lambda p: p["alerts"][0].update(labels=["a"])), "alerts[0].labels: must be an object"),
    (
        "alertmanager",
        _am(lambda p: p["alerts"][0].update(labels={})),
        "alerts[0].labels: must contain at least one label",
    ),
    (
        "alertmanager",
        _am(lambda p: p["alerts"][0]["labels"].update(foo={"a": 1})),
        "alerts[0].labels.foo: must be a string",
    ),
    ("alertmanager", _am(lambda p: p["alerts"][0]["labels"].update(foo=[1])), "alerts[0].labels.foo: must be a string"),
    ("alertmanager", _am(lambda p: p["alerts"][0].update(annotations="x")), "alerts[0].annotations: must be an object"),
    ("alertmanager", _am(lambda p: p["alerts"][1].pop("status")), "alerts[1].status: required"),
    (
        "alertmanager",
        _am(lambda p: p["alerts"][1].update(status="pending")),
        "alerts[1].status: must be one of firing, resolved",
    ),
    ("alertmanager", _am(lambda p: p["alerts"][0].pop("startsAt")), "alerts[0].startsAt: required"),
    (
        "alertmanager",
        _am(lambda p: p["alerts"][1].update(startsAt="yesterday")),
        "alerts[1].startsAt: not a valid timestamp: 'yesterday'",
    ),
    (
        "alertmanager",
        _am(lambda p: p["alerts"][0].update(startsAt=1710408413)),
        "alerts[0].startsAt: not a valid timestamp: 1710408413",
    ),
    (
        "alertmanager",
        _am(lambda p: p["alerts"][1].update(endsAt="2024-13-01T00:00:00Z")),
        "alerts[1].endsAt: not a valid timestamp: '2024-13-01T00:00:00Z'",
    ),
    ("alertmanager", _am(lambda p: p["alerts"][0].update(generatorURL=5)), "alerts[0].generatorURL: must be a string"),
    ("alertmanager", _am(lambda p: p["alerts"][0].update(fingerprint=5)), "alerts[0].fingerprint: must be a string"),
    ("alertmanager", _am(lambda p: p.update(externalURL=["x"])), "externalURL: must be a string"),
    ("alertmanager", _am(lambda p: p.update(commonLabels="x")), "commonLabels: must be an object"),
    ("alertmanager", _am(lambda p: p.update(truncatedAlerts="2")), "truncatedAlerts: must be an integer"),
    # Grafana
    ("grafana", mutated(GRAFANA, lambda p: p.update(version="2")), "version: unsupported version '2'; expected '1'"),
    (
        "grafana",
        mutated(GRAFANA, lambda p: p["alerts"][0].update(dashboardURL=1)),
        "alerts[0].dashboardURL: must be a string",
    ),
    (
        "grafana",
        mutated(GRAFANA, lambda p: p["alerts"][1].update(startsAt="12/10/2021")),
        "alerts[1].startsAt: not a valid timestamp: '12/10/2021'",
    ),
    # PagerDuty
    ("pagerduty", None, "(body): must be a JSON object"),
    ("pagerduty", _pd(lambda p: p.pop("event_action")), "event_action: required"),
    (
        "pagerduty",
        _pd(lambda p: p.update(event_action="snooze")),
        "event_action: must be one of trigger, acknowledge, resolve",
    ),
    ("pagerduty", _pd(lambda p: p.pop("payload")), "payload: required"),
    ("pagerduty", _pd(lambda p: p.update(payload="boom")), "payload: must be a JSON object"),
    ("pagerduty", _pd(lambda p: p["payload"].pop("summary")), "payload.summary: required"),
    ("pagerduty", _pd(lambda p: p["payload"].update(summary="  ")), "payload.summary: required"),
    ("pagerduty", _pd(lambda p: p["payload"].update(summary=7)), "payload.summary: must be a string"),
    (
        "pagerduty",
        _pd(lambda p: p["payload"].update(summary="x" * 1025)),
        "payload.summary: must be at most 1024 characters",
    ),
    ("pagerduty", _pd(lambda p: p["payload"].pop("source")), "payload.source: required"),
    ("pagerduty", _pd(lambda p: p["payload"].pop("severity")), "payload.severity: required"),
    (
        "pagerduty",
        _pd(lambda p: p["payload"].update(severity="high")),
        "payload.severity: must be one of critical, error, warning, info",
    ),
    (
        "pagerduty",
        _pd(lambda p: p["payload"].update(severity="Critical")),
        "payload.severity: must be one of critical, error, warning, info",
    ),
    (
        "pagerduty",
        _pd(lambda p: p["payload"].update(timestamp="last tuesday")),
        "payload.timestamp: not a valid timestamp: 'last tuesday'",
    ),
    ("pagerduty", _pd(lambda p: p["payload"].update(component=["db"])), "payload.component: must be a string"),
    ("pagerduty", _pd(lambda p: p.update(routing_key=123)), "routing_key: must be a string"),
    ("pagerduty", _pd(lambda p: p.update(dedup_key=123)), "dedup_key: must be a string"),
    ("pagerduty", _pd(lambda p: p.update(links="https://x")), "links: must be a list"),
    ("pagerduty", _pd(lambda p: p.update(links=[{"text": "no href"}])), "links[0].href: required"),
    ("pagerduty", _pd(lambda p: p.update(client_url=1)), "client_url: must be a string"),
    ("pagerduty", mutated(PD_ACKNOWLEDGE, lambda p: p.pop("dedup_key")), "dedup_key: required"),
    ("pagerduty", mutated(PD_RESOLVE, lambda p: p.update(dedup_key="")), "dedup_key: required"),
    # Generic
    ("generic", ["not", "an", "object"], "(body): must be a JSON object"),
    ("generic", {"severity": "critical"}, "title: required"),
    ("generic", {"title": ""}, "title: required"),
    ("generic", {"title": 5}, "title: must be a string"),
    (
        "generic",
        {"title": "t", "severity": "urgent"},
        "severity: unknown severity 'urgent'; expected one of critical, error, warning, info (or a common synonym)",
    ),
    (
        "generic",
        {"title": "t", "severity": 1},
        "severity: unknown severity 1; expected one of critical, error, warning, info (or a common synonym)",
    ),
    ("generic", {"title": "t", "status": "open"}, "status: must be one of firing, resolved"),
    ("generic", {"title": "t", "source": 1}, "source: must be a string"),
    ("generic", {"title": "t", "service": False}, "service: must be a string"),
    ("generic", {"title": "t", "description": {}}, "description: must be a string"),
    ("generic", {"title": "t", "fingerprint": 9}, "fingerprint: must be a string"),
    ("generic", {"title": "t", "labels": "env=prod"}, "labels: must be an object"),
    ("generic", {"title": "t", "labels": {"env": {"a": 1}}}, "labels.env: must be a string"),
    ("generic", {"title": "t", "annotations": []}, "annotations: must be an object"),
    ("generic", {"title": "t", "occurred_at": "yesterday"}, "occurred_at: not a valid timestamp: 'yesterday'"),
    ("generic", {"title": "t", "resolved_at": 0}, "resolved_at: not a valid timestamp: 0"),
    ("generic", {"title": "t", "links": {"href": "x"}}, "links: must be a list"),
    ("generic", {"title": "t", "links": [3]}, "links[0]: must be a string or an object with href"),
    ("generic", {"title": "t", "links": ["https://a", {"href": ""}]}, "links[1].href: required"),
    ("generic", {"title": "t", "links": [""]}, "links[0]: must not be empty"),
    ("generic", {"alerts": {"title": "t"}}, "alerts: must be a list"),
    ("generic", {"alerts": [{"title": "ok"}, "x"]}, "alerts[1]: must be a JSON object"),
    ("generic", {"alerts": [{"title": "ok"}, {"title": "t", "severity": "p9"}]}, "alerts[1].severity: unknown"),
    ("generic", {"alerts": [{"title": "ok"}, {"title": ""}]}, "alerts[1].title: required"),
    ("generic", {"alerts": [{"title": "t", "labels": {"a": [1]}}]}, "alerts[0].labels.a: must be a string"),
    (
        "generic",
        {"alerts": [{"title": "t", "occurred_at": "2024-02-30T00:00:00Z"}]},
        "alerts[0].occurred_at: not a valid timestamp: '2024-02-30T00:00:00Z'",
    ),
    ("generic", {"alerts": [{"title": "t", "links": [{"text": "x"}]}]}, "alerts[0].links[0].href: required"),
]


@pytest.mark.parametrize(
    ("kind", "payload", "expected"),
    ERROR_CASES,
    ids=[f"{kind}-{i}-{expected.split(':')[0]}" for i, (kind, _, expected) in enumerate(ERROR_CASES)],
)
def test_validation_errors_name_their_field(kind: str, payload: object, expected: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse(kind, copy.deepcopy(payload))

    expected_field = expected.split(": ", 1)[0]
    assert info.value.field == expected_field
    assert str(info.value).startswith(expected)
    assert str(info.value) == f"{info.value.field}: {info.value.message}"


def test_unknown_kind() -> None:
    with pytest.raises(PayloadError) as info:
        parse("nagios", {})
    assert info.value.field == "kind"
    assert str(info.value) == "kind: unknown kind 'nagios'; expected one of alertmanager, grafana, pagerduty, generic"


def test_payload_error_is_value_error_and_picklable() -> None:
    error = PayloadError("alerts[3].labels", "required")

    assert isinstance(error, ValueError)
    assert (error.field, error.message, str(error)) == ("alerts[3].labels", "required", "alerts[3].labels: required")
    copied = pickle.loads(pickle.dumps(error))
    assert (copied.field, copied.message, str(copied)) == (error.field, error.message, str(error))


def test_parse_does_not_modify_payload() -> None:
    payload = copy.deepcopy(ALERTMANAGER)
    parse("alertmanager", payload)
    assert payload == ALERTMANAGER
