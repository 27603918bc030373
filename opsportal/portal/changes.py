"""Changes an app made in a time window, for the troubleshooting context on incidents.

Each product app reports its own changes (model promotions, prompt label moves, rule and silence
edits ...) through `PortalApp.recent_changes()`; `changes_between()` asks every installed app, so
the app showing them (aiops) imports none of the others.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from opsportal.registry import portal_apps

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """One change: what happened (`title`), when, by whom, where to see it, and which app made it."""

    title: str
    at: datetime.datetime
    actor: str
    url: str
    app: str


def changes_between(*, start: datetime.datetime, end: datetime.datetime, limit: int = 50) -> list[Change]:
    """Every installed app's changes in [start, end], newest first, at most `limit` in all.

    An app whose hook fails is left out (logged): the context panel still shows the others.
    """
    found: list[Change] = []
    for app in portal_apps():
        try:
            found.extend(app.recent_changes(start=start, end=end, limit=limit))
        except Exception:
            logger.exception("recent_changes of %s failed", app.label)
    found.sort(key=lambda change: change.at, reverse=True)
    return found[:limit]
