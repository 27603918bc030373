"""Uptime checks: HTTP(S), TCP, DNS, TLS expiry and heartbeat checks, their results and status pages.

A check's kind-specific options live in `Check.config` (validated per kind by
`aiops.services.checks`); what the scheduler and the heartbeat evaluation need is in
columns. The dispatcher (`aiops.checks.dispatcher`) claims checks whose `next_due_at`
has come, runs them and moves `next_due_at` on; every run is a `CheckResult` and is
counted in its hour's `CheckHourlyStat`, from which uptime is read.
"""

from __future__ import annotations

import datetime
import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

__all__ = ["Check", "CheckHourlyStat", "CheckOutage", "CheckResult", "Ping", "StatusPage"]

MAX_INTERVAL_SECONDS = 86400
PING_BODY_MAX_BYTES = 10 * 1024


class CheckQuerySet(models.QuerySet):
    def active(self) -> CheckQuerySet:
        return self.filter(paused=False)

    def due(self, at: datetime.datetime) -> CheckQuerySet:
        """Checks the dispatcher should run now (the query its partial index `check_due_idx` serves)."""
        return self.filter(paused=False, next_due_at__lte=at)


class Check(models.Model):
    """One thing the portal watches: a URL, a port, a DNS name, a certificate, or pings it expects."""

    class Kind(models.TextChoices):
        HTTP = "http", "HTTP(S)"
        TCP = "tcp", "TCP connect"
        DNS = "dns", "DNS"
        TLS = "tls", "TLS certificate expiry"
        HEARTBEAT = "heartbeat", "Heartbeat (push)"

    class Status(models.TextChoices):
        NEW = "new", "New"
        UP = "up", "Up"
        PENDING = "pending", "Pending"
        DOWN = "down", "Down"
        PAUSED = "paused", "Paused"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    service = models.CharField(max_length=200, blank=True)
    severity = models.CharField(
        max_length=10,
        choices=[("critical", "Critical"), ("error", "Error"), ("warning", "Warning"), ("info", "Info")],
        default="error",
    )
    labels = models.JSONField(default=dict, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_checks"
    )
    description = models.TextField(blank=True)
    interval_seconds = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1), MaxValueValidator(MAX_INTERVAL_SECONDS)]
    )
    timeout_seconds = models.FloatField(default=10.0, validators=[MinValueValidator(0.1), MaxValueValidator(120)])
    retries = models.PositiveSmallIntegerField(
        default=0, help_text="Failed runs in a row that are retried (status pending) before the check is down."
    )
    paused = models.BooleanField(default=False, help_text="Maintenance: not run, no alerts.")
    upside_down = models.BooleanField(default=False, help_text="Down when the target answers, up when it fails.")
    config = models.JSONField(default=dict, blank=True, help_text="Kind-specific options (docs/aiops.md, Checks).")

    # Heartbeat checks: the UUID is the secret in the ping URL; a period and a grace time, or a cron expression.
    ping_uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    period_seconds = models.PositiveIntegerField(null=True, blank=True)
    grace_seconds = models.PositiveIntegerField(default=300)
    cron = models.CharField(max_length=100, blank=True)
    tz = models.CharField(max_length=64, default="UTC")

    # State, written by the dispatcher and by pings.
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NEW)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_result_at = models.DateTimeField(null=True, blank=True)
    last_latency_ms = models.FloatField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_ping_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(
        null=True, blank=True, help_text="Heartbeat: a /start not yet followed by a success."
    )
    # When the dispatcher runs it next; while a worker runs it, the end of that worker's lease.
    next_due_at = models.DateTimeField(null=True, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = CheckQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            models.Index(fields=["next_due_at"], condition=Q(paused=False), name="check_due_idx"),
            models.Index(fields=["status"], name="check_status_idx"),
            models.Index(fields=["service"], name="check_service_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(interval_seconds__gte=1) & Q(interval_seconds__lte=MAX_INTERVAL_SECONDS),
                name="check_interval_range",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return f"/aiops/checks/{self.pk}/"

    @property
    def dedup_key(self) -> str:
        """The key of the alert this check raises when it is down (`raise_alert(source="check")`)."""
        return f"check:{self.pk}"

    @property
    def is_heartbeat(self) -> bool:
        return self.kind == self.Kind.HEARTBEAT

    def target(self) -> str:
        """What the check looks at, for lists: the URL, host:port or DNS name; empty for heartbeats."""
        config = self.config or {}
        if self.kind == self.Kind.HTTP:
            return str(config.get("url", ""))
        if self.kind in (self.Kind.TCP, self.Kind.TLS):
            return f"{config.get('host', '')}:{config.get('port', '')}"
        if self.kind == self.Kind.DNS:
            return f"{config.get('name', '')} {config.get('record_type', 'A')}"
        return ""


class CheckResult(models.Model):
    """One run of a check (or, for a heartbeat, one ping or missed deadline), as the library reported it."""

    check_obj = models.ForeignKey(Check, on_delete=models.CASCADE, related_name="results", db_column="check_id")
    at = models.DateTimeField(default=timezone.now)
    up = models.BooleanField()
    latency_ms = models.FloatField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["check_obj", "-at"], name="checkresult_check_at_idx"),
            models.Index(fields=["at"], name="checkresult_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{'up' if self.up else 'down'} at {self.at:%Y-%m-%d %H:%M:%S}"


class CheckHourlyStat(models.Model):
    """Runs and successful runs of a check in one hour, kept longer than the results (uptime, status pages)."""

    check_obj = models.ForeignKey(Check, on_delete=models.CASCADE, related_name="hourly_stats", db_column="check_id")
    hour = models.DateTimeField()
    total = models.PositiveIntegerField(default=0)
    up = models.PositiveIntegerField(default=0)
    latency_sum_ms = models.FloatField(default=0)
    latency_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["check_obj", "hour"]
        constraints = [models.UniqueConstraint(fields=["check_obj", "hour"], name="checkhourlystat_unique")]

    def __str__(self) -> str:
        return f"{self.check_obj_id} {self.hour:%Y-%m-%d %H}:00 {self.up}/{self.total}"


class CheckOutage(models.Model):
    """A time a check was down: from the run that made it down to the run that recovered it (open: ended_at null)."""

    check_obj = models.ForeignKey(Check, on_delete=models.CASCADE, related_name="outages", db_column="check_id")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="The error of the run that made it down.")

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["check_obj", "-started_at"], name="checkoutage_check_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["check_obj"], condition=Q(ended_at__isnull=True), name="checkoutage_one_open"
            )
        ]

    def __str__(self) -> str:
        return f"{self.check_obj_id} down from {self.started_at:%Y-%m-%d %H:%M:%S}"


class Ping(models.Model):
    """One request to a heartbeat's ping URL."""

    class Kind(models.TextChoices):
        SUCCESS = "success", "Success"
        START = "start", "Start"
        FAIL = "fail", "Fail"

    check_obj = models.ForeignKey(Check, on_delete=models.CASCADE, related_name="pings", db_column="check_id")
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    exit_status = models.PositiveSmallIntegerField(null=True, blank=True)
    body = models.TextField(blank=True, help_text="The first 10 KB of the request body.")
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    method = models.CharField(max_length=10)
    duration_ms = models.FloatField(null=True, blank=True, help_text="Time since the /start it ends.")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["check_obj", "-at"], name="ping_check_at_idx"),
            models.Index(fields=["at"], name="ping_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} ping at {self.at:%Y-%m-%d %H:%M:%S}"


class StatusPage(models.Model):
    """A public page at /status/<slug>/ showing chosen checks' state and uptime (no labels, no targets)."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    checks = models.ManyToManyField(Check, blank=True, related_name="status_pages")
    published = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return f"/status/{self.slug}/"
