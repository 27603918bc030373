"""The learned tables: how often kinds of alerts fired together, and what people merged or split.

Counts halve every `HALF_LIFE_DAYS` (applied when a row is read or written), and the pair table
keeps at most `MAX_PAIRS` rows (the weakest go first), so the memory stays small and current.
"""

from __future__ import annotations

import datetime
import itertools
import threading
from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from opsportal.bulk import binary_query

from ..models import Alert, AlertPairStats, AlertSignatureStats, CorrelationLearningCursor, IncidentEvent
from .scoring import History, history_rate, signature

HALF_LIFE_DAYS = 30.0
# Two alerts fired "together" when the later one fired at most this long after the earlier one.
COFIRE_SECONDS = 300
# Per firing, at most this many distinct other signatures (the nearest in time) are counted.
MAX_NEIGHBOURS = 20
MAX_PAIRS = 50_000
# Incidents holding a kind of alert that fired with this one at least this often are candidates
# (one coincidence does not make every incident with that alert worth scoring).
MIN_PARTNER_COFIRED = 2.0
# ... and one of the two fired with the other at least this share of its firings (smoothed): kinds that met
# by chance a few times among many firings are not worth the scoring.
MIN_PARTNER_RATE = 0.2
FEEDBACK_EVENTS_PER_BATCH = 500
# People's word weighs more than a coincidence: one merge counts as this many fired-together.
FEEDBACK_WEIGHT = 1.0


def decay(value: float, since: datetime.datetime, now: datetime.datetime) -> float:
    age_days = max(0.0, (now - since).total_seconds() / 86400)
    return value * 0.5 ** (age_days / HALF_LIFE_DAYS)


def pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def alert_signature(alert: Alert) -> str:
    return _signature_of(alert.labels, alert.title, alert.service)


class Memory:
    """The learned counts about a set of signatures, decayed to `now`.

    A worker keeps the memory it read (one per thread) and the next batch reuses it while the tables are
    unchanged (`_version`) and its clock is within REUSE_SECONDS of `now`, reading only the pairs of
    signatures it has not seen yet: a backlog drained in several batches reads the memory once. Over a
    minute a count decays by less than 2e-5 of itself, which no reason or confidence shows."""

    def __init__(self, now: datetime.datetime, version: tuple | None = None) -> None:
        self.now = now
        self.version = version
        self.fired: dict[str, float] = {}
        self.pairs: dict[tuple[str, str], History] = {}
        self.partners: dict[str, set[str]] = {}
        # Signatures all of whose pairs are in `pairs`, and those whose fired count was read.
        self.read: set[str] = set()
        self.fired_read: set[str] = set()
        # What grouping works out from a read signature's pairs, by signature: kept as long as the memory
        # (the pairs and fired counts of a read signature are complete when read, and do not change).
        self.derived: dict[str, dict] = {}

    @classmethod
    def load(cls, signatures: Iterable[str], now: datetime.datetime) -> Memory:
        """The memory about `signatures` (it may know about others too)."""
        signatures = set(signatures)
        if not signatures:
            return cls(now)
        if connection.vendor != "postgresql":  # SQLite reuses ids after a rollback: no version to trust
            memory = cls(now)
        else:
            version = _version()
            memory = getattr(_kept, "memory", None)
            if memory is None or memory.version != version or abs((now - memory.now).total_seconds()) > REUSE_SECONDS:
                memory = cls(now, version)
            _kept.memory = memory
        memory._read(signatures - memory.read)
        return memory

    def _read(self, signatures: set[str]) -> None:
        """Add the pairs touching `signatures`, the fired counts of both sides, and their partners."""
        if not signatures:
            return
        added = []
        for a, b, cofired, lag, together, apart in _decayed_pairs(sorted(signatures), self.now):
            if (a, b) not in self.pairs:
                self.pairs[(a, b)] = History(cofired, lag, together, apart)
                added.append((a, b))
        self.read.update(signatures)
        unread = {sig for pair in added for sig in pair}.union(signatures).difference(self.fired_read)
        for sig, fired, updated in AlertSignatureStats.objects.filter(signature__in=sorted(unread)).values_list(
            "signature", "fired", "updated_at"
        ):
            self.fired[sig] = decay(fired, updated, self.now)
        self.fired_read.update(unread)
        for a, b in added:
            pair = self.pairs[(a, b)]
            if pair.together >= 0.5 or (
                pair.cofired >= MIN_PARTNER_COFIRED and history_rate(a, b, pair, self.fired) >= MIN_PARTNER_RATE
            ):
                self.partners.setdefault(a, set()).add(b)
                self.partners.setdefault(b, set()).add(a)

    def pair(self, a: str, b: str) -> History | None:
        return self.pairs.get(pair_key(a, b))


