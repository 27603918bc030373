"""LLMOps figures: how close a run gets to the provider's speed limit, and how fast stored outputs are scored.

Run: 1,000 items against the local OpenAI-compatible test server (a separate process, answering every
request after 100 ms) with the provider's max_concurrency at 16. The ideal is 1,000 x 0.1 s / 16 = 6.25 s;
reported is the engine's wall time as a ratio to it (target at most 1.10), with the per-request latency
the engine measured.

Scoring: 10,000 stored outputs re-scored (engine.rescore: read, score, write back) with the eight cheap
scorers of docs/llmops-scorers.md: target at least 5,000 results/s.
"""

from __future__ import annotations

import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from django.db import connection
from django.db.models import Sum

from llmops import engine, services
from llmops.models import DatasetItem, EvalRun, RunResult

ROOT = Path(__file__).resolve().parent.parent
ITEMS = int(os.environ.get("BENCH_LLMOPS_ITEMS", "1000"))
DELAY = 0.1
CONCURRENCY = 16
RESCORE_RESULTS = int(os.environ.get("BENCH_LLMOPS_RESCORE", "10000"))
CITIES = ["Paris", "Rome", "Madrid", "Lisbon", "Vienna", "Berlin", "Oslo", "Dublin"]
RUN_SCORERS = [
    {"type": "icontains", "config": {"value": "question"}},
    {"type": "word-count", "config": {"max": 50}},
    {"type": "latency", "config": {"max_ms": 5000}},
]
# The cheap scorers (docs/llmops-scorers.md "Speed"): deterministic checks of a few microseconds each.
CHEAP_SCORERS = [
    {"type": "contains", "config": {"value": "{{ country }}"}},
    {"type": "not-icontains", "config": {"value": "as an ai"}},
    {"type": "contains-any", "config": {"values": CITIES[:3]}},
    {"type": "regex", "config": {"pattern": r"capital of .+ is \w+"}},
    {"type": "not-refusal"},
    {"type": "word-count", "config": {"min": 3, "max": 40}},
    {"type": "latency", "config": {"max_ms": 800}},
    {"type": "levenshtein"},
]


