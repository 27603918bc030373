"""Sending Celery tasks by name, so services never import their tasks (and tasks import services).

A task is named by its dotted path (``"aiops.tasks.send_notification"``). The name is
looked up in the Celery app's registry when the task is loaded in this process (so
eager mode and the task's own options apply) and otherwise sent by name; the routes
in ``opsportal.celery`` pick the queue either way.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)


def send(name: str, *args: Any, countdown: float | None = None, retry: bool = True, **kwargs: Any) -> None:
    """Publish task `name` now. Raises when the broker cannot be reached (after brief retries if `retry`)."""
    app = current_app._get_current_object()
    task = app.tasks.get(name)
    if task is not None:
        task.apply_async(args=args, kwargs=kwargs, retry=retry, countdown=countdown)
    else:
        app.send_task(name, args=args, kwargs=kwargs, retry=retry, countdown=countdown)


def enqueue_on_commit(name: str, *args: Any, countdown: float | None = None, **kwargs: Any) -> None:
    """Send task `name` after the current transaction commits (after `countdown` seconds if given).

    If the broker is down the error is logged, not raised: the row the task works
    on is committed and in a state a periodic sweeper re-enqueues.
    """

    def publish() -> None:
        try:
            send(name, *args, countdown=countdown, **kwargs)
        except Exception as exc:
            logger.warning("Could not enqueue %s (%s); a sweeper will retry it", name, exc)

    transaction.on_commit(publish)


def resend(name: str, ids: list[Any]) -> int:
    """A sweeper's re-send of `name` for each id, without the publish retries; returns how many went out."""
    sent = 0
    for item in ids:
        try:
            send(name, item, retry=False)
        except Exception as exc:
            logger.warning("Could not re-enqueue %s(%s) (%s); the next sweep will try again", name, item, exc)
            break
        sent += 1
    return sent
