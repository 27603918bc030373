"""What learned correlation remembers: how often alerts fired together, what people merged or split
apart, and the merge suggestions it made (see aiops.correlation_learning)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

__all__ = ["AlertPairStats", "AlertSignatureStats", "CorrelationLearningCursor", "MergeSuggestion"]


class AlertSignatureStats(models.Model):
    """How often one kind of alert (its alertname and service) fired, as a count that halves every
    half-life (aiops.correlation_learning.memory.HALF_LIFE_DAYS), so old history fades."""

    signature = models.CharField(max_length=200, unique=True)
    fired = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.signature}: {self.fired:.1f}"


class AlertPairStats(models.Model):
    """Two kinds of alerts (signatures, `a` < `b`): how often they fired within a few minutes of each
    other (`cofired`, with the summed gap for the typical lag), and how often people said they belong
    together (merges, accepted suggestions) or apart (splits, rejected suggestions). Counts decay."""

    a = models.CharField(max_length=200)
    b = models.CharField(max_length=200)
    cofired = models.FloatField(default=0.0)
    lag_seconds = models.FloatField(
        default=0.0,
        help_text=(
            "Signed sum over co-firings of when b fired minus when a fired (decayed); "
            "its mean says which one usually fires first."
        ),
    )
    together = models.FloatField(default=0.0)
    apart = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["a", "b"], name="alertpairstats_pair"),
            models.CheckConstraint(condition=Q(a__lt=F("b")), name="alertpairstats_ordered"),
        ]
        # No index on the columns every batch rewrites (counts, updated_at): the upsert's updates stay HOT
        # (the table leaves room for them, migration 0014); pruning the weakest sorts the table.
        indexes = [models.Index(fields=["b"], name="alertpairstats_b_idx")]

    def __str__(self) -> str:
        return f"{self.a} ~ {self.b}"


class CorrelationLearningCursor(models.Model):
    """How far the learner has read: the last incident timeline event (merges and splits, cursor
    "feedback") or the last correlated alert whose co-firings it counted (cursor "cofiring")."""

    name = models.CharField(max_length=50, unique=True)
    last_event_id = models.BigIntegerField(default=0)
    last_alert_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} at event {self.last_event_id}, alert {self.last_alert_id}"


class MergeSuggestion(models.Model):
    """A learned rule thinks `incident` (newer) belongs to `other`, but not surely enough to join it."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    incident = models.ForeignKey("aiops.Incident", on_delete=models.CASCADE, related_name="merge_suggestions")
    other = models.ForeignKey("aiops.Incident", on_delete=models.CASCADE, related_name="+")
    confidence = models.FloatField()
    reason = models.TextField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-confidence", "-id"]
        constraints = [models.UniqueConstraint(fields=["incident", "other"], name="mergesuggestion_pair")]
        indexes = [models.Index(fields=["other", "state"], name="mergesuggestion_other_idx")]

    def __str__(self) -> str:
        return f"#{self.incident_id} into #{self.other_id} ({self.confidence:.2f}, {self.state})"
