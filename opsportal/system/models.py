"""What the portal knows about its own background machinery."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class WorkerHeartbeat(models.Model):
    """The last sign of life of one Celery worker (written by the worker every few seconds)."""

    hostname = models.CharField(max_length=200, unique=True)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    concurrency = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    online = models.BooleanField(default=True)

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname

    def seconds_since_seen(self) -> float:
        return (timezone.now() - self.last_seen_at).total_seconds()


class TaskCounter(models.Model):
    """How many times each task finished in each state, across all workers (for /metrics)."""

    name = models.CharField(max_length=200)
    state = models.CharField(max_length=20)
    count = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "state"], name="task_counter_unique")]

    def __str__(self) -> str:
        return f"{self.name} {self.state}: {self.count}"


class TaskProbe(models.Model):
    """A test task sent through the broker to a worker, proving the pipeline end to end."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    completed_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    enqueue_attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"probe {self.id} ({self.status})"

    def round_trip_seconds(self) -> float | None:
        if self.completed_at is None:
            return None
        return (self.completed_at - self.created_at).total_seconds()
