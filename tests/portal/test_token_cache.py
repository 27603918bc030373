"""Each worker caches the tokens it checked; a revoke, a deactivation or a role change anywhere
refuses or changes the very next request on every worker (token_cache's auth generation, watched
through Redis's invalidation pushes). Rate limits counted without waiting stay exact at small
limits and lose no request; with Redis down, tokens are checked in the database.

The portal runs under gunicorn with two worker processes, as in production, on the test database
(committed data: transaction=True); this test process changes tokens, users and roles the ways the
portal does (the API, the services, the ORM, a bulk update) and checks every worker's answers.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
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


@contextlib.contextmanager
def gunicorn(url: str, var_dir, **env_overrides: str) -> Iterator[int]:
    """gunicorn with two worker processes on the test database; yields its port."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "false", "LOG_LEVEL": "WARNING",
           "OPSPORTAL_VAR_DIR": str(var_dir), "API_THROTTLE_USER": "100000/minute", **env_overrides}  # fmt: skip
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


@pytest.fixture(scope="module")
def portal(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[int]:
    with django_db_blocker.unblock():
        url = database_url()
    with gunicorn(url, tmp_path_factory.mktemp("token-cache-var")) as port:
        yield port


@pytest.fixture(scope="module")
def limited_portal(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[int]:
    """Users may make 150 requests a minute: the first are counted without waiting, the last with."""
    with django_db_blocker.unblock():
        url = database_url()
    with gunicorn(url, tmp_path_factory.mktemp("token-cache-limited"), API_THROTTLE_USER="150/minute") as port:
        yield port


@pytest.fixture(scope="module")
def small_limit_portal(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[int]:
    with django_db_blocker.unblock():
        url = database_url()
    with gunicorn(url, tmp_path_factory.mktemp("token-cache-small"), API_THROTTLE_USER="5/minute") as port:
        yield port


class RedisServer:
    """A Redis of this test's own, to stop and start again (the shared one serves other tests)."""

    def __init__(self, directory) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert wait_for(self.answers, timeout=10), "redis-server did not start"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)

    def answers(self) -> bool:
        return self.command("PING") == "+PONG"

    def command(self, *args: str) -> str:
        import redis

        try:
            reply = redis.Redis(port=self.port, socket_timeout=2).execute_command(*args)
        except redis.ConnectionError:
            return ""
        return "+PONG" if reply is True else reply.decode() if isinstance(reply, bytes) else str(reply)


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


def unthrottled_user(role: Role):
    """A new user whose rate-limit window is empty (ids restart with each test database; Redis remembers)."""
    user = UserFactory(role=role)
    cache.delete(f"throttle_user_{user.pk}")
    return user


def window_size(user) -> int:
    """How many of the user's requests Redis holds in its rate-limit window."""
    key = cache.make_and_validate_key(f"throttle_user_{user.pk}")
    return cache._cache.get_client(write=True).zcard(key)


def test_a_service_revoke_refuses_the_next_request_on_every_worker(portal):
    user = UserFactory(role=Role.VIEWER)
    raw = make_token(user)
    assert set(answers(portal, raw)) == {(200, "viewer")}
    services.revoke_api_token(token=ApiToken.objects.get(user=user), actor=None)
    assert {status for status, _ in answers(portal, raw)} == {401}


def test_a_small_limit_is_exact_across_both_workers(small_limit_portal):
    user = unthrottled_user(Role.VIEWER)
    raw = make_token(user)
    statuses = [_status(small_limit_portal, "/api/v1/accounts/me/", raw) for _ in range(12)]
    assert statuses == [200] * 5 + [429] * 7
    assert window_size(user) == 5


def test_a_limit_far_off_is_counted_without_waiting_and_still_exact(limited_portal):
    """150 a minute: most requests do not wait for their count, the last ones before the limit do."""
    user = unthrottled_user(Role.VIEWER)
    raw = make_token(user)
    statuses = [_status(limited_portal, "/api/v1/accounts/me/", raw) for _ in range(170)]
    assert Counter(statuses) == {200: 150, 429: 20}
    assert statuses == [200] * 150 + [429] * 20
    assert window_size(user) == 150


def test_every_request_is_counted_once(portal):
    user = unthrottled_user(Role.VIEWER)
    raw = make_token(user)
    for _ in range(60):
        assert _status(portal, "/api/v1/accounts/me/", raw) == 200
    # The last counts are sent after their answers: give them a moment to arrive.
    assert wait_for(lambda: window_size(user) >= 60, timeout=5)
    assert window_size(user) == 60


def tracking_connections(redis_server: RedisServer) -> int:
    return sum("flags=t" in line for line in redis_server.command("CLIENT", "LIST").splitlines())


def test_with_redis_down_tokens_are_checked_in_the_database(django_db_blocker, tmp_path):
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    with django_db_blocker.unblock():
        url = database_url()
    try:
        with gunicorn(url, tmp_path, REDIS_URL=redis_server.url) as port:
            user = UserFactory(role=Role.OPERATOR)
            revoked, kept, admin_console = make_token(user, "revoked"), make_token(user, "kept"), make_token(user, "ui")
            for raw in (revoked, kept):
                assert set(answers(port, raw)) == {(200, "operator")}
            # Each worker watches the generation on a tracking connection of its own (opened at its first
            # request; the kernel decides which worker accepts a connection, so ask until both have served).
            assert wait_for(lambda: answers(port, kept) and tracking_connections(redis_server) == 2, timeout=10)

            redis_server.stop()
            assert set(answers(port, kept)) == {(200, "operator")}
            services.revoke_api_token(token=ApiToken.objects.get(user=user, name="revoked"), actor=None)
            assert {status for status, _ in answers(port, revoked)} == {401}
            assert set(answers(port, kept)) == {(200, "operator")}

            redis_server.start()
            assert set(answers(port, kept)) == {(200, "operator")}
            assert {status for status, _ in answers(port, revoked)} == {401}
            # The watches reconnect (a second after their last failure, at a request): a revoke through the
            # API reaches both workers' next requests.
            assert wait_for(lambda: answers(port, kept) and tracking_connections(redis_server) == 2, timeout=10)
            token = ApiToken.objects.get(user=user, name="kept")
            status, _ = _request(port, f"/api/v1/accounts/tokens/{token.pk}/", admin_console, method="DELETE")
            assert status in (200, 204)
            assert {status for status, _ in answers(port, kept)} == {401}
            assert set(answers(port, admin_console)) == {(200, "operator")}
    finally:
        if redis_server.process.poll() is None:
            redis_server.stop()
