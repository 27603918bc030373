"""Foundation figures through gunicorn: the fixed cost of a request, token-authenticated API calls,
audit list pages and the overview.

One gunicorn worker serves the benchmark database; each case makes warm-up requests, then
times `server.REPEAT` sequential requests over one keep-alive connection, and counts the SQL
queries of one request made in-process. Every figure carries the same run's fixed cost
(`/healthz` and an authenticated `/api/v1/`, see bench/server.py).
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterator

from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from opsportal.accounts import services
from opsportal.accounts.roles import Role
from opsportal.audit.models import AuditEntry

from . import server

AUDIT_ROWS = 50_000


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
    local = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    local_browser = Client()
    local_browser.force_login(admin)

    with server.running(workers=1) as port:
        fixed = server.fixed_cost(port, raw)
        api = server.Http(port, raw)
        browser = server.Http(port, cookie=server.session_cookie(admin))
        anonymous = server.Http(port)
        ratio = fixed["auth_api_to_healthz"]
        yield (
            "http_fixed_cost",
            {
                "p50_ms": fixed["auth_api_p50_ms"],
                "p95_ms": fixed["auth_api_p95_ms"],
                "per_second": 1000 / fixed["auth_api_p50_ms"],
                "queries": server.count_queries(lambda: local.get(server.EMPTY_API)),
                **fixed,
                "target_ratio": 1.5,
                "notes": f"GET {server.EMPTY_API} with a token: {fixed['auth_api_p50_ms']:.2f} ms vs /healthz "
                f"{fixed['healthz_p50_ms']:.2f} ms = {ratio:.2f}x (target <= 1.5)",
            },
        )
        cases = [
            ("healthz", anonymous, "/healthz", None, None, "liveness, no authentication"),
            ("api_token_me", api, "/api/v1/accounts/me/", None, local, "Bearer token auth + role check"),
            ("api_audit_list", api, "/api/v1/audit/entries/", {"app": "aiops", "page": 3}, local,
             f"page 3 of one app's entries, {AUDIT_ROWS} rows"),
            ("page_audit_filtered", browser, "/audit/", {"app": "mlops", "action": "update"}, local_browser,
             f"HTML page, filter by app+action, {AUDIT_ROWS} rows"),
            ("page_overview", browser, "/", None, local_browser,
             f"counts + 30-day activity chart over {AUDIT_ROWS} rows"),
        ]  # fmt: skip
        for name, client, path, params, in_process, notes in cases:
            yield name, server.case(client, path, params, fixed, notes, in_process)
        for client in (api, browser, anonymous):
            client.close()
