"""Each worker caches the tokens it checked; a revoke, a deactivation or a role change anywhere
refuses or changes the very next request on every worker (token_cache's auth generation).

The portal runs under gunicorn with two worker processes, as in production, on the test database
(committed data: transaction=True); this test process changes tokens, users and roles the ways the
portal does (the API, the services, the ORM, a bulk update) and checks every worker's answers.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import subprocess
import sys

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone

from opsportal.accounts import services
from opsportal.accounts.models import ApiToken
from opsportal.accounts.roles import Role
from tests.helpers import wait_for
from tests.mlops.test_mlflow_client import ROOT, database_url, free_port

from .factories import UserFactory, make_token

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="the shared auth generation lives in Redis"),
]

# Enough requests that both sync workers answer some (each connection is a new accept).
ROUNDS = 24


@pytest.fixture(scope="module")
def portal(django_db_setup, django_db_blocker, tmp_path_factory) -> int:
    """gunicorn with two worker processes on the test database; yields its port."""
    with django_db_blocker.unblock():
        url = database_url()
    var_dir = tmp_path_factory.mktemp("token-cache-var")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "false", "LOG_LEVEL": "WARNING",
           "OPSPORTAL_VAR_DIR": str(var_dir), "API_THROTTLE_USER": "100000/minute"}  # fmt: skip
    log_path = var_dir / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "opsportal.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
             "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:
        if not wait_for(lambda: process.poll() is not None or _status(port, "/healthz") == 200, timeout=60):
            raise RuntimeError(f"gunicorn did not start:\n{log_path.read_text()[-3000:]}")
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _request(port: int, path: str, token: str | None = None, method: str = "GET", body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    except OSError:
        return None, b""
    finally:
        conn.close()


def _status(port: int, path: str, token: str | None = None) -> int | None:
    return _request(port, path, token)[0]


def answers(port: int, token: str, path: str = "/api/v1/accounts/me/") -> list[tuple[int, str | None]]:
    """Status and role of ROUNDS requests, spread over both workers."""
    result = []
    for _ in range(ROUNDS):
        status, body = _request(port, path, token)
        role = json.loads(body).get("role") if status == 200 else None
        result.append((status, role))
    return result


def test_a_token_revoked_through_the_api_is_refused_by_every_worker_at_once(portal):
    user = UserFactory(role=Role.OPERATOR)
    raw = make_token(user, "script")
    assert set(answers(portal, raw)) == {(200, "operator")}  # both workers have it cached now
    token = ApiToken.objects.get(user=user, name="script")
    other = make_token(user, "admin console")
    status, _ = _request(portal, f"/api/v1/accounts/tokens/{token.pk}/", other, method="DELETE")
    assert status in (200, 204)
    assert {status for status, _ in answers(portal, raw)} == {401}
    assert {status for status, _ in answers(portal, other)} == {200}


def test_deactivation_a_role_change_and_a_bulk_expiry_reach_every_worker(portal):
    user = UserFactory(role=Role.OPERATOR)
    raw = make_token(user)
    assert set(answers(portal, raw)) == {(200, "operator")}

    # A role changed through the service (the users page), then straight through the groups relation.
    services.update_user(user=user, actor=None, role=Role.VIEWER)
    assert set(answers(portal, raw)) == {(200, "viewer")}
    user.groups.add(Group.objects.get_or_create(name=Role.ADMIN.group_name)[0])
    assert set(answers(portal, raw)) == {(200, "admin")}
    user.groups.remove(Group.objects.get(name=Role.ADMIN.group_name))
    assert set(answers(portal, raw)) == {(200, "viewer")}

    # A user deactivated through the service.
    services.update_user(user=user, actor=None, is_active=False)
    assert {status for status, _ in answers(portal, raw)} == {401}
    services.update_user(user=user, actor=None, is_active=True)
    assert set(answers(portal, raw)) == {(200, "viewer")}

    # A bulk update sends no signal; the token queryset starts a new generation itself.
    ApiToken.objects.filter(user=user).update(expires_at=timezone.now())
    assert {status for status, _ in answers(portal, raw)} == {401}


def test_a_deleted_user_and_a_cached_token_past_its_expiry_are_refused(portal):
    user = UserFactory(role=Role.VIEWER)
    soon = timezone.now() + datetime.timedelta(seconds=3)
    _token, raw = services.create_api_token(user=user, name="short-lived", actor=user, expires_at=soon)
    assert set(answers(portal, raw)) == {(200, "viewer")}
    # Nobody touches the token: the cached expiry itself ends it.
    assert wait_for(lambda: timezone.now() > soon, timeout=10)
    assert {status for status, _ in answers(portal, raw)} == {401}

    keeper = UserFactory(role=Role.VIEWER)
    raw = make_token(keeper)
    assert set(answers(portal, raw)) == {(200, "viewer")}
    keeper.delete()
    assert {status for status, _ in answers(portal, raw)} == {401}


def test_a_cached_token_costs_no_database_query(viewer):
    """In-process: after the first request, the token check reads only Redis."""
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    raw = make_token(viewer)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/").status_code == 200
    assert [q["sql"] for q in queries.captured_queries] == []
