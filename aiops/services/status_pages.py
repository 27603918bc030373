"""Status pages: a named, public page of chosen checks at /status/<slug>/.

What the public sees is built here and nowhere else, so that nothing but the following leaks:
each chosen check's name, its current state (operational, degraded, down, maintenance, no data),
its uptime per day over the last 90 days (from the hourly counts, in UTC days), and for each open
incident a check opened, a public title made from the check's name ("<check> is down"), when it
began and whether someone is on it. Never labels, targets, errors, people or internal titles.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.errors import Conflict, InvalidInput

from ..models import Alert, Check, CheckHourlyStat, Incident, StatusPage

DAYS = 90
SLUG_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?")
CHECK_SOURCE = "check"  # raise_alert's source for checks; the alert's fingerprint is Check.dedup_key

# What each check status shows in public.
PUBLIC_STATE = {
    Check.Status.UP: ("operational", "Operational"),
    Check.Status.PENDING: ("degraded", "Degraded"),
    Check.Status.DOWN: ("down", "Down"),
    Check.Status.PAUSED: ("maintenance", "Maintenance"),
    Check.Status.NEW: ("unknown", "No data yet"),
}


def percent(fraction: float) -> str:
    """99.95%, 100%, 0%: two decimals, none when whole; never rounds a failure up to 100%."""
    value = fraction * 100
    if 99.99 < value < 100:
        value = 99.99
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


@dataclass
class DayBar:
    day: datetime.date
    total: int
    up: int

    @property
    def uptime(self) -> float | None:
        return self.up / self.total if self.total else None

    @property
    def title(self) -> str:
        if self.uptime is None:
            return f"{self.day:%Y-%m-%d}: no data"
        return f"{self.day:%Y-%m-%d}: {percent(self.uptime)} up ({self.up:,} of {self.total:,} runs)"

    @property
    def level(self) -> str:
        """The bar's colour class: no data, full, partial or bad."""
        uptime = self.uptime
        if uptime is None:
            return "none"
        if uptime >= 0.999:
            return "up"
        if uptime >= 0.95:
            return "partial"
        return "down"


@dataclass
class PublicCheck:
    name: str
    state: str
    state_label: str
    days: list[DayBar] = field(default_factory=list)

    @property
    def uptime(self) -> float | None:
        total = sum(bar.total for bar in self.days)
        return sum(bar.up for bar in self.days) / total if total else None

    @property
    def uptime_text(self) -> str:
        return "no data yet" if self.uptime is None else f"{percent(self.uptime)} uptime"


@dataclass
class PublicIncident:
    title: str
    started_at: datetime.datetime
    status: str  # "Investigating" or "Identified"


@dataclass
class PublicStatus:
    name: str
    description: str
    checks: list[PublicCheck]
    incidents: list[PublicIncident]
    updated_at: datetime.datetime
    days: int = DAYS

    @property
    def overall(self) -> tuple[str, str]:
        """The banner: (css state, sentence)."""
        states = {check.state for check in self.checks}
        if "down" in states:
            return "down", "Some systems are down"
        if "degraded" in states:
            return "degraded", "Some systems are degraded"
        if "maintenance" in states and states <= {"maintenance", "operational"}:
            return "maintenance", "Under maintenance"
        if states and states <= {"operational"}:
            return "operational", "All systems operational"
        return "unknown", "Waiting for the first results"

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "status": self.overall[0],
            "status_text": self.overall[1],
            "updated_at": self.updated_at.isoformat(),
            "checks": [
                {
                    "name": check.name,
                    "status": check.state,
                    "uptime_90d": check.uptime,
                    "days": [{"date": bar.day.isoformat(), "uptime": bar.uptime} for bar in check.days],
                }
                for check in self.checks
            ],
            "incidents": [
                {"title": incident.title, "started_at": incident.started_at.isoformat(), "status": incident.status}
                for incident in self.incidents
            ],
        }


def public_status(page: StatusPage, *, now: datetime.datetime | None = None) -> PublicStatus:
    """What /status/<slug>/ shows: three queries whatever the number of checks."""
    now = now or timezone.now()
    checks = list(page.checks.order_by("name", "id").only("id", "name", "status", "paused"))
    today = now.astimezone(datetime.UTC).date()
    first_day = today - datetime.timedelta(days=DAYS - 1)
    counts: dict[tuple[int, datetime.date], tuple[int, int]] = {}
    if checks:
        start = datetime.datetime.combine(first_day, datetime.time.min, tzinfo=datetime.UTC)
        rows = (
            CheckHourlyStat.objects.filter(check_obj__in=[c.pk for c in checks], hour__gte=start)
            .annotate(day=TruncDate("hour", tzinfo=datetime.UTC))
            .values("check_obj", "day")
            .annotate(day_total=Sum("total"), day_up=Sum("up"))
        )
        counts = {(row["check_obj"], row["day"]): (row["day_total"], row["day_up"]) for row in rows}
    days = [first_day + datetime.timedelta(days=n) for n in range(DAYS)]
    public_checks = []
    for check in checks:
        status = Check.Status.PAUSED if check.paused else check.status
        state, label = PUBLIC_STATE.get(status, ("unknown", "No data yet"))
        bars = [DayBar(day, *counts.get((check.pk, day), (0, 0))) for day in days]
        public_checks.append(PublicCheck(name=check.name, state=state, state_label=label, days=bars))
    return PublicStatus(
        name=page.name,
        description=page.description,
        checks=public_checks,
        incidents=_open_incidents(checks),
        updated_at=now,
    )


