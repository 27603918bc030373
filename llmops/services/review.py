"""Human review: annotation queues of traces, reviewers taking items one at a time, and exporting reviewed or
low-scoring cases into an evaluation dataset.

An item is claimed by one reviewer until `claimed_until` (CLAIM_MINUTES): `claim_next` locks candidate rows
with SKIP LOCKED, so two reviewers asking at once get different items; a claim left to expire goes back to
the queue.

A queue with a filter is filled when it is made (the newest FILL_LIMIT matching traces) and then keeps
filling: `fill_queue`, run every minute by the `llmops.fill-review-queues` beat entry, adds the matching
traces stored past the queue's `fill_cursor` (a trace id), at most FILL_LIMIT a run. It also looks again at
the traces that started in the last FILL_RECHECK_MINUTES: a trace whose root span (its service and name)
or error arrives in a later export starts matching after the cursor passed it, and a trace row whose export
committed after a later one's has an id below the cursor. A trace is in a queue once (the unique
constraint on queue and trace id): filling twice adds nothing twice.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.utils import timezone

from opsportal.audit import services as audit

from ..models import AnnotationItem, AnnotationQueue, Dataset, DatasetItem, Score, ScoreConfig, Span, Trace
from ..models.scores import ScoreValueError
from ..online.cases import last_text, messages
from .base import Actor, InvalidInput, NotAllowed, clean_name, user_of
from .scores import clean_trace_id, record_score
from .traces import search_traces

CLAIM_MINUTES = 10
FILL_LIMIT = 500
FILL_RECHECK_MINUTES = 15
MAX_TRACES_ADDED = 1000
FILTER_KEYS = {"service", "model", "session", "user", "prompt", "prompt_version", "status", "since", "until",
               "min_latency_ms", "max_latency_ms", "min_cost", "max_cost"}  # fmt: skip


def clean_queue_filter(value: object) -> dict:
    """Trace search keys (`llmops.services.traces.search_traces`) with text values; `attr.<key>` for attributes."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("an object of trace search keys (service, model, status ...)", field="filter")
    unknown = sorted(k for k in value if k not in FILTER_KEYS and not (str(k).startswith("attr.") and len(k) > 5))
    if unknown:
        raise InvalidInput(f"unknown keys {', '.join(unknown)}; known: {', '.join(sorted(FILTER_KEYS))}, attr.<key>",
                           field="filter")  # fmt: skip
    cleaned = {}
    for key, raw in value.items():
        if isinstance(raw, dict | list):
            raise InvalidInput(f"{key}: a text or number, not {type(raw).__name__}", field="filter")
        if raw is not None and str(raw).strip():
            cleaned[key] = str(raw).strip()
    try:
        search_traces(cleaned)
    except InvalidInput as exc:
        raise InvalidInput(str(exc), field="filter") from None
    return cleaned


def _clean_configs(score_configs: list[ScoreConfig]) -> list[ScoreConfig]:
    if not score_configs:
        raise InvalidInput("choose at least one score config", field="score_configs")
    return list(score_configs)


@transaction.atomic
def create_queue(*, name: object, actor: Actor, score_configs: list[ScoreConfig], description: str = "",
                 filter: dict | None = None) -> AnnotationQueue:  # fmt: skip
    """A queue scored with `score_configs`; with a `filter` (trace search keys) it is filled from matching traces,
    the newest ones now and those that arrive from then on every minute."""
    name = clean_name(name)
    if AnnotationQueue.objects.filter(name=name).exists():
        raise InvalidInput(f"a queue named {name!r} exists already", field="name")
    configs = _clean_configs(score_configs)
    queue = AnnotationQueue.objects.create(name=name, description=description or "",
                                           filter=clean_queue_filter(filter), created_by=user_of(actor))  # fmt: skip
    queue.score_configs.set(configs)
    audit.record(action="create", actor=actor, obj=queue)
    if queue.filter:
        _first_fill(queue=queue, actor=actor)
    return queue


