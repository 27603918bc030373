"""Executes evaluation runs: generation through the official `openai` SDK (async client), scoring,
and storing each result exactly once.

- Concurrency is bounded per provider (its `max_concurrency`, or the run's lower `concurrency`),
  held only while a request is in flight.
- Retries: 429, 5xx, timeouts and connection errors are retried with exponential backoff and
  jitter, honouring `Retry-After` / `retry-after-ms`; other 4xx are not retried. The SDK's own
  retries are off so that this policy is the only one.
- A run holds a lease (renewed while it works). A worker that dies leaves a stale lease; the
  periodic sweeper re-enqueues the run and the next execution generates only the cells that have
  no stored result (unique per run, item and column), so nothing is lost or done twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import json
import logging
import os
import queue
import random
import socket
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.db.models.constants import OnConflict
from django.utils import timezone

from opsportal.bulk import fast_bulk_update
from opsportal.encryption import decrypt

from . import scorers as scoring
from . import templating
from .models import EvalRun, LLMModel, Provider, RunColumn, RunItem, RunResult
from .summary import summarise

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60
FLUSH_EVERY_SECONDS = 0.5
FLUSH_EVERY_RESULTS = 100
COLLECT_EVERY_SECONDS = 0.1
MAX_RETRY_DELAY = 60.0
RETRYABLE_STATUS = {408, 409, 429}


def lease_seconds() -> float:
    """How long a run's lease lasts without renewal: a worker silent this long is taken for dead."""
    return float(getattr(settings, "LLMOPS_LEASE_SECONDS", LEASE_SECONDS))


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- Lease ---------------------------------------------------------------------------------------------------------


def acquire_lease(run_id: int, owner: str) -> bool:
    now = timezone.now()
    taken = EvalRun.objects.filter(
        Q(lease_owner="") | Q(lease_expires_at__lt=now) | Q(lease_owner=owner),
        pk=run_id,
        status__in=[EvalRun.Status.QUEUED, EvalRun.Status.RUNNING],
    ).update(lease_owner=owner, lease_expires_at=now + datetime.timedelta(seconds=lease_seconds()))
    return taken == 1


def release_lease(run_id: int, owner: str) -> None:
    EvalRun.objects.filter(pk=run_id, lease_owner=owner).update(lease_owner="", lease_expires_at=None)


def stalled_runs() -> list[int]:
    """Runs whose worker is gone (lease expired) or that never reached a worker (queued > 2 minutes)."""
    now = timezone.now()
    return list(
        EvalRun.objects.filter(
            Q(status=EvalRun.Status.RUNNING, lease_expires_at__lt=now)
            | Q(status=EvalRun.Status.RUNNING, lease_owner="")
            | Q(status=EvalRun.Status.QUEUED, created_at__lt=now - datetime.timedelta(minutes=2), lease_owner="")
            | Q(status=EvalRun.Status.QUEUED, lease_expires_at__lt=now)
        ).values_list("id", flat=True)[:100]
    )


# --- Generation ----------------------------------------------------------------------------------------------------


@dataclass
class Generation:
    output: str = ""
    finish_reason: str = ""
    latency_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    attempts: int = 0
    error: str = ""


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Seconds to wait before attempt `attempt + 1`: the server's Retry-After, else backoff with jitter."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_RETRY_DELAY)
    base = settings.LLMOPS_RETRY_BASE_SECONDS * 2 ** (attempt - 1)
    return min(base, MAX_RETRY_DELAY) * (0.5 + random.random() / 2)  # "equal jitter": at least half the backoff


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    if headers.get("retry-after-ms"):
        try:
            return float(headers["retry-after-ms"]) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return (parsed - datetime.datetime.now(datetime.UTC)).total_seconds() if parsed else None


def _describe(exc: Exception) -> str:
    import openai

    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        message = body.get("message") or (body.get("error") or {}).get("message") if body else None
        return f"HTTP {exc.status_code}: {message or exc.message}"
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        return f"connection error: {cause or exc}"
    return f"{type(exc).__name__}: {exc}"


