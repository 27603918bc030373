"""AIOps data: integrations that receive alerts, alerts, incidents and what shapes them."""

from __future__ import annotations

import datetime
import re

from django.conf import settings
from django.db import models
from django.db.models import Count, Q, Value
from django.db.models.functions import Coalesce, NullIf
from django.urls import reverse
from django.utils import timezone

from opsportal.outbox.models import OutboxMessage, pending_index

SEVERITY_CHOICES = [("critical", "Critical"), ("error", "Error"), ("warning", "Warning"), ("info", "Info")]
SEVERITY_RANK = {"critical": 4, "error": 3, "warning": 2, "info": 1}


class Integration(models.Model):
    """A sender (Alertmanager, Grafana, PagerDuty-style or generic) with its own secret token."""

    class Kind(models.TextChoices):
        ALERTMANAGER = "alertmanager", "Prometheus Alertmanager"
        GRAFANA = "grafana", "Grafana alerting"
        PAGERDUTY = "pagerduty", "PagerDuty Events API v2"
        GENERIC = "generic", "Generic JSON"
        LOGS = "logs", "Logs (OTLP, Loki push, JSON lines)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(max_length=12, editable=False)
    enabled = models.BooleanField(default=True)
    rate_limit_per_minute = models.PositiveIntegerField(
        default=6000, help_text="Deliveries accepted per minute; more get 429."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    last_delivery_at = models.DateTimeField(null=True, blank=True)
    # Set for the integration through which another app (mlops, llmops, checks) raises its alerts
    # (aiops.services.raise_alert); no sender posts to it and its token is never shown.
    internal_source = models.CharField(max_length=50, blank=True, default="", db_default="", editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["internal_source"], condition=~Q(internal_source=""), name="integration_one_per_source"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("aiops:integration", args=[self.pk])

    @property
    def is_internal(self) -> bool:
        return bool(self.internal_source)

    def ingest_path(self) -> str:
        if self.kind == self.Kind.LOGS:  # log senders authenticate by token alone (aiops.api.logs)
            return reverse("api:aiops:otlp-logs")
        return reverse("api:aiops:ingest", args=[self.pk])


class Delivery(models.Model):
    """One HTTP delivery from a sender; repeated identical deliveries are recognised by their digest."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="deliveries")
    received_at = models.DateTimeField(default=timezone.now)
    digest = models.CharField(max_length=64, help_text="SHA-256 of the body (or of the Idempotency-Key).")
    alert_count = models.PositiveIntegerField(default=0)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    meta = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["integration", "digest", "-received_at"], name="delivery_digest_idx")]

    def __str__(self) -> str:
        return f"delivery {self.pk} from {self.integration_id}"


class AlertQuerySet(models.QuerySet):
    def firing(self) -> AlertQuerySet:
        return self.filter(status=Alert.Status.FIRING)

    def pending(self) -> AlertQuerySet:
        return self.filter(pending=True)


class Alert(models.Model):
    """One occurrence of an alert: from first firing to resolved. A later firing is a new row."""

    class Status(models.TextChoices):
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="alerts")
    fingerprint = models.CharField(max_length=128)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.FIRING)
    severity = models.CharField(max_length=10, choices=SEVERITY_CHOICES, default="warning")
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    service = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=500, blank=True)
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict, blank=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    times_seen = models.PositiveIntegerField(default=1)
    generator_url = models.URLField(max_length=2000, blank=True)
    links = models.JSONField(default=list, blank=True)
    raw = models.JSONField(default=dict)
    # Hash of what deduplication compares (severity, title, labels, annotations); "" = not known yet.
    content_hash = models.CharField(max_length=32, blank=True, default="", db_default="", editable=False)
    incident = models.ForeignKey("Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    suppressed_by = models.ForeignKey(
        "Silence", null=True, blank=True, on_delete=models.SET_NULL, related_name="suppressed_alerts"
    )
    # True until the worker has correlated this change; the sweeper picks up what stays True.
    pending = models.BooleanField(default=True)
    # What changed last and still awaits correlation: "fired", "refired", "resolved", "acknowledged".
    pending_change = models.CharField(max_length=20, blank=True, default="fired")

    objects = AlertQuerySet.as_manager()

    class Meta:
        # Lists order by first_seen_at (never changes) and no index covers last_seen_at or times_seen:
        # the most common write, a sender repeating a firing alert, is then a HOT update that touches
        # no index at all.
        ordering = ["-first_seen_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "fingerprint"],
                condition=Q(status="firing"),
                name="alert_one_firing_per_fingerprint",
            )
        ]
        indexes = [
            models.Index(fields=["integration", "fingerprint", "-first_seen_at"], name="alert_fingerprint_idx"),
            models.Index(fields=["-first_seen_at"], name="alert_first_seen_idx"),
            models.Index(fields=["status", "-first_seen_at"], name="alert_status_idx"),
            models.Index(fields=["service", "-first_seen_at"], name="alert_service_idx"),
            models.Index(fields=["severity", "-first_seen_at"], name="alert_severity_idx"),
            models.Index(fields=["incident", "-first_seen_at"], name="alert_incident_idx"),
            models.Index(fields=["id"], condition=Q(pending=True), name="alert_pending_idx"),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("aiops:alert", args=[self.pk])


class AlertDelivery(models.Model):
    """An alert's delivery history: each delivery that mentioned it, and the status it reported."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="delivery_history")
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="alert_links")
    status = models.CharField(max_length=20)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["alert", "-received_at"], name="alertdelivery_alert_idx")]

    def __str__(self) -> str:
        return f"{self.status} via delivery {self.delivery_id}"


