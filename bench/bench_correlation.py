"""Learned alert correlation against generated failures whose true grouping is known.

The world: 12 applications (each a database, an API and a worker, in one of three clusters)
and shared components (a Kafka, a cache, the web frontend, the edge load balancer). Failure
patterns cascade across services with different alert names: a database goes down, 20-60 s
later its API errs (on 1-3 replicas), then its worker backs up and the frontend slows; a broker
failure lags the workers of several applications; some patterns are just two alerts that always
come together. Unrelated noise fires at the same time: pods restarting on the very services
of a cascade (same service and namespace labels), disks filling, certificates expiring.

Two weeks of history (half as many alerts as the test) are replayed first (what the learner
learns from), then a week of test stream with 10,000 alerts, in one-hour slices: the slice's
alerts fire and are correlated by `process_pending_alerts` on the database (the real service
path), the worker learns what fired together (`learn_cofirings`, timed apart), then the ones that
ended resolve. A failure kind does not start again while its previous
occurrence is still going on (its alerts would be the very same alerts, still firing). Reported:
pairwise precision, recall and F1 of the incidents against the true failures, for the learned
rule with its default settings and for the default label rule on the same stream; the seconds
spent correlating the slices, and the seconds to drain all 10,000 alerts pending at once.
The world and streams follow from BENCH_CORRELATION_SEED (default 12); the generator shares no
code with the learner.
"""

from __future__ import annotations

import datetime
import itertools
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from unittest import mock

from django.utils import timezone

from aiops import services
from aiops.models import Alert, AlertPairStats, CorrelationRule, Incident, IncidentEvent, Integration, MergeSuggestion
from opsportal.accounts import services as accounts
from opsportal.accounts.roles import Role

TEST_ALERTS = int(os.environ.get("BENCH_CORRELATION_ALERTS", "10000"))
# The generated world and streams follow from the seed; check a change with several.
SEED = int(os.environ.get("BENCH_CORRELATION_SEED", "12"))
HISTORY_DAYS = 14
TEST_HOURS = 7 * 24
SLICE = datetime.timedelta(hours=1)
NOISE_SHARE = 0.25
# Seconds from a failure's start to its last alert's end: the latest step (200 s) plus 40 min.
LONGEST_FAILURE = 200 + 40 * 60
APPS = ["orders", "payments", "search", "catalog", "users", "shipping", "inventory", "reviews", "ads", "auth",
        "billing", "notify"]  # fmt: skip
CLUSTERS = ["eu-1", "eu-2", "us-1"]


@dataclass
class Step:
    alertname: str
    service: str
    namespace: str
    team: str
    delay: tuple[int, int]  # seconds after the failure starts
    replicas: tuple[int, int] = (1, 1)
    chance: float = 1.0


@dataclass
class FiredAlert:
    at: datetime.datetime
    ends: datetime.datetime
    labels: dict[str, str]
    title: str
    group: str  # the true failure; noise alerts are each their own


def patterns(rng: random.Random) -> list[tuple[str, list[Step]]]:
    """The failure kinds of the generated world."""
    db_alerts = ["PostgresDown", "DBConnectionsExhausted", "ReplicationLagHigh"]
    api_alerts = ["HTTP5xxRate", "UpstreamTimeouts", "HighLatencyP99"]
    found = []
    for i, app in enumerate(APPS):
        team = f"team-{app}"
        found.append((f"{app}-db", [
            Step(db_alerts[i % 3], f"{app}-db", app, team, (0, 5)),
            Step(api_alerts[i % 3], f"{app}-api", app, team, (20, 60), (1, 3)),
            Step("QueueBacklog", f"{app}-worker", app, team, (60, 150), chance=0.8),
            Step("PageLatencyHigh", "web-frontend", "web", "team-web", (90, 200), chance=0.5 if i % 2 else 0.0),
        ]))  # fmt: skip
        found.append((f"{app}-deploy", [
            Step("DeploymentReplicasMismatch", f"{app}-api", app, team, (0, 10)),
            Step("ErrorBudgetBurn", f"{app}-slo", "slo", "team-sre", (30, 120)),
        ]))  # fmt: skip
    consumers = rng.sample(APPS, 8)
    for name, apps in (("kafka-a", consumers[:4]), ("kafka-b", consumers[4:])):
        found.append((name, [
            Step("KafkaBrokerDown", name, "messaging", "team-platform", (0, 5)),
            *(Step("ConsumerLagHigh", f"{app}-worker", app, f"team-{app}", (30, 120), chance=0.9) for app in apps),
        ]))  # fmt: skip
    found.append(("cache", [
        Step("RedisDown", "redis-cache", "cache", "team-platform", (0, 5)),
        Step("CacheMissRatioHigh", "catalog-api", "catalog", "team-catalog", (10, 40)),
        Step("HighLatencyP99", "search-api", "search", "team-search", (20, 60), (1, 2)),
        Step("PageLatencyHigh", "web-frontend", "web", "team-web", (60, 180)),
    ]))  # fmt: skip
    found.append(("edge", [
        Step("TLSHandshakeErrors", "edge-lb", "edge", "team-net", (0, 5)),
        Step("CertificateExpiresSoon", "edge-lb", "edge", "team-net", (0, 30)),
    ]))  # fmt: skip
    return found


