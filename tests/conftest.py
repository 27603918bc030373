"""Shared fixtures. Real services are used when configured (CI sets DATABASE_URL and REDIS_URL).

With OPSPORTAL_REQUIRE_SERVICES=1 a test that needs a service fails when it is
missing instead of skipping.
"""

from __future__ import annotations

import contextlib
import os

import pytest
from rest_framework.test import APIClient

from opsportal.accounts.roles import Role
from tests.portal.factories import UserFactory, make_token

REQUIRE_SERVICES = os.environ.get("OPSPORTAL_REQUIRE_SERVICES") == "1"


def need_service(what: str) -> None:
    """Skip (or fail, when services are required) because `what` is missing."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (OPSPORTAL_REQUIRE_SERVICES=1) but not available")
    pytest.skip(f"{what} not available")


@pytest.fixture(autouse=True)
def _generous_throttle(monkeypatch) -> None:
    """Throttling is tested on its own; other tests must not trip over it."""
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "100000/minute", "user": "100000/minute"})


@pytest.fixture(autouse=True)
def _fresh_metric_caches():
    """Each test starts with empty per-process metric caches: series ids and partitions that an earlier
    test's rolled-back transaction created must not be taken as existing."""
    from aiops.metrics import partitions, store

    store.CACHE.clear()
    partitions.forget_known()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def viewer(db):
    return UserFactory(username="vera", role=Role.VIEWER)


@pytest.fixture
def operator(db):
    return UserFactory(username="otto", role=Role.OPERATOR)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="ada", role=Role.ADMIN)


def api_client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}")
    return client


@pytest.fixture
def viewer_api(viewer) -> APIClient:
    return api_client_for(viewer)


@pytest.fixture
def operator_api(operator) -> APIClient:
    return api_client_for(operator)


@pytest.fixture
def admin_api(admin_user) -> APIClient:
    return api_client_for(admin_user)


@contextlib.contextmanager
def _broker_outage():
    """Points the Celery app at a broker address where nothing listens, as when Redis is down."""
    from opsportal.celery import app

    saved = (app.conf.broker_url, app.conf.broker_transport_options, app._pool, app.amqp._producer_pool)
    app.conf.broker_url = "redis://127.0.0.1:9/0"
    app.conf.broker_transport_options = {"socket_connect_timeout": 0.5}
    app._pool = app.amqp._producer_pool = None
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_transport_options, app._pool, app.amqp._producer_pool = saved


@pytest.fixture
def broker_outage():
    return _broker_outage


@pytest.fixture
def dead_broker():
    with _broker_outage():
        yield


@pytest.fixture
def isolated_broker(tmp_path, monkeypatch):
    """With the embedded filesystem broker, give the test worker its own folders.

    A developer's `make run` worker reads var/broker and would steal the test's
    messages. Redis (CI) is used as configured.
    """
    from opsportal.celery import app

    if app.conf.broker_url.startswith("filesystem"):
        folders = {}
        for name, option in (
            ("queue", "data_folder_in"),
            ("processed", "processed_folder"),
            ("control", "control_folder"),
        ):
            (tmp_path / name).mkdir()
            folders[option] = str(tmp_path / name)
        folders["data_folder_out"] = folders["data_folder_in"]
        monkeypatch.setitem(app.conf, "broker_transport_options", {**app.conf.broker_transport_options, **folders})
        monkeypatch.setattr(app, "_pool", None)
        monkeypatch.setattr(app.amqp, "_producer_pool", None)
    elif os.environ.get("REDIS_URL") is None:
        need_service("a broker")
    yield
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def receiver():
    from tests.receiver import Receiver

    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def second_receiver(receiver):
    """A receiver on 127.0.0.2 (same port): another loopback address, not in the allow-list."""
    from tests.receiver import Receiver

    try:
        server = Receiver("127.0.0.2", receiver.server.server_address[1])
    except OSError:
        pytest.skip("cannot listen on 127.0.0.2")
    yield server
    server.close()


@pytest.fixture
def allow_loopback(settings):
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = ["127.0.0.1"]


@pytest.fixture
def worker(isolated_broker):
    """A real Celery worker for the test (see tests.helpers.running_worker).

    On a shared Redis broker (CI) the queues may still hold what earlier tests enqueued with no worker
    running (correlation, evaluation runs, sweeps for objects long gone); they are dropped first, so the
    test's own tasks do not wait behind them on the solo pool.
    """
    from opsportal.celery import app
    from tests.helpers import running_worker

    if not app.conf.broker_url.startswith("filesystem"):
        app.control.purge()
    with running_worker() as running:
        yield running