# The memory a thread read last (see Memory).
_kept = threading.local()
REUSE_SECONDS = 60.0


def _version() -> tuple:
    """What changes whenever a learned table does: row counts, the newest id (ids come from sequences,
    which a rollback does not reuse), the latest update and the sums of the counts."""
    pairs = AlertPairStats.objects.aggregate(
        Count("id"), Max("id"), Max("updated_at"), Sum("cofired"), Sum("lag_seconds"), Sum("together"), Sum("apart")
    )
    fired = AlertSignatureStats.objects.aggregate(Count("id"), Max("id"), Max("updated_at"), Sum("fired"))
    return (*pairs.values(), *fired.values())


def _decay_factor_sql(table: str) -> str:
    """The SQL for `decay(1.0, <table>.updated_at, %s)` (one timestamp parameter)."""
    return (
        f"power(0.5, greatest(0.0, extract(epoch from (%s - {table}.updated_at)))::float8 / {86400 * HALF_LIFE_DAYS})"
    )


def _decayed_pairs(signatures: list[str], now: datetime.datetime) -> Iterable[tuple]:
    """(a, b, cofired, lag_seconds, together, apart) of the pairs touching `signatures`, decayed to `now`."""
    if connection.vendor == "postgresql":
        factor = _decay_factor_sql("p")
        sql = (
            f"SELECT a, b, cofired * f, lag_seconds * f, together * f, apart * f FROM "  # noqa: S608
            f"(SELECT p.*, {factor} AS f FROM {AlertPairStats._meta.db_table} p "
            "WHERE p.a = ANY(%s) OR p.b = ANY(%s)) AS decayed"
        )
        return binary_query(sql, [now, signatures, signatures])
    rows = AlertPairStats.objects.filter(Q(a__in=signatures) | Q(b__in=signatures)).values_list(
        "a", "b", "cofired", "lag_seconds", "together", "apart", "updated_at"
    )
    found = []
    for a, b, cofired, lag, together, apart, updated in rows:
        factor = decay(1.0, updated, now)
        found.append((a, b, cofired * factor, lag * factor, together * factor, apart * factor))
    return found


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
    upsert = _upsert_pairs if connection.vendor == "postgresql" else _save_pairs
    if upsert(changes, now):
        prune()


def _upsert_pairs(changes: dict[tuple[str, str], tuple[float, float, float, float]], now: datetime.datetime) -> int:
    """One INSERT ... ON CONFLICT over arrays, the decay done by PostgreSQL; returns the rows inserted."""
    keys = sorted(changes)  # one order for every worker: concurrent upserts do not deadlock
    columns = list(zip(*(changes[key] for key in keys), strict=True))
    factor = _decay_factor_sql("t")
    table = AlertPairStats._meta.db_table
    updates = ", ".join(
        f"{name} = t.{name} * {factor} + excluded.{name}" for name in ("cofired", "lag_seconds", "together", "apart")
    )
    sql = (
        f"WITH upserted AS (INSERT INTO {table} AS t (a, b, cofired, lag_seconds, together, apart, updated_at) "  # noqa: S608
        "SELECT a, b, cofired, lag_seconds, together, apart, %s FROM "
        "unnest(%s::text[], %s::text[], %s::float8[], %s::float8[], %s::float8[], %s::float8[]) "
        "AS v(a, b, cofired, lag_seconds, together, apart) "
        f"ON CONFLICT (a, b) DO UPDATE SET {updates}, updated_at = excluded.updated_at "
        "RETURNING (xmax = 0) AS inserted) SELECT count(*) FILTER (WHERE inserted) FROM upserted"
    )
    params = [now, [a for a, _ in keys], [b for _, b in keys], *(list(map(float, c)) for c in columns)]
    params += [now] * 4  # the decay factor of each updated column
    return binary_query(sql, params)[0][0]