class IncidentQuerySet(models.QuerySet):
    def open(self) -> IncidentQuerySet:
        return self.exclude(status=Incident.Status.RESOLVED)

    def count_by_severity(self) -> dict[str, int]:
        """{severity: count}, by the severity people see (an override wins over the alerts')."""
        shown = Coalesce(NullIf("severity_override", Value("")), "severity")
        return dict(self.annotate(shown=shown).values_list("shown").annotate(n=Count("id")).order_by())

    def for_service(self, service: str) -> IncidentQuerySet:
        return self.filter(service=service)


class Incident(models.Model):
    """Alerts grouped by a correlation rule, triaged by people: triggered -> acknowledged -> resolved."""

    class Status(models.TextChoices):
        TRIGGERED = "triggered", "Triggered"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    title = models.CharField(max_length=300)
    summary = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.TRIGGERED)
    severity = models.CharField(max_length=10, choices=SEVERITY_CHOICES, default="warning")
    severity_override = models.CharField(max_length=10, choices=SEVERITY_CHOICES, blank=True)
    service = models.CharField(max_length=200, blank=True)
    rule = models.ForeignKey("CorrelationRule", null=True, blank=True, on_delete=models.SET_NULL)
    group_key = models.CharField(max_length=64, blank=True)
    group_labels = models.JSONField(default=dict, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents"
    )
    links = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    last_alert_at = models.DateTimeField(default=timezone.now)
    alert_count = models.PositiveIntegerField(default=0)
    firing_count = models.PositiveIntegerField(default=0)
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged")

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["-created_at"], name="incident_created_idx"),
            models.Index(fields=["status", "-created_at"], name="incident_status_idx"),
            models.Index(fields=["severity", "-created_at"], name="incident_severity_idx"),
            models.Index(fields=["service", "-created_at"], name="incident_service_idx"),
            models.Index(fields=["assignee", "-created_at"], name="incident_assignee_idx"),
            models.Index(fields=["group_key", "-last_alert_at"], name="incident_group_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("aiops:incident", args=[self.pk])

    @property
    def effective_severity(self) -> str:
        return self.severity_override or self.severity

    @property
    def is_open(self) -> bool:
        return self.status != self.Status.RESOLVED

    def time_to_acknowledge(self) -> datetime.timedelta | None:
        return self.acknowledged_at - self.created_at if self.acknowledged_at else None

    def time_to_resolve(self) -> datetime.timedelta | None:
        return self.resolved_at - self.created_at if self.resolved_at else None


class IncidentEvent(models.Model):
    """One line of an incident's timeline."""

    class Kind(models.TextChoices):
        OPENED = "opened", "Opened"
        ALERT_FIRING = "alert_firing", "Alert firing"
        ALERT_RESOLVED = "alert_resolved", "Alert resolved"
        STATUS = "status", "Status changed"
        ASSIGNED = "assigned", "Assigned"
        SEVERITY = "severity", "Severity changed"
        COMMENT = "comment", "Comment"
        MERGED = "merged", "Merged"
        SPLIT = "split", "Alert split out"
        NOTIFICATION = "notification", "Notification"
        RUNBOOK = "runbook", "Runbook"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=150, blank=True)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["incident", "at"], name="incidentevent_incident_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message}"