@transaction.atomic
def update_queue(*, queue: AnnotationQueue, actor: Actor, **fields: object) -> AnnotationQueue:
    """Change a queue's name, description, score configs or filter. A new filter fills the queue as a new
    queue is filled (the newest matching traces now, new ones from then on); items already in it stay."""
    unknown = set(fields) - {"name", "description", "score_configs", "filter"}
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    queue = AnnotationQueue.objects.select_for_update().get(pk=queue.pk)
    if "name" in fields:
        name = clean_name(fields["name"])
        if AnnotationQueue.objects.filter(name=name).exclude(pk=queue.pk).exists():
            raise InvalidInput(f"a queue named {name!r} exists already", field="name")
        queue.name = name
    if "description" in fields:
        queue.description = str(fields["description"] or "")
    refill = False
    if "filter" in fields:
        new_filter = clean_queue_filter(fields["filter"])
        refill = bool(new_filter) and new_filter != queue.filter
        queue.filter = new_filter
    queue.save()
    if "score_configs" in fields:
        queue.score_configs.set(_clean_configs(fields["score_configs"]))  # type: ignore[arg-type]
    audit.record(action="update", actor=actor, obj=queue, message=f"Queue {queue.name} changed")
    if refill:
        _first_fill(queue=queue, actor=actor)
    return queue


@transaction.atomic
def delete_queue(*, queue: AnnotationQueue, actor: Actor) -> None:
    """Remove a queue and its items; the scores reviewers gave stay (without their queue)."""
    audit.record(action="delete", actor=actor, obj=queue)
    queue.delete()


def add_traces(*, queue: AnnotationQueue, trace_ids: list[str], actor: Actor) -> int:
    """Add traces by hand (from the trace page or the API); a trace already in the queue is left as it is.
    Returns how many were added."""
    if not isinstance(trace_ids, list | tuple):
        raise InvalidInput("a list of trace ids", field="trace_ids")
    if len(trace_ids) > MAX_TRACES_ADDED:
        raise InvalidInput(f"at most {MAX_TRACES_ADDED} at a time", field="trace_ids")
    ids = [clean_trace_id(t, "trace_ids") for t in trace_ids]
    return _add(queue, dict.fromkeys(ids), actor)


def _add(queue: AnnotationQueue, trace_ids: Iterable[str], actor: Actor) -> int:
    rows = [AnnotationItem(queue=queue, trace_id=t, added_by=user_of(actor)) for t in trace_ids]
    if not rows:
        return 0
    before = queue.items.count()
    AnnotationItem.objects.bulk_create(rows, ignore_conflicts=True)
    return queue.items.count() - before


def _in_queue(queue: AnnotationQueue) -> Exists:
    return Exists(AnnotationItem.objects.filter(queue=queue, trace_id=OuterRef("trace_id")))


def _first_fill(*, queue: AnnotationQueue, actor: Actor, limit: int = FILL_LIMIT) -> int:
    """The newest traces matching the filter (at most `limit`); the periodic filling goes on from the newest trace."""
    newest = Trace.objects.aggregate(newest=Max("id"))["newest"] or 0
    ids = list(search_traces(queue.filter).filter(id__lte=newest).exclude(_in_queue(queue))
               .values_list("trace_id", flat=True)[:limit])  # fmt: skip
    queue.fill_cursor, queue.last_filled_at, queue.last_fill_added = newest, timezone.now(), _add(queue, ids, actor)
    queue.save(update_fields=["fill_cursor", "last_filled_at", "last_fill_added"])
    return queue.last_fill_added


@dataclass
class FillResult:
    """What one periodic fill of one queue did."""

    added: int = 0
    cursor: int = 0
    skipped_busy: bool = False


