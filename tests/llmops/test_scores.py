"""Score configs and the scores recorded against them; the shared helper that ingests generations over OTLP."""

from __future__ import annotations

import json
import secrets
import time

import pytest

from llmops.models import Score, ScoreConfig
from llmops.services import scores as score_services
from llmops.services.base import InvalidInput
from llmops.traces import cost

pytestmark = pytest.mark.django_db

OTLP = "/api/v1/llmops/otlp/v1/traces"


def _attr(key: str, value: object) -> dict:
    if isinstance(value, int) and not isinstance(value, bool):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}


def new_trace_id() -> str:
    return secrets.token_hex(16)


def generation(*, trace_id: str, question: str, answer: str, model: str = "gpt-4o-mini", span_id: str = "",
               name: str = "chat", attributes: dict | None = None) -> dict:  # fmt: skip
    """One OTLP/JSON generation span (OpenInference input/output), started a few seconds ago."""
    start = time.time_ns() - 5_000_000_000
    attrs = {"gen_ai.request.model": model, "gen_ai.usage.input_tokens": 20, "gen_ai.usage.output_tokens": 8,
             "input.value": json.dumps([{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": question}]),
             "output.value": json.dumps([{"role": "assistant", "content": answer}]), **(attributes or {})}  # fmt: skip
    return {
        "traceId": trace_id, "spanId": span_id or secrets.token_hex(8), "name": name, "kind": 3,
        "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 800_000_000),
        "attributes": [_attr(k, v) for k, v in attrs.items()], "status": {},
    }  # fmt: skip


def ingest(client, spans: list[dict], service: str = "support-bot") -> None:
    """Send spans as an application's OTLP exporter does."""
    cost.PROMPT_VERSIONS.forget()
    body = {"resourceSpans": [{"resource": {"attributes": [_attr("service.name", service)]},
                               "scopeSpans": [{"scope": {"name": "app"}, "spans": spans}]}]}  # fmt: skip
    response = client.generic("POST", OTLP, json.dumps(body).encode(), content_type="application/json")
    assert response.status_code == 200, response.content


def test_a_numeric_config_bounds_every_score_of_its_name(operator):
    score_services.create_score_config(name="helpfulness", actor=operator, data_type="numeric", min_value=1,
                                       max_value=5)  # fmt: skip
    trace = new_trace_id()
    kept = score_services.record_score(trace_id=trace, name="helpfulness", value="4", source="human", actor=operator)
    assert (kept.value, kept.data_type, kept.author) == (4.0, "numeric", operator)
    with pytest.raises(InvalidInput, match="outside 'helpfulness': a number from 1 to 5"):
        score_services.record_score(trace_id=trace, name="helpfulness", value=7, source="human", actor=operator)
    with pytest.raises(InvalidInput, match="not a number"):
        score_services.record_score(trace_id=trace, name="helpfulness", value="great", source="human", actor=operator)
    assert Score.objects.count() == 1


def test_categorical_and_boolean_configs_take_only_their_values(operator):
    score_services.create_score_config(name="tone", actor=operator, data_type="categorical",
                                       categories="polite, neutral, rude")  # fmt: skip
    score_services.create_score_config(name="correct", actor=operator, data_type="boolean")
    trace = new_trace_id()
    tone = score_services.record_score(trace_id=trace, name="tone", value="rude", source="human", actor=operator)
    assert (tone.string_value, tone.value) == ("rude", 2.0)
    with pytest.raises(InvalidInput, match="not a category of 'tone': polite, neutral, rude"):
        score_services.record_score(trace_id=trace, name="tone", value="angry", source="human", actor=operator)
    down = score_services.record_score(trace_id=trace, name="correct", value="down", source="human", actor=operator)
    assert (down.string_value, down.value, down.data_type) == ("false", 0.0, "boolean")
    with pytest.raises(InvalidInput, match="not a boolean"):
        score_services.record_score(trace_id=trace, name="correct", value=0.5, source="human", actor=operator)


def test_a_config_refuses_what_cannot_be_checked(operator):
    with pytest.raises(InvalidInput, match="at least one category"):
        score_services.create_score_config(name="empty", actor=operator, data_type="categorical", categories=[])
    with pytest.raises(InvalidInput, match="min_value: must not be above max_value"):
        score_services.create_score_config(name="upside-down", actor=operator, min_value=5, max_value=1)
    with pytest.raises(InvalidInput, match="data_type"):
        score_services.create_score_config(name="odd", actor=operator, data_type="vector")
    assert not ScoreConfig.objects.exists()


def test_score_configs_through_the_api(operator_api, viewer_api):
    created = operator_api.post("/api/v1/llmops/score-configs/", {"name": "stars", "data_type": "numeric",
                                "min_value": 1, "max_value": 5}, format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    assert viewer_api.post("/api/v1/llmops/score-configs/", {"name": "x"}, format="json").status_code == 403
    refused = operator_api.post("/api/v1/llmops/score-configs/", {"name": "tags", "data_type": "categorical"},
                                format="json")  # fmt: skip
    assert refused.status_code == 400 and "categories" in refused.json()["detail"]
    listed = viewer_api.get("/api/v1/llmops/score-configs/").json()
    assert [c["name"] for c in listed["results"]] == ["stars"]


def test_a_span_score_takes_the_model_and_prompt_version_of_its_span(operator, otlp_client):
    trace = new_trace_id()
    span = generation(trace_id=trace, question="Where is my parcel?", answer="On its way.", model="gpt-4o")
    ingest(otlp_client, [span])
    score = score_services.record_score(trace_id="", span_id=span["spanId"], name="resolved", value=True,
                                        source="human", actor=operator)  # fmt: skip
    assert score.trace_id == trace and score.model == "gpt-4o" and score.data_type == "boolean"
    assert list(Score.objects.for_trace(trace)) == [score]


@pytest.fixture
def otlp_client(operator):
    from tests.conftest import api_client_for

    return api_client_for(operator)
