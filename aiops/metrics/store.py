"""Writing samples: series ids resolved in bulk through a per-process cache, samples with COPY.

A series is known by its key (name, sorted labels). The first time a process meets a key it
resolves all the new keys of the batch at once (`INSERT ... ON CONFLICT DO NOTHING`, then one
SELECT of their ids by hash) and keeps them; afterwards a batch costs no query but the COPY.
`last_seen_at` is moved at most every `TOUCH_SECONDS` per series, in one UPDATE per batch.

On PostgreSQL the samples go in with `COPY aiops_sample FROM STDIN` (psycopg 3's cursor.copy),
into the partitioned table (PostgreSQL routes each row to its day); on SQLite with bulk_create.
Samples older than raw retention, or more than an hour ahead, are dropped (counted in the result).
"""

from __future__ import annotations

import datetime
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import psycopg
from django.db import DatabaseError, connection, transaction

from ..models import Sample, Series
from . import partitions

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]
TOUCH_SECONDS = 300
FUTURE_SECONDS = 3600
CACHE_LIMIT = 1_000_000
LOOKUP_BATCH = 1000
UTC = datetime.UTC


def series_key(name: str, labels: Mapping[str, str]) -> SeriesKey:
    return name, tuple(sorted(labels.items()))


def series_hash(key: SeriesKey) -> str:
    """32 hex digits of BLAKE2b over the name and the sorted labels (NUL-separated, so no two keys collide)."""
    name, labels = key
    digest = hashlib.blake2b(digest_size=16)
    digest.update(name.encode())
    for label, value in labels:
        digest.update(b"\x00" + label.encode() + b"\x01" + value.encode())
    return digest.hexdigest()


class SeriesCache:
    """Series ids by key, and when this process last moved each one's last_seen_at."""

    def __init__(self) -> None:
        self.ids: dict[SeriesKey, int] = {}
        self.touched: dict[int, float] = {}
        # Keys of series created inside a transaction not yet committed, by the atomic block they were made in.
        self.provisional: dict[object, set[SeriesKey]] = {}

    def clear(self) -> None:
        self.ids.clear()
        self.touched.clear()
        self.provisional.clear()


CACHE = SeriesCache()


@dataclass
class WriteResult:
    samples: int = 0
    new_series: int = 0
    dropped: int = 0


def resolve_series(keys: Mapping[SeriesKey, str], *, now: datetime.datetime) -> dict[SeriesKey, int]:
    """The id of each key (its value is the series kind, stored when the series is new), creating new series."""
    if CACHE.provisional:
        _forget_rolled_back()
    cache = CACHE.ids
    missing = [key for key in keys if key not in cache]
    if missing:
        if len(cache) + len(missing) > CACHE_LIMIT:
            CACHE.clear()
        hashes = {series_hash(key): key for key in missing}
        Series.objects.bulk_create(
            [
                Series(name=name, labels=dict(labels), kind=keys[(name, labels)], hash=digest, first_seen_at=now)
                for digest, (name, labels) in hashes.items()
            ],
            ignore_conflicts=True,
            batch_size=LOOKUP_BATCH,
        )
        digests = list(hashes)
        found: dict[SeriesKey, int] = {}
        for start in range(0, len(digests), LOOKUP_BATCH):
            chunk = digests[start : start + LOOKUP_BATCH]
            for digest, series_id in Series.objects.filter(hash__in=chunk).values_list("hash", "id"):
                found[hashes[digest]] = series_id
        cache.update(found)
        for series_id in found.values():
            CACHE.touched[series_id] = now.timestamp()
        if connection.in_atomic_block:
            # A series made inside the caller's transaction exists only if it commits: until then its id is
            # provisional, and forgotten if that transaction ends without committing (see above).
            # Keyed by the block object itself (held, so its id cannot be reused by a later block).
            innermost = connection.atomic_blocks[-1] if connection.atomic_blocks else None
            CACHE.provisional.setdefault(innermost, set()).update(found)
            transaction.on_commit(lambda: CACHE.provisional.pop(innermost, None))
    return {key: cache[key] for key in keys}


