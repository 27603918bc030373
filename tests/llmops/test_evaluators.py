"""Online evaluators: consistent sampling, scores per generation from the scorer registry (llm-rubric through a
judge model), filters, the cursor (each generation scored once), and the score charts over time."""

from __future__ import annotations

import json

import pytest

from llmops import score_charts
from llmops.models import Evaluator, Score
from llmops.online import sampling
from llmops.online.runner import evaluate_new_spans
from llmops.services import scores as score_services
from llmops.services.base import InvalidInput
from tests.conftest import api_client_for
from tests.llmops.test_scores import generation, ingest, new_trace_id

pytestmark = pytest.mark.django_db

NOT_SORRY = [{"type": "not-contains", "config": {"value": "sorry"}, "name": "no-apology"}]


def test_sampling_is_the_same_for_every_evaluator_with_the_same_filter():
    traces = [new_trace_id() for _ in range(4000)]
    support = {"service": "support-bot"}
    tenth = {t for t in traces if sampling.in_sample(t, support, 0.1)}
    fifth = {t for t in traces if sampling.in_sample(t, support, 0.2)}
    assert tenth < fifth  # a 10% sample is inside the 20% one
    assert 300 < len(tenth) < 500 and 650 < len(fifth) < 950
    again = {t for t in traces if sampling.in_sample(t.upper(), dict(support), 0.1)}
    assert again == tenth
    other = {t for t in traces if sampling.in_sample(t, {"service": "billing"}, 0.1)}
    assert other != tenth  # another filter draws its own sample
    assert all(sampling.in_sample(t, support, 1.0) for t in traces[:10])
    assert not any(sampling.in_sample(t, support, 0.0) for t in traces[:10])


def test_an_evaluator_scores_each_new_matching_generation_once(operator):
    client = api_client_for(operator)
    before = new_trace_id()
    ingest(client, [generation(trace_id=before, question="Hi", answer="Sorry, no.")])
    evaluator = score_services.create_evaluator(name="apologies", actor=operator, scorers=NOT_SORRY,
                                                filter={"model": "gpt-4o-mini"})  # fmt: skip
    good, bad, other_model = new_trace_id(), new_trace_id(), new_trace_id()
    ingest(client, [
        generation(trace_id=good, question="Where is my parcel?", answer="It arrives tomorrow."),
        generation(trace_id=bad, question="Refund?", answer="I'm sorry, I cannot help."),
        generation(trace_id=other_model, question="Hi", answer="sorry", model="claude-3-5-haiku"),
    ])  # fmt: skip

    done = evaluate_new_spans(evaluator.pk)

    assert (done.seen, done.scored, done.scores) == (2, 2, 2)
    scores = {s.trace_id: s for s in Score.objects.filter(evaluator=evaluator)}
    assert set(scores) == {good, bad}  # not the generation stored before it, nor the other model's
    assert scores[good].value == 1.0 and scores[good].passed is True and scores[good].name == "no-apology"
    assert scores[bad].value == 0.0 and scores[bad].passed is False and "sorry" in scores[bad].comment
    assert scores[bad].span_id and scores[bad].model == "gpt-4o-mini" and scores[bad].source == "evaluator"
    again = evaluate_new_spans(evaluator.pk)
    assert (again.seen, again.scores) == (0, 0)
    assert Score.objects.filter(evaluator=evaluator).count() == 2
    evaluator.refresh_from_db()
    assert (evaluator.spans_seen, evaluator.spans_scored) == (2, 2) and evaluator.last_run_at is not None


def test_two_evaluators_with_the_same_filter_score_the_same_traces(operator):
    client = api_client_for(operator)
    filter_ = {"service": "support-bot"}
    a = score_services.create_evaluator(name="a", actor=operator, scorers=NOT_SORRY, filter=filter_,
                                        sampling_rate=0.3)  # fmt: skip
    b = score_services.create_evaluator(name="b", actor=operator, filter=filter_, sampling_rate=0.3,
                                        scorers=[{"type": "word-count", "config": {"max": 100}}])  # fmt: skip
    traces = [new_trace_id() for _ in range(60)]
    ingest(client, [generation(trace_id=t, question="Hi", answer="Hello!") for t in traces])
    evaluate_new_spans(a.pk)
    evaluate_new_spans(b.pk)
    scored_a = set(Score.objects.filter(evaluator=a).values_list("trace_id", flat=True))
    scored_b = set(Score.objects.filter(evaluator=b).values_list("trace_id", flat=True))
    assert scored_a == scored_b == {t for t in traces if sampling.in_sample(t, filter_, 0.3)}
    assert 5 < len(scored_a) < 40


