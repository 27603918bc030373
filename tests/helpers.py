"""Helpers every test package shares: a logged-in page client, polling, a real Celery worker."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from celery.contrib.testing.worker import start_worker
from django.test import Client


def client_for(user) -> Client:
    """A page client logged in as `user` (a real session, as a browser has)."""
    client = Client()
    client.force_login(user)
    return client


def wait_for(condition: Callable[[], object], timeout: float = 60.0, interval: float = 0.1) -> bool:
    """Poll `condition` until it is true or `timeout` seconds pass; whether it came true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


@contextlib.contextmanager
def running_worker(**options) -> Iterator[object]:
    """A real Celery worker (solo pool, in a thread of this process) consuming the test's broker.

    Use with the `isolated_broker` fixture so a developer's own worker cannot take the messages.
    """
    from opsportal.celery import app

    settings = {"pool": "solo", "perform_ping_check": False, "loglevel": "WARNING", "shutdown_timeout": 10}
    with start_worker(app, **{**settings, **options}) as worker:
        yield worker
