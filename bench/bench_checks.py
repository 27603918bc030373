"""Uptime-check figures: HTTP checks per second through one worker process, and the lag behind schedule.

A local HTTP server (its own process, asyncio, one connection per request as every check opens its
own) answers `200 {"status": "ok"}`. This process is the worker: it runs the real dispatcher task
(`aiops.tasks.run_checks_due`, eagerly, as a worker would: claim with SKIP LOCKED, run on asyncio
with httpx, store results in bulk, move the state) with the default batch (500) and concurrency (200).

- throughput: BENCH_CHECKS checks (default 5,000) all due at once; the time until every one has run
  and its result is stored. Checks/s = checks / that time (the figure the issue asks >= 500/s of).
- lag: BENCH_CHECKS_STEADY checks (default 2,500) every 5 s (500 checks/s offered), due times
  spread over the interval, the task sent once a second as beat does, for BENCH_CHECKS_SECONDS
  (default 30 s). Lag = when a run started minus when it was due (the check's grid keeps its phase,
  so the due time of each stored result is known); p50/p95 reported.
"""

from __future__ import annotations

import datetime
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

from django.conf import settings
from django.db import connection
from django.utils import timezone

from aiops import services, tasks
from aiops.models import Check, CheckResult

CHECKS = int(os.environ.get("BENCH_CHECKS", "5000"))
STEADY_CHECKS = int(os.environ.get("BENCH_CHECKS_STEADY", "2500"))
STEADY_INTERVAL = 5
STEADY_SECONDS = float(os.environ.get("BENCH_CHECKS_SECONDS", "30"))

SERVER = r"""
import asyncio, sys

BODY = b'{"status": "ok"}'
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
    len(BODY), BODY)

async def handle(reader, writer):
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(ANSWER)
        await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


def start_server() -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)  # noqa: S603 (our own code)
    port = int(process.stdout.readline())
    return process, port


def make_checks(count: int, url: str, *, interval: int, first_due: datetime.datetime, spread: float) -> list[Check]:
    """`count` HTTP checks, as the service makes them (config validated), written in bulk."""
    template = services.create_check(actor=None, name="template", kind="http", config={"url": url, "keyword": "ok"})
    now = timezone.now()
    checks = [
        Check(
            name=f"bench {n}", kind="http", config=template.config, interval_seconds=interval, timeout_seconds=10,
            next_due_at=first_due + datetime.timedelta(seconds=spread * n / count), created_at=now, updated_at=now,
        )
        for n in range(count)
    ]  # fmt: skip
    template.delete()
    return Check.objects.bulk_create(checks, batch_size=2000)


def reset() -> None:
    CheckResult.objects.all().delete()
    Check.objects.all().delete()


def throughput(url: str) -> dict:
    reset()
    make_checks(CHECKS, url, interval=3600, first_due=timezone.now() - datetime.timedelta(seconds=1), spread=0)
    started = time.perf_counter()
    batches = []
    while Check.objects.due(timezone.now()).exists():
        batch_started = time.perf_counter()
        tasks.run_checks_due.apply()
        batches.append(time.perf_counter() - batch_started)
    elapsed = time.perf_counter() - started
    stored = CheckResult.objects.count()
    up = CheckResult.objects.filter(up=True).count()
    assert stored == CHECKS, f"{stored} results stored for {CHECKS} checks"
    per_second = CHECKS / elapsed
    return {
        "p50_ms": 1000 * elapsed / CHECKS,
        "p95_ms": 1000 * elapsed / CHECKS,
        "per_second": per_second,
        "queries": 0,
        "checks": CHECKS,
        "seconds": round(elapsed, 3),
        "up": up,
        "target_per_second": 500,
        "met": per_second >= 500,
        "notes": f"{CHECKS} HTTP checks run and stored in {elapsed:.2f} s ({up} up); >= 500/s: "
        f"{'met' if per_second >= 500 else 'NOT met'}",
    }


def lag(url: str) -> dict:
    reset()
    first_due = timezone.now() + datetime.timedelta(seconds=2)
    checks = make_checks(STEADY_CHECKS, url, interval=STEADY_INTERVAL, first_due=first_due, spread=STEADY_INTERVAL)
    phase = {check.pk: check.next_due_at for check in checks}
    deadline = time.monotonic() + 2 + STEADY_SECONDS
    tick = time.monotonic()
    while time.monotonic() < deadline:
        # Beat sends the task once a second; a tick that finds the worker busy expires (here: is skipped).
        tick += 1.0
        tasks.run_checks_due.apply()
        time.sleep(max(0.0, tick - time.monotonic()))
        while tick < time.monotonic():
            tick += 1.0
    lags = []
    interval = datetime.timedelta(seconds=STEADY_INTERVAL)
    for check_id, at in CheckResult.objects.values_list("check_obj_id", "at"):
        behind = (at - phase[check_id]) % interval
        lags.append(behind.total_seconds() * 1000)
    lags.sort()
    runs = len(lags)
    expected = STEADY_CHECKS * STEADY_SECONDS / STEADY_INTERVAL
    return {
        "p50_ms": statistics.median(lags),
        "p95_ms": lags[int(0.95 * (runs - 1))],
        "per_second": runs / (STEADY_SECONDS + 2),
        "queries": 0,
        "runs": runs,
        "expected_runs": round(expected),
        "notes": f"{STEADY_CHECKS} checks every {STEADY_INTERVAL} s (offered {STEADY_CHECKS / STEADY_INTERVAL:.0f}/s), "
        f"beat every 1 s, {STEADY_SECONDS:.0f} s: lag from due to run start p50/p95 (ms), {runs} runs",
    }


def run() -> Iterator[tuple[str, dict]]:
    process, port = start_server()
    previous = settings.OPSPORTAL_OUTBOUND_ALLOWLIST
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    url = f"http://127.0.0.1:{port}/health"
    try:
        yield "checks_http_throughput", throughput(url)
        yield "checks_schedule_lag", lag(url)
    finally:
        settings.OPSPORTAL_OUTBOUND_ALLOWLIST = previous
        process.terminate()
        process.wait()
        reset()
        connection.close()
