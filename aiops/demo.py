"""Demo data for `manage.py seed_demo`: integrations, three weeks of history, and a live present.

The history (resolved incidents with their alerts and timelines) is written as
rows with past timestamps, since it never happened; the present goes through
the real services: deliveries are ingested and correlated, one incident is
acknowledged and commented on, a silence is set.
"""

from __future__ import annotations

import datetime
import random
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from opsportal.accounts.services import create_api_token
from opsportal.encryption import encrypt

from . import services
from .anomaly_demo import seed_anomalies
from .correlation_demo import seed_learned_grouping
from .forecast_demo import seed_forecasts
from .log_demo import seed_logs
from .models import Alert, Check, CheckHourlyStat, Incident, IncidentEvent, Integration, Ping, ScrapeTarget
from .parsers import parse
from .runbook_demo import seed_runbooks
from .services import status_pages

DEMO_STATUS_PAGE = "demo"
SERVICES = ["checkout", "payments", "search", "auth", "inventory", "notifications"]
ALERTS = [
    ("HighErrorRate", "critical", "5xx rate above 5% for 5 minutes"),
    ("HighLatencyP99", "warning", "p99 latency above 800 ms"),
    ("PodCrashLooping", "error", "a pod restarted more than 3 times in 10 minutes"),
    ("DiskAlmostFull", "warning", "disk usage above 90%"),
    ("CertificateExpiring", "info", "TLS certificate expires in less than 14 days"),
    ("QueueBacklog", "error", "consumer lag above 10,000 messages"),
]


@transaction.atomic
def seed(*, actor: User | None, days: int = 21) -> bool:
    """Create the demo AIOps data once; returns False when it is already there."""
    checks_created = _checks(actor, days) | _metrics(actor) | seed_forecasts(actor=actor) | seed_anomalies(actor=actor)
    checks_created |= seed_logs(actor=actor)
    if Integration.objects.filter(name="Prometheus (demo)").exists():
        return checks_created
    prometheus, _ = services.create_integration(name="Prometheus (demo)", kind="alertmanager", actor=actor)
    services.create_integration(name="Grafana (demo)", kind="grafana", actor=actor)
    services.create_integration(name="PagerDuty (demo)", kind="pagerduty", actor=actor)
    services.create_integration(name="Scripts (demo)", kind="generic", actor=actor)
    _history(prometheus, days)
    _present(prometheus, actor)
    seed_learned_grouping(actor=actor, integration=prometheus)
    seed_runbooks(actor=actor)
    return True


def _history(integration: Integration, days: int) -> None:
    rng = random.Random(2024)
    now = timezone.now()
    users = list(User.objects.filter(is_active=True).order_by("username")[:4])
    for day in range(days, 0, -1):
        for _ in range(rng.randint(2, 6)):
            name, severity, description = rng.choice(ALERTS)
            service = rng.choice(SERVICES[: 3 + day % 3])
            opened = now - datetime.timedelta(days=day, minutes=rng.randint(0, 1400))
            ack_after = datetime.timedelta(minutes=rng.lognormvariate(1.6 if severity == "critical" else 2.4, 0.6))
            resolve_after = ack_after + datetime.timedelta(minutes=rng.lognormvariate(3.3, 0.7))
            incident = Incident.objects.create(
                title=f"{name} on {service}",
                summary=description,
                status=Incident.Status.RESOLVED,
                severity=severity,
                service=service,
                group_key=f"demo-{day}-{rng.random()}",
                group_labels={"alertname": name, "service": service},
                assignee=rng.choice(users) if users else None,
                created_at=opened,
                acknowledged_at=opened + ack_after,
                resolved_at=opened + resolve_after,
                last_alert_at=opened,
            )
            count = rng.randint(1, 4)
            alerts = [
                Alert(
                    integration=integration,
                    fingerprint=f"demo{incident.pk:06d}{i}",
                    status=Alert.Status.RESOLVED,
                    severity=severity,
                    title=name,
                    description=description,
                    service=service,
                    labels={
                        "alertname": name,
                        "service": service,
                        "instance": f"{service}-{i}:9100",
                        "severity": severity,
                    },
                    annotations={"summary": f"{name} on {service}", "description": description},
                    starts_at=opened,
                    ends_at=opened + resolve_after,
                    first_seen_at=opened,
                    last_seen_at=opened + resolve_after,
                    times_seen=rng.randint(1, 30),
                    generator_url=f"http://prometheus.demo:9090/graph?g0.expr={name}",
                    raw={"labels": {"alertname": name, "service": service}},
                    incident=incident,
                    pending=False,
                    pending_change="",
                )
                for i in range(count)
            ]
            Alert.objects.bulk_create(alerts)
            incident.alert_count = count
            incident.save(update_fields=["alert_count"])
            IncidentEvent.objects.bulk_create(
                [IncidentEvent(incident=incident, at=opened, kind="opened", message="Opened by default grouping.")]
                + [
                    IncidentEvent(incident=incident, at=opened, kind="alert_firing", message=f"{name} firing")
                    for _ in alerts
                ]
                + [
                    IncidentEvent(
                        incident=incident,
                        at=opened + ack_after,
                        kind="status",
                        message="Acknowledged.",
                        actor_name=incident.assignee.username if incident.assignee else "system",
                    ),
                    IncidentEvent(
                        incident=incident,
                        at=opened + resolve_after,
                        kind="status",
                        message="Resolved: all its alerts resolved.",
                    ),
                ]
            )