class Caller:
    """One AsyncOpenAI client and one concurrency bound per provider, shared by a run's requests."""

    def __init__(self, run_concurrency: int | None = None) -> None:
        self.run_concurrency = run_concurrency
        self.clients: dict[int, object] = {}
        self.semaphores: dict[int, asyncio.Semaphore] = {}

    def _client(self, provider: Provider):
        from openai import AsyncOpenAI

        if provider.pk not in self.clients:
            self.clients[provider.pk] = AsyncOpenAI(
                api_key=decrypt(provider.api_key) or "not-needed",
                base_url=provider.base_url,
                timeout=provider.timeout_seconds,
                max_retries=0,
                default_headers=provider.default_headers or None,
            )
            limit = provider.max_concurrency
            if self.run_concurrency:
                limit = min(limit, self.run_concurrency)
            self.semaphores[provider.pk] = asyncio.Semaphore(limit)
        return self.clients[provider.pk], self.semaphores[provider.pk]

    async def chat(self, model: LLMModel, messages: list[dict], parameters: dict) -> Generation:
        import openai

        client, semaphore = self._client(model.provider)
        attempts_allowed = 1 + model.provider.max_retries
        result = Generation()
        for attempt in range(1, attempts_allowed + 1):
            result.attempts = attempt
            failure: Exception | None = None
            try:
                async with semaphore:
                    started = time.perf_counter()
                    # The SDK's generic `post` with the answer as a plain dict: the same request, errors and
                    # exceptions as `chat.completions.create`, without its per-call parameter transformation
                    # and response models, which cost 40% of the client's CPU per request.
                    response = await client.post(
                        "/chat/completions", body={"model": model.name, "messages": messages, **parameters},
                        cast_to=dict,
                    )  # fmt: skip
                    result.latency_ms = (time.perf_counter() - started) * 1000
            except (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                    openai.APIConnectionError) as exc:  # fmt: skip
                result.error, failure = _describe(exc), exc
            except openai.APIStatusError as exc:
                result.error, failure = _describe(exc), exc
                if exc.status_code not in RETRYABLE_STATUS and exc.status_code < 500:
                    return result  # other 4xx: asking again will not help
            except Exception as exc:  # a malformed answer, for example
                result.error = _describe(exc)
                return result
            else:
                try:
                    _read_answer(response, result)
                except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
                    result.error = f"malformed answer: {type(exc).__name__}: {exc}"
                    return result
                result.error = ""
                return result
            if attempt < attempts_allowed:
                await asyncio.sleep(retry_delay(attempt, _retry_after(failure)))
        result.error = f"{result.error} (gave up after {attempts_allowed} attempts)"
        return result

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()


def _read_answer(answer: dict, result: Generation) -> None:
    """Fill `result` from a chat completion (the JSON object); raises on a malformed one."""
    if not isinstance(answer, dict):
        raise TypeError(f"expected a JSON object, got {type(answer).__name__}")
    choices = answer.get("choices") or []
    choice = choices[0] if choices else {}
    message = choice.get("message") or {}
    content = message.get("content")
    result.output = content if isinstance(content, str) else ""
    result.finish_reason = choice.get("finish_reason") or ""
    usage = answer.get("usage") or {}
    result.input_tokens = _tokens(usage.get("prompt_tokens"))
    result.output_tokens = _tokens(usage.get("completion_tokens"))


