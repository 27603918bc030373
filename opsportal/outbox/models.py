"""The abstract outbox row that every outgoing message (notification, webhook delivery ...) inherits."""

from __future__ import annotations

import datetime
import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

# Attempts per message, the first one included; the last failure fails the row for good.
MAX_ATTEMPTS = 6
# Backoff after the n-th failed attempt: FIRST_RETRY_SECONDS * 2 ** (n - 1), at most RETRY_CAP_SECONDS.
FIRST_RETRY_SECONDS = 8
RETRY_CAP_SECONDS = 600


class PermanentFailure(Exception):
    """Sending cannot succeed by trying again (e.g. the signing secret cannot be decrypted)."""


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


def retry_delay(attempts: int) -> datetime.timedelta:
    """The wait after `attempts` failed attempts: 8 s, 16 s, 32 s ... at most 10 minutes."""
    return datetime.timedelta(seconds=min(RETRY_CAP_SECONDS, FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0)))


def pending_index(name: str) -> models.Index:
    """The partial index the sweeper reads (pending rows by age); each concrete outbox declares it by name."""
    return models.Index(fields=["created_at"], condition=Q(status="pending"), name=name)


class OutboxMessage(models.Model):
    """One outgoing message: written in the transaction of the change it reports, sent after commit.

    What is done with it (where it goes, how it is signed, what an attempt leaves
    behind) is its `opsportal.outbox.Outbox`; a concrete model adds its own
    references and declares `pending_index(...)` in its Meta.
    """

    Status = Status

    target = models.TextField(blank=True, help_text="Where it goes: a URL (or, for email, the addresses).")
    event = models.CharField(max_length=30, help_text="Sent as X-OpsPortal-Event.")
    payload = models.JSONField(default=dict, blank=True, help_text="The JSON document sent (the last one sent).")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # When the next retry is due; the sweeper leaves a pending row alone until then.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    # Sent as X-OpsPortal-Delivery, the same on every attempt, so receivers can deduplicate.
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    def retry_delay(self) -> datetime.timedelta:
        """The wait before the next attempt, after `attempts` failures (the one backoff of every outbox)."""
        return retry_delay(self.attempts)