class Matcher:
    """A label matcher like Alertmanager's: {"label": "env", "op": "=~", "value": "prod|staging"}."""

    OPS = ("=", "!=", "=~", "!~")

    @staticmethod
    def matches(matcher: dict, labels: dict[str, str]) -> bool:
        value = labels.get(matcher["label"], "")
        op = matcher.get("op", "=")
        if op == "=":
            return value == matcher["value"]
        if op == "!=":
            return value != matcher["value"]
        found = re.fullmatch(matcher["value"], value) is not None
        return found if op == "=~" else not found

    @classmethod
    def all_match(cls, matchers: list[dict], labels: dict[str, str]) -> bool:
        return all(cls.matches(m, labels) for m in matchers)


class CorrelationRule(models.Model):
    """Groups matching alerts into one incident per distinct value of `group_by` within a time window,
    or, for kind `learned`, by what aiops.correlation_learning scores as one failure."""

    class Kind(models.TextChoices):
        LABELS = "labels", "Same label values"
        LEARNED = "learned", "Learned (labels, titles, timing, history)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.LABELS, db_default=Kind.LABELS)
    position = models.PositiveIntegerField(default=100, help_text="Rules are tried in ascending order.")
    enabled = models.BooleanField(default=True)
    matchers = models.JSONField(default=list, blank=True, help_text='[{"label": "env", "op": "=", "value": "prod"}]')
    group_by = models.JSONField(
        default=list, blank=True, help_text='Label keys, e.g. ["alertname", "service"] (not used by learned rules).'
    )
    window_minutes = models.PositiveIntegerField(
        default=60, help_text="An alert joins an open incident whose last alert is at most this old."
    )
    auto_resolve = models.BooleanField(default=True, help_text="Resolve the incident when all its alerts resolve.")
    reopen_cooldown_minutes = models.PositiveIntegerField(
        default=30, help_text="A resolved incident reopens if one of its groups fires again within this time."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name


class Silence(models.Model):
    """Matching alerts are stored but suppressed (no incident) between starts_at and ends_at."""

    matchers = models.JSONField(help_text='[{"label": "service", "op": "=", "value": "batch"}]')
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField()
    comment = models.CharField(max_length=500)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    expired_early_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-starts_at"]
        indexes = [models.Index(fields=["ends_at", "starts_at"], name="silence_window_idx")]

    def __str__(self) -> str:
        return self.comment

    def is_active(self, at: datetime.datetime | None = None) -> bool:
        at = at or timezone.now()
        end = min(self.ends_at, self.expired_early_at) if self.expired_early_at else self.ends_at
        return self.starts_at <= at < end

    def matches(self, labels: dict[str, str]) -> bool:
        return Matcher.all_match(self.matchers, labels)


class NotificationChannel(models.Model):
    """Where notifications go: an email list, a signed outgoing webhook, or a Slack-compatible webhook."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook (HMAC-SHA256 signed)"
        SLACK = "slack", "Slack-compatible webhook"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    target = models.TextField(help_text="Comma-separated email addresses, or the webhook URL.")
    secret_encrypted = models.TextField(blank=True, editable=False, help_text="Webhook signing secret, encrypted.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class NotificationRoute(models.Model):
    """Which incidents notify which channel: by severity and service (empty = any)."""

    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="routes")
    severities = models.JSONField(default=list, blank=True)
    services = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["channel", "id"]

    def __str__(self) -> str:
        severities = ",".join(self.severities) or "any severity"
        return f"{self.channel}: {severities} / {','.join(self.services) or 'any service'}"

    def wants(self, incident: Incident) -> bool:
        severity_ok = not self.severities or incident.effective_severity in self.severities
        return self.enabled and severity_ok and (not self.services or incident.service in self.services)


class Notification(OutboxMessage):
    """One notification to send (an outbox row, see `aiops.notifications`); each attempt goes on the timeline."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notifications")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=20, help_text="opened, reopened, acknowledged or resolved")

    class Meta:
        ordering = ["-created_at"]
        indexes = [pending_index("notification_pending_idx")]

    def __str__(self) -> str:
        return f"{self.event} #{self.incident_id} -> {self.channel}"


# Watching systems (issue 11): uptime checks and metric collection, one module each.
from .anomalies import *  # noqa: E402, F403  (live anomaly detection, issue 12)
from .checks import *  # noqa: E402, F403
from .correlation_learning import *  # noqa: E402, F403  (learned alert correlation, issue 12)
from .forecasts import *  # noqa: E402, F403  (capacity forecasts, issue 12)
from .incident_context import *  # noqa: E402, F403  (troubleshooting context on incidents, issue 13)
from .logs import *  # noqa: E402, F403  (log records and patterns, issue 13)
from .metrics import *  # noqa: E402, F403
from .runbooks import *  # noqa: E402, F403  (runbooks, issue 13)
