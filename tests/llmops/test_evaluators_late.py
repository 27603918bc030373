"""Spans committed late: an export whose transaction commits after a later export's holds lower span ids than the
evaluator's cursor already passed (two web processes). The next sweeps still score them, each span once, and the
sample decides them as it decides every other span."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection, transaction

from llmops.models import Evaluator, Score, Span
from llmops.online import sampling
from llmops.online.runner import evaluate_new_spans
from llmops.services import scores as score_services
from llmops.services import traces as trace_services
from llmops.traces import decode
from tests.conftest import api_client_for
from tests.llmops.test_scores import _attr, generation, ingest, new_trace_id

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SUPPORT = {"service": "support-bot"}
NOT_SORRY = [{"type": "not-contains", "config": {"value": "sorry"}, "name": "no-apology"}]


def _export(spans: list[dict]) -> bytes:
    resource = {"attributes": [_attr("service.name", "support-bot")]}
    return json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}).encode()


class SlowExport(threading.Thread):
    """An export stored through the trace services in another connection, its transaction held open until
    `commit()`: its spans have their ids, but no other connection sees them."""

    def __init__(self, spans: list[dict]) -> None:
        super().__init__(daemon=True)
        self.body, self.stored, self.release, self.error = _export(spans), threading.Event(), threading.Event(), None

    def run(self) -> None:
        try:
            with transaction.atomic():
                trace_services.ingest_traces(batch=decode.decode_json(self.body))
                self.stored.set()
                assert self.release.wait(60)
        except BaseException as exc:
            self.error = exc
            self.stored.set()
        finally:
            connection.close()

    def commit(self) -> None:
        self.release.set()
        self.join(60)
        assert self.error is None, self.error


def _scores_per_span(evaluator: Evaluator) -> dict[str, int]:
    counts: dict[str, int] = {}
    for span_id in Score.objects.filter(evaluator=evaluator).values_list("span_id", flat=True):
        counts[span_id] = counts.get(span_id, 0) + 1
    return counts


@pytest.fixture
def sender(operator):
    return api_client_for(operator)


@pytest.fixture(autouse=True)
def _fence_at_the_next_sweep(settings):
    settings.LLMOPS_EVALUATOR_LATE_FENCE_SECONDS = 0


def test_a_span_committed_after_the_cursor_passed_it_is_still_scored_once(operator, sender):
    evaluator = score_services.create_evaluator(name="no-apology", actor=operator, scorers=NOT_SORRY, filter=SUPPORT)
    late_trace, early_trace = new_trace_id(), new_trace_id()
    slow = SlowExport([generation(trace_id=late_trace, question="Refund?", answer="sorry, no refunds.")])
    slow.start()
    assert slow.stored.wait(60) and slow.error is None
    ingest(sender, [generation(trace_id=early_trace, question="Parcel?", answer="It arrives tomorrow.")])

    first = evaluate_new_spans(evaluator.pk)

    assert (first.seen, first.scored) == (1, 1)
    assert set(Score.objects.filter(evaluator=evaluator).values_list("trace_id", flat=True)) == {early_trace}
    slow.commit()
    late_span = Span.objects.get(trace_id=late_trace)
    evaluator.refresh_from_db()
    assert late_span.id < evaluator.cursor  # the cursor had passed it before it was committed

    second = evaluate_new_spans(evaluator.pk)

    assert (second.seen, second.scored) == (1, 1)
    late_score = Score.objects.get(evaluator=evaluator, trace_id=late_trace)
    assert late_score.value == 0.0 and late_score.passed is False and late_score.span_id == late_span.span_id
    for _ in range(3):
        assert evaluate_new_spans(evaluator.pk).scores == 0
    assert _scores_per_span(evaluator) == {late_span.span_id: 1, Span.objects.get(trace_id=early_trace).span_id: 1}
    evaluator.refresh_from_db()
    assert (evaluator.spans_seen, evaluator.spans_scored) == (2, 2)


def test_late_spans_are_sampled_as_every_other_span_and_none_is_scored_twice(operator, sender):
    evaluator = score_services.create_evaluator(name="sampled", actor=operator, scorers=NOT_SORRY, filter=SUPPORT,
                                                sampling_rate=0.5)  # fmt: skip
    late = [new_trace_id() for _ in range(30)]
    on_time = [new_trace_id() for _ in range(30)]
    slow = SlowExport([generation(trace_id=t, question="Hi", answer="Hello.") for t in late])
    slow.start()
    assert slow.stored.wait(60) and slow.error is None
    ingest(sender, [generation(trace_id=t, question="Hi", answer="Hello.") for t in on_time[:15]])
    evaluate_new_spans(evaluator.pk)
    # While the slow export is still open, more exports arrive and are swept.
    ingest(sender, [generation(trace_id=t, question="Hi", answer="Hello.") for t in on_time[15:]])
    evaluate_new_spans(evaluator.pk)
    scored_before = set(Score.objects.filter(evaluator=evaluator).values_list("trace_id", flat=True))
    assert scored_before.isdisjoint(late)
    slow.commit()

    for _ in range(3):
        evaluate_new_spans(evaluator.pk)

    scored = list(Score.objects.filter(evaluator=evaluator).values_list("trace_id", flat=True))
    expected = {t for t in late + on_time if sampling.in_sample(t, SUPPORT, 0.5)}
    assert set(scored) == expected and len(scored) == len(expected)  # each sampled span once, no other
    assert {t for t in late if t in expected}  # some late ones were in the sample
    assert len(expected) < 60
