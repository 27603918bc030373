"""Runs evaluators over the generations stored since their last sweep.

Each evaluator keeps a cursor: the id of the last span it looked at. A sweep (`evaluate_new_spans`, run in
Celery for every enabled evaluator by the `llmops.run-evaluators` beat entry) reads the next generations
past the cursor that match the evaluator's filter, keeps the traces in its consistent sample, scores them
with its scorers (`llm-rubric` through the judge model's provider) and stores one score per scorer and
span, moving the cursor in the same transaction. Nothing depends on a message reaching the broker: a
sweep missed while Redis is down is made by the next one, and a sweep run twice stores nothing twice
(one score per evaluator, span and name).

Late commits. A span gets its id when its export's COPY runs, not when the export commits: with two web
processes, an export whose transaction commits after a later one's holds lower ids than a cursor that has
already passed them. So on PostgreSQL every sweep records a *window*: the ids it passed (old cursor to
new) and the oldest transaction still running when it read them (`pg_snapshot_xmin` of the statement's
snapshot). Any export that was still open then wrote its rows with a transaction id (`xmin`, or its
savepoint's, which is newer) at or past that one; so later sweeps look again in each window for the
rows written by such transactions. The look is bounded and cheap on the partitioned span table: the id
range is read through each partition's BRIN index on `id`, the tests run in SQL, and only ids come back
(at most LATE_ROWS a sweep). Left out in SQL are the spans the evaluator scored already (its
one-score-per-span index) and those out of its sample (the sample's hash, a hair generous); the rest
`sampling.in_sample` decides, as for every other span. The rows the first look saw that a recent
transaction wrote are among those left out, so nothing is stored twice.
A window is dropped once every transaction that may have written into it has ended: its *fence* is the
`xmax` of a snapshot taken LLMOPS_EVALUATOR_LATE_FENCE_SECONDS (2) or more after the window (an export
takes its transaction id moments after its first span id), and once the oldest running transaction is
past the fence nothing more can commit into the window. A window whose transactions stay open longer
than LATE_WINDOW_SECONDS is given up (a warning is logged), and at most MAX_WINDOWS are kept. In normal
running a window lives two sweeps. SQLite has one writer at a time: ids come in commit order, and no
window is needed.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import BooleanField, Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from .. import scorers as scoring
from ..engine import Caller, score_async
from ..models import DataType, Evaluator, Score, ScoreConfig, Span
from ..models.scores import ScoreValueError
from ..scorers.base import canonical_json
from .cases import span_case
from .sampling import in_sample

logger = logging.getLogger(__name__)

BATCH = 500
JUDGED_BATCH = 50
LATE_ROWS = 5000
LATE_WINDOW_SECONDS = 600
MAX_WINDOWS = 64
# Written by a transaction at or past a window's xmin: the row's xmin (a 32-bit xid) widened to the 64-bit id it
# is, given a newer 64-bit id (the current snapshot's xmax) as reference.
WRITTEN_SINCE = (
    "(%s::bigint - mod(mod(%s::bigint, 4294967296) - llmops_span.xmin::text::bigint + 4294967296, 4294967296))"
    " >= %s::bigint"
)


@dataclass
class SweepResult:
    """What one sweep of one evaluator did."""

    seen: int = 0
    scored: int = 0
    scores: int = 0
    skipped_busy: bool = False


def attribute_match(key: str, value: object) -> Q:
    """Spans whose kept attribute `key` equals `value` (PostgreSQL: the spans' GIN index)."""
    if connection.vendor == "postgresql":
        return Q(attributes__contains={key: value})
    return Q(**{f"attributes__{key}": value})


def matching_generations(filter_: dict) -> QuerySet[Span]:
    """Generations (spans with a model) matching an evaluator's filter."""
    spans = Span.objects.exclude(model="")
    for key, column in (("service", "service"), ("model", "model"), ("prompt", "prompt_name"), ("name", "name")):
        if filter_.get(key):
            spans = spans.filter(**{column: filter_[key]})
    if filter_.get("prompt_version") not in (None, ""):
        spans = spans.filter(prompt_version_number=int(filter_["prompt_version"]))
    for key, value in (filter_.get("attributes") or {}).items():
        spans = spans.filter(attribute_match(key, value))
    return spans


def _specs(evaluator: Evaluator) -> list[scoring.ScorerSpec]:
    return scoring.parse_specs(evaluator.scorers)


async def _score_all(specs: list[scoring.ScorerSpec], spans: list[Span], judge) -> list[tuple]:
    caller = Caller()
    cases = [span_case(span) for span in spans]
    results = await asyncio.gather(*(score_async(specs, case, caller, judge) for case in cases))
    return list(zip(spans, results, strict=True))


def _score_rows(evaluator: Evaluator, specs: list[scoring.ScorerSpec], scored: list[tuple]) -> list[Score]:
    configs = {c.name: c for c in ScoreConfig.objects.filter(name__in=[s.display_name for s in specs])}
    rows = []
    now = timezone.now()
    for span, (_passed, _mean, results) in scored:
        for spec, result in zip(specs, results, strict=True):
            name = spec.display_name
            value, string_value, data_type = result["score"], "", DataType.NUMERIC
            if config := configs.get(name):
                try:
                    value, string_value = config.clean_value(result["score"])
                except ScoreValueError as exc:
                    logger.warning("evaluator %s: score %s of span %s refused: %s", evaluator.pk, name, span.span_id,
                                   exc)  # fmt: skip
                    continue
                data_type = config.data_type
            rows.append(Score(
                trace_id=span.trace_id, span_id=span.span_id, name=name, data_type=data_type, value=value,
                string_value=string_value, source=Score.Source.EVALUATOR, passed=result["passed"],
                comment=str(result["reason"])[:2000], config=config, evaluator=evaluator, model=span.model,
                prompt_version_id=span.prompt_version_id, created_at=now,
            ))  # fmt: skip
    return rows


def _late_fence_seconds() -> float:
    return float(getattr(settings, "LLMOPS_EVALUATOR_LATE_FENCE_SECONDS", 2.0))


@dataclass
class _Snapshot:
    """The newest span id the sweep could see, and the snapshot it saw it under (PostgreSQL, as text)."""

    newest: int | None
    text: str = ""

    @property
    def xmin(self) -> int:
        return int(self.text.split(":")[0])

    @property
    def xmax(self) -> int:
        return int(self.text.split(":")[1])


def _snapshot(cursor: int) -> _Snapshot:
    """The newest committed span id past `cursor`, with the snapshot of the same statement."""
    with connection.cursor() as db:
        if connection.vendor != "postgresql":
            db.execute("SELECT max(id) FROM llmops_span WHERE id > %s", [cursor])
            return _Snapshot(newest=db.fetchone()[0])
        db.execute("SELECT max(id), pg_current_snapshot()::text FROM llmops_span WHERE id > %s", [cursor])
        newest, text = db.fetchone()
        return _Snapshot(newest=newest, text=text)


def _windows_to_look_at(evaluator: Evaluator, now: _Snapshot) -> tuple[list[dict], list[dict]]:
    """(every window to look at in this sweep, those still open after it): fences set, settled ones dropped."""
    at_now = timezone.now()
    looked, still_open = [], []
    for window in evaluator.late_windows or []:
        age = (at_now - datetime.datetime.fromisoformat(window["at"])).total_seconds()
        if window.get("fence") is None and age >= _late_fence_seconds():
            window = {**window, "fence": now.xmax}
        looked.append(window)
        settled = window.get("fence") is not None and now.xmin >= window["fence"]
        if settled:
            continue
        if age > LATE_WINDOW_SECONDS:
            logger.warning("evaluator %s: ids %s-%s given up on, a transaction stayed open over %s s", evaluator.pk,
                           window["low"], window["high"], LATE_WINDOW_SECONDS)  # fmt: skip
            continue
        still_open.append(window)
    return looked, still_open


def _roughly_in_sample(filter_: dict, rate: float) -> Q:
    """`sampling.sample_point` below `rate` in SQL, a hair generous: the late look does not bring back the spans
    the sample left out (they would fill LATE_ROWS sweep after sweep); `sampling.in_sample` then decides."""
    threshold = min(2**64 - 1, int(rate * 2**64) + 2**24).to_bytes(8, "big")
    prefix = f"{canonical_json(filter_ or {})}|"
    point = "substring(sha256(convert_to(%s || lower(llmops_span.trace_id), 'UTF8')) from 1 for 8) < %s"
    return Q(RawSQL(point, (prefix, threshold), output_field=BooleanField()))  # noqa: S611 (parameters)


def _late_spans(evaluator: Evaluator, windows: list[dict], now: _Snapshot) -> tuple[list[Span], bool]:
    """The matching generations in `windows` written by transactions open when the window was read, not scored by
    this evaluator yet, in its sample; (spans, whether LATE_ROWS cut the look short)."""
    if not windows:
        return [], False
    ref = now.xmax
    late = Q()
    for window in windows:
        recent = RawSQL(WRITTEN_SINCE, (ref, ref, window["xmin"]), output_field=BooleanField())  # noqa: S611 (parameters)
        late |= Q(id__gt=window["low"], id__lte=window["high"]) & Q(recent)
    scored = Score.objects.filter(evaluator=evaluator, span_id=OuterRef("span_id"), trace_id=OuterRef("trace_id"))
    candidates = (
        matching_generations(evaluator.filter)
        .filter(id__gt=min(w["low"] for w in windows), id__lte=max(w["high"] for w in windows))
        .filter(late).exclude(Exists(scored))
    )  # fmt: skip
    if evaluator.sampling_rate < 1:
        candidates = candidates.filter(_roughly_in_sample(evaluator.filter, evaluator.sampling_rate))
    rows = list(candidates.order_by("id").values_list("id", "trace_id")[:LATE_ROWS])
    wanted = [pk for pk, trace_id in rows if in_sample(trace_id, evaluator.filter, evaluator.sampling_rate)]
    spans = list(Span.objects.filter(id__in=wanted, id__lte=max(w["high"] for w in windows)).order_by("id"))
    return spans, len(rows) == LATE_ROWS


def evaluate_new_spans(evaluator_id: int, *, limit: int | None = None) -> SweepResult:
    """One sweep of an evaluator: score the sampled generations stored past its cursor (at most `limit`), and
    those committed late below it (see the module's docstring)."""
    result = SweepResult()
    with transaction.atomic():
        evaluator = (
            Evaluator.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("judge_model__provider")
            .filter(pk=evaluator_id, enabled=True)
            .first()
        )
        if evaluator is None:
            result.skipped_busy = Evaluator.objects.filter(pk=evaluator_id, enabled=True).exists()
            return result
        specs = _specs(evaluator)
        judged = any(scoring.SCORERS[spec.type].is_llm for spec in specs)
        size = limit or (JUDGED_BATCH if judged else BATCH)
        # The newest id committed now (with the snapshot the late look uses): with fewer matches than `size`,
        # the cursor moves up to it.
        now = _snapshot(evaluator.cursor)
        spans = list(matching_generations(evaluator.filter).filter(id__gt=evaluator.cursor).order_by("id")[:size])
        looked, still_open = _windows_to_look_at(evaluator, now) if now.text else ([], [])
        late, cut_short = _late_spans(evaluator, looked, now)
        late = late[:size]
        sampled = [s for s in spans if in_sample(s.trace_id, evaluator.filter, evaluator.sampling_rate)] + late
        if judged and evaluator.judge_model is None:
            logger.warning("evaluator %s has llm-rubric scorers but no judge model: nothing scored", evaluator.pk)
            sampled = []
        scored = asyncio.run(_score_all(specs, sampled, evaluator.judge_model)) if sampled else []
        rows = _score_rows(evaluator, specs, scored)
        Score.objects.bulk_create(rows, ignore_conflicts=True)
        result.seen, result.scored, result.scores = len(spans) + len(late), len(scored), len(rows)
        if len(spans) == size:
            cursor = spans[-1].id
        else:
            cursor = max(evaluator.cursor, now.newest or 0, spans[-1].id if spans else 0)
        # Windows whose late rows were not all looked at or scored stay, settled or not.
        windows = looked if cut_short or len(late) == size else still_open
        if now.text and cursor > evaluator.cursor:
            windows = [*windows, {"low": evaluator.cursor, "high": cursor, "xmin": now.xmin, "fence": None,
                                  "at": timezone.now().isoformat()}]  # fmt: skip
        if len(windows) > MAX_WINDOWS:
            logger.warning("evaluator %s: %s late windows, the oldest given up on", evaluator.pk, len(windows))
            windows = windows[-MAX_WINDOWS:]
        Evaluator.objects.filter(pk=evaluator.pk).update(
            cursor=cursor, late_windows=windows, spans_seen=evaluator.spans_seen + result.seen,
            spans_scored=evaluator.spans_scored + result.scored, last_run_at=timezone.now(),
        )  # fmt: skip
    return result


def enabled_evaluators() -> list[int]:
    return list(Evaluator.objects.filter(enabled=True).order_by("pk").values_list("pk", flat=True))
