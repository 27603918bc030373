"""The learned tables: how often kinds of alerts fired together, and what people merged or split.

Counts halve every `HALF_LIFE_DAYS` (applied when a row is read or written), and the pair table
keeps at most `MAX_PAIRS` rows (the weakest go first), so the memory stays small and current.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterable

from django.db.models import Q
from django.utils import timezone

from ..models import Alert, AlertPairStats, AlertSignatureStats, CorrelationLearningCursor, IncidentEvent
from .scoring import History, signature

HALF_LIFE_DAYS = 30.0
# Two alerts fired "together" when the later one fired at most this long after the earlier one.
COFIRE_SECONDS = 300
# Per firing, at most this many distinct other signatures (the nearest in time) are counted.
MAX_NEIGHBOURS = 20
MAX_PAIRS = 50_000
# Incidents holding a kind of alert that fired with this one at least this often are candidates
# (one coincidence does not make every incident with that alert worth scoring).
MIN_PARTNER_COFIRED = 2.0
FEEDBACK_EVENTS_PER_BATCH = 500
# People's word weighs more than a coincidence: one merge counts as this many fired-together.
FEEDBACK_WEIGHT = 1.0


def decay(value: float, since: datetime.datetime, now: datetime.datetime) -> float:
    age_days = max(0.0, (now - since).total_seconds() / 86400)
    return value * 0.5 ** (age_days / HALF_LIFE_DAYS)


def pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def alert_signature(alert: Alert) -> str:
    return signature({str(k): str(v) for k, v in alert.labels.items()}, alert.title, alert.service)


class Memory:
    """The learned counts about a set of signatures, read once per batch, decayed to `now`."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now
        self.fired: dict[str, float] = {}
        self.pairs: dict[tuple[str, str], History] = {}
        self.partners: dict[str, set[str]] = {}

    @classmethod
    def load(cls, signatures: Iterable[str], now: datetime.datetime) -> Memory:
        memory = cls(now)
        signatures = sorted(set(signatures))
        if not signatures:
            return memory
        rows = AlertPairStats.objects.filter(Q(a__in=signatures) | Q(b__in=signatures)).values_list(
            "a", "b", "cofired", "lag_seconds", "together", "apart", "updated_at"
        )
        seen = set(signatures)
        for a, b, cofired, lag, together, apart, updated in rows:
            factor = decay(1.0, updated, now)
            memory.pairs[(a, b)] = History(cofired * factor, lag * factor, together * factor, apart * factor)
            if cofired * factor >= MIN_PARTNER_COFIRED or together * factor >= 0.5:
                memory.partners.setdefault(a, set()).add(b)
                memory.partners.setdefault(b, set()).add(a)
            seen.update((a, b))
        for sig, fired, updated in AlertSignatureStats.objects.filter(signature__in=sorted(seen)).values_list(
            "signature", "fired", "updated_at"
        ):
            memory.fired[sig] = decay(fired, updated, now)
        return memory

    def pair(self, a: str, b: str) -> History | None:
        return self.pairs.get(pair_key(a, b))


def record_firings(firings: list[tuple[str, float]], earlier: list[tuple[str, float]], now: datetime.datetime) -> None:
    """Count co-firings: `firings` are the (signature, epoch seconds) of a batch's new alerts, `earlier`
    those that fired shortly before the batch. A pair's `lag_seconds` sums when `b` fired minus when
    `a` fired, so its mean says which one usually comes first and how long after. A signature firing
    again within COFIRE_SECONDS of itself is the same episode and is not counted again."""
    timeline = sorted([(at, False, sig) for sig, at in earlier] + [(at, True, sig) for sig, at in firings])
    fired: dict[str, float] = {}
    pairs: dict[tuple[str, str], list[float]] = {}
    last_seen: dict[str, float] = {}
    start = 0
    for index, (at, is_new, sig) in enumerate(timeline):
        while timeline[start][0] < at - COFIRE_SECONDS:
            start += 1
        repeated = last_seen.get(sig, -1e18) >= at - COFIRE_SECONDS
        last_seen[sig] = at
        if not is_new or repeated:
            continue
        window = timeline[start:index]
        fired[sig] = fired.get(sig, 0.0) + 1
        counted: set[str] = set()
        for other_at, _, other in reversed(window):
            if other in counted:
                continue
            counted.add(other)
            key = pair_key(sig, other)
            totals = pairs.setdefault(key, [0.0, 0.0])
            totals[0] += 1
            # Signed, as when b fired minus when a fired: which of the two usually comes first.
            totals[1] += at - other_at if key[1] == sig else other_at - at
            if len(counted) >= MAX_NEIGHBOURS:
                break
    _add_fired(fired, now)
    _add_pairs({key: (n, lag, 0.0, 0.0) for key, (n, lag) in pairs.items()}, now)