def test_an_llm_rubric_evaluator_asks_its_judge_model(operator, fake_llm, llm):
    fake_llm.answers["<rubric>"] = '{"reason": "polite and on topic", "score": 0.75}'
    evaluator = score_services.create_evaluator(
        name="helpful", actor=operator, judge_model=llm,
        scorers=[{"type": "llm-rubric", "config": {"rubric": "Answers the user's question."}, "name": "helpful"}],
    )  # fmt: skip
    trace = new_trace_id()
    ingest(api_client_for(operator), [generation(trace_id=trace, question="Where is my parcel?",
                                                 answer="It arrives tomorrow.")])  # fmt: skip
    evaluate_new_spans(evaluator.pk)
    score = Score.objects.get(evaluator=evaluator)
    assert score.value == 0.75 and score.comment == "polite and on topic" and score.trace_id == trace
    grading = fake_llm.chat_requests[-1]["body"]["messages"][-1]["content"]
    assert "It arrives tomorrow." in grading and "Where is my parcel?" in grading


def test_an_evaluator_refuses_what_it_could_not_run(operator):
    with pytest.raises(InvalidInput, match="judge_model: llm-rubric scorers need a judge model"):
        score_services.create_evaluator(name="x", actor=operator,
                                        scorers=[{"type": "llm-rubric", "config": {"rubric": "ok"}}])  # fmt: skip
    with pytest.raises(InvalidInput, match="sampling_rate"):
        score_services.create_evaluator(name="x", actor=operator, scorers=NOT_SORRY, sampling_rate=2)
    with pytest.raises(InvalidInput, match="filter: unknown keys colour"):
        score_services.create_evaluator(name="x", actor=operator, scorers=NOT_SORRY, filter={"colour": "red"})
    with pytest.raises(InvalidInput, match="scorers"):
        score_services.create_evaluator(name="x", actor=operator, scorers=[{"type": "no-such-scorer"}])


def test_evaluators_through_the_api(operator_api, viewer_api):
    created = operator_api.post("/api/v1/llmops/evaluators/", {"name": "short", "sampling_rate": 0.5,
                                "scorers": [{"type": "word-count", "config": {"max": 50}}],
                                "filter": {"service": "support-bot"}}, format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    assert created.json()["filter"] == {"service": "support-bot"}
    bad = operator_api.post("/api/v1/llmops/evaluators/", {"name": "bad", "scorers": [], "sampling_rate": 0.5},
                            format="json")  # fmt: skip
    assert bad.status_code == 400 and "scorers" in bad.json()["detail"]
    assert viewer_api.post("/api/v1/llmops/evaluators/", {"name": "v", "scorers": NOT_SORRY},
                           format="json").status_code == 403  # fmt: skip


def test_scores_over_time_per_prompt_version_and_model(operator, capitals_prompt):
    client = api_client_for(operator)
    evaluator = score_services.create_evaluator(name="apologies", actor=operator, scorers=NOT_SORRY)
    linked = {"opsportal.prompt.name": "capitals", "opsportal.prompt.version": 1}
    ingest(client, [
        generation(trace_id=new_trace_id(), question="Capital?", answer="Paris.", attributes=linked),
        generation(trace_id=new_trace_id(), question="Capital?", answer="sorry, no idea.", attributes=linked),
        generation(trace_id=new_trace_id(), question="Hi", answer="Hello.", model="gpt-4o"),
    ])  # fmt: skip
    evaluate_new_spans(evaluator.pk)
    by_version = score_services.score_series(name="no-apology", by="prompt_version")
    assert {(b.group, b.mean, b.count) for b in by_version} == {
        ("capitals v1", 0.5, 2),
        ("(no prompt version)", 1.0, 1),
    }
    by_model = score_services.score_series(name="no-apology", by="model")
    assert {(b.group, b.count) for b in by_model} == {("gpt-4o-mini", 2), ("gpt-4o", 1)}
    figure = score_charts.score_over_time(by_version, name="no-apology", hourly=True)
    assert sorted(trace.name for trace in figure.data) == ["(no prompt version)", "capitals v1"]


def test_the_evaluator_pages_make_one_and_chart_its_scores(client, operator):
    client.force_login(operator)
    made = client.post("/llmops/evaluators/", {"name": "no-apology", "sampling_rate": "1", "service": "support-bot",
                                               "scorers": json.dumps(NOT_SORRY)})  # fmt: skip
    evaluator = Evaluator.objects.get(name="no-apology")
    assert made.status_code == 302 and evaluator.filter == {"service": "support-bot"}
    bad = client.post("/llmops/evaluators/", {"name": "broken", "scorers": "[{", "sampling_rate": "1"})
    assert bad.status_code == 400 and "scorers: not JSON" in bad.content.decode()
    ingest(api_client_for(operator), [generation(trace_id=new_trace_id(), question="Hi", answer="sorry")])
    evaluate_new_spans(evaluator.pk)
    page = client.get(f"/llmops/evaluators/{evaluator.pk}/").content.decode()
    assert "no-apology by prompt version" in page and "no-apology by model" in page and "no-apology=0" in page
    listing = client.get("/llmops/evaluators/").content.decode()
    assert 'data-evaluator="no-apology"' in listing and "support-bot" in listing