def counting(queries: list[str]):
    def wrapper(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    return wrapper


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The test server in its own process (as a real provider is: it takes no CPU from the engine), set up like
# a production HTTP server: Nagle's algorithm off (else headers and body leave in two segments and the
# client's delayed ACK adds 40 ms to every answer) and a listen backlog of 128 (FakeOpenAI sets its
# request_queue_size after the socket listens, so it keeps 5: 16 connections opened at once lose SYNs and
# wait out the 1 s retransmission).
SERVER = """
import sys, threading
from tests.llmops.fake_openai import FakeOpenAI
server = FakeOpenAI(port=int(sys.argv[1]), delay=float(sys.argv[2]))
server.server.RequestHandlerClass.disable_nagle_algorithm = True
server.server.socket.listen(128)
print(f"Fake OpenAI server on {server.base_url}", flush=True)
threading.Event().wait()
"""


def start_test_server(delay: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", SERVER, str(port), str(delay)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    line = process.stdout.readline()
    if "Fake OpenAI server" not in line:
        process.kill()
        raise RuntimeError(f"the test server did not start: {line!r}")
    return process, f"http://127.0.0.1:{port}/v1"


def start_run(name: str, items: int, version, model) -> EvalRun:
    dataset = services.create_dataset(name=name, actor=None)
    DatasetItem.objects.bulk_create(
        [DatasetItem(dataset=dataset, input={"n": i, "question": f"what is {i} squared?"}) for i in range(items)],
        batch_size=1000,
    )
    return services.create_run(
        dataset=dataset, prompt_versions=[version], models=[model], scorers=RUN_SCORERS, actor=None
    )


def bench_run() -> dict:
    server, base_url = start_test_server(DELAY)
    try:
        provider = services.create_provider(name="bench", base_url=base_url, actor=None, max_concurrency=CONCURRENCY)
        model = services.add_model(
            provider=provider, name="bench-model", actor=None, input_per_million="1", output_per_million="2"
        )
        prompt = services.create_prompt(
            name="bench-run",
            actor=None,
            messages=[
                {"role": "system", "content": "Answer in one sentence."},
                {"role": "user", "content": "Answer question {{ n }}: {{ question }}"},
            ],
            parameters={"temperature": 0},
        )
        version = prompt.versions.get()
        # A worker has run evaluations before: the SDK is imported and the template compiled.
        engine.execute(start_run("bench-warm-up", 2 * CONCURRENCY, version, model).pk)
        run = start_run("bench-run", ITEMS, version, model)
        queries: list[str] = []
        with connection.execute_wrapper(counting(queries)):
            started = time.perf_counter()
            status = engine.execute(run.pk)
            wall = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(10)
    run.refresh_from_db()
    errors = list(RunResult.objects.filter(run=run).exclude(error="").values_list("error", flat=True)[:3])
    assert status == "completed" and run.done == ITEMS and run.errors == 0, (status, run.done, errors)
    latencies = sorted(RunResult.objects.filter(run=run).values_list("latency_ms", flat=True))
    retries = RunResult.objects.filter(run=run).aggregate(n=Sum("attempts"))["n"] - ITEMS
    ideal = ITEMS * DELAY / CONCURRENCY
    ratio = wall / ideal
    return {
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1],
        "per_second": ITEMS / wall,
        "queries": len(queries),
        "wall_seconds": round(wall, 3),
        "ideal_seconds": ideal,
        "ratio_to_ideal": round(ratio, 4),
        "target_ratio": 1.10,
        "items": ITEMS,
        "retries": retries,
        "notes": f"{ITEMS} items, server 100 ms, concurrency {CONCURRENCY}: {wall:.2f}s vs ideal {ideal:.2f}s = "
        f"ratio {ratio:.3f} (target <= 1.10); {retries} retries; p50/p95 = per-request latency",
    }


def bench_rescore() -> dict:
    rng = random.Random(7)
    lines = []
    for i in range(RESCORE_RESULTS):
        city = rng.choice(CITIES)
        output = (
            json.dumps({"city": city})
            if i % 5 == 0
            else f"The capital of country {i} is {rng.choice(CITIES)}. Contact: ops{i}@example.com"
        )
        lines.append(json.dumps({"input": {"country": f"country {i}"}, "expected_output": city, "output": output}))
    run, parsed = services.create_score_run(
        data="\n".join(lines).encode(), filename="outputs.jsonl", scorers=[{"type": "equals"}], actor=None
    )
    assert parsed.ok, parsed.errors[:3]
    column = run.columns.get()
    RunResult.objects.bulk_create(
        [
            RunResult(run=run, item=item, column=column, output=item.imported_output, latency_ms=rng.uniform(100, 900),
                      cost=rng.uniform(0, 0.002), input_tokens=40, output_tokens=12, attempts=0)
            for item in run.items.all()
        ],
        batch_size=2000,
    )  # fmt: skip
    engine.rescore(run, CHEAP_SCORERS[:2], batch=500)  # warm-up: imports, compiled patterns
    queries: list[str] = []
    with connection.execute_wrapper(counting(queries)):
        started = time.perf_counter()
        changed = engine.rescore(run, CHEAP_SCORERS)
        elapsed = time.perf_counter() - started
    assert changed == RESCORE_RESULTS
    per_second = changed / elapsed
    per_result_ms = elapsed * 1000 / changed
    return {
        "p50_ms": per_result_ms,
        "p95_ms": per_result_ms,
        "per_second": per_second,
        "queries": len(queries),
        "seconds": round(elapsed, 3),
        "results": changed,
        "scorers": [scorer["type"] for scorer in CHEAP_SCORERS],
        "target_per_second": 5000,
        "notes": f"{changed:,} stored outputs x {len(CHEAP_SCORERS)} cheap scorers in {elapsed:.2f}s = "
        f"{per_second:,.0f} results/s (target >= 5,000); p50/p95 = mean ms per result",
    }


def run() -> Iterator[tuple[str, dict]]:
    yield "llmops_run_1000_items", bench_run()
    yield "llmops_rescore_10000", bench_rescore()
