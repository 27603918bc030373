"""Production traces sent over OTLP (issue 15): spans, the traces they form, conversations and end users.

- `Span` is one OTLP span with the attribute conventions of every common sender (OpenTelemetry GenAI,
  current and deprecated, OpenInference) mapped onto the same columns (`llmops.traces.conventions`).
  A span with a `model` is a *generation* (an LLM call). Spans form a tree by `parent_span_id` (empty
  for a root). The table is written with COPY and, on PostgreSQL, partitioned by day of `start_time`
  (`llmops_span_pYYYYMMDD`, dropped whole past LLMOPS_TRACES_RETENTION_DAYS); it is created by
  migration 0004 in SQL, so the model is unmanaged. Ids are lower-case hex as OTLP/JSON writes them.
- `Trace` is one row per trace id, kept up to date as its spans arrive (they may come in several
  batches, children before parents): span and generation counts, tokens, cost, first and last
  time, the root span's name and service, errors, the conversation, the end user and the prompt
  version of its first linked generation. Lists and filters read this table, never the spans.
- `Session` (a conversation: `gen_ai.conversation.id` or OpenInference `session.id`) and `EndUser`
  (`user.id`, `enduser.id`) carry running totals the same way.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import connection, models
from django.db.models import Q
from django.utils import timezone

from .evaluation import PromptVersion


class EndUser(models.Model):
    """An end user of an LLM application, as the application names them (`user.id`, `enduser.id`)."""

    external_id = models.CharField(max_length=200, unique=True, help_text="The id the application sent.")
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    generations = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=18, decimal_places=8, default=Decimal(0), help_text="USD.")

    class Meta:
        ordering = ["-last_seen"]
        indexes = [models.Index(fields=["-last_seen"], name="llmops_enduser_last_seen")]

    def __str__(self) -> str:
        return self.external_id


class Session(models.Model):
    """A conversation: the traces sharing a `gen_ai.conversation.id` (or OpenInference `session.id`)."""

    key = models.CharField(max_length=200, unique=True, help_text="The conversation or session id sent.")
    service = models.CharField(max_length=200, blank=True)
    end_user = models.ForeignKey(EndUser, null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions")
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    generations = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=18, decimal_places=8, default=Decimal(0), help_text="USD.")

    class Meta:
        ordering = ["-last_seen"]
        indexes = [
            models.Index(fields=["-last_seen"], name="llmops_session_last_seen"),
            models.Index(fields=["end_user", "-last_seen"], name="llmops_session_user"),
        ]

    def __str__(self) -> str:
        return self.key


class TraceQuerySet(models.QuerySet):
    def with_model(self, model: str) -> TraceQuerySet:
        """Traces with at least one generation of `model` (PostgreSQL: the GIN index on `model_names`)."""
        if connection.vendor == "postgresql":
            return self.filter(model_names__contains=[model])
        return self.filter(Q(model=model) | Q(model_names__icontains=f'"{model}"'))

    def errors(self) -> TraceQuerySet:
        return self.filter(errors__gt=0)


class Trace(models.Model):
    """One trace: the totals of its spans, maintained by `llmops.traces.store` as spans arrive."""

    trace_id = models.CharField(max_length=32, unique=True, help_text="32 lower-case hex digits.")
    name = models.CharField(max_length=500, blank=True, help_text="The root span's name (empty until it arrives).")
    service = models.CharField(max_length=200, blank=True, help_text="The root span's service.name.")
    start_time = models.DateTimeField()
    end_time = models.DateTimeField()
    latency_ms = models.FloatField(default=0.0, help_text="From the first span's start to the last span's end.")
    spans = models.PositiveIntegerField(default=0)
    generations = models.PositiveIntegerField(default=0, help_text="Spans with a model (LLM calls).")
    errors = models.PositiveIntegerField(default=0, help_text="Spans with status ERROR.")
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=18, decimal_places=8, default=Decimal(0), help_text="USD.")
    model = models.CharField(max_length=200, blank=True, help_text="The first generation's model.")
    model_names = models.JSONField(default=list, blank=True, help_text="Every model its generations used.")
    # No index of their own: the composite (x, -start_time) indexes below serve the filters and the SET NULL
    # of a deleted row (migration 0010; it also drops trace_id's LIKE index: ids are looked up by equality).
    session = models.ForeignKey(
        Session, null=True, blank=True, on_delete=models.SET_NULL, related_name="traces", db_index=False
    )
    end_user = models.ForeignKey(
        EndUser, null=True, blank=True, on_delete=models.SET_NULL, related_name="traces", db_index=False
    )
    prompt_version = models.ForeignKey(
        PromptVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="traces", db_index=False,
        help_text="From opsportal.prompt.name / opsportal.prompt.version of its first linked generation.",
    )  # fmt: skip
    updated_at = models.DateTimeField(default=timezone.now)

    objects = TraceQuerySet.as_manager()

    class Meta:
        ordering = ["-start_time", "-id"]
        indexes = [
            models.Index(fields=["-start_time"], name="llmops_trace_start"),
            models.Index(fields=["service", "-start_time"], name="llmops_trace_service"),
            models.Index(fields=["model", "-start_time"], name="llmops_trace_model"),
            models.Index(fields=["session", "-start_time"], name="llmops_trace_session"),
            models.Index(fields=["end_user", "-start_time"], name="llmops_trace_user"),
            models.Index(fields=["prompt_version", "-start_time"], name="llmops_trace_prompt_version"),
            models.Index(fields=["-start_time"], condition=Q(errors__gt=0), name="llmops_trace_errors"),
            # The latency and cost range filters (migration 0008 also raises these columns' statistics).
            models.Index(fields=["latency_ms"], name="llmops_trace_latency"),
            models.Index(fields=["cost"], name="llmops_trace_cost"),
        ]

    def __str__(self) -> str:
        return f"{self.trace_id} {self.name}".strip()

    @property
    def status(self) -> str:
        return "error" if self.errors else "ok"

    def span_rows(self) -> models.QuerySet[Span]:
        """Its spans, oldest first; bounded by the trace's times so PostgreSQL reads only those days' partitions."""
        return Span.objects.filter(
            trace_id=self.trace_id, start_time__gte=self.start_time, start_time__lte=self.end_time
        ).order_by("start_time", "id")


class Span(models.Model):
    """One span as stored: OTLP's fields, the GenAI/OpenInference attributes mapped, and the rest kept.

    `attributes` holds every attribute no column took (searchable: a GIN index on PostgreSQL);
    `resource` the resource's attributes beside `service.name`. `input`/`output` are the prompt and
    the completion as JSON text (chat messages when the sender gave them, else the raw value), cut
    at LLMOPS_TRACE_MAX_IO_CHARS with `input_truncated`/`output_truncated` set.
    """

    class Status(models.TextChoices):
        UNSET = "unset"
        OK = "ok"
        ERROR = "error"

    id = models.BigAutoField(primary_key=True)
    start_time = models.DateTimeField()
    end_time = models.DateTimeField()
    duration_ms = models.FloatField(default=0.0)
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    parent_span_id = models.CharField(max_length=16, blank=True, default="", help_text="Empty for a root span.")
    name = models.CharField(max_length=500)
    kind = models.CharField(max_length=10, default="internal", help_text="internal, server, client, producer, consumer")
    service = models.CharField(max_length=200)
    status = models.CharField(max_length=5, choices=Status.choices, default=Status.UNSET)
    status_message = models.TextField(blank=True, default="")
    operation = models.CharField(
        max_length=50, blank=True, default="",
        help_text="gen_ai.operation.name (chat, embeddings, execute_tool ...) or the OpenInference span kind.",
    )  # fmt: skip
    provider = models.CharField(max_length=100, blank=True, default="", help_text="gen_ai.provider.name / system.")
    model = models.CharField(max_length=200, blank=True, default="", help_text="Response model, else request model.")
    request_model = models.CharField(max_length=200, blank=True, default="")
    input_tokens = models.IntegerField(null=True, blank=True)
    output_tokens = models.IntegerField(null=True, blank=True)
    cache_read_tokens = models.IntegerField(null=True, blank=True)
    cache_write_tokens = models.IntegerField(null=True, blank=True)
    reasoning_tokens = models.IntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=18, decimal_places=8, null=True, blank=True, help_text="USD.")
    time_to_first_token_ms = models.FloatField(null=True, blank=True)
    session_key = models.CharField(max_length=200, blank=True, default="")
    user_key = models.CharField(max_length=200, blank=True, default="")
    prompt_name = models.CharField(max_length=200, blank=True, default="")
    prompt_version_number = models.IntegerField(null=True, blank=True)
    prompt_version = models.ForeignKey(
        PromptVersion, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    input = models.TextField(blank=True, default="")
    output = models.TextField(blank=True, default="")
    input_truncated = models.BooleanField(default=False)
    output_truncated = models.BooleanField(default=False)
    parameters = models.JSONField(default=dict, blank=True, help_text="temperature, max_tokens, top_p ...")
    attributes = models.JSONField(default=dict, blank=True)
    events = models.JSONField(default=list, blank=True, help_text='[{"name", "time", "attributes"}]')
    resource = models.JSONField(default=dict, blank=True)

    class Meta:
        managed = False
        db_table = "llmops_span"
        ordering = ["start_time", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.span_id})"

    @property
    def is_generation(self) -> bool:
        return bool(self.model)

    @property
    def total_tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)