NOISE_KINDS = ["PodRestarting", "DiskSpaceLow", "CPUThrottlingHigh", "CronJobFailed", "NodeMemoryPressure"]


def generate(
    rng: random.Random,
    kinds: list[tuple[str, list[Step]]],
    start: datetime.datetime,
    hours: float,
    count: int,
    prefix: str,
) -> list[FiredAlert]:
    """About `count` alerts of the world's failure `kinds` and noise, fired between `start` and
    `start + hours`, in time order."""
    alerts: list[FiredAlert] = []
    span = hours * 3600
    failures = int(count * (1 - NOISE_SHARE) / 4.2)
    clusters = {name: CLUSTERS[i % len(CLUSTERS)] for i, (name, _) in enumerate(kinds)}
    # A failure does not start again while it is still going on (its alerts would be the same
    # alerts, still firing): the spans of each kind's occurrences do not overlap.
    busy: dict[str, list[tuple[float, float]]] = {}
    for n in range(failures):
        name, steps = kinds[n % len(kinds)] if n < len(kinds) else rng.choice(kinds)
        cluster = clusters[name]
        for _ in range(20):
            offset = rng.uniform(0, span - 600)
            if not any(a <= offset + LONGEST_FAILURE and offset <= b for a, b in busy.get(name, [])):
                break
        else:
            continue
        busy.setdefault(name, []).append((offset, offset + LONGEST_FAILURE))
        t0 = start + datetime.timedelta(seconds=offset)
        for step in steps:
            if rng.random() >= step.chance:
                continue
            for replica in range(rng.randint(*step.replicas)):
                at = t0 + datetime.timedelta(seconds=rng.uniform(*step.delay))
                labels = {"alertname": step.alertname, "service": step.service, "namespace": step.namespace,
                          "team": step.team, "cluster": cluster, "env": "prod", "severity": "critical",
                          "instance": f"{step.service}-{replica}:9100"}  # fmt: skip
                title = f"{step.alertname} on {step.service}"
                ends = at + datetime.timedelta(minutes=rng.uniform(5, 40))
                alerts.append(FiredAlert(at, ends, labels, title, f"{prefix}-f{n}"))
    noise = count - len(alerts)
    for n in range(max(0, noise)):
        kind = rng.choice(NOISE_KINDS)
        app = rng.choice(APPS)
        service = rng.choice([f"{app}-api", f"{app}-worker", f"{app}-db", f"node-{rng.randrange(40)}"])
        at = start + datetime.timedelta(seconds=rng.uniform(0, span))
        labels = {"alertname": kind, "service": service, "namespace": app, "team": f"team-{app}",
                  "cluster": rng.choice(CLUSTERS), "env": "prod", "severity": "warning",
                  "instance": f"{service}-{rng.randrange(5)}:9100"}  # fmt: skip
        ends = at + datetime.timedelta(minutes=rng.uniform(5, 60))
        alerts.append(FiredAlert(at, ends, labels, f"{kind} on {service}", f"{prefix}-n{n}"))
    alerts.sort(key=lambda a: a.at)
    return alerts