def fill_queue(*, queue_id: int, limit: int = FILL_LIMIT) -> FillResult | None:
    """Add the traces matching the queue's filter stored since its last fill (and those that started in the last
    FILL_RECHECK_MINUTES, see the module's docstring), at most `limit`. None when the queue is gone or has no
    filter; `skipped_busy` when another fill of it is running."""
    with transaction.atomic():
        queue = AnnotationQueue.objects.select_for_update(skip_locked=True).filter(pk=queue_id).first()
        if queue is None:
            exists = AnnotationQueue.objects.filter(pk=queue_id).exists()
            return FillResult(skipped_busy=True) if exists else None
        if not queue.filter:
            return None
        now = timezone.now()
        newest = Trace.objects.aggregate(newest=Max("id"))["newest"] or 0
        recent = Q(id__lte=queue.fill_cursor, start_time__gte=now - datetime.timedelta(minutes=FILL_RECHECK_MINUTES))
        rows = list(
            search_traces(queue.filter).filter(Q(id__gt=queue.fill_cursor, id__lte=newest) | recent)
            .exclude(_in_queue(queue)).order_by("id").values_list("id", "trace_id")[:limit]
        )  # fmt: skip
        added = _add(queue, [trace_id for _, trace_id in rows], None)
        # With `limit` rows, more may match past the last one: the cursor stops there. Else every trace up to
        # the newest was looked at.
        cursor = max(queue.fill_cursor, rows[-1][0]) if len(rows) == limit else max(queue.fill_cursor, newest)
        AnnotationQueue.objects.filter(pk=queue.pk).update(fill_cursor=cursor, last_filled_at=now,
                                                           last_fill_added=added)  # fmt: skip
        return FillResult(added=added, cursor=cursor)


def filling_queues() -> list[int]:
    """The queues with a filter (the others are filled by hand)."""
    return list(AnnotationQueue.objects.exclude(filter={}).order_by("pk").values_list("pk", flat=True))


def claim_next(*, queue: AnnotationQueue, actor: Actor) -> AnnotationItem | None:
    """The reviewer's current item, else the oldest pending item nobody holds, claimed for CLAIM_MINUTES."""
    user = user_of(actor)
    if user is None:
        raise NotAllowed("sign in to review")
    now = timezone.now()
    with transaction.atomic():
        mine = AnnotationItem.objects.filter(queue=queue, status=AnnotationItem.Status.PENDING, claimed_by=user,
                                             claimed_until__gt=now).order_by("id").first()  # fmt: skip
        if mine is not None:
            return mine
        item = (
            AnnotationItem.objects.select_for_update(skip_locked=True)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now), queue=queue,
                    status=AnnotationItem.Status.PENDING)
            .order_by("id").first()
        )  # fmt: skip
        if item is None:
            return None
        item.claimed_by, item.claimed_until = user, now + datetime.timedelta(minutes=CLAIM_MINUTES)
        item.save(update_fields=["claimed_by", "claimed_until"])
        return item


def _held(item: AnnotationItem, actor: Actor) -> AnnotationItem:
    item = AnnotationItem.objects.select_for_update().get(pk=item.pk)
    if item.status != AnnotationItem.Status.PENDING:
        raise InvalidInput(f"this item was {item.status} already", field="item")
    user = user_of(actor)
    held_by_other = item.claimed_by_id is not None and item.claimed_by_id != (user.pk if user else None)
    if held_by_other and item.claimed_until and item.claimed_until > timezone.now():
        raise NotAllowed(f"{item.claimed_by} is reviewing this item")
    return item


@transaction.atomic
def submit_review(*, item: AnnotationItem, actor: Actor, values: dict[str, object], comment: str = "") -> list[Score]:
    """The reviewer's scores (by config name; empty values left out) and comment; the item is done.

    Every value is checked against its config before anything is stored: a bad one is refused naming the
    config (`values.<name>`), and nothing of the review is kept."""
    item = _held(item, actor)
    if not isinstance(values, dict):
        raise InvalidInput("an object of score config name -> value", field="values")
    configs = {c.name: c for c in item.queue.score_configs.all()}
    given = {str(name): value for name, value in values.items() if value not in (None, "")}
    if not given:
        raise InvalidInput("give at least one score, or skip the item", field="values")
    unknown = set(given) - set(configs)
    if unknown:
        raise InvalidInput(f"not a score of this queue: {', '.join(sorted(unknown))} "
                           f"(its scores: {', '.join(sorted(configs))})", field="values")  # fmt: skip
    for name, value in sorted(given.items()):
        try:
            configs[name].clean_value(value)
        except ScoreValueError as exc:
            raise InvalidInput(str(exc), field=f"values.{name}") from None
    scores = [record_score(trace_id=item.trace_id, span_id=item.span_id, name=name, value=value,
                           source=Score.Source.HUMAN, actor=actor, comment=comment, queue=item.queue)
              for name, value in sorted(given.items())]  # fmt: skip
    item.status, item.reviewed_by, item.reviewed_at = AnnotationItem.Status.DONE, user_of(actor), timezone.now()
    item.claimed_until = None
    item.save(update_fields=["status", "reviewed_by", "reviewed_at", "claimed_until"])
    return scores


