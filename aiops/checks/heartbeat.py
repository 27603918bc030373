"""When a heartbeat (push) check is late, Healthchecks-style.

A heartbeat expects a success ping every `period` (or at each time of a cron schedule, read in the
check's time zone) and is down once that time plus the `grace` time has passed without one. A
`/start` ping opens a run: without a success within the grace time the check is down even if its
period has not passed. A new heartbeat waits for its first ping before anything is late.
"""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass

from croniter import croniter


@dataclass(frozen=True)
class Schedule:
    """A heartbeat's expectations: a period, or a cron expression in a time zone; and a grace time."""

    period_seconds: int | None
    grace_seconds: int
    cron: str = ""
    tz: str = "UTC"

    def next_expected(self, after: datetime.datetime) -> datetime.datetime:
        """When the next success ping is expected, the last one having come at `after`."""
        if self.cron:
            local = after.astimezone(zoneinfo.ZoneInfo(self.tz))
            return croniter(self.cron, local).get_next(datetime.datetime).astimezone(datetime.UTC)
        return after + datetime.timedelta(seconds=self.period_seconds or 86400)

    def describe(self) -> str:
        grace = _duration(self.grace_seconds)
        if self.cron:
            return f"cron {self.cron!r} in {self.tz}, grace {grace}"
        return f"every {_duration(self.period_seconds or 86400)}, grace {grace}"


def deadline(
    schedule: Schedule, *, last_success_at: datetime.datetime | None, started_at: datetime.datetime | None
) -> datetime.datetime | None:
    """When the check is late if no success ping comes; None while it has never been pinged."""
    grace = datetime.timedelta(seconds=schedule.grace_seconds)
    candidates = []
    if last_success_at is not None:
        candidates.append(schedule.next_expected(last_success_at) + grace)
    if started_at is not None and (last_success_at is None or started_at > last_success_at):
        candidates.append(started_at + grace)
    return min(candidates) if candidates else None


def late_reason(
    schedule: Schedule,
    *,
    last_success_at: datetime.datetime | None,
    started_at: datetime.datetime | None,
    now: datetime.datetime,
) -> str | None:
    """Why the check is down at `now` (the text stored as the result's error), or None when it is not late."""
    due = deadline(schedule, last_success_at=last_success_at, started_at=started_at)
    if due is None or now < due:
        return None
    open_start = started_at is not None and (last_success_at is None or started_at > last_success_at)
    if open_start and started_at + datetime.timedelta(seconds=schedule.grace_seconds) <= now:
        return (
            f"started at {started_at:%Y-%m-%d %H:%M:%S} UTC and no success within the grace time "
            f"({_duration(schedule.grace_seconds)})"
        )
    last = f"{last_success_at:%Y-%m-%d %H:%M:%S} UTC" if last_success_at else "never"
    return f"no success ping since {last} (expected {schedule.describe()})"


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
