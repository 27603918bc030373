"""Logged predictions and their delayed ground truth, and the batches cut from them.

`log_predictions` stores production rows (`{"id", "timestamp", "features", "prediction"}`) in bulk (COPY on
PostgreSQL); it is idempotent on the id, so a sender's retry stores nothing twice. Every row is checked
first, and a bad one refuses the whole request with the row's index and field (nothing stored).

`log_labels` joins ground truth by id whenever it arrives: before or after the prediction's batch was cut.
Ids that match no logged prediction are answered back, never dropped silently. The performance of every
batch holding a newly labelled prediction is computed again from all its labelled rows.

`cut_prediction_batches` turns the logged predictions of each closed `batch_minutes` window (aligned on the
Unix epoch) into one batch per version, and makes again the batch of a window when predictions for it arrive
late. `mlops.tasks.cut_prediction_batches` runs it for every monitor on a schedule.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Min, OuterRef, Subquery
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.bulk import fast_bulk_create
from opsportal.enqueue import enqueue_on_commit

from ..drift.performance import performance
from ..models import ModelVersion, Monitor, MonitoringBatch, PredictionRecord, RegisteredModel, Stage
from .batches import _parse_time, record_batch, reprofile_batch, table_from_rows
from .errors import InvalidValue
from .history import Actor

logger = logging.getLogger(__name__)

MAX_ROWS = 50_000
ID_MAX = 255
ROW_KEYS = frozenset({"id", "timestamp", "features", "prediction", "label", "version"})
LABEL_KEYS = frozenset({"id", "label"})
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@dataclass
class PredictionsLogged:
    """What `log_predictions` did: rows stored, rows already stored under their id, the version they went to."""

    accepted: int
    duplicates: int
    version: int | None
    late: int = 0

    def to_dict(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "version": self.version, "late": self.late}


@dataclass
class LabelsLogged:
    """What `log_labels` did: predictions labelled, ids that match no logged prediction, batches rescored."""

    labelled: int
    unknown: list[str] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"labelled": self.labelled, "unknown": self.unknown, "batches": self.batches}


def _plain(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _identifier(row: dict, where: str) -> str:
    value = row.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise InvalidValue("is required: a non-empty string or integer.", field=f"{where}.id")
    text = str(value)
    if len(text) > ID_MAX:
        raise InvalidValue(f"must be at most {ID_MAX} characters.", field=f"{where}.id")
    return text


def _timestamp(value: object, where: str, now: datetime.datetime) -> datetime.datetime:
    if value is None:
        return now
    if isinstance(value, bool):
        raise InvalidValue("must be an ISO 8601 timestamp or Unix seconds.", field=f"{where}.timestamp")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise InvalidValue("must be an ISO 8601 timestamp or Unix seconds.", field=f"{where}.timestamp")
        try:
            return datetime.datetime.fromtimestamp(float(value), tz=datetime.UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidValue("is out of range.", field=f"{where}.timestamp") from None
    if not isinstance(value, str):
        raise InvalidValue("must be an ISO 8601 timestamp or Unix seconds.", field=f"{where}.timestamp")
    try:
        return _parse_time(value, "timestamp", 0)
    except InvalidValue:
        raise InvalidValue(
            f"{value[:60]!r} is not an ISO 8601 timestamp or Unix seconds.", field=f"{where}.timestamp"
        ) from None


def _is_number(value: object) -> bool:
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _feature_schema(model: RegisteredModel) -> tuple[dict[str, str], set[str]] | None:
    """The features the model's monitors know, with their types, and the role columns' names; None when no
    monitor has a schema yet (then any plain features are taken)."""
    monitors = [m for m in model.monitors.all() if m.schema]
    if not monitors:
        return None
    features: dict[str, str] = {}
    roles: set[str] = set()
    for monitor in monitors:
        for name, column in monitor.schema.items():
            if column["role"] in ("feature", "score"):
                features.setdefault(name, column["type"])
            else:
                roles.add(name)
        if monitor.score_column and monitor.score_column not in monitor.schema:
            features.setdefault(monitor.score_column, "numerical")
    return features, roles


def _check_features(value: object, where: str, known: tuple[dict[str, str], set[str]] | None) -> dict:
    if not isinstance(value, dict):
        raise InvalidValue("is required: an object of feature: value.", field=f"{where}.features")
    for name, item in value.items():
        spot = f"{where}.features.{name}"
        if not _plain(item):
            raise InvalidValue(
                f"{type(item).__name__} is not a plain value (string, number, boolean or null).", field=spot
            )
        if isinstance(item, float) and not math.isfinite(item):
            raise InvalidValue("must be a finite number or null.", field=spot)
        if known is None:
            continue
        features, roles = known
        if name not in features:
            hint = " (a role column: send it as the row's own key)" if name in roles else ""
            raise InvalidValue(
                f"is not a feature of the monitor's schema{hint}; features: {', '.join(sorted(features))}.",
                field=spot,
            )
        if features[name] == "numerical" and not _is_number(item):
            raise InvalidValue(f"{item!r} is not a number (the column is numerical).", field=spot)
    return value


def default_version(model: RegisteredModel) -> ModelVersion | None:
    """The version predictions are for when a row does not say: the one the model's first enabled monitor
    follows, else its newest Production version."""
    for monitor in model.monitors.all():
        if monitor.enabled:
            return monitor.current_version()
    return ModelVersion.objects.filter(model=model, stage=Stage.PRODUCTION).order_by("-version").first()


def _versions(model: RegisteredModel, rows: list[dict]) -> dict[int, ModelVersion]:
    numbers = {row["version"] for row in rows if row.get("version") is not None}
    if not numbers:
        return {}
    for number in numbers:
        if isinstance(number, bool) or not isinstance(number, int):
            index = next(i for i, row in enumerate(rows) if row.get("version") == number)
            raise InvalidValue("must be a version number.", field=f"rows[{index}].version")
    found = {v.version: v for v in ModelVersion.objects.filter(model=model, version__in=numbers)}
    for index, row in enumerate(rows):
        if row.get("version") is not None and row["version"] not in found:
            raise InvalidValue(f"{model.name} has no version {row['version']}.", field=f"rows[{index}].version")
    return found


def log_predictions(*, model: RegisteredModel, rows: object, actor: Actor) -> PredictionsLogged:
    """Store logged predictions (see the module docstring); InvalidValue naming `rows[i].field` of the first bad
    row, with nothing stored. A row may carry `label` (ground truth known already) and `version`."""
    if not isinstance(rows, list) or not rows:
        raise InvalidValue("must be a non-empty list of predictions.", field="rows")
    if len(rows) > MAX_ROWS:
        raise InvalidValue(f"at most {MAX_ROWS:,} rows per request; got {len(rows):,}.", field="rows")
    now = timezone.now()
    known = _feature_schema(model)
    records: dict[str, PredictionRecord] = {}
    duplicates = 0
    for index, row in enumerate(rows):
        where = f"rows[{index}]"
        if not isinstance(row, dict):
            raise InvalidValue("must be an object with id, timestamp, features and prediction.", field=where)
        extra = set(row) - ROW_KEYS
        if extra:
            raise InvalidValue(
                f"unknown key(s) {', '.join(sorted(extra))}; a row has {', '.join(sorted(ROW_KEYS))}.", field=where
            )
        identifier = _identifier(row, where)
        if "prediction" not in row or row["prediction"] is None:
            raise InvalidValue("is required.", field=f"{where}.prediction")
        for key in ("prediction", "label"):
            if not _plain(row.get(key)) or (isinstance(row.get(key), float) and not math.isfinite(row[key])):
                raise InvalidValue("must be a string, a finite number or a boolean.", field=f"{where}.{key}")
        features = _check_features(row.get("features"), where, known)
        timestamp = _timestamp(row.get("timestamp"), where, now)
        if identifier in records:
            duplicates += 1
            continue
        records[identifier] = PredictionRecord(
            model=model,
            prediction_id=identifier,
            timestamp=timestamp,
            features=features,
            prediction=row["prediction"],
            label=row.get("label"),
            labelled_at=now if row.get("label") is not None else None,
            received_at=now,
        )
    versions = _versions(model, rows)
    fallback = default_version(model) if len(versions) < len(records) else None
    numbers = {str(row.get("id")): row.get("version") for row in rows if isinstance(row, dict)}
    for identifier, record in records.items():
        number = numbers.get(identifier)
        record.version = versions[number] if number is not None else fallback
    with transaction.atomic():
        existing = set(
            PredictionRecord.objects.filter(model=model, prediction_id__in=list(records)).values_list(
                "prediction_id", flat=True
            )
        )
        new = [record for identifier, record in records.items() if identifier not in existing]
        duplicates += len(records) - len(new)
        accepted = _insert(new, model, now)
        duplicates += len(new) - accepted
        if accepted:
            audit.record(
                action=audit.Action.CREATE,
                actor=actor,
                obj=model,
                message=f"{accepted:,} logged predictions ({duplicates:,} already logged).",
            )
    batched = [m.batched_until for m in model.monitors.all() if m.batched_until is not None]
    late = sum(1 for record in new if batched and record.timestamp < max(batched)) if accepted else 0
    return PredictionsLogged(accepted, duplicates, fallback.version if fallback else None, late)


def _insert(records: list[PredictionRecord], model: RegisteredModel, now: datetime.datetime) -> int:
    """COPY the new records; if a concurrent retry stored some of the same ids meanwhile, insert the rest with
    ON CONFLICT DO NOTHING instead. Returns how many were stored."""
    if not records:
        return 0
    try:
        with transaction.atomic():
            fast_bulk_create(records)
        return len(records)
    except IntegrityError:
        for record in records:
            record.pk = None
            record._state.adding = True
        PredictionRecord.objects.bulk_create(records, ignore_conflicts=True, batch_size=2000)
        return PredictionRecord.objects.filter(
            model=model, received_at=now, prediction_id__in=[r.prediction_id for r in records]
        ).count()


def log_labels(*, model: RegisteredModel, labels: object, actor: Actor) -> LabelsLogged:
    """Join ground truth to logged predictions by id (`[{"id", "label"}]`; a later label for an id replaces the
    earlier one); InvalidValue naming `labels[i].field` of a bad item, with nothing stored."""
    if not isinstance(labels, list) or not labels:
        raise InvalidValue("must be a non-empty list of {id, label}.", field="labels")
    if len(labels) > MAX_ROWS:
        raise InvalidValue(f"at most {MAX_ROWS:,} labels per request; got {len(labels):,}.", field="labels")
    wanted: dict[str, Any] = {}
    for index, item in enumerate(labels):
        where = f"labels[{index}]"
        if not isinstance(item, dict):
            raise InvalidValue("must be an object with id and label.", field=where)
        extra = set(item) - LABEL_KEYS
        if extra:
            raise InvalidValue(f"unknown key(s) {', '.join(sorted(extra))}; an item has id and label.", field=where)
        identifier = _identifier(item, where)
        value = item.get("label")
        if value is None or not _plain(value) or (isinstance(value, float) and not math.isfinite(value)):
            raise InvalidValue("is required: a string, a finite number or a boolean.", field=f"{where}.label")
        wanted[identifier] = value
    now = timezone.now()
    with transaction.atomic():
        matched = _update_labels(model, wanted, now)
        batches = rescore_batches(model=model, records=matched)
        if matched:
            audit.record(
                action=audit.Action.UPDATE,
                actor=actor,
                obj=model,
                message=f"Ground truth for {len(matched):,} logged predictions.",
            )
    found = {identifier for identifier, _, _ in matched}
    unknown = [identifier for identifier in wanted if identifier not in found]
    return LabelsLogged(len(matched), unknown, [batch.pk for batch in batches])


def _update_labels(
    model: RegisteredModel, wanted: dict[str, Any], now: datetime.datetime
) -> list[tuple[str, int | None, datetime.datetime]]:
    """Set the labels in one statement; (prediction id, version id, timestamp) of each record labelled."""
    if not wanted:
        return []
    table = PredictionRecord._meta.db_table
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS t SET label = v.label::jsonb, labelled_at = %s "  # noqa: S608
                "FROM unnest(%s::text[], %s::text[]) AS v(id, label) "
                "WHERE t.model_id = %s AND t.prediction_id = v.id "
                "RETURNING t.prediction_id, t.version_id, t.timestamp",
                [now, list(wanted), [json.dumps(value) for value in wanted.values()], model.pk],
            )
            return [(row[0], row[1], row[2]) for row in cursor.fetchall()]
    matched = []
    records = PredictionRecord.objects.filter(model=model, prediction_id__in=list(wanted))
    for record in records.only("id", "prediction_id", "version_id", "timestamp"):
        PredictionRecord.objects.filter(pk=record.pk).update(label=wanted[record.prediction_id], labelled_at=now)
        matched.append((record.prediction_id, record.version_id, record.timestamp))
    return matched


def window_start(moment: datetime.datetime, minutes: int) -> datetime.datetime:
    """The start of the `minutes`-long window (aligned on the Unix epoch) holding `moment`."""
    step = minutes * 60
    seconds = (moment - EPOCH).total_seconds()
    return EPOCH + datetime.timedelta(seconds=math.floor(seconds / step) * step)


def rescore_batches(
    *, model: RegisteredModel, records: Iterable[tuple[str, int | None, datetime.datetime]]
) -> list[MonitoringBatch]:
    """Compute again the performance of every batch cut from logged predictions that holds one of `records`
    ((prediction id, version id, timestamp)), from all its labelled predictions."""
    records = list(records)
    if not records:
        return []
    monitors = [m for m in model.monitors.all() if m.task != "none"]
    keys: set[tuple[int, int | None, datetime.datetime]] = set()
    for monitor in monitors:
        for _identifier, version_id, timestamp in records:
            keys.add((monitor.pk, version_id, window_start(timestamp, monitor.batch_minutes)))
    if not keys:
        return []
    candidates = MonitoringBatch.objects.filter(
        monitor__in=monitors,
        source=MonitoringBatch.Source.PREDICTIONS,
        start__in={start for _, _, start in keys},
    ).select_related("monitor")
    affected = [b for b in candidates if (b.monitor_id, b.version_id, b.start) in keys]
    for batch in affected:
        targets, predictions, scores = [], [], []
        score_column = batch.monitor.score_column
        rows = PredictionRecord.objects.filter(
            model=model, version_id=batch.version_id, timestamp__gte=batch.start, timestamp__lt=batch.end,
            labelled_at__isnull=False,
        ).values_list("prediction", "label", "features")  # fmt: skip
        for prediction, label, features in rows:
            predictions.append(prediction)
            targets.append(label)
            scores.append(_score(features, score_column))
        metrics = performance(batch.monitor.task, targets, predictions, scores if score_column else None)
        batch.performance = metrics
        batch.labelled_rows = int(metrics.get("rows", 0))
        batch.evaluated_at = None
        MonitoringBatch.objects.filter(pk=batch.pk).update(
            performance=metrics, labelled_rows=batch.labelled_rows, evaluated_at=None
        )
        enqueue_on_commit("mlops.tasks.evaluate_monitor_batch", batch.pk)
    return affected


def _score(features: dict, column: str) -> float | None:
    if not column or not isinstance(features, dict):
        return None
    value = features.get(column)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


# --- cutting logged predictions into batches --------------------------------------------------------------------


def _records_table(monitor: Monitor, records: list[tuple]) -> pa.Table:
    """Logged predictions (id, timestamp, features, prediction, label) as rows of the monitor's schema; feature
    keys the schema does not have are left out (the schema may have changed since they were logged)."""
    schema = monitor.schema
    rows = []
    labelled = any(label is not None for *_, label in records)
    for identifier, timestamp, features, prediction, label in records:
        row = {
            name: value
            for name, value in (features or {}).items()
            if name in schema or (name == monitor.score_column and name)
        }
        row[monitor.id_column] = identifier
        row[monitor.timestamp_column] = timestamp.isoformat()
        row[monitor.prediction_column] = prediction
        if labelled:
            row[monitor.target_column] = label
        rows.append(row)
    return table_from_rows(rows)


def _window_records(monitor: Monitor, start: datetime.datetime, end: datetime.datetime) -> dict[int | None, list]:
    by_version: dict[int | None, list] = defaultdict(list)
    rows = (
        PredictionRecord.objects.filter(model_id=monitor.model_id, timestamp__gte=start, timestamp__lt=end)
        .order_by("timestamp", "id")
        .values_list("version_id", "prediction_id", "timestamp", "features", "prediction", "label")
    )
    for version_id, *rest in rows:
        by_version[version_id].append(tuple(rest))
    return by_version


def _cut_window(
    monitor: Monitor, start: datetime.datetime, end: datetime.datetime, existing: dict
) -> list[MonitoringBatch]:
    made = []
    versions = {v.pk: v for v in ModelVersion.objects.filter(model_id=monitor.model_id)}
    for version_id, records in _window_records(monitor, start, end).items():
        table = _records_table(monitor, records)
        batch = existing.get((version_id, start))
        try:
            if batch is not None:
                made.append(reprofile_batch(batch=batch, table=table))
            else:
                made.append(
                    record_batch(
                        monitor=monitor,
                        table=table,
                        source=MonitoringBatch.Source.PREDICTIONS,
                        name=f"Predictions {start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC",
                        start=start,
                        end=end,
                        version=versions.get(version_id),
                    )
                )
        except InvalidValue as error:
            logger.warning("Monitor %s: predictions of %s to %s not batched: %s", monitor.pk, start, end, error)
    return made


def cut_prediction_batches(*, monitor: Monitor, now: datetime.datetime | None = None) -> list[MonitoringBatch]:
    """Cut the logged predictions of every closed window since the last cut into batches (one per version and
    window); windows that received predictions late are made again. Returns the batches made or remade."""
    now = now or timezone.now()
    with transaction.atomic():
        monitor = (
            Monitor.objects.select_for_update(of=("self",)).select_related("reference", "model").get(pk=monitor.pk)
        )
        if monitor.reference is None or not monitor.enabled:
            return []
        minutes = monitor.batch_minutes
        cutoff = window_start(now, minutes)
        records = PredictionRecord.objects.filter(model_id=monitor.model_id)
        since = monitor.batched_until
        made: list[MonitoringBatch] = []
        windows: set[datetime.datetime] = set()
        if since is not None:
            last_cut = monitor.batches.filter(source=MonitoringBatch.Source.PREDICTIONS).aggregate(
                at=Max("received_at")
            )["at"]
            if last_cut is not None:
                late = records.filter(received_at__gt=last_cut, timestamp__lt=since).values_list("timestamp", flat=True)
                windows.update(window_start(moment, minutes) for moment in late)
        else:
            first = records.filter(timestamp__lt=cutoff).aggregate(at=Min("timestamp"))["at"]
            since = window_start(first, minutes) if first is not None else cutoff
        step = datetime.timedelta(minutes=minutes)
        cursor = since
        while cursor < cutoff:
            following = records.filter(timestamp__gte=cursor, timestamp__lt=cutoff).aggregate(at=Min("timestamp"))
            if following["at"] is None:
                break
            start = window_start(following["at"], minutes)
            windows.add(start)
            cursor = start + step
        existing = {
            (b.version_id, b.start): b
            for b in monitor.batches.filter(source=MonitoringBatch.Source.PREDICTIONS, start__in=windows)
        }
        for start in sorted(windows):
            made.extend(_cut_window(monitor, start, start + step, existing))
        monitor.batched_until = max(cutoff, monitor.batched_until or cutoff)
        monitor.save(update_fields=["batched_until"])
    return made


def monitors_to_cut() -> list[int]:
    """Ids of the enabled monitors with a reference whose model has logged predictions received since their
    last cut (or never cut)."""
    newest = PredictionRecord.objects.filter(model_id=OuterRef("model_id")).order_by("-received_at")
    last_cut = MonitoringBatch.objects.filter(
        monitor_id=OuterRef("pk"), source=MonitoringBatch.Source.PREDICTIONS
    ).order_by("-received_at")
    monitors = (
        Monitor.objects.filter(enabled=True, reference__isnull=False)
        .annotate(
            newest=Subquery(newest.values("received_at")[:1]), last_cut=Subquery(last_cut.values("received_at")[:1])
        )
        .filter(newest__isnull=False)
    )
    now = timezone.now()
    due = []
    for pk, newest_at, last_cut_at, batched_until, minutes in monitors.values_list(
        "pk", "newest", "last_cut", "batched_until", "batch_minutes"
    ):
        window_closed = batched_until is None or window_start(now, minutes) > batched_until
        if window_closed or last_cut_at is None or newest_at > last_cut_at:
            due.append(pk)
    return due