def _present(integration: Integration, actor: User | None) -> None:
    """A few live alerts through the real ingest and correlation path."""
    now = timezone.now()
    starts = (now - datetime.timedelta(minutes=12)).isoformat().replace("+00:00", "Z")

    def alert(name: str, service: str, severity: str, instance: str) -> dict:
        return {
            "status": "firing",
            "labels": {"alertname": name, "service": service, "severity": severity, "instance": instance},
            "annotations": {"summary": f"{name} on {service}", "description": dict((a, d) for a, _, d in ALERTS)[name]},
            "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": f"http://prometheus.demo:9090/graph?g0.expr={name}",
        }

    deliveries = [
        [
            alert("HighErrorRate", "checkout", "critical", "checkout-1:8080"),
            alert("HighErrorRate", "checkout", "critical", "checkout-2:8080"),
        ],
        [alert("HighLatencyP99", "search", "warning", "search-1:8080")],
        [alert("QueueBacklog", "notifications", "error", "worker-3:9100")],
        [alert("DiskAlmostFull", "inventory", "warning", "db-2:9100")],
    ]
    for number, alerts in enumerate(deliveries):
        payload = {"version": "4", "status": "firing", "alerts": alerts, "groupKey": f"demo-live-{number}"}
        services.ingest_delivery(
            integration=integration,
            payload=parse("alertmanager", payload),
            digest=f"demo-live-{number}",
            remote_addr=None,
        )
    services.process_pending_alerts()
    search = Incident.objects.filter(service="search").open().first()
    if search is not None:
        services.acknowledge_incident(incident=search, actor=actor)
        services.comment_on_incident(
            incident=search, body="Latency follows the 14:00 index rebuild; watching.", actor=actor
        )
    services.create_silence(
        matchers=[{"label": "service", "op": "=", "value": "batch-reports"}],
        ends_at=now + datetime.timedelta(days=2),
        comment="Nightly batch jobs are being migrated (demo silence).",
        actor=actor,
    )


