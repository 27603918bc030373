"""A demo learned grouping for `manage.py seed_demo` (aiops.demo calls `seed_learned_grouping`).

A learned correlation rule for the payments team, a memory of three weeks in which the payments
database going down took its API (two replicas) and its worker with it, and a present in which that
happens again: the database, API and worker alerts, different names on different services, arrive
through the real ingest and correlation path and are grouped into one incident whose timeline says
why ("fired within 30 s of DBConnectionsExhausted on payments-db 9 of the last 9 times"). The
history is written to the learner's memory directly (it never happened), through its own counting.
"""

from __future__ import annotations

import datetime

from django.contrib.auth.models import User
from django.utils import timezone

from . import services
from .correlation_learning import memory
from .correlation_learning.scoring import signature
from .models import CorrelationRule, Incident, Integration
from .parsers import parse

DEMO_RULE = "Learned: payments (demo)"
TEAM = "payments"
# The failure the memory has seen: (alertname, service, seconds after the first alert, replicas).
CASCADE = [
    ("DBConnectionsExhausted", "payments-db", 0, 1),
    ("HTTP5xxRate", "payments-api", 30, 2),
    ("QueueBacklog", "payments-worker", 90, 1),
]
EPISODES = 9


def seed_learned_grouping(*, actor: User | None, integration: Integration) -> bool:
    """Create the demo rule, its memory and its present incident once (False when the rule is there)."""
    if CorrelationRule.objects.filter(name=DEMO_RULE).exists():
        return False
    services.save_rule(
        actor=actor, name=DEMO_RULE, kind=CorrelationRule.Kind.LEARNED, position=10,
        matchers=[{"label": "team", "op": "=", "value": TEAM}],
    )  # fmt: skip
    _memory(timezone.now())
    _present(integration)
    return True


def _signature(name: str, service: str) -> str:
    return signature({"alertname": name, "service": service}, name, service)


def _memory(now: datetime.datetime) -> None:
    """Every two days for EPISODES episodes, the cascade as the learner counts it when it happens."""
    for episode in range(EPISODES, 0, -1):
        start = now - datetime.timedelta(days=2 * episode, hours=3)
        firings = [
            (_signature(name, service), start.timestamp() + offset)
            for name, service, offset, replicas in CASCADE
            for _ in range(replicas)
        ]
        memory.record_firings(firings, [], start + datetime.timedelta(minutes=5))


def _present(integration: Integration) -> None:
    now = timezone.now()
    alerts = []
    for name, service, _offset, replicas in CASCADE:
        for replica in range(replicas):
            labels = {"alertname": name, "service": service, "team": TEAM, "severity": "critical",
                      "instance": f"{service}-{replica}:9100", "namespace": "payments"}  # fmt: skip
            alerts.append({
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"{name} on {service}"},
                "startsAt": (now - datetime.timedelta(minutes=4)).isoformat().replace("+00:00", "Z"),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": f"http://prometheus.demo:9090/graph?g0.expr={name}",
            })  # fmt: skip
    # The database's alert first, then its API's and worker's in a later delivery, as Alertmanager groups them.
    for number, batch in enumerate((alerts[:1], alerts[1:])):
        payload = {"version": "4", "status": "firing", "alerts": batch, "groupKey": f"demo-learned-{number}"}
        services.ingest_delivery(
            integration=integration, payload=parse("alertmanager", payload), digest=f"demo-learned-{number}"
        )
        services.process_pending_alerts()
        services.learn_cofirings()


def demo_incident() -> Incident | None:
    """The incident the demo's learned rule grouped the cascade into."""
    return Incident.objects.filter(rule__name=DEMO_RULE).order_by("-alert_count").first()