def _open_incidents(checks: list[Check]) -> list[PublicIncident]:
    names = {check.dedup_key: check.name for check in checks}
    if not names:
        return []
    alerts = (
        Alert.objects.filter(
            integration__internal_source=CHECK_SOURCE,
            fingerprint__in=list(names),
            incident__isnull=False,
            incident__resolved_at__isnull=True,
        )
        .exclude(incident__status=Incident.Status.RESOLVED)
        .values("fingerprint", "incident_id", "incident__created_at", "incident__status")
        .order_by("-incident__created_at")
    )
    seen: dict[int, PublicIncident] = {}
    for row in alerts:
        incident_id = row["incident_id"]
        if incident_id in seen:
            continue
        status = "Identified" if row["incident__status"] == Incident.Status.ACKNOWLEDGED else "Investigating"
        seen[incident_id] = PublicIncident(
            title=f"{names[row['fingerprint']]} is down", started_at=row["incident__created_at"], status=status
        )
    return list(seen.values())


def _validated(name: str, slug: str, description: str, check_ids: list[int]) -> tuple[str, str, str, list[Check]]:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("required, e.g. 'Public API'.", field="name")
    if len(name) > 200:
        raise InvalidInput("at most 200 characters.", field="name")
    slug = (slug or "").strip().lower()
    if not SLUG_PATTERN.fullmatch(slug):
        raise InvalidInput("lower-case letters, digits and '-', 1-100, e.g. 'public-api'.", field="slug")
    description = (description or "").strip()
    if len(description) > 2000:
        raise InvalidInput("at most 2,000 characters.", field="description")
    ids = []
    for value in check_ids or []:
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            raise InvalidInput(f"{value!r} is not a check id.", field="checks") from None
    checks = list(Check.objects.filter(pk__in=ids))
    missing = sorted(set(ids) - {check.pk for check in checks})
    if missing:
        raise InvalidInput(f"no check with id {', '.join(map(str, missing))}.", field="checks")
    return name, slug, description, checks


@transaction.atomic
def save_status_page(
    *,
    actor: User | AnonymousUser | None,
    name: str,
    slug: str,
    description: str = "",
    check_ids: list[int] | None = None,
    published: bool = False,
    page: StatusPage | None = None,
) -> StatusPage:
    """Create (page=None) or change a status page; admins only (the views check the role)."""
    name, slug, description, checks = _validated(name, slug, description, check_ids or [])
    if StatusPage.objects.filter(slug=slug).exclude(pk=page.pk if page else None).exists():
        raise Conflict(f"a status page at /status/{slug}/ exists already.", field="slug")
    before = None
    if page is not None:
        before = {
            "name": page.name,
            "slug": page.slug,
            "description": page.description,
            "published": page.published,
            "checks": sorted(page.checks.values_list("pk", flat=True)),
        }
    creating = page is None
    page = page or StatusPage(created_by=actor if actor is not None and actor.is_authenticated else None)
    page.name, page.slug, page.description, page.published = name, slug, description, bool(published)
    try:
        with transaction.atomic():
            page.save()
    except IntegrityError:
        raise Conflict(f"a status page at /status/{slug}/ exists already.", field="slug") from None
    page.checks.set(checks)
    after = {
        "name": name,
        "slug": slug,
        "description": description,
        "published": page.published,
        "checks": sorted(c.pk for c in checks),
    }
    if creating:
        created = {k: [None, v] for k, v in after.items()}
        audit.record(action=audit.Action.CREATE, actor=actor, obj=page, changes=created)
    else:
        changes = {k: [before[k], v] for k, v in after.items() if before[k] != v}
        if changes:
            audit.record(action=audit.Action.UPDATE, actor=actor, obj=page, changes=changes)
    return page


@transaction.atomic
def delete_status_page(*, page: StatusPage, actor: User | AnonymousUser | None) -> None:
    audit.record(action=audit.Action.DELETE, actor=actor, obj=page, changes={"slug": [page.slug, None]})
    page.delete()
