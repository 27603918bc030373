"""Real trace senders against the live portal: the OpenTelemetry SDK's protobuf OTLP/HTTP exporter, and the
official openai SDK instrumented by opentelemetry-instrumentation-openai-v2 (GenAI conventions) and by
openinference-instrumentation-openai (OpenInference), calling the local OpenAI-compatible server.
The generations arrive with model, tokens and cost, under the right trace and session."""

from __future__ import annotations

import openai
import pytest
from django.db import connection
from openinference.instrumentation import using_attributes
from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInferenceInstrumentor
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as GenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from llmops.models import Span, Trace
from llmops.traces import cost
from tests.portal.factories import make_token

# gpt-4o-mini in the built-in price table: 0.15 USD in, 0.60 USD out per million tokens.
PRICE_IN, PRICE_OUT = 0.15, 0.60


@pytest.fixture
def traces_token(operator, live_server):
    """An operator's API token, on span rows emptied (the live server's tests commit; the table is unmanaged)."""
    cost.PROMPT_VERSIONS.forget()
    cost.forget_prices()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM llmops_span")
    yield make_token(operator)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM llmops_span")


def _provider(live_server, token: str, service: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/api/v1/llmops/otlp/v1/traces",
        headers={"Authorization": f"Bearer {token}"},
        compression=Compression.Gzip,
        timeout=10,
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _client(fake_llm) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake_llm.base_url, api_key="sk-test", max_retries=0)


def _expected_cost(span: Span) -> float:
    return (span.input_tokens * PRICE_IN + span.output_tokens * PRICE_OUT) / 1e6


@pytest.mark.django_db(transaction=True)
def test_the_sdk_exporter_sends_a_tree_with_an_error_and_unknown_attributes(traces_token, live_server):
    provider = _provider(live_server, traces_token, "checkout")
    tracer = provider.get_tracer("shop")
    try:
        with tracer.start_as_current_span("POST /orders", attributes={"http.route": "/orders"}) as root:
            with tracer.start_as_current_span("reserve stock", attributes={"shop.items": 3}) as child:
                child.set_status(Status(StatusCode.ERROR, "out of stock"))
            trace_id = format(root.get_span_context().trace_id, "032x")
        provider.force_flush()
    finally:
        provider.shutdown()
    trace = Trace.objects.get(trace_id=trace_id)
    assert (trace.name, trace.service, trace.spans, trace.errors, trace.status) == (
        "POST /orders", "checkout", 2, 1, "error"
    )  # fmt: skip
    spans = {span.name: span for span in trace.span_rows()}
    assert spans["reserve stock"].parent_span_id == spans["POST /orders"].span_id
    assert spans["POST /orders"].parent_span_id == ""
    assert (spans["reserve stock"].status, spans["reserve stock"].status_message) == ("error", "out of stock")
    assert spans["reserve stock"].attributes == {"shop.items": 3}
    assert spans["POST /orders"].resource["otel.scope.name"] == "shop"


@pytest.mark.django_db(transaction=True)
def test_openai_v2_instrumentation_genai_conventions(traces_token, live_server, fake_llm):
    provider = _provider(live_server, traces_token, "support-bot")
    tracer = provider.get_tracer("support-bot")
    instrumentor = GenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        client = _client(fake_llm)
        with tracer.start_as_current_span(
            "conversation turn", attributes={"gen_ai.conversation.id": "conv-v2"}
        ) as turn:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "What is the capital of France?"}],
                temperature=0.1,
            )  # fmt: skip
            trace_id = format(turn.get_span_context().trace_id, "032x")
        provider.force_flush()
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    trace = Trace.objects.select_related("session").get(trace_id=trace_id)
    assert trace.session.key == "conv-v2" and trace.spans == 2 and trace.generations == 1
    generation = trace.span_rows().get(parent_span_id__gt="")
    assert generation.model == "gpt-4o-mini" and generation.provider == "openai" and generation.operation == "chat"
    assert generation.input_tokens > 0 and generation.output_tokens > 0
    assert float(generation.cost) == pytest.approx(_expected_cost(generation))
    assert (trace.input_tokens, trace.output_tokens) == (generation.input_tokens, generation.output_tokens)
    assert generation.parameters["temperature"] == pytest.approx(0.1)


@pytest.mark.django_db(transaction=True)
def test_openinference_instrumentation_conventions(traces_token, live_server, fake_llm):
    provider = _provider(live_server, traces_token, "support-bot")
    instrumentor = OpenInferenceInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        client = _client(fake_llm)
        with using_attributes(session_id="conv-oi", user_id="customer-9"):
            for question in ("What is the capital of France?", "And the capital of Japan?"):
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
        provider.force_flush()
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    traces = list(Trace.objects.select_related("session", "end_user").filter(session__key="conv-oi"))
    assert len(traces) == 2  # one trace per call, both in the conversation
    for trace in traces:
        assert trace.end_user.external_id == "customer-9" and trace.model == "gpt-4o-mini"
        generation = trace.span_rows().get()
        assert generation.operation == "llm" and generation.input_tokens > 0 and generation.output_tokens > 0
        assert float(generation.cost) == pytest.approx(_expected_cost(generation))
        assert generation.input.startswith("[")  # the messages, from llm.input_messages.*
        assert "capital" in generation.input and generation.output
    session = traces[0].session
    session.refresh_from_db()
    assert session.generations == 2 and session.end_user.external_id == "customer-9"
