"""Production trace pages: the traces list with its filters, a trace (waterfall, span tree, a span's chat,
parameters, tokens, cost and attributes), sessions as conversation threads, end users, and the dashboards.

Everything here only reads; the rows are written by the trace ingest (`llmops.traces.store`).
"""

from __future__ import annotations

import json
from collections import defaultdict

from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, render

from opsportal.accounts.roles import Role, role_required
from opsportal.pagination import CappedCountPaginator as Paginator
from opsportal.portal.charts import figure_data
from opsportal.portal.filters import checked_filters
from opsportal.portal.htmx import render_page_or_partial, wants_partial
from opsportal.portal.requests import query_without

from .. import trace_charts, trace_queries
from ..models import EndUser, Score, Session, Span, Trace
from .trace_messages import parse_chat, role_class

SESSION_TURNS = 200
USER_RECENT = 50


def _filters(data: QueryDict) -> tuple[trace_queries.TraceFilterForm, dict, list[str]]:
    query, problems = checked_filters(data, trace_queries.TraceFilterForm().fields, bind=trace_queries.TraceFilterForm)
    form = trace_queries.TraceFilterForm(query)
    return form, form.values(), problems


@role_required(Role.VIEWER)
def trace_list(request: HttpRequest) -> HttpResponse:
    """Traces newest first, filtered by the query string (so a filtered list can be shared), keyset-paged."""
    form, values, problems = _filters(request.GET)
    page = trace_queries.keyset_page(trace_queries.filtered_traces(values), request.GET.get("before", ""))
    for row in page.rows:
        row.cost_usd = float(row.cost)
    context = {
        "filters": form,
        "page": page,
        "query": query_without(request, "before"),
        "filter_problems": problems,
        "services": trace_queries.known_services(),
        "models": trace_queries.known_models(),
        "score_names": trace_queries.known_score_names(),
    }
    return render_page_or_partial(request, "llmops/trace_list.html", "llmops/partials/trace_table.html", context)


def _span_context(request: HttpRequest, trace: Trace, span: Span | None) -> dict:
    """What the span panel shows: its chat, parameters, tokens, cost and its attributes (searched by `attr`)."""
    if span is None:
        return {"trace": trace, "span": None}
    search = request.GET.get("attr", "").strip()
    attributes = sorted(
        [(key, value, "span") for key, value in (span.attributes or {}).items()]
        + [(key, value, "resource") for key, value in (span.resource or {}).items()]
    )
    rows = []
    for key, value, source in attributes:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if search and search.lower() not in key.lower() and search.lower() not in text.lower():
            continue
        rows.append((key, text, source))
    chat_in = parse_chat(span.input, span.input_truncated, "input")
    chat_out = parse_chat(span.output, span.output_truncated, "output")
    for message in [*chat_in.messages, *chat_out.messages]:
        message.css = role_class(message.role)
    return {
        "trace": trace,
        "span": span,
        "span_cost": None if span.cost is None else float(span.cost),
        "chat_in": chat_in,
        "chat_out": chat_out,
        "parameters": sorted((span.parameters or {}).items()),
        "attribute_rows": rows,
        "attribute_total": len(attributes),
        "attr_search": search,
        "events": span.events or [],
    }


@role_required(Role.VIEWER)
def trace_detail(request: HttpRequest, trace_id: str) -> HttpResponse:
    """A trace: totals, the waterfall of its spans, and one span in detail (htmx swaps only that panel)."""
    trace = get_object_or_404(
        Trace.objects.select_related("prompt_version__prompt", "end_user", "session"), trace_id=trace_id.lower()
    )
    span_id = request.GET.get("span", "").lower()
    span = trace_queries.chosen_span(trace, span_id)
    if span_id and span is None:
        raise Http404(f"Trace {trace.trace_id} has no span {span_id}.")
    span_context = _span_context(request, trace, span)
    if wants_partial(request):
        return render(request, "llmops/partials/trace_span.html", span_context)
    tree = trace_queries.span_tree(trace)
    context = {
        **span_context,
        "scores": list(Score.objects.for_trace(trace.trace_id).select_related("author", "queue", "evaluator")),
        "trace_cost": float(trace.cost),
        "tree": tree,
        "scale": [round(tree.total_ms * i / 4, 1) for i in range(5)],
    }
    return render(request, "llmops/trace_detail.html", context)


