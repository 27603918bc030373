"""The feedback API as applications call it: POST /api/v1/llmops/feedback/ with a trace or span, a score or
thumbs, and a comment."""

from __future__ import annotations

import pytest

from llmops.models import Score
from llmops.services import scores as score_services
from tests.conftest import api_client_for
from tests.llmops.test_scores import generation, ingest, new_trace_id

pytestmark = pytest.mark.django_db

FEEDBACK = "/api/v1/llmops/feedback/"


def test_thumbs_down_on_a_stored_trace_is_kept_with_its_comment_and_model(viewer_api, viewer, operator):
    trace = new_trace_id()
    ingest(api_client_for(operator), [generation(trace_id=trace, question="Refund?", answer="No.", model="gpt-4o")])
    answer = viewer_api.post(FEEDBACK, {"trace_id": trace, "value": "down", "comment": "rude answer",
                                        "user_id": "customer-7"}, format="json")  # fmt: skip
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["trace_known"] is True and body["name"] == "user-feedback"
    assert (body["data_type"], body["value"], body["string_value"]) == ("boolean", 0.0, "false")
    score = Score.objects.get()
    assert score.source == "feedback" and score.comment == "rude answer" and score.author == viewer
    assert score.end_user == "customer-7" and score.model == "gpt-4o"
    listed = viewer_api.get("/api/v1/llmops/scores/", {"trace_id": trace}).json()
    assert listed["count"] == 1 and listed["results"][0]["comment"] == "rude answer"


def test_feedback_before_its_trace_is_kept_and_joined_when_the_trace_arrives(viewer_api, operator):
    trace = new_trace_id()
    early = viewer_api.post(FEEDBACK, {"trace_id": trace.upper(), "score": 0.9}, format="json")
    assert early.status_code == 201, early.content
    assert early.json()["trace_known"] is False and early.json()["value"] == 0.9
    ingest(api_client_for(operator), [generation(trace_id=trace, question="Hi", answer="Hello!")])
    trace_page = viewer_api.get(f"/api/v1/llmops/scores/?trace_id={trace}").json()
    assert [s["value"] for s in trace_page["results"]] == [0.9]


def test_feedback_on_one_generation_by_span_id(viewer_api, operator):
    trace = new_trace_id()
    span = generation(trace_id=trace, question="Hi", answer="Hello!")
    ingest(api_client_for(operator), [span])
    answer = viewer_api.post(FEEDBACK, {"span_id": span["spanId"], "value": True}, format="json")
    assert answer.status_code == 201, answer.content
    assert answer.json()["trace_id"] == trace and answer.json()["span_id"] == span["spanId"]


@pytest.mark.parametrize(("body", "problem"), [
    ({"value": "up"}, "trace_id: a trace_id or a span_id is needed"),
    ({"trace_id": "not-hex", "value": "up"}, "trace_id: 'not-hex' is not a trace id (32 hex digits)"),
    ({"trace_id": "a" * 32}, "score: send a score (a number) or a value"),
    ({"trace_id": "a" * 32, "score": "lots"}, "score: 'lots' is not a number"),
    ({"span_id": "0123456789abcdef", "value": "up"}, "span_id: no span 0123456789abcdef in the last 7 days"),
])  # fmt: skip
def test_bad_feedback_is_a_400_naming_the_problem_and_nothing_is_kept(viewer_api, body, problem):
    answer = viewer_api.post(FEEDBACK, body, format="json")
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith(problem), answer.json()
    assert not Score.objects.exists()


def test_feedback_is_checked_against_the_config_of_its_name(viewer_api, operator):
    score_services.create_score_config(name="stars", actor=operator, min_value=1, max_value=5)
    trace = new_trace_id()
    assert viewer_api.post(FEEDBACK, {"trace_id": trace, "name": "stars", "score": 4}, format="json").status_code == 201
    refused = viewer_api.post(FEEDBACK, {"trace_id": trace, "name": "stars", "score": 9}, format="json")
    assert refused.status_code == 400 and "outside 'stars'" in refused.json()["detail"]


def test_feedback_needs_a_token(client):
    assert (
        client.post(FEEDBACK, {"trace_id": "a" * 32, "value": "up"}, content_type="application/json").status_code == 401
    )
