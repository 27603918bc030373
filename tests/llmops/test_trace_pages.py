"""The trace pages as a user reads them: the filtered list (filters in the URL, keyset pages), a trace's
waterfall and span tree, a generation's chat with its parameters, tokens, cost and searchable attributes,
sessions as threads, end users, and a prompt version's production figures.

Rows are written as the ingest leaves them (spans in their day partition, the trace, session and user
rows with their totals); `stored_trace` is shared with the dashboard and browser tests.
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from llmops.models import EndUser, Score, Session, Span, Trace
from opsportal.partitions import DayPartitions

from . import factories
from .pages import text_of, text_of_fragment

pytestmark = pytest.mark.django_db
SPAN_DAYS = DayPartitions("llmops_span")


def _hex(width: int) -> str:
    # Random ids: spans of browser tests (transactional, the span table is not flushed) outlive their test.
    return secrets.token_hex(width // 2)


def stored_trace(
    *,
    start: datetime.datetime | None = None,
    name: str = "support.answer",
    service: str = "support-bot",
    model: str = "gpt-4o-mini",
    user: str = "",
    session: str = "",
    prompt_version=None,
    latency_ms: float = 1200.0,
    cost: str = "0.0021",
    error: bool = False,
    question: str = "Where is my parcel?",
    answer: str = "It left the depot this morning.",
    extra_spans: int = 0,
    attributes: dict | None = None,
    output_truncated: bool = False,
) -> Trace:
    """A trace of a root span, one generation under it (and `extra_spans` tool spans), stored as the ingest does."""
    start = start or timezone.now() - datetime.timedelta(minutes=5)
    end = start + datetime.timedelta(milliseconds=latency_ms)
    if connection.vendor == "postgresql":
        SPAN_DAYS.ensure({start.astimezone(datetime.UTC).date()})
    trace_id = _hex(32)
    root_id = _hex(16)
    generation_id = _hex(16)
    version_number = prompt_version.version if prompt_version else None
    common = {"trace_id": trace_id, "service": service, "session_key": session, "user_key": user}
    spans = [
        Span(start_time=start, end_time=end, duration_ms=latency_ms, span_id=root_id, name=name, kind="server",
             status="error" if error else "ok", status_message="upstream timeout" if error else "", **common),
        Span(start_time=start + datetime.timedelta(milliseconds=100),
             end_time=start + datetime.timedelta(milliseconds=latency_ms * 0.8), duration_ms=latency_ms * 0.8 - 100,
             span_id=generation_id, parent_span_id=root_id, name=f"chat {model}", kind="client", operation="chat",
             provider="openai", model=model, request_model=model, input_tokens=42, output_tokens=17,
             cost=Decimal(cost), prompt_version=prompt_version, prompt_version_number=version_number,
             prompt_name=prompt_version.prompt.name if prompt_version else "",
             input=json.dumps([{"role": "system", "content": "You are a courteous support agent."},
                               {"role": "user", "content": question}]),
             output=json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": answer}],
                                 "finish_reason": "stop"}])[: 40 if output_truncated else None],
             output_truncated=output_truncated, parameters={"temperature": 0.2, "max_tokens": 256},
             attributes=attributes or {"deployment.region": "eu-west-1", "app.feature": "parcel-tracking"},
             resource={"service.version": "1.4.2"}, **common),
    ]  # fmt: skip
    for index in range(extra_spans):
        offset = 100 + index * (latency_ms * 0.7 / max(extra_spans, 1))
        spans.append(
            Span(
                start_time=start + datetime.timedelta(milliseconds=offset),
                end_time=start + datetime.timedelta(milliseconds=offset + 5),
                duration_ms=5,
                span_id=_hex(16),
                parent_span_id=generation_id,
                name=f"tool lookup {index}",
                kind="internal",
                operation="execute_tool",
                **common,
            )
        )
    Span.objects.bulk_create(spans)
    end_user = EndUser.objects.get_or_create(external_id=user)[0] if user else None
    session_row = Session.objects.get_or_create(key=session, defaults={"end_user": end_user, "service": service})[0] if session else None  # fmt: skip  # noqa: E501
    for row in (end_user, session_row):
        if row is not None:
            row.generations += 1
            row.input_tokens += 42
            row.output_tokens += 17
            row.cost += Decimal(cost)
            row.first_seen = min(row.first_seen, start)
            row.last_seen = start
            row.save()
    return Trace.objects.create(
        trace_id=trace_id, name=name, service=service, start_time=start, end_time=end, latency_ms=latency_ms,
        spans=len(spans), generations=1, errors=1 if error else 0, input_tokens=42, output_tokens=17,
        cost=Decimal(cost), model=model, model_names=[model], session=session_row, end_user=end_user,
        prompt_version=prompt_version,
    )  # fmt: skip


def listed_ids(response) -> list[str]:
    return re.findall(r'data-trace-id="([0-9a-f]{32})"', response.content.decode())


def test_list_filters_are_in_the_url_and_combine(client, viewer, operator):
    version = factories.prompt(actor=operator, name="support").versions.get()
    wanted = stored_trace(service="support-bot", model="gpt-4o-mini", user="u-1", session="s-1",
                          prompt_version=version, latency_ms=2500, cost="0.05", error=True)  # fmt: skip
    stored_trace(service="support-bot", model="gpt-4o-mini", user="u-2", latency_ms=300)
    stored_trace(service="search", model="claude-3-haiku", user="u-1", latency_ms=2600, cost="0.06", error=True)
    stored_trace(start=timezone.now() - datetime.timedelta(days=3), service="support-bot", user="u-1", error=True)
    client.force_login(viewer)
    url = reverse("llmops:traces")
    assert len(listed_ids(client.get(url))) == 4
    query = {"window": "24h", "service": "support-bot", "model": "gpt-4o-mini", "user": "u-1", "session": "s-1",
             "prompt_version": version.pk, "status": "error", "min_latency": 2000, "max_latency": 3000,
             "min_cost": "0.01", "max_cost": "0.1"}  # fmt: skip
    response = client.get(url, query)
    assert listed_ids(response) == [wanted.trace_id]
    body = response.content.decode()
    assert 'value="support-bot"' in body and 'value="u-1"' in body, "the form shows the filters it applied"
    assert "support v1" in text_of(response)
    assert listed_ids(client.get(url, {"window": "all", "user": "u-1", "status": "error"})) != [wanted.trace_id]
    assert len(listed_ids(client.get(url, {"window": "all", "user": "u-1", "status": "error"}))) == 3
    assert listed_ids(client.get(url, {"model": "claude-3-haiku"})) != []
    assert listed_ids(client.get(url, {"user": "nobody"})) == []
    assert "No trace matches" in text_of(client.get(url, {"user": "nobody"}))


def test_a_bad_filter_value_is_named_not_an_empty_list(client, viewer):
    stored_trace()
    client.force_login(viewer)
    response = client.get(reverse("llmops:traces"), {"status": "broken", "min_latency": "fast"})
    assert len(listed_ids(response)) == 1
    text = text_of(response)
    assert "status" in text.lower() and "broken" in text


def test_keyset_pages_walk_every_trace_once_with_constant_queries(client, viewer, settings):
    start = timezone.now() - datetime.timedelta(hours=2)
    made = [stored_trace(start=start + datetime.timedelta(seconds=i)).trace_id for i in range(7)]
    # Two traces at the very same instant still come once each.
    made.append(stored_trace(start=start + datetime.timedelta(seconds=3)).trace_id)
    client.force_login(viewer)
    url = reverse("llmops:traces")
    from llmops import trace_queries

    size = trace_queries.PAGE_SIZE
    trace_queries.PAGE_SIZE = 3
    try:
        seen, query = [], {"window": "24h"}
        for _ in range(5):
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url, query)
            seen += listed_ids(response)
            pages = len(queries)
            match = re.search(r'href="\?([^"]*before=[^"]+)"', response.content.decode())
            if not match:
                break
            query = dict(pair.split("=", 1) for pair in match.group(1).replace("&amp;", "&").split("&"))
        assert sorted(seen) == sorted(made) and len(seen) == len(made)
        assert pages < 15
        assert "Newest" in text_of(response)
    finally:
        trace_queries.PAGE_SIZE = size


def test_trace_page_draws_the_waterfall_and_the_generation_as_a_chat(client, viewer):
    trace = stored_trace(latency_ms=1000, extra_spans=3, question="Where is parcel 42?", answer="On its way to you.")
    client.force_login(viewer)
    response = client.get(reverse("llmops:trace", args=[trace.trace_id]))
    assert response.status_code == 200
    body = response.content.decode()
    rows = re.findall(r'data-span-id="([0-9a-f]{16})" data-depth="(\d)"', body)
    assert len(rows) == 5
    assert [depth for _, depth in rows] == ["0", "1", "2", "2", "2"], "children are indented under their parent"
    bars = re.findall(r'wf-bar[^"]*" style="left: ([\d.]+)%; width: ([\d.]+)%"', body)
    assert float(bars[0][0]) == 0 and float(bars[0][1]) == 100, "the root spans the whole trace"
    assert float(bars[1][0]) == pytest.approx(10, abs=0.1) and float(bars[1][1]) == pytest.approx(70, abs=0.1)
    text = text_of(response)
    assert "Where is parcel 42?" in text and "On its way to you." in text
    assert "You are a courteous support agent." in text
    assert 'data-role="assistant"' in body and 'data-role="user"' in body
    assert "temperature" in text and "0.2" in text and "max_tokens" in text
    assert "Tokens in 42" in text and "Tokens out 17" in text
    assert "$0.0021" in text
    assert "deployment.region" in text and "eu-west-1" in text and "service.version" in text


def test_a_span_is_chosen_by_the_url_and_htmx_swaps_only_its_panel(client, viewer):
    trace = stored_trace(extra_spans=1, attributes={"tool.name": "parcel_lookup", "retry.count": 2, "x.other": "y"})
    tool = Span.objects.get(trace_id=trace.trace_id, name="tool lookup 0")
    client.force_login(viewer)
    url = reverse("llmops:trace", args=[trace.trace_id])
    page = client.get(url, {"span": tool.span_id})
    assert "tool lookup 0" in text_of(page) and "execute_tool" in text_of(page)
    generation = Span.objects.get(trace_id=trace.trace_id, operation="chat")
    fragment = client.get(url, {"span": generation.span_id, "attr": "retry"}, HTTP_HX_REQUEST="true")
    html = fragment.content.decode()
    assert 'id="span-detail"' in html and 'id="waterfall"' not in html
    assert "retry.count" in html and "parcel_lookup" not in html
    assert "1 of 4" in text_of_fragment(html)
    assert client.get(url, {"span": "ffffffffffffffff"}).status_code == 404
    assert client.get(reverse("llmops:trace", args=["0" * 32])).status_code == 404


def test_a_cut_output_is_shown_as_text_and_marked(client, viewer):
    trace = stored_trace(output_truncated=True)
    client.force_login(viewer)
    response = client.get(reverse("llmops:trace", args=[trace.trace_id]))
    assert 'data-truncated="output"' in response.content.decode()
    assert "was cut when stored" in text_of(response)


def test_trace_page_reads_a_thousand_spans_in_a_few_queries(client, viewer):
    trace = stored_trace(extra_spans=998)
    client.force_login(viewer)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("llmops:trace", args=[trace.trace_id]))
    assert len(re.findall(r'data-span-id="', response.content.decode())) == 1000
    assert len(queries) < 12


def test_session_page_reads_as_a_thread(client, viewer):
    start = timezone.now() - datetime.timedelta(hours=1)
    stored_trace(start=start, session="conv-7", user="ana", question="Hi, my order is late.", answer="Sorry! Number?")
    stored_trace(start=start + datetime.timedelta(minutes=1), session="conv-7", user="ana", question="It is 42.",
                 answer="Order 42 arrives tomorrow.")  # fmt: skip
    stored_trace(session="conv-8", user="ben")
    client.force_login(viewer)
    listing = client.get(reverse("llmops:sessions"))
    assert "conv-7" in text_of(listing) and "conv-8" in text_of(listing)
    assert "conv-8" not in text_of(client.get(reverse("llmops:sessions"), {"q": "ana"}))
    session = Session.objects.get(key="conv-7")
    text = text_of(client.get(reverse("llmops:session", args=[session.pk])))
    order = [text.index(s) for s in ("Hi, my order is late.", "Sorry! Number?", "It is 42.", "Order 42 arrives")]
    assert order == sorted(order)
    assert "ana" in text and "2 generations" in text


def test_users_list_and_user_page(client, viewer):
    stored_trace(user="ana", session="conv-1", cost="0.5")
    stored_trace(user="ana", session="conv-2", cost="0.25", error=True)
    stored_trace(user="ben")
    client.force_login(viewer)
    listing = text_of(client.get(reverse("llmops:users")))
    assert "ana" in listing and "ben" in listing and "$0.75" in listing
    ana = EndUser.objects.get(external_id="ana")
    response = client.get(reverse("llmops:user", args=[ana.pk]))
    text = text_of(response)
    assert "conv-1" in text and "conv-2" in text and "Requests 2" in text and "50.0%" in text
    assert 'data-chart="user-usage"' in response.content.decode()


def test_prompt_version_page_shows_its_production_quality(client, viewer, operator):
    version = factories.prompt(actor=operator, name="support").versions.get()
    for latency, error in ((100, False), (200, False), (300, False), (400, True)):
        stored_trace(prompt_version=version, latency_ms=latency, error=error, cost="0.01")
    stored_trace(latency_ms=9000)
    client.force_login(viewer)
    response = client.get(version.get_absolute_url())
    text = text_of(response)
    section = text[text.index("In production") :]
    assert "4 requests" in section and "25.0%" in section and "$0.04" in section
    assert "250 ms" in section, "the median latency of its traces"
    assert f"prompt_version={version.pk}" in response.content.decode()


def test_pages_need_a_login(client):
    trace = stored_trace()
    for url in (reverse("llmops:traces"), reverse("llmops:trace", args=[trace.trace_id]), reverse("llmops:sessions"),
                reverse("llmops:users"), reverse("llmops:dashboards")):  # fmt: skip
        assert client.get(url).status_code == 302


def test_scores_and_feedback_show_on_the_trace_and_filter_the_list(client, viewer):
    good = stored_trace(name="good answer")
    bad = stored_trace(name="bad answer")
    stored_trace(name="unscored")
    generation = Span.objects.get(trace_id=bad.trace_id, operation="chat")
    Score.objects.create(trace_id=good.trace_id, name="helpfulness", value=0.9, source=Score.Source.EVALUATOR,
                         passed=True)  # fmt: skip
    Score.objects.create(trace_id=bad.trace_id, span_id=generation.span_id, name="helpfulness", value=0.2,
                         source=Score.Source.EVALUATOR, passed=False)  # fmt: skip
    Score.objects.create(trace_id=bad.trace_id, name="thumbs", value=0, string_value="false", end_user="ana",
                         source=Score.Source.FEEDBACK, comment="Did not answer my question")  # fmt: skip
    client.force_login(viewer)
    url = reverse("llmops:traces")
    assert listed_ids(client.get(url, {"score": "helpfulness", "max_score": "0.5"})) == [bad.trace_id]
    assert listed_ids(client.get(url, {"score": "helpfulness", "min_score": "0.5"})) == [good.trace_id]
    assert sorted(listed_ids(client.get(url, {"score": "helpfulness"}))) == sorted([good.trace_id, bad.trace_id])
    response = client.get(reverse("llmops:trace", args=[bad.trace_id]))
    section = text_of_fragment(re.search(r'id="trace-scores".*?</section>', response.content.decode(), re.S).group(0))
    assert "helpfulness 0.2 fail" in section
    assert "thumbs false" in section and "Did not answer my question" in section and "ana" in section
    assert generation.span_id in section