def _save_pairs(changes: dict[tuple[str, str], tuple[float, float, float, float]], now: datetime.datetime) -> int:
    """The same through the ORM (SQLite): read, decay and add in Python, write back."""
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
    return len(rows) - len(existing)


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


LEARN_BATCH = 20_000


def learn_cofirings(*, limit: int = LEARN_BATCH) -> int:
    """Count the co-firings of the alerts correlated since last time (cursor "cofiring", in alert id
    order, stopping before the first alert still pending), in one transaction with the cursor: each
    alert is counted once, when it first fired, even when a worker dies half-way. Returns how many
    alerts were read; a worker that finds another one doing it skips. Runs after each correlation
    drain (aiops.tasks.process_alerts), off the path that groups alerts into incidents."""
    with transaction.atomic():
        cursor, _ = CorrelationLearningCursor.objects.get_or_create(name="cofiring")
        cursor = CorrelationLearningCursor.objects.select_for_update(skip_locked=True).filter(pk=cursor.pk).first()
        if cursor is None:
            return 0
        after = cursor.last_alert_id
        new = Alert.objects.filter(id__gt=after)
        first_pending = new.filter(pending=True).order_by("id").values_list("id", flat=True).first()
        if first_pending is not None:
            new = new.filter(id__lt=first_pending)
        rows = list(new.order_by("id").values_list("id", "labels", "title", "service", "first_seen_at")[:limit])
        if not rows:
            return 0
        firings = [(_signature_of(labels, title, service), at.timestamp()) for _, labels, title, service, at in rows]
        earliest = min(row[4] for row in rows)
        latest = max(row[4] for row in rows)
        earlier = [
            (_signature_of(labels, title, service), seen.timestamp())
            for labels, title, service, seen in Alert.objects.filter(
                id__lte=after,
                first_seen_at__gte=earliest - datetime.timedelta(seconds=COFIRE_SECONDS),
                first_seen_at__lte=latest,
            ).values_list("labels", "title", "service", "first_seen_at")[:limit]
        ]
        record_firings(firings, earlier, timezone.now())
        cursor.last_alert_id = rows[-1][0]
        cursor.save(update_fields=["last_alert_id"])
        return len(rows)


def _signature_of(labels: dict, title: str, service: str) -> str:
    return signature({str(k): str(v) for k, v in labels.items()}, title, service)


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
    merges = [e for e in events if e.kind == IncidentEvent.Kind.MERGED and e.data.get("source")]
    splits = [e for e in events if e.kind == IncidentEvent.Kind.SPLIT and e.data.get("alert")]
    # A few queries for the whole batch of events, not a few per event.
    moved: dict[int, set[int]] = {}
    for source, alert_id in IncidentEvent.objects.filter(
        incident_id__in={e.data["source"] for e in merges}, kind=IncidentEvent.Kind.ALERT_FIRING
    ).values_list("incident_id", "data__alert"):
        moved.setdefault(source, set()).add(alert_id)
    split_ids = {e.data["alert"] for e in splits}
    split_alerts = {a.pk: a for a in Alert.objects.filter(pk__in=split_ids).only("labels", "title", "service")}
    members: dict[int, list[Alert]] = {}
    for alert in Alert.objects.filter(incident_id__in={e.incident_id for e in merges + splits}).only(
        "labels", "title", "service", "incident"
    ):
        members.setdefault(alert.incident_id, []).append(alert)
    together: list[tuple[str, str]] = []
    apart: list[tuple[str, str]] = []
    for event in merges:
        came = moved.get(event.data["source"], set())
        alerts = members.get(event.incident_id, [])
        source = {alert_signature(a) for a in alerts if a.pk in came}
        target = {alert_signature(a) for a in alerts if a.pk not in came}
        together += _capped(itertools.product(sorted(source), sorted(target)))
    for event in splits:
        alert = split_alerts.get(event.data["alert"])
        if alert is None:
            continue
        mine = alert_signature(alert)
        rest = [a for a in members.get(event.incident_id, []) if a.pk != alert.pk][:200]
        apart += _capped((mine, alert_signature(a)) for a in rest)
    teach(together=together, apart=apart)
    cursor.last_event_id = events[-1].pk
    cursor.save(update_fields=["last_event_id"])
    return len(events)


def _capped(pairs: Iterable[tuple[str, str]], cap: int = 200) -> list[tuple[str, str]]:
    return list(itertools.islice(((a, b) for a, b in pairs if a != b), cap))
