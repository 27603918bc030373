"""A real Celery worker runs an evaluator on a generation ingested over OTLP: the beat task's sweep stores the
score, and a second sweep stores nothing twice."""

from __future__ import annotations

import pytest

from llmops import tasks
from llmops.models import Evaluator, Score
from llmops.services import scores as score_services
from tests.conftest import api_client_for
from tests.helpers import wait_for
from tests.llmops.test_scores import generation, ingest, new_trace_id

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_a_worker_scores_a_new_generation_when_the_beat_task_runs(operator, worker):
    evaluator = score_services.create_evaluator(
        name="no-apology", actor=operator, filter={"service": "support-bot"},
        scorers=[{"type": "not-contains", "config": {"value": "sorry"}, "name": "no-apology"}],
    )  # fmt: skip
    trace = new_trace_id()
    ingest(api_client_for(operator), [generation(trace_id=trace, question="Refund?", answer="sorry, no refunds.")])

    tasks.run_evaluators.delay()

    assert wait_for(lambda: Score.objects.filter(evaluator=evaluator).exists(), timeout=30)
    score = Score.objects.get(evaluator=evaluator)
    assert score.trace_id == trace and score.value == 0.0 and score.passed is False
    tasks.run_evaluators.delay()
    assert wait_for(lambda: Evaluator.objects.get(pk=evaluator.pk).spans_seen == 1 and Score.objects.count() == 1,
             timeout=30)  # fmt: skip
    assert Score.objects.filter(evaluator=evaluator).count() == 1