def teach(*, together: Iterable[tuple[str, str]] = (), apart: Iterable[tuple[str, str]] = ()) -> None:
    """People's feedback on pairs of signatures: merged (together) or split (apart)."""
    changes: dict[tuple[str, str], tuple[float, float, float, float]] = {}
    for pairs, column in ((together, 2), (apart, 3)):
        for a, b in pairs:
            if a == b:
                continue
            key = pair_key(a, b)
            row = list(changes.get(key, (0.0, 0.0, 0.0, 0.0)))
            row[column] += FEEDBACK_WEIGHT
            changes[key] = tuple(row)  # type: ignore[assignment]
    _add_pairs(changes, timezone.now())


def _add_fired(fired: dict[str, float], now: datetime.datetime) -> None:
    if not fired:
        return
    existing = {s.signature: s for s in AlertSignatureStats.objects.filter(signature__in=sorted(fired))}
    rows = []
    for sig in sorted(fired):
        row = existing.get(sig) or AlertSignatureStats(signature=sig, fired=0.0, updated_at=now)
        row.fired = decay(row.fired, row.updated_at, now) + fired[sig]
        row.updated_at = now
        rows.append(row)
    AlertSignatureStats.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["signature"], update_fields=["fired", "updated_at"]
    )


def _add_pairs(changes: dict[tuple[str, str], tuple[float, float, float, float]], now: datetime.datetime) -> None:
    """Add (cofired, lag_seconds, together, apart) to each pair, decaying what was there."""
    if not changes:
        return
    firsts = sorted({a for a, _ in changes})
    existing = {
        (p.a, p.b): p
        for p in AlertPairStats.objects.filter(a__in=firsts, b__in=sorted({b for _, b in changes}))
        if (p.a, p.b) in changes
    }
    rows = []
    for key in sorted(changes):
        row = existing.get(key) or AlertPairStats(a=key[0], b=key[1], updated_at=now)
        factor = decay(1.0, row.updated_at, now)
        cofired, lag, together, apart = changes[key]
        row.cofired = row.cofired * factor + cofired
        row.lag_seconds = row.lag_seconds * factor + lag
        row.together = row.together * factor + together
        row.apart = row.apart * factor + apart
        row.updated_at = now
        rows.append(row)
    AlertPairStats.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["a", "b"],
        update_fields=["cofired", "lag_seconds", "together", "apart", "updated_at"],
        batch_size=2000,
    )
    if len(existing) < len(rows):
        prune()


def prune(max_pairs: int = MAX_PAIRS) -> int:
    """Keep the `max_pairs` pairs with the most evidence; returns how many were dropped."""
    excess = AlertPairStats.objects.count() - max_pairs
    if excess <= 0:
        return 0
    weakest = list(
        AlertPairStats.objects.order_by("updated_at", "cofired", "id").values_list("id", flat=True)[: excess + 1000]
    )
    AlertPairStats.objects.filter(id__in=weakest).delete()
    return len(weakest)


def learn_from_feedback() -> int:
    """Read the merges and splits people made since last time (the incidents' timelines) and teach
    them. Returns how many were read; a worker that finds another one doing it skips."""
    cursor, _ = CorrelationLearningCursor.objects.get_or_create(name="feedback")
    cursor = CorrelationLearningCursor.objects.select_for_update(skip_locked=True).filter(pk=cursor.pk).first()
    if cursor is None:
        return 0
    events = list(
        IncidentEvent.objects.filter(
            id__gt=cursor.last_event_id, kind__in=[IncidentEvent.Kind.MERGED, IncidentEvent.Kind.SPLIT]
        ).order_by("id")[:FEEDBACK_EVENTS_PER_BATCH]
    )
    if not events:
        return 0
    together: list[tuple[str, str]] = []
    apart: list[tuple[str, str]] = []
    for event in events:
        if event.kind == IncidentEvent.Kind.MERGED and event.data.get("source"):
            moved = set(
                IncidentEvent.objects.filter(
                    incident_id=event.data["source"], kind=IncidentEvent.Kind.ALERT_FIRING
                ).values_list("data__alert", flat=True)
            )
            alerts = list(Alert.objects.filter(incident_id=event.incident_id).only("labels", "title", "service"))
            source = {alert_signature(a) for a in alerts if a.pk in moved}
            target = {alert_signature(a) for a in alerts if a.pk not in moved}
            together += _capped(itertools.product(source, target))
        elif event.kind == IncidentEvent.Kind.SPLIT and event.data.get("alert"):
            alert = Alert.objects.filter(pk=event.data["alert"]).first()
            if alert is None:
                continue
            rest = Alert.objects.filter(incident_id=event.incident_id).exclude(pk=alert.pk)
            mine = alert_signature(alert)
            apart += _capped((mine, alert_signature(a)) for a in rest.only("labels", "title", "service")[:200])
    teach(together=together, apart=apart)
    cursor.last_event_id = events[-1].pk
    cursor.save(update_fields=["last_event_id"])
    return len(events)


def _capped(pairs: Iterable[tuple[str, str]], cap: int = 200) -> list[tuple[str, str]]:
    return list(itertools.islice(((a, b) for a, b in pairs if a != b), cap))
