"""Runbooks (issue 13): ordered steps that act on an incident, their runs, each step's state, and HTTP calls.

The engine is `aiops.runbooks.engine`; what people do to runbooks goes through `aiops.services.runbooks`.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from opsportal.outbox.models import OutboxMessage, pending_index

__all__ = ["Runbook", "RunbookCall", "RunbookRun", "RunbookStepRun", "RunbookSwitch"]


class Runbook(models.Model):
    """An ordered list of steps (http, wait, approval, notify) run against an incident, by hand or on a match."""

    class Mode(models.TextChoices):
        MANUAL = "manual", "Manual only"
        RUN = "run", "Run automatically"
        APPROVAL = "approval", "Run after approval"
        DRY_RUN = "dry-run", "Dry run (render and record, send nothing)"

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    steps = models.JSONField(default=list, help_text="The steps, in order (see docs/aiops.md, Runbooks).")
    trigger_mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.MANUAL)
    match = models.JSONField(
        default=dict, blank=True, help_text='Labels an alert of the incident must carry, e.g. {"service": "api"}.'
    )
    window_minutes = models.PositiveIntegerField(
        default=15, help_text="A run counts as a remediation if the incident resolves within this time of its end."
    )
    max_concurrent_runs = models.PositiveSmallIntegerField(default=1)
    max_runs_per_hour = models.PositiveSmallIntegerField(default=6)
    # {name: Fernet ciphertext}; templates read them as {{ secrets.NAME }} and they are never shown again.
    secrets_encrypted = models.JSONField(default=dict, blank=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["trigger_mode"], condition=Q(enabled=True), name="runbook_auto_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("aiops:runbook", args=[self.pk])

    @property
    def secret_names(self) -> list[str]:
        return sorted(self.secrets_encrypted)

    @property
    def is_automatic(self) -> bool:
        return self.trigger_mode != self.Mode.MANUAL


class RunbookSwitch(models.Model):
    """The global kill switch (one row): while it is on, no runbook step starts anywhere."""

    killed = models.BooleanField(default=False)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    changed_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return "runbooks stopped" if self.killed else "runbooks allowed"


class RunbookRunQuerySet(models.QuerySet):
    def in_progress(self) -> RunbookRunQuerySet:
        return self.filter(status__in=RunbookRun.IN_PROGRESS)


class RunbookRun(models.Model):
    """One run of a runbook on an incident; its steps' state is in RunbookStepRun, one row per step."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual"
        AUTOMATIC = "automatic", "Automatic"

    IN_PROGRESS = (Status.PENDING, Status.AWAITING_APPROVAL, Status.RUNNING)
    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="runs")
    incident = models.ForeignKey("aiops.Incident", on_delete=models.CASCADE, related_name="runbook_runs")
    mode = models.CharField(max_length=10, help_text="run, approval or dry-run")
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    current_step = models.PositiveSmallIntegerField(default=0, help_text="Position of the step to run next.")
    # The steps as they were when the run was made: editing the runbook does not change a run underway.
    steps = models.JSONField(default=list)
    # Values extracted by earlier steps: {step name: {variable: value}}.
    values = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # None until known: True when the incident resolved within the runbook's window after the last step.
    remediated = models.BooleanField(null=True, blank=True)

    objects = RunbookRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["runbook", "-created_at"], name="runbookrun_runbook_idx"),
            models.Index(fields=["incident", "-created_at"], name="runbookrun_incident_idx"),
            models.Index(
                fields=["created_at"], condition=Q(status__in=["pending", "running"]), name="runbookrun_active_idx"
            ),
            models.Index(
                fields=["finished_at"],
                condition=Q(status="succeeded", remediated__isnull=True),
                name="runbookrun_verify_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.runbook} on #{self.incident_id} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("aiops:runbook_run", args=[self.pk])

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def is_dry_run(self) -> bool:
        return self.mode == Runbook.Mode.DRY_RUN

    def verification_deadline(self) -> datetime.datetime | None:
        if self.finished_at is None:
            return None
        return self.finished_at + datetime.timedelta(minutes=self.runbook.window_minutes)

    def remediation(self, now: datetime.datetime | None = None) -> bool | None:
        """Whether the run remediated its incident: the stored verdict, else what the incident shows now.

        True when the incident resolved after the run started and at most the runbook's window after its
        last step; False once the window is over without that (or the run did not succeed); None while open.
        """
        if self.remediated is not None:
            return self.remediated
        if self.status != self.Status.SUCCEEDED or self.is_dry_run:
            return False if self.is_finished else None
        deadline = self.verification_deadline()
        resolved_at = self.incident.resolved_at if self.incident.status == "resolved" else None
        if resolved_at is not None and self.started_at and self.started_at <= resolved_at <= deadline:
            return True
        return False if (now or timezone.now()) > deadline else None


class RunbookStepRun(models.Model):
    """The state of one step of a run, persisted before and after the step so a new worker resumes there."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        DRY_RUN = "dry_run", "Dry run (not sent)"

    run = models.ForeignKey(RunbookRun, on_delete=models.CASCADE, related_name="step_runs")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # The rendered request (secrets masked), and the target's answer (status, an excerpt of the body).
    request = models.JSONField(default=dict, blank=True)
    response = models.JSONField(default=dict, blank=True)
    extracted = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    detail = models.CharField(max_length=300, blank=True, help_text="What a wait step is waiting for, say.")
    # A waiting step's next look; a duplicate task arriving earlier does nothing (no second chain of looks).
    due_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "position"], name="runbookstep_one_per_position")]

    def __str__(self) -> str:
        return f"step {self.position + 1} {self.name} ({self.status})"


class RunbookCall(OutboxMessage):
    """One HTTP request of a step (an outbox row): sent, retried with backoff, recorded on its step."""

    step = models.OneToOneField(RunbookStepRun, on_delete=models.CASCADE, related_name="call")
    method = models.CharField(max_length=10, default="POST")
    headers_encrypted = models.TextField(blank=True, help_text="The rendered headers (they may hold secrets).")
    body_encrypted = models.TextField(blank=True, help_text="The rendered body, encrypted (it may hold secrets).")
    expect_status = models.JSONField(default=list, blank=True, help_text="Accepted statuses; empty = any 2xx.")
    timeout_seconds = models.PositiveSmallIntegerField(default=10)
    response_body = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [pending_index("runbookcall_pending_idx")]

    def __str__(self) -> str:
        return f"{self.method} {self.target}"