def _checks(actor: User | None, days: int) -> bool:
    """Uptime checks of the portal itself: its /healthz (HTTP), its port and the demo model's (TCP), and a
    nightly-job heartbeat; with `days` of hourly history (one short outage) so uptime shows at once; and a
    published status page of them at /status/demo/.

    The targets are loopback addresses, which checks reach only when allowed: `make run` allows 127.0.0.1
    (OPSPORTAL_OUTBOUND_ALLOWLIST), elsewhere these checks say the allow-list refused them.
    """
    if Check.objects.filter(name="Portal health (demo)").exists():
        return False
    base = urlsplit(settings.OPSPORTAL_BASE_URL)
    host, port = base.hostname or "127.0.0.1", base.port or (443 if base.scheme == "https" else 80)
    model_host, _, model_port = settings.OPSPORTAL_DEMO_LLM_BIND.rpartition(":")
    health = services.create_check(
        actor=actor, name="Portal health (demo)", kind="http", service="opsportal", severity="critical",
        config={"url": f"{settings.OPSPORTAL_BASE_URL}/healthz", "json_path": "$.status", "json_expected": "ok",
                "max_latency_ms": 2000},
        interval_seconds=30, retries=1, labels={"env": "demo"},
    )  # fmt: skip
    web_port = services.create_check(
        actor=actor, name="Portal port (demo)", kind="tcp", service="opsportal",
        config={"host": host, "port": port}, interval_seconds=60, labels={"env": "demo"},
    )  # fmt: skip
    model_port_check = services.create_check(
        actor=actor, name="Demo model port (demo)", kind="tcp", service="llm-gateway", severity="warning",
        config={"host": model_host, "port": int(model_port)}, interval_seconds=60, labels={"env": "demo"},
    )  # fmt: skip
    backup = services.create_check(
        actor=actor, name="Nightly backup (demo)", kind="heartbeat", service="backups", cron="0 3 * * *",
        tz="UTC", grace_seconds=3600, labels={"env": "demo"},
        description="Pinged by the backup job: curl -fsS -m 10 --retry 3 <ping URL> after it succeeds.",
    )  # fmt: skip
    now = timezone.now()
    rng = random.Random(11)
    hour = now.replace(minute=0, second=0, microsecond=0)
    outage = hour - datetime.timedelta(days=4, hours=5)
    stats = []
    for check, per_hour in ((health, 120), (web_port, 60), (model_port_check, 60)):
        for n in range(1, days * 24):
            at = hour - datetime.timedelta(hours=n)
            down = per_hour // 3 if check is health and at == outage else 0
            latency = per_hour * (rng.uniform(2, 6) if check.kind == "http" else rng.uniform(0.2, 0.8))
            stats.append(
                CheckHourlyStat(check_obj=check, hour=at, total=per_hour, up=per_hour - down,
                                latency_sum_ms=latency, latency_count=per_hour)
            )  # fmt: skip
    CheckHourlyStat.objects.bulk_create(stats)
    health.outages.create(
        started_at=outage + datetime.timedelta(minutes=10), ended_at=outage + datetime.timedelta(minutes=30),
        error="HTTP 502 Bad Gateway; expected 200-299",
    )  # fmt: skip
    # The backup job pinged every night at about 03:05 (start at 03:00); the last one makes the heartbeat up.
    last = None
    for n in range(days, 0, -1):
        night = (now - datetime.timedelta(days=n)).replace(hour=3, minute=0, second=0, microsecond=0)
        if night > now:
            continue
        Ping.objects.create(check_obj=backup, at=night, kind=Ping.Kind.START, method="GET", user_agent="curl/8.5.0")
        last = night + datetime.timedelta(minutes=rng.randint(3, 9))
        Ping.objects.create(
            check_obj=backup, at=last, kind=Ping.Kind.SUCCESS, method="POST", user_agent="curl/8.5.0",
            body="backup done: 1.2 GB in 312 s", duration_ms=(last - night).total_seconds() * 1000,
        )  # fmt: skip
    if last is not None:
        services.record_ping(ping_uuid=str(backup.ping_uuid), kind=Ping.Kind.SUCCESS, method="GET",
                             user_agent="seed_demo", body=b"seeded")  # fmt: skip
    # A published status page of the portal's checks, public at /status/demo/ (no login), as customers see it.
    status_pages.save_status_page(
        actor=actor, name="OpsPortal status (demo)", slug=DEMO_STATUS_PAGE, published=True,
        description="Live state of the demo portal, its demo model and its nightly backup.",
        check_ids=[health.pk, web_port.pk, model_port_check.pk, backup.pk],
    )  # fmt: skip
    return True


DEMO_SCRAPE_TARGET = "opsportal-demo"


def _metrics(actor: User | None) -> bool:
    """A scrape of the portal's own /metrics every 15 s, with an API token of `actor` (an operator), and a
    threshold rule on its `up`, so the metric explorer has live series at once.

    The target is a loopback address, which collection reaches only when allowed: `make run` allows
    127.0.0.1 (OPSPORTAL_OUTBOUND_ALLOWLIST) for the portal it starts, so the row is written directly
    here (seed_demo runs before that) and each scrape is vetted as usual; elsewhere the target's last
    error says the allow-list refused it.
    """
    if actor is None or ScrapeTarget.objects.filter(name=DEMO_SCRAPE_TARGET).exists():
        return False
    _token, raw = create_api_token(user=actor, name="Metrics scrape (demo)", actor=actor)
    ScrapeTarget.objects.create(
        name=DEMO_SCRAPE_TARGET, url=f"{settings.OPSPORTAL_BASE_URL}/metrics", interval_seconds=15,
        timeout_seconds=5, auth=ScrapeTarget.Auth.BEARER, secret_encrypted=encrypt(raw), labels={"env": "demo"},
    )  # fmt: skip
    services.save_threshold_rule(
        actor=actor, name="Portal scrape failing (demo)", selector=f'up{{job="{DEMO_SCRAPE_TARGET}"}}',
        comparison="below", value=1, for_seconds=60, severity="warning", service="opsportal",
        description="The portal's own /metrics did not answer its scrape for a minute.",
    )  # fmt: skip
    return True