@role_required(Role.VIEWER)
def session_list(request: HttpRequest) -> HttpResponse:
    """Conversations, most recent first; `q` finds one by its key (prefix) or by its user's id."""
    search = request.GET.get("q", "").strip()
    sessions = Session.objects.select_related("end_user").order_by("-last_seen", "-id")
    if search:
        sessions = sessions.filter(key__startswith=search) | sessions.filter(end_user__external_id=search)
    page = Paginator(sessions, trace_queries.PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    for session in page.object_list:
        session.cost_usd = float(session.cost)
    context = {"page": page, "search": search, "query": query_without(request, "page")}
    return render_page_or_partial(request, "llmops/session_list.html", "llmops/partials/trace_sessions.html", context)


def _turns(traces: list[Trace]) -> list[dict]:
    """Each trace of a conversation as a turn: the last user message sent and the answer of its last generation.

    One query for the generations of every trace (bounded by the traces' times, so only those partitions are read).
    """
    if not traces:
        return []
    generations = (
        Span.objects.filter(
            trace_id__in=[t.trace_id for t in traces],
            start_time__gte=min(t.start_time for t in traces),
            start_time__lte=max(t.end_time for t in traces),
        )
        .exclude(model="")
        .only("trace_id", "start_time", "input", "output", "input_truncated", "output_truncated", "model")
        .order_by("start_time", "id")
    )
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for span in generations:
        by_trace[span.trace_id].append(span)
    turns = []
    for trace in traces:
        spans = by_trace.get(trace.trace_id, [])
        asked, answered = None, None
        if spans:
            sent = parse_chat(spans[0].input, spans[0].input_truncated, "user")
            users = [m for m in sent.messages if m.role in ("user", "input")]
            asked = users[-1] if users else (sent.messages[-1] if sent.messages else None)
            got = parse_chat(spans[-1].output, spans[-1].output_truncated, "assistant")
            answered = got.messages[-1] if got.messages else None
        turns.append({"trace": trace, "asked": asked, "answered": answered, "cost_usd": float(trace.cost)})
    return turns


@role_required(Role.VIEWER)
def session_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A conversation as a thread: each trace a turn (what the user asked, what the model answered), oldest first."""
    session = get_object_or_404(Session.objects.select_related("end_user"), pk=pk)
    traces = list(session.traces.select_related("prompt_version__prompt").order_by("start_time", "id")[:SESSION_TURNS])
    context = {
        "session": session,
        "session_cost": float(session.cost),
        "turns": _turns(traces),
        "more": session.traces.count() > SESSION_TURNS,
        "limit": SESSION_TURNS,
    }
    return render(request, "llmops/session_detail.html", context)


@role_required(Role.VIEWER)
def user_list(request: HttpRequest) -> HttpResponse:
    """End users, most recently seen first, with their generations, tokens and cost."""
    search = request.GET.get("q", "").strip()
    users = EndUser.objects.order_by("-last_seen", "-id")
    if search:
        users = users.filter(external_id__startswith=search)
    page = Paginator(users, trace_queries.PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    for user in page.object_list:
        user.cost_usd = float(user.cost)
    context = {"page": page, "search": search, "query": query_without(request, "page")}
    return render_page_or_partial(request, "llmops/user_list.html", "llmops/partials/trace_users.html", context)


@role_required(Role.VIEWER)
def user_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """An end user: totals, their cost over time, their conversations and latest traces."""
    end_user = get_object_or_404(EndUser, pk=pk)
    traces = Trace.objects.filter(end_user=end_user)
    since = end_user.first_seen
    bucket = trace_queries.bucket_for(since, end_user.last_seen)
    usage = trace_queries.overview(traces, bucket)
    recent = list(
        traces.select_related("prompt_version__prompt", "session").order_by("-start_time", "-id")[:USER_RECENT]
    )
    for trace in recent:
        trace.cost_usd = float(trace.cost)
    sessions = list(end_user.sessions.order_by("-last_seen")[:USER_RECENT])
    for session in sessions:
        session.cost_usd = float(session.cost)
    context = {
        "end_user": end_user,
        "user_cost": float(end_user.cost),
        "totals": usage.totals,
        "recent": recent,
        "sessions": sessions,
        "charts": [("user-usage", "Requests and cost", figure_data(trace_charts.requests_and_cost(usage)))],
    }
    return render(request, "llmops/user_detail.html", context)


@role_required(Role.VIEWER)
def dashboards(request: HttpRequest) -> HttpResponse:
    """Requests, errors, p50/p95 latency, tokens, cost by model, prompt version and user over the filtered window."""
    query = request.GET.copy()
    if not query.get("window") and not query.get("since"):
        query["window"] = "7d"
    form, values, problems = _filters(query)
    since, until = trace_queries.window_bounds(values)
    bucket = trace_queries.bucket_for(since, until)
    traces = trace_queries.filtered_traces(values)
    usage = trace_queries.overview(traces, bucket)
    charts = [
        ("trace-requests", "Requests and error rate", trace_charts.requests_and_errors(usage)),
        ("trace-latency", "Latency p50 / p95", trace_charts.latency(usage)),
        ("trace-tokens", "Tokens", trace_charts.tokens(usage)),
        ("trace-cost-model", "Cost by model",
         trace_charts.cost_breakdown(trace_queries.cost_by_model(traces, values, since, until, bucket), bucket)),
        ("trace-cost-prompt", "Cost by prompt version",
         trace_charts.cost_breakdown(trace_queries.cost_by_prompt_version(traces, bucket), bucket)),
        ("trace-cost-user", "Cost by user (top users)",
         trace_charts.cost_breakdown(trace_queries.cost_by_user(traces, bucket), bucket)),
    ]  # fmt: skip
    context = {
        "filters": form,
        "filter_problems": problems,
        "totals": usage.totals,
        "bucket": bucket,
        "charts": [(chart_id, title, figure_data(figure)) for chart_id, title, figure in charts],
        "query": query.urlencode(),
        "services": trace_queries.known_services(),
        "models": trace_queries.known_models(),
        "score_names": trace_queries.known_score_names(),
    }
    return render(request, "llmops/dashboard.html", context)