def replay(
    integration: Integration, alerts: list[FiredAlert], prefix: str, learn_seconds: list[float] | None = None
) -> tuple[list[float], dict[int, str]]:
    """Fire and resolve the alerts slice by slice; returns (seconds spent correlating each slice's
    new alerts, {alert id: true group}); the seconds spent learning from each slice go to `learn_seconds`."""
    truth: dict[int, str] = {}
    slice_seconds: list[float] = []
    learn_seconds = [] if learn_seconds is None else learn_seconds
    open_alerts: list[tuple[datetime.datetime, int]] = []
    counter = itertools.count()
    start = alerts[0].at
    while alerts:
        end = start + SLICE
        chunk = [a for a in alerts if a.at < end]
        alerts = alerts[len(chunk) :]
        rows = [
            Alert(
                integration=integration,
                fingerprint=f"{prefix}-{next(counter)}",
                severity=a.labels["severity"],
                title=a.title,
                service=a.labels["service"],
                labels=a.labels,
                starts_at=a.at,
                first_seen_at=a.at,
                last_seen_at=a.at,
                pending=True,
                pending_change="fired",
            )
            for a in chunk
        ]
        Alert.objects.bulk_create(rows)
        for row, a in zip(rows, chunk, strict=True):
            truth[row.pk] = a.group
            open_alerts.append((a.ends, row.pk))
        with clock_at(end):
            began = time.perf_counter()
            while services.process_pending_alerts():
                pass
            slice_seconds.append(time.perf_counter() - began)
            # The worker then learns what fired together (the next slice's grouping uses it).
            began = time.perf_counter()
            while services.learn_cofirings():
                pass
            learn_seconds.append(time.perf_counter() - began)
            ended = [pk for ends, pk in open_alerts if ends < end]
            open_alerts = [(ends, pk) for ends, pk in open_alerts if ends >= end]
            Alert.objects.filter(pk__in=ended).update(
                status="resolved", ends_at=end, pending=True, pending_change="resolved"
            )
            while services.process_pending_alerts():
                pass
        start = end
    return slice_seconds, truth


def clock_at(at: datetime.datetime):
    """The replay's clock: the services see `at` as now, so windows and cool-downs are in stream time."""
    return mock.patch("django.utils.timezone.now", return_value=at)


def backlog(integration: Integration, alerts: list[FiredAlert]) -> tuple[float, float]:
    """All alerts pending at once (a worker catching up), drained in the service's batches; returns the
    seconds grouping them into incidents, then the seconds learning what fired together."""
    Alert.objects.bulk_create(
        [
            Alert(
                integration=integration,
                fingerprint=f"b-{n}",
                severity=a.labels["severity"],
                title=a.title,
                service=a.labels["service"],
                labels=a.labels,
                starts_at=a.at,
                first_seen_at=a.at,
                last_seen_at=a.at,
                pending=True,
                pending_change="fired",
            )
            for n, a in enumerate(alerts)
        ],
        batch_size=2000,
    )
    with clock_at(alerts[-1].at):
        began = time.perf_counter()
        while services.process_pending_alerts():
            pass
        grouped = time.perf_counter() - began
        began = time.perf_counter()
        while services.learn_cofirings():
            pass
        return grouped, time.perf_counter() - began