def _tokens(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else None


def _parameters(version_parameters: dict) -> dict:
    return {key: value for key, value in (version_parameters or {}).items() if value is not None}


async def test_connection(provider: Provider, model_name: str) -> tuple[bool, str]:
    """One small call; (True, the answer) or (False, the exact error)."""
    caller = Caller()
    model = LLMModel(provider=provider, name=model_name)
    provider.max_retries = 0
    try:
        generation = await caller.chat(model, [{"role": "user", "content": "Say OK."}], {"max_tokens": 5})
    finally:
        await caller.close()
    if generation.error:
        return False, generation.error
    return True, f"{generation.output!r} in {generation.latency_ms:.0f} ms"


# --- Scoring -------------------------------------------------------------------------------------------------------


def _case(item: RunItem, output: str, latency_ms, cost, input_tokens, output_tokens) -> scoring.Case:
    return scoring.Case(
        output=output,
        expected=item.expected_output or None,
        context=item.context or None,
        variables=item.input,
        latency_ms=latency_ms,
        cost=cost,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


def _score_dict(spec: scoring.ScorerSpec, result: scoring.ScoreResult) -> dict:
    return {
        "name": spec.display_name,  # "not-contains" for a negated contains, so the summary keeps them apart
        "type": spec.type,
        "score": round(float(result.score), 6),
        "passed": bool(result.passed),
        "reason": result.reason,
        "value": result.value,
        "weight": spec.weight,
    }


def _combine(specs: list[scoring.ScorerSpec], results: list[scoring.ScoreResult]) -> tuple[bool, float, list[dict]]:
    total_weight = sum(spec.weight for spec in specs) or 1.0
    score = sum(spec.weight * r.score for spec, r in zip(specs, results, strict=True)) / total_weight
    return all(r.passed for r in results), score, [_score_dict(s, r) for s, r in zip(specs, results, strict=True)]


async def score_async(specs, case: scoring.Case, caller: Caller | None, judge: LLMModel | None):
    """Every scorer, with llm-rubric scorers asking the judge model."""
    results = []
    for spec in specs:
        if scoring.SCORERS[spec.type].is_llm:
            generation = await caller.chat(judge, scoring.judge_messages(spec, case), {"temperature": 0})
            if generation.error:
                results.append(scoring.ScoreResult(0.0, False, f"judge failed: {generation.error}"))
            else:
                results.append(scoring.parse_judge_answer(spec, generation.output))
        else:
            results.append(scoring.score(spec, case))
    return _combine(specs, results)


# --- Execution -----------------------------------------------------------------------------------------------------


class RunState:
    def __init__(self, run: EvalRun, owner: str) -> None:
        self.run = run
        self.owner = owner
        self.pending: list[RunResult] = []
        self.last_flush = time.monotonic()
        self.cancelled = False


def _flush(state: RunState) -> None:
    """Store finished results (exactly once), refresh counters, renew the lease, notice cancellation."""
    rows, state.pending = state.pending, []
    with transaction.atomic():
        if rows:
            _insert_results(rows)
        counts = RunResult.objects.filter(run_id=state.run.pk).aggregate(
            done=Count("id"),
            errors=Count("id", filter=~Q(error="")),
            passed=Count("id", filter=Q(passed=True)),
            cost=Sum("cost"),
        )
        now = timezone.now()
        EvalRun.objects.filter(pk=state.run.pk).update(
            done=counts["done"], errors=counts["errors"], passed=counts["passed"], cost=counts["cost"] or 0.0,
            lease_expires_at=now + datetime.timedelta(seconds=lease_seconds()),
        )  # fmt: skip
        state.cancelled = EvalRun.objects.filter(pk=state.run.pk, cancel_requested=True).exists()
    state.last_flush = time.monotonic()


RESULT_COLUMNS = (
    "run_id", "item_id", "column_id", "rendered_messages", "output", "finish_reason", "latency_ms", "input_tokens",
    "output_tokens", "cost", "attempts", "error", "passed", "score", "scores", "created_at",
)  # fmt: skip


def _insert_results(rows: list[RunResult]) -> None:
    """INSERT results, skipping a cell that has one already (the unique constraint keeps each cell once).

    What bulk_create(ignore_conflicts=True) does, without its ~0.25 ms of Python per row: this thread holds
    the GIL meanwhile, and the event loop's answers wait for it.
    """
    ops = connection.ops
    table = RunResult._meta.db_table
    sql = (
        f"{ops.insert_statement(on_conflict=OnConflict.IGNORE)} {ops.quote_name(table)} "
        f"({', '.join(ops.quote_name(column) for column in RESULT_COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(RESULT_COLUMNS))}) "
        f"{ops.on_conflict_suffix_sql([], OnConflict.IGNORE, [], [])}"
    )
    json_value, when = ops.adapt_json_value, ops.adapt_datetimefield_value
    params = [
        (
            row.run_id, row.item_id, row.column_id, json_value(row.rendered_messages, None), row.output,
            row.finish_reason, row.latency_ms, row.input_tokens, row.output_tokens, row.cost, row.attempts, row.error,
            row.passed, row.score, json_value(row.scores, None), when(row.created_at),
        )
        for row in rows
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _pending_cells(run: EvalRun) -> list[tuple[RunItem, RunColumn]]:
    items = list(run.items.order_by("position"))
    columns = list(run.columns.select_related("prompt_version", "model__provider").order_by("position"))
    done = set(RunResult.objects.filter(run=run).values_list("item_id", "column_id"))
    return [(item, column) for column in columns for item in items if (item.pk, column.pk) not in done]


def execute(run_id: int, owner: str | None = None) -> str:
    """Run (or resume) a run. Returns its final status, or 'busy' when another worker holds it.

    The requests run on an asyncio loop in a helper thread; this thread stores what comes back,
    so every database access stays on the caller's connection.
    """
    owner = owner or worker_id()
    if not acquire_lease(run_id, owner):
        return "busy"
    run = EvalRun.objects.select_related("judge_model__provider").get(pk=run_id)
    if run.cancel_requested:
        return _finish(run, EvalRun.Status.CANCELLED, owner)
    EvalRun.objects.filter(pk=run_id, status=EvalRun.Status.QUEUED).update(
        status=EvalRun.Status.RUNNING, started_at=timezone.now()
    )
    state = RunState(run, owner)
    try:
        specs = [scoring.parse_spec(data) for data in run.scorers]
        cells = _pending_cells(run)
        if cells:
            _generate_and_store(state, specs, cells)
        _flush(state)
    except Exception as exc:
        logger.exception("Run %s failed", run_id)
        state.pending = []
        EvalRun.objects.filter(pk=run_id).update(error=f"{type(exc).__name__}: {exc}")
        return _finish(run, EvalRun.Status.FAILED, owner)
    return _finish(run, EvalRun.Status.CANCELLED if state.cancelled else EvalRun.Status.COMPLETED, owner)


def _finish(run: EvalRun, status: str, owner: str) -> str:
    run.refresh_from_db()
    with transaction.atomic():
        summary = summarise(run)
        EvalRun.objects.filter(pk=run.pk).update(
            status=status, finished_at=timezone.now(), summary=summary, lease_owner="", lease_expires_at=None
        )
    return status


def _generate_and_store(state: RunState, specs, cells) -> None:
    results: queue.SimpleQueue[RunResult] = queue.SimpleQueue()
    stop = threading.Event()
    finished = threading.Event()
    failure: list[BaseException] = []

    def loop() -> None:
        try:
            asyncio.run(_generate(state.run, specs, cells, results, stop))
        except BaseException as exc:  # handed to the storing thread
            failure.append(exc)
        finally:
            finished.set()

    thread = threading.Thread(target=loop, name=f"run-{state.run.pk}", daemon=True)
    thread.start()
    # This thread wakes a few times a second, not per result: each wake-up takes the GIL from the event loop,
    # which then answers its sockets late.
    try:
        while not finished.wait(timeout=COLLECT_EVERY_SECONDS):
            _collect(results, state.pending)
            if len(state.pending) >= FLUSH_EVERY_RESULTS or time.monotonic() - state.last_flush > FLUSH_EVERY_SECONDS:
                _flush(state)
                if state.cancelled:
                    stop.set()
    except BaseException:
        stop.set()  # storing failed (the database is gone, say): ask for nothing more
        raise
    thread.join()
    _collect(results, state.pending)  # the caller stores the rest
    if failure:
        raise failure[0]


def _collect(results: queue.SimpleQueue, pending: list[RunResult]) -> None:
    with contextlib.suppress(queue.Empty):
        while True:
            pending.append(results.get_nowait())


async def _generate(run: EvalRun, specs, cells, results: queue.SimpleQueue, stop: threading.Event) -> None:
    caller = Caller(run.concurrency)
    judge = run.judge_model
    pending: asyncio.Queue = asyncio.Queue()
    for cell in cells:
        pending.put_nowait(cell)
    # Enough workers to fill every provider's bound; each takes the next cell when it is free.
    limits = {}
    for _item, column in cells:
        if column.model is not None:
            provider = column.model.provider
            limits[provider.pk] = min(provider.max_concurrency, run.concurrency or provider.max_concurrency)
    workers = max(1, min(len(cells), sum(limits.values()) or 16))

    async def work() -> None:
        while not stop.is_set():
            try:
                item, column = pending.get_nowait()
            except asyncio.QueueEmpty:
                return
            results.put(await _cell(caller, specs, judge, run, item, column))

    try:
        await asyncio.gather(*(work() for _ in range(workers)))
    finally:
        await caller.close()


async def _cell(caller: Caller, specs, judge, run: EvalRun, item: RunItem, column: RunColumn) -> RunResult:
    result = RunResult(run_id=run.pk, item=item, column=column)
    if run.kind == EvalRun.Kind.SCORE or column.prompt_version is None:  # imported outputs: nothing to generate
        output = item.imported_output or ""
        result.output = output
        result.attempts = 0
        generation = Generation(output=output)
    else:
        version = column.prompt_version
        try:
            messages = templating.render(version.messages, item.input)
        except templating.TemplateError as exc:
            result.error = f"template: {exc}"
            result.attempts = 0
            return result
        result.rendered_messages = messages
        generation = await caller.chat(column.model, messages, _parameters(version.parameters))
        result.output = generation.output
        result.finish_reason = generation.finish_reason
        result.latency_ms = generation.latency_ms
        result.input_tokens = generation.input_tokens
        result.output_tokens = generation.output_tokens
        result.attempts = generation.attempts
        result.cost = column.model.cost(generation.input_tokens, generation.output_tokens)
        if generation.error:
            result.error = generation.error
            return result
    case = _case(item, result.output, result.latency_ms, result.cost, result.input_tokens, result.output_tokens)
    result.passed, result.score, result.scores = await score_async(specs, case, caller, judge)
    return result


# --- Re-scoring ----------------------------------------------------------------------------------------------------


def _write_scores(updates: list[tuple[int, bool, float, list[dict]]]) -> None:
    """Store (id, passed, score, scores) of many results.

    On PostgreSQL as one UPDATE from a single JSON document: psycopg's text-array escaping of JSON values
    (what opsportal.bulk.fast_bulk_update sends) costs more than the scoring itself.
    """
    if connection.vendor != "postgresql":
        rows = [RunResult(id=pk, passed=passed, score=score, scores=scores) for pk, passed, score, scores in updates]
        fast_bulk_update(rows, ["passed", "score", "scores"])
        return
    table = connection.ops.quote_name(RunResult._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS t SET passed = (v.row->>1)::boolean, score = (v.row->>2)::double precision, "  # noqa: S608
            "scores = v.row->3 FROM jsonb_array_elements(%s::jsonb) AS v(row) WHERE t.id = (v.row->>0)::bigint",
            [json.dumps(updates)],
        )


def rescore(run: EvalRun, scorers: list[dict] | None = None, batch: int = 2000) -> int:
    """Score a run's stored outputs again (with new scorers, or after a scorer changed); cheap scorers only."""
    specs = [scoring.parse_spec(data) for data in (scorers if scorers is not None else run.scorers)]
    if any(scoring.SCORERS[spec.type].is_llm for spec in specs):
        raise ValueError("re-scoring runs cheap scorers only; llm-rubric needs a new run")
    # Plain values, not model instances: at thousands of results per second the ORM's per-row cost shows.
    items = {
        pk: (variables, expected or None, context or None)
        for pk, variables, expected, context in run.items.values_list("id", "input", "expected_output", "context")
    }
    fields = ("id", "item_id", "output", "latency_ms", "cost", "input_tokens", "output_tokens")
    queryset = RunResult.objects.filter(run=run, error="").order_by("id").values_list(*fields)
    changed = last = 0
    while rows := list(queryset.filter(id__gt=last)[:batch]):
        updates = []
        for pk, item_id, output, latency_ms, cost, input_tokens, output_tokens in rows:
            variables, expected, context = items[item_id]
            case = scoring.Case(
                output=output, expected=expected, context=context, variables=variables, latency_ms=latency_ms,
                cost=cost, input_tokens=input_tokens, output_tokens=output_tokens,
            )  # fmt: skip
            passed, score, scores = _combine(specs, [scoring.score(spec, case) for spec in specs])
            updates.append((pk, passed, score, scores))
        with transaction.atomic():  # one commit per batch (SQLite would otherwise commit every row)
            _write_scores(updates)
        changed += len(rows)
        last = rows[-1][0]
    with transaction.atomic():
        if scorers is not None:
            EvalRun.objects.filter(pk=run.pk).update(scorers=scorers)
        passed = RunResult.objects.filter(run=run, passed=True).count()
        EvalRun.objects.filter(pk=run.pk).update(passed=passed, summary=summarise(run))
    return changed