def _forget_rolled_back() -> None:
    """Drop the cached ids of series made in atomic blocks that have ended without their transaction
    committing (on commit their entry goes): rolled back, or released into one still open (a re-read)."""
    open_blocks = list(connection.atomic_blocks) if connection.in_atomic_block else []
    for block, keys in list(CACHE.provisional.items()):
        if not any(block is candidate for candidate in open_blocks):
            for key in keys:
                CACHE.ids.pop(key, None)
            del CACHE.provisional[block]


def _touch(ids: Iterable[int], now: datetime.datetime) -> None:
    stamp = now.timestamp()
    touched = CACHE.touched
    stale = [series_id for series_id in ids if stamp - touched.get(series_id, 0.0) >= TOUCH_SECONDS]
    if stale:
        Series.objects.filter(id__in=stale).update(last_seen_at=now)
        for series_id in stale:
            touched[series_id] = stamp


def _value_text(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def write_samples(
    samples: Sequence[tuple[SeriesKey, float, float]],
    *,
    kinds: Mapping[SeriesKey, str] | None = None,
    now: datetime.datetime | None = None,
) -> WriteResult:
    """Store `samples`, each (series key, unix time in seconds, value); new series are created on the way."""
    now = now or datetime.datetime.now(UTC)
    stamp = now.timestamp()
    oldest = partitions.raw_cutoff(now).timestamp()
    newest = stamp + FUTURE_SECONDS
    kept = [sample for sample in samples if oldest <= sample[1] <= newest]
    result = WriteResult(dropped=len(samples) - len(kept))
    if not kept:
        return result
    kinds = kinds or {}
    keys = {sample[0]: kinds.get(sample[0], "") for sample in kept}
    known_before = len(CACHE.ids)
    ids = resolve_series(keys, now=now)
    result.new_series = max(0, len(CACHE.ids) - known_before)
    if partitions.partitioned():
        _copy(kept, ids)
    else:
        Sample.objects.bulk_create(
            [
                Sample(
                    series_id=ids[key],
                    time=datetime.datetime.fromtimestamp(at, UTC),
                    value=None if value != value else value,
                )
                for key, at, value in kept
            ],
            batch_size=2000,
        )
    _touch(ids.values(), now)
    result.samples = len(kept)
    return result


def _copy(samples: Sequence[tuple[SeriesKey, float, float]], ids: Mapping[SeriesKey, int]) -> None:
    """COPY the samples, creating the partitions of their days first (once per process and day)."""
    stamps: dict[float, str] = {}
    lines = []
    for key, at, value in samples:
        text = stamps.get(at)
        if text is None:
            text = stamps[at] = datetime.datetime.fromtimestamp(at, UTC).isoformat(sep=" ")
        lines.append(f"{ids[key]}\t{text}\t{_value_text(value)}\n")
    days = {datetime.datetime.fromtimestamp(at, UTC).date() for at in stamps}
    data = "".join(lines)
    partitions.ensure_sample_partitions(days)
    try:
        with transaction.atomic():
            copy_rows(data)
    except (DatabaseError, psycopg.Error):
        # A partition this process thought it had was dropped (retention, a rolled-back transaction that
        # created it, tests): make sure and retry once. COPY raises psycopg's own errors (Django wraps only
        # execute), so both kinds are caught.
        partitions.forget_known()
        partitions.ensure_sample_partitions(days)
        copy_rows(data)


def copy_rows(data: str) -> None:
    """COPY tab-separated `series_id, time, value` lines into the sample table as they are."""
    with connection.cursor() as cursor, cursor.copy("COPY aiops_sample (series_id, time, value) FROM STDIN") as copy:
        copy.write(data)
