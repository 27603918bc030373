"""A check's state machine and its next due time.

Uptime Kuma's rule: `retries` failed runs in a row are retried (status "pending", no alert); the next
failure makes the check "down" (it raises its alert); one success makes it "up" again (resolving the
alert). With `retries` 0 the first failure is down. Later failures while down change nothing.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass

UP, PENDING, DOWN = "up", "pending", "down"


@dataclass(frozen=True)
class Transition:
    """The state after a run; `event` is "down" (raise the alert), "up" (resolve it) or "" (nothing to say)."""

    status: str
    consecutive_failures: int
    event: str = ""


def transition(*, status: str, consecutive_failures: int, retries: int, up: bool) -> Transition:
    if up:
        # From down (or after a pause or edit, when an alert may still fire) a success resolves the alert.
        event = "up" if status not in (UP, PENDING) else ""
        return Transition(UP, 0, event)
    failures = consecutive_failures + 1
    if status == DOWN:
        return Transition(DOWN, failures)
    if failures > retries:
        return Transition(DOWN, failures, "down")
    return Transition(PENDING, failures)


def next_due(*, due: datetime.datetime | None, now: datetime.datetime, interval_seconds: int) -> datetime.datetime:
    """The first time on the check's grid (due + k * interval) after `now`.

    The grid keeps the check's rhythm (a run that started late does not push the next one later), and
    a missed stretch (no worker for an hour) is skipped, not made up with a burst of back-dated runs.
    """
    interval = datetime.timedelta(seconds=interval_seconds)
    if due is None or due > now:
        return now + interval
    steps = math.floor((now - due) / interval) + 1
    return due + steps * interval