def pairwise(truth: dict[int, str]) -> dict[str, float]:
    """Pairwise precision, recall and F1 of the alerts' incidents against the true groups."""
    predicted = dict(Alert.objects.filter(pk__in=list(truth)).values_list("pk", "incident_id"))
    missing = sum(1 for pk in truth if predicted.get(pk) is None)
    assert not missing, f"{missing} of {len(truth)} alerts have no incident"

    def pairs(counts: Counter) -> int:
        return sum(n * (n - 1) // 2 for n in counts.values())

    together = pairs(Counter((predicted[pk], group) for pk, group in truth.items()))
    said = pairs(Counter(predicted[pk] for pk in truth))
    true = pairs(Counter(truth.values()))
    precision = together / said if said else 1.0
    recall = together / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def clear_alerts() -> None:
    IncidentEvent.objects.all().delete()
    MergeSuggestion.objects.all().delete()
    Alert.objects.all().delete()
    Incident.objects.all().delete()


def run() -> Iterator[tuple[str, dict]]:
    admin = accounts.create_user(username="bench-correlation", role=Role.ADMIN, actor=None, password="bench-pw-12345")
    integration, _token = services.create_integration(name="bench-correlation", kind="alertmanager", actor=admin)
    rng = random.Random(SEED)
    now = timezone.now()
    test_start = now - datetime.timedelta(hours=TEST_HOURS)
    world = patterns(rng)
    history_start = test_start - datetime.timedelta(days=HISTORY_DAYS)
    history = generate(rng, world, history_start, HISTORY_DAYS * 24, TEST_ALERTS // 2, "h")
    stream = generate(rng, world, test_start, TEST_HOURS, TEST_ALERTS, "t")

    default = CorrelationRule.objects.get(name__startswith="Default")
    learned = services.save_rule(actor=admin, name="Learned (bench)", kind="learned", position=1)
    history_learning: list[float] = []
    history_slices, _ = replay(integration, history, "h", history_learning)
    history_seconds = sum(history_slices)
    learned_pairs = AlertPairStats.objects.count()
    clear_alerts()
    stream_learning: list[float] = []
    learned_slices, truth = replay(integration, stream, "t", stream_learning)
    learned_seconds = sum(learned_slices)
    learned_scores = pairwise(truth)
    incidents = Incident.objects.filter(rule=learned).count()
    suggestions = MergeSuggestion.objects.count()
    clear_alerts()
    backlog_seconds, backlog_learning = backlog(integration, stream)
    clear_alerts()
    services.save_rule(actor=admin, rule=learned, enabled=False)
    labels_backlog_seconds, _ = backlog(integration, stream)
    services.save_rule(actor=admin, rule=learned, enabled=True)

    clear_alerts()
    services.save_rule(actor=admin, rule=learned, enabled=False)
    labels_slices, truth = replay(integration, stream, "l")
    labels_seconds = sum(labels_slices)
    labels_scores = pairwise(truth)
    services.save_rule(actor=admin, rule=learned, enabled=True)

    alerts = len(truth)
    result = {
        # Per one-hour slice of the test stream (about 60 new alerts) under the learned rule.
        "p50_ms": statistics.median(learned_slices) * 1000,
        "p95_ms": statistics.quantiles(learned_slices, n=20)[-1] * 1000,
        "per_second": alerts / backlog_seconds,
        "backlog_seconds": round(backlog_seconds, 3),
        "labels_rule_backlog_seconds": round(labels_backlog_seconds, 3),
        # What the learned rule adds to the pipeline every rule kind pays (incidents, events, audit).
        "learned_overhead_seconds": round(backlog_seconds - labels_backlog_seconds, 3),
        # The machine is shared and its speed varies: the ratio to the label rule in the same run is steadier.
        "learned_to_labels_ratio": round(backlog_seconds / labels_backlog_seconds, 2),
        # Counting what fired together, after each drain (off the grouping path).
        "backlog_learning_seconds": round(backlog_learning, 3),
        "slice_learning_p50_ms": statistics.median(stream_learning) * 1000,
        "queries": 0,
        "alerts": alerts,
        "history_alerts": len(history),
        "learned": {
            **learned_scores,
            "grouping_seconds": round(learned_seconds, 3),
            "incidents": incidents,
            "merge_suggestions": suggestions,
        },
        "labels_rule": {**labels_scores, "grouping_seconds": round(labels_seconds, 3)},
        "history_seconds": round(history_seconds, 3),
        "learned_pairs": learned_pairs,
        "targets": {"f1": 0.9, "grouping_seconds": 2.0},
        "default_rule": default.name,
    }
    result["notes"] = (
        f"learned rule F1 {learned_scores['f1']:.3f} (P {learned_scores['precision']:.3f}, "
        f"R {learned_scores['recall']:.3f}) vs label rule F1 {labels_scores['f1']:.3f}; "
        f"{alerts} pending alerts grouped in {backlog_seconds:.2f} s (label rule {labels_backlog_seconds:.2f} s, "
        f"ratio {backlog_seconds / labels_backlog_seconds:.2f}; "
        f"then learning {backlog_learning:.2f} s), "
        f"replayed in hourly slices {learned_seconds:.2f} s (label rule {labels_seconds:.2f} s); "
        f"history {len(history)} alerts, {learned_pairs} learned pairs, {suggestions} merge suggestions"
    )
    yield "aiops_correlation_learned", result
