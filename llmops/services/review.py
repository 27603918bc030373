"""Human review: annotation queues of traces, reviewers taking items one at a time, and exporting reviewed or
low-scoring cases into an evaluation dataset.

An item is claimed by one reviewer until `claimed_until` (CLAIM_MINUTES): `claim_next` locks candidate rows
with SKIP LOCKED, so two reviewers asking at once get different items; a claim left to expire goes back to
the queue.
"""

from __future__ import annotations

import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from opsportal.audit import services as audit

from ..models import AnnotationItem, AnnotationQueue, Dataset, DatasetItem, Score, ScoreConfig, Span, Trace
from ..online.cases import last_text, messages
from .base import Actor, InvalidInput, NotAllowed, clean_name, user_of
from .scores import clean_trace_id, record_score
from .traces import search_traces

CLAIM_MINUTES = 10
FILL_LIMIT = 500


@transaction.atomic
def create_queue(*, name: object, actor: Actor, score_configs: list[ScoreConfig], description: str = "",
                 filter: dict | None = None) -> AnnotationQueue:  # fmt: skip
    """A queue scored with `score_configs`; with a `filter` (trace search keys) it is filled from matching traces."""
    name = clean_name(name)
    if AnnotationQueue.objects.filter(name=name).exists():
        raise InvalidInput(f"a queue named {name!r} exists already", field="name")
    if not score_configs:
        raise InvalidInput("choose at least one score config", field="score_configs")
    queue = AnnotationQueue.objects.create(name=name, description=description or "", filter=filter or {},
                                           created_by=user_of(actor))  # fmt: skip
    queue.score_configs.set(score_configs)
    audit.record(action="create", actor=actor, obj=queue)
    if queue.filter:
        fill_queue(queue=queue, actor=actor)
    return queue


def add_traces(*, queue: AnnotationQueue, trace_ids: list[str], actor: Actor) -> int:
    """Add traces by hand (from the trace page); a trace already in the queue is left as it is. Returns how many."""
    ids = [clean_trace_id(t) for t in trace_ids]
    rows = [AnnotationItem(queue=queue, trace_id=t, added_by=user_of(actor)) for t in dict.fromkeys(ids)]
    before = queue.items.count()
    AnnotationItem.objects.bulk_create(rows, ignore_conflicts=True)
    return queue.items.count() - before


def fill_queue(*, queue: AnnotationQueue, actor: Actor, limit: int = FILL_LIMIT) -> int:
    """Add the newest traces matching the queue's filter that it does not hold yet (at most `limit`)."""
    held = AnnotationItem.objects.filter(queue=queue).values("trace_id")
    ids = list(search_traces(queue.filter).exclude(trace_id__in=held).values_list("trace_id", flat=True)[:limit])
    return add_traces(queue=queue, trace_ids=ids, actor=actor) if ids else 0


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
        raise InvalidInput("this item was reviewed already", field="item")
    user = user_of(actor)
    held_by_other = item.claimed_by_id is not None and item.claimed_by_id != (user.pk if user else None)
    if held_by_other and item.claimed_until and item.claimed_until > timezone.now():
        raise NotAllowed(f"{item.claimed_by} is reviewing this item")
    return item


@transaction.atomic
def submit_review(*, item: AnnotationItem, actor: Actor, values: dict[str, object], comment: str = "") -> list[Score]:
    """The reviewer's scores (by config name; empty values left out) and comment; the item is done."""
    item = _held(item, actor)
    names = set(item.queue.score_configs.values_list("name", flat=True))
    given = {name: value for name, value in values.items() if value not in (None, "")}
    if not given:
        raise InvalidInput("give at least one score, or skip the item", field="values")
    unknown = set(given) - names
    if unknown:
        raise InvalidInput(f"not a score of this queue: {', '.join(sorted(unknown))}", field="values")
    scores = [record_score(trace_id=item.trace_id, span_id=item.span_id, name=name, value=value,
                           source=Score.Source.HUMAN, actor=actor, comment=comment, queue=item.queue)
              for name, value in sorted(given.items())]  # fmt: skip
    item.status, item.reviewed_by, item.reviewed_at = AnnotationItem.Status.DONE, user_of(actor), timezone.now()
    item.claimed_until = None
    item.save(update_fields=["status", "reviewed_by", "reviewed_at", "claimed_until"])
    return scores


@transaction.atomic
def skip_item(*, item: AnnotationItem, actor: Actor) -> None:
    item = _held(item, actor)
    item.status, item.reviewed_by, item.reviewed_at = AnnotationItem.Status.SKIPPED, user_of(actor), timezone.now()
    item.claimed_until = None
    item.save(update_fields=["status", "reviewed_by", "reviewed_at", "claimed_until"])


def queue_counts(queue: AnnotationQueue) -> dict[str, int]:
    counts = {status: 0 for status in AnnotationItem.Status.values}
    for status in queue.items.values_list("status", flat=True):
        counts[status] += 1
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
