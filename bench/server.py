"""The shared HTTP harness: the portal served by gunicorn over a socket, as clients see it.

`running(workers)` starts gunicorn on the benchmark database (the same settings as production:
DEBUG off, sync workers, a keep-alive-less HTTP/1.1 server behind which every request opens its
own connection unless the client keeps one), waits for `/healthz` and stops it afterwards.
`Http` is a small keep-alive client; `timed` times sequential requests and returns p50/p95;
`fixed_cost` measures what every request pays before an endpoint does its own work:
`/healthz` (routing, middleware, no authentication) and an authenticated API answer with an
empty body of work (`/api/v1/`: token look-up, role check, DRF negotiation and rendering).
Every HTTP figure in bench/ is reported beside it (`with_fixed_cost`), so the endpoint's own
cost is the difference.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent
REPEAT = int(os.environ.get("BENCH_REPEAT", "200"))
EMPTY_API = "/api/v1/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_until_up(port: int, path: str, process: subprocess.Popen, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before answering")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{what} did not answer {path} within {seconds:.0f} s")


@contextlib.contextmanager
def running(workers: int = 1, extra_env: dict[str, str] | None = None) -> Iterator[int]:
    """gunicorn serving the portal on the benchmark database with `workers` sync workers; yields the port."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "AIOPS_MAX_BODY_BYTES": str(10 * 1024 * 1024),
        **(extra_env or {}),
    }
    log = open(os.environ.get("BENCH_GUNICORN_LOG", os.devnull), "ab")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "gunicorn", "opsportal.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
         "--log-level", "warning", "--timeout", "120"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    try:
        wait_until_up(port, "/healthz", process, "gunicorn (set BENCH_GUNICORN_LOG=path to see why)")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


class Http:
    """One keep-alive HTTP/1.1 connection, as a client library keeps (requests' Session, the mlflow client)."""

    def __init__(self, port: int, token: str | None = None, cookie: str | None = None, host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        if cookie:
            self.headers["Cookie"] = cookie
        self.conn = http.client.HTTPConnection(host, port, timeout=120)

    def request(self, method: str, path: str, params: dict | None = None, body: object = None) -> tuple[int, bytes]:
        if params:
            path = f"{path}?{urlencode(params)}"
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection: reconnect once, as client libraries do.
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str, params: dict | None = None) -> tuple[int, bytes]:
        return self.request("GET", path, params)

    def post(self, path: str, body: object) -> tuple[int, bytes]:
        return self.request("POST", path, body=body)

    def close(self) -> None:
        self.conn.close()


def summary(timings: list[float]) -> dict:
    timings = sorted(timings)
    return {
        "p50_ms": statistics.median(timings),
        "p95_ms": timings[max(0, int(len(timings) * 0.95) - 1)],
        "per_second": 1000 / statistics.mean(timings),
        "requests": len(timings),
    }


def timed(fn: Callable[[], tuple[int, bytes]], repeat: int = REPEAT, expect: int = 200, warm_up: int = 5) -> dict:
    """Sequential requests: `warm_up` untimed, then `repeat` timed; every answer must have status `expect`."""
    for _ in range(warm_up):
        status, body = fn()
        if status != expect:
            raise RuntimeError(f"answered {status}, expected {expect}: {body[:300]!r}")
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        status, body = fn()
        timings.append((time.perf_counter() - start) * 1000)
        if status != expect:
            raise RuntimeError(f"answered {status}, expected {expect}: {body[:300]!r}")
    return summary(timings)


def count_queries(fn: Callable[[], object]) -> int:
    """SQL queries of one request, made in-process (the server is another process)."""
    queries: list[str] = []
    with connection.execute_wrapper(
        lambda execute, sql, params, many, context: queries.append(sql) or execute(sql, params, many, context)
    ):
        fn()
    return len(queries)


def timed_pair(
    first: Callable[[], tuple[int, bytes]], second: Callable[[], tuple[int, bytes]], repeat: int, warm_up: int = 20
) -> tuple[dict, dict]:
    """Two request kinds timed alternately, so a burst of load on this shared machine hits both alike."""
    timings: tuple[list[float], list[float]] = ([], [])
    for round_number in range(warm_up + repeat):
        for fn, into in ((first, timings[0]), (second, timings[1])):
            start = time.perf_counter()
            status, body = fn()
            elapsed = (time.perf_counter() - start) * 1000
            if status != 200:
                raise RuntimeError(f"answered {status}, expected 200: {body[:300]!r}")
            if round_number >= warm_up:
                into.append(elapsed)
    return summary(timings[0]), summary(timings[1])


def fixed_cost(port: int, token: str, repeat: int = REPEAT * 4) -> dict:
    """p50/p95 of `/healthz` and of an authenticated API request that does no work of its own, same server,
    timed alternately."""
    anonymous, client = Http(port), Http(port, token)
    try:
        healthz, empty = timed_pair(lambda: anonymous.get("/healthz"), lambda: client.get(EMPTY_API), repeat)
    finally:
        anonymous.close()
        client.close()
    return {
        "healthz_p50_ms": healthz["p50_ms"],
        "healthz_p95_ms": healthz["p95_ms"],
        "auth_api_p50_ms": empty["p50_ms"],
        "auth_api_p95_ms": empty["p95_ms"],
        "auth_api_to_healthz": empty["p50_ms"] / healthz["p50_ms"],
    }


def with_fixed_cost(result: dict, fixed: dict, notes: str = "") -> dict:
    """An endpoint's figures with the same run's fixed cost beside them and the endpoint's own share."""
    own = result["p50_ms"] - fixed["auth_api_p50_ms"]
    return {
        **result,
        "fixed_cost": fixed,
        "own_p50_ms": own,
        "notes": f"{notes}; fixed cost {fixed['auth_api_p50_ms']:.2f} ms (healthz {fixed['healthz_p50_ms']:.2f}), "
        f"own {own:.2f} ms",
    }


def session_cookie(user) -> str:
    """A `Cookie` header value logging a browser in as `user` (a real session in the database)."""
    browser = Client()
    browser.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"


def case(
    client: Http,
    path: str,
    params: dict | None,
    fixed: dict,
    notes: str,
    local: Client | None = None,
    repeat: int = REPEAT,
) -> dict:
    """One endpoint timed through the server, with the fixed cost beside it and its in-process query count."""
    result = timed(lambda: client.get(path, params), repeat)
    queries = count_queries(lambda: local.get(path, params)) if local is not None else 0
    return {**with_fixed_cost(result, fixed, notes), "queries": queries}