@transaction.atomic
def skip_item(*, item: AnnotationItem, actor: Actor) -> AnnotationItem:
    """The reviewer passes on the item: it is skipped (not offered again) and recorded as theirs."""
    item = _held(item, actor)
    item.status, item.reviewed_by, item.reviewed_at = AnnotationItem.Status.SKIPPED, user_of(actor), timezone.now()
    item.claimed_until = None
    item.save(update_fields=["status", "reviewed_by", "reviewed_at", "claimed_until"])
    return item


def queue_counts(queue: AnnotationQueue) -> dict[str, int]:
    """How many items are pending, done and skipped (one grouped count)."""
    counts = {status: 0 for status in AnnotationItem.Status.values}
    for row in queue.items.order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts


# --- Export into a dataset -------------------------------------------------------------------------------------


def generation_of(trace_id: str, span_id: str) -> Span | None:
    """The span scored, else the trace's last generation."""
    trace = Trace.objects.filter(trace_id=trace_id).first()
    if trace is None:
        return None
    spans = trace.span_rows()
    if span_id:
        return spans.filter(span_id=span_id).first()
    return spans.exclude(model="").order_by("-start_time", "-id").first()


def low_scoring_traces(*, name: str, below: float, days: int = 30) -> list[tuple[str, str]]:
    """(trace id, span id) of the scores `name` under `below` in the last `days`."""
    since = timezone.now() - datetime.timedelta(days=days)
    rows = Score.objects.filter(name=name, value__lt=below, created_at__gte=since).order_by("-created_at")
    return list(dict.fromkeys(rows.values_list("trace_id", "span_id")))


def reviewed_traces(*, queue: AnnotationQueue) -> list[tuple[str, str]]:
    items = queue.items.filter(status=AnnotationItem.Status.DONE).order_by("id")
    return list(items.values_list("trace_id", "span_id"))


@transaction.atomic
def export_to_dataset(*, cases: list[tuple[str, str]], dataset_name: str, actor: Actor, tag: str = "production"
                      ) -> tuple[Dataset, int]:  # fmt: skip
    """Each case's generation as a dataset item: the input messages and the last user message as variables,
    the output as the expected answer, the trace, span and scores in its metadata. The dataset is made when
    missing; a trace already exported into it is not added twice. Returns the dataset and how many were added."""
    name = clean_name(dataset_name, "dataset")
    dataset = Dataset.objects.filter(name=name).first()
    if dataset is None:
        dataset = Dataset.objects.create(name=name, description="Production cases exported from review",
                                         created_by=user_of(actor))  # fmt: skip
        audit.record(action="create", actor=actor, obj=dataset)
    known = {str(m.get("trace_id")) for m in dataset.items.values_list("metadata", flat=True) if isinstance(m, dict)}
    rows = []
    for trace_id, span_id in cases:
        if trace_id in known:
            continue
        span = generation_of(trace_id, span_id)
        if span is None:
            continue
        scores = [{"name": s.name, "value": s.value, "string_value": s.string_value, "comment": s.comment,
                   "source": s.source} for s in Score.objects.for_trace(trace_id)]  # fmt: skip
        rows.append(DatasetItem(
            dataset=dataset,
            input={"input": last_text(span.input, ("user", "human")), "messages": messages(span.input)},
            expected_output=last_text(span.output, ("assistant", "model", "ai")),
            metadata={"trace_id": trace_id, "span_id": span.span_id, "model": span.model, "scores": scores},
            tags=[tag],
        ))  # fmt: skip
        known.add(trace_id)
    DatasetItem.objects.bulk_create(rows)
    if rows:
        dataset.updated_at = timezone.now()
        dataset.save(update_fields=["updated_at"])
        audit.record(action="update", actor=actor, obj=dataset, message=f"{len(rows)} production cases exported")
    return dataset, len(rows)
