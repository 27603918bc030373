"""Foundation figures: token-authenticated API calls, audit list pages and the overview.

Each case makes warm-up requests, then times `REPEAT` requests in-process
(Django's test client: no network, so this is the portal's own cost) and
counts the SQL queries of one request.
"""

from __future__ import annotations

import datetime
import random
import statistics
import time
from collections.abc import Iterator

from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone

from opsportal.accounts import services
from opsportal.accounts.roles import Role
from opsportal.audit.models import AuditEntry

REPEAT = 200
AUDIT_ROWS = 50_000


def measure(fn, repeat: int = REPEAT) -> dict:
    for _ in range(5):
        fn()
    queries = []
    with connection.execute_wrapper(
        lambda execute, sql, params, many, context: queries.append(sql) or execute(sql, params, many, context)
    ):
        fn()
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = fn()
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    timings.sort()
    return {
        "p50_ms": statistics.median(timings),
        "p95_ms": timings[int(len(timings) * 0.95) - 1],
        "per_second": 1000 / statistics.mean(timings),
        "queries": len(queries),
        "requests": repeat,
    }


def seed_audit(actor: User) -> None:
    now = timezone.now()
    apps = ["aiops", "mlops", "llmops", "auth", "accounts"]
    rng = random.Random(7)
    batch = [
        AuditEntry(
            at=now - datetime.timedelta(minutes=rng.randint(0, 60 * 24 * 60)),
            actor=actor,
            actor_name=actor.username,
            action=rng.choice(["create", "update", "state"]),
            app_label=rng.choice(apps),
            model="thing",
            object_id=str(rng.randint(1, 5000)),
            object_repr="thing",
            changes={"status": ["open", "acknowledged"]},
            ip="10.0.0.1",
        )
        for _ in range(AUDIT_ROWS)
    ]
    AuditEntry.objects.bulk_create(batch, batch_size=2000)


def run() -> Iterator[tuple[str, dict]]:
    admin = services.create_user(username="bench-admin", role=Role.ADMIN, actor=None, password="bench-password-123")
    _token, raw = services.create_api_token(user=admin, name="bench", actor=None)
    seed_audit(admin)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    browser = Client()
    browser.force_login(admin)

    yield (
        "api_token_me",
        {**measure(lambda: api.get("/api/v1/accounts/me/")), "notes": "Bearer token auth + role check"},
    )
    yield (
        "api_audit_list",
        {
            **measure(lambda: api.get("/api/v1/audit/entries/", {"app": "aiops", "page": 3})),
            "notes": f"page 3 of one app's entries, {AUDIT_ROWS} rows",
        },
    )
    yield (
        "page_audit_filtered",
        {
            **measure(lambda: browser.get("/audit/", {"app": "mlops", "action": "update"}), repeat=100),
            "notes": f"HTML page, filter by app+action, {AUDIT_ROWS} rows",
        },
    )
    yield (
        "page_overview",
        {
            **measure(lambda: browser.get("/"), repeat=100),
            "notes": f"counts + 30-day activity chart over {AUDIT_ROWS} rows",
        },
    )
    yield "healthz", {**measure(lambda: Client().get("/healthz")), "notes": "liveness"}
