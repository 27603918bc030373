"""Production traces: storing OTLP exports, reading traces, sessions and end users, retention.

`ingest_traces` prices each generation (`llmops.traces.cost`), links it to the prompt version named by
`opsportal.prompt.name` / `opsportal.prompt.version`, and stores the export in one transaction
(`llmops.traces.store`): committed when it returns, before the sender is answered. The readers answer
querysets of the trace table (one row per trace, with its totals), filtered by what the API and the
pages offer; a trace's spans are read by `trace_spans`.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from opsportal.filters import representable

from ..models import EndUser, Session, Span, Trace
from ..traces import store
from ..traces.cost import PROMPT_VERSIONS, current_prices
from ..traces.decode import SpanRecord, TraceBatch
from .base import InvalidInput, NotFound


@dataclass
class TraceIngestResult:
    """What an export stored and refused (OTLP's partial success)."""

    accepted: int
    rejected: int
    rejected_reason: str = ""


class _Enrichment:
    """Cost from the price table where the sender gave none; the prompt version a span names.

    Called per chunk of an export (`store.write`'s `prepare`): the price book is taken once for the
    export, and the prompt versions are looked up once per export and pair. A chunk naming a pair not
    looked up yet needs the database: refused (False) while a COPY is under way, `store` then ends it.
    """

    def __init__(self) -> None:
        self.prices = None
        self.versions: dict[tuple[str, int], int | None] = {}

    def __call__(self, chunk: list[SpanRecord], may_query: bool) -> bool:
        versions = self.versions
        wanted = None
        for span in chunk:
            m = span.mapped
            if m.prompt_name and m.prompt_version_number is not None:
                pair = (m.prompt_name, m.prompt_version_number)
                if pair not in versions:
                    wanted = wanted or set()
                    wanted.add(pair)
        if (wanted or self.prices is None) and not may_query:
            return False
        if wanted:
            found = PROMPT_VERSIONS.resolve(wanted)
            for pair in wanted:
                versions[pair] = found.get(pair)
        prices = self.prices
        if prices is None:
            prices = self.prices = current_prices()
        for span in chunk:
            m = span.mapped
            if m.model and span.cost is None and (m.input_tokens is not None or m.output_tokens is not None):
                span.cost = prices.cost(
                    (m.model, m.request_model), m.input_tokens, m.output_tokens, m.cache_read_tokens,
                    m.cache_write_tokens,
                )  # fmt: skip
            if m.prompt_name and m.prompt_version_number is not None:
                span.prompt_version_id = versions[(m.prompt_name, m.prompt_version_number)]
        return True


def ingest_traces(*, batch: TraceBatch) -> TraceIngestResult:
    """Store a decoded export (committed when this returns). A lazy batch (`decode_protobuf(lazy=True)`)
    is decoded a chunk at a time while PostgreSQL stores the chunk before."""
    with transaction.atomic():
        store.write(
            batch.spans,
            chunks=lambda: batch.chunks(store.COPY_CHUNK),
            days=batch.start_days,
            prepare=_Enrichment(),
        )
    batch.finish()
    return TraceIngestResult(accepted=len(batch.spans), rejected=batch.rejected, rejected_reason=batch.reason)


def _time(value: str, field: str) -> datetime.datetime:
    """ISO 8601 or Unix seconds."""
    try:
        return datetime.datetime.fromtimestamp(float(value), datetime.UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = parse_datetime(value.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None:
        raise InvalidInput("an ISO 8601 time or Unix seconds", field=field)
    try:
        return representable(parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC))
    except ValidationError as exc:
        raise InvalidInput(exc.messages[0], field=field) from None


def _number(value: str, field: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise InvalidInput("a number", field=field) from None
    if not math.isfinite(number) or abs(number) > 1e12:
        raise InvalidInput("a finite number", field=field)
    return number


def search_traces(params: Mapping[str, str]) -> QuerySet[Trace]:
    """Traces, newest first: `service`, `model`, `session` (its id as sent), `user` (the end user's id as
    sent), `prompt` and `prompt_version`, `status` (ok, error), `since`/`until`, `min_latency_ms`/
    `max_latency_ms`, `min_cost`/`max_cost`, and `attr.<key>=<value>` (a kept span attribute). Each filter
    has an index (with the start time; attributes: the spans' GIN index)."""
    traces = Trace.objects.select_related("session", "end_user", "prompt_version__prompt")
    value = {key: str(params.get(key, "")).strip() for key in params}
    if service := value.get("service"):
        traces = traces.filter(service=service)
    if model := value.get("model"):
        traces = traces.with_model(model)
    if session := value.get("session"):
        traces = traces.filter(session__key=session)
    if user := value.get("user"):
        traces = traces.filter(end_user__external_id=user)
    if prompt := value.get("prompt"):
        traces = traces.filter(prompt_version__prompt__name=prompt)
    if version := value.get("prompt_version"):
        if not version.isdigit():
            raise InvalidInput("a version number", field="prompt_version")
        traces = traces.filter(prompt_version__version=int(version))
    if status := value.get("status"):
        if status not in ("ok", "error"):
            raise InvalidInput("ok or error", field="status")
        traces = traces.errors() if status == "error" else traces.filter(errors=0)
    if since := value.get("since"):
        traces = traces.filter(start_time__gte=_time(since, "since"))
    if until := value.get("until"):
        traces = traces.filter(start_time__lt=_time(until, "until"))
    for key, lookup in (("min_latency_ms", "latency_ms__gte"), ("max_latency_ms", "latency_ms__lte"),
                        ("min_cost", "cost__gte"), ("max_cost", "cost__lte")):  # fmt: skip
        if raw := value.get(key):
            traces = traces.filter(**{lookup: _number(raw, key)})
    for key, raw in value.items():
        if key.startswith("attr.") and len(key) > 5 and raw:
            traces = traces.filter(trace_id__in=_spans_with_attribute(key[5:], raw).values("trace_id"))
    return traces.order_by("-start_time", "-id")


def _spans_with_attribute(key: str, value: str) -> QuerySet[Span]:
    """Spans whose kept attribute `key` is `value`, as text or as the number or boolean it spells.

    PostgreSQL answers the containment from the spans' GIN index; SQLite reads the JSON of each span.
    """
    candidates: list[object] = [value]
    if value in ("true", "false"):
        candidates.append(value == "true")
    for number in (int, float):
        try:
            candidates.append(number(value))
            break
        except ValueError:
            continue
    match = Q()
    for candidate in candidates:
        if connection.vendor == "postgresql":
            match |= Q(attributes__contains={key: candidate})
        else:
            match |= Q(**{f"attributes__{key}": candidate})
    return Span.objects.filter(match)


def get_trace(*, trace_id: str) -> Trace:
    trace = (
        Trace.objects.select_related("session", "end_user", "prompt_version__prompt")
        .filter(trace_id=trace_id.strip().lower())
        .first()
    )
    if trace is None:
        raise NotFound(f"no trace {trace_id!r}")
    return trace


def trace_spans(*, trace: Trace) -> list[Span]:
    """The trace's spans, oldest first (one query, on the partitions of the trace's days only)."""
    return list(trace.span_rows())


def search_sessions(params: Mapping[str, str]) -> QuerySet[Session]:
    """Sessions, most recent first: `user` (the end user's id as sent), `service`."""
    sessions = Session.objects.select_related("end_user")
    if user := str(params.get("user", "")).strip():
        sessions = sessions.filter(end_user__external_id=user)
    if service := str(params.get("service", "")).strip():
        sessions = sessions.filter(service=service)
    return sessions.order_by("-last_seen", "-id")


def search_end_users(params: Mapping[str, str]) -> QuerySet[EndUser]:
    """End users, most recent first; `q` finds ids containing it."""
    users = EndUser.objects.all()
    if q := str(params.get("q", "")).strip():
        users = users.filter(external_id__icontains=q)
    return users.order_by("-last_seen", "-id")


def maintain_traces(*, now: datetime.datetime | None = None) -> store.Maintenance:
    """Span partitions ahead; spans, traces, sessions and end users past LLMOPS_TRACES_RETENTION_DAYS removed."""
    return store.maintain(now or timezone.now())
