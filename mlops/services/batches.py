"""Production batches: parsed from JSON rows, CSV or Parquet, checked against the monitor's schema, then
profiled, quality-checked, compared with the reference and scored, in one transaction.

A batch that does not fit the schema (a missing or unknown column, a value of the wrong kind, a timestamp
that does not parse) is refused with `InvalidValue` naming the column and the row; nothing is stored.
A few values of a numerical column that are not numbers are data quality (type mismatches), not a refusal:
a column is refused when more than half of its values are not numbers (`MISMATCH_REFUSED`).

Uploads are written to a temporary file as they arrive (never held whole in memory), refused past
`MLOPS_BATCH_MAX_BYTES` with a 413, read once into a pyarrow table, and removed afterwards.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.enqueue import enqueue_on_commit

from ..drift import DriftInputError, DriftOptions, DriftReport, compare, read_table
from ..drift.performance import performance
from ..drift.profiles import NOT_FROM_PROFILES, BatchProfile, ProfileSpec, window_drift
from ..drift.quality import profile_quality
from ..drift.schema import ColumnSchema, numerical_values
from ..drift.select import ColumnOptions
from ..models import ModelVersion, Monitor, MonitoringBatch, ReferenceDataset
from .errors import InvalidValue
from .history import Actor, actor_user
from .monitors import drift_share_of

# A numerical column with more than this share of its values not numbers is refused as the wrong type.
MISMATCH_REFUSED = 0.5
CHUNK_BYTES = 1 << 20
# `record_batch`'s default version: the one the monitor follows when the batch arrives.
FOLLOWED = object()


class PayloadTooLarge(InvalidValue):
    """An upload over its size limit (413): the message names the limit's setting and value."""

    status = 413
    code = "payload_too_large"


@dataclass
class Spooled:
    """An upload on disk: its path, size and SHA-256; `owned` when the path is ours to remove."""

    path: Path
    size: int
    sha256: str
    owned: bool

    def remove(self) -> None:
        if self.owned:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _suffix(name: str) -> str:
    suffix = Path(name or "").suffix.lower()
    return suffix if suffix in {".csv", ".parquet", ".pq", ".txt", ".tsv"} else ""


def spool(file: IO[bytes] | Any, name: str, *, limit: int, setting: str) -> Spooled:
    """Write `file` (a Django UploadedFile or a binary file object) to a temporary file chunk by chunk, with its
    size and SHA-256; PayloadTooLarge past `limit` bytes (the partial file is removed).

    An upload Django already streamed to disk (a TemporaryUploadedFile) is used where it lies."""
    declared = getattr(file, "size", None)
    if declared is not None and declared > limit:
        raise PayloadTooLarge(
            f"{name}: {declared:,} bytes is over the limit of {limit:,} bytes ({setting}).", field="file"
        )
    digest = hashlib.sha256()
    if hasattr(file, "temporary_file_path"):
        path = Path(file.temporary_file_path())
        size = 0
        with path.open("rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
        return Spooled(path, size, digest.hexdigest(), owned=False)
    handle, raw_path = tempfile.mkstemp(prefix="opsportal-upload-", suffix=_suffix(name) or ".upload")
    path = Path(raw_path)
    size = 0
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in _chunks(file):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"{name}: more than the limit of {limit:,} bytes ({setting}).", field="file")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Spooled(path, size, digest.hexdigest(), owned=True)


def _chunks(file: Any) -> Iterator[bytes]:
    if hasattr(file, "chunks"):
        yield from file.chunks(CHUNK_BYTES)
        return
    while chunk := file.read(CHUNK_BYTES):
        yield chunk


def read_spooled(spooled: Spooled, name: str) -> pa.Table:
    """The spooled file as a table (CSV or Parquet by name, else by its first bytes); InvalidValue naming the
    file, column and row when it does not parse."""
    try:
        table = read_table(spooled.path)
    except DriftInputError as error:
        message = str(error).replace(str(spooled.path), name or "upload")
        raise InvalidValue(message, field="file") from None
    if table.num_rows == 0:
        raise InvalidValue(f"{name or 'upload'}: no rows.", field="file")
    return table


def table_from_upload(file: IO[bytes] | Any, name: str, *, limit: int | None = None) -> pa.Table:
    """A CSV or Parquet upload as a table: streamed to a temporary file (up to `limit`, by default
    MLOPS_BATCH_MAX_BYTES, else 413), read once, the temporary file removed."""
    limit = settings.MLOPS_BATCH_MAX_BYTES if limit is None else limit
    spooled = spool(file, name, limit=limit, setting="MLOPS_BATCH_MAX_BYTES")
    try:
        return read_spooled(spooled, name)
    finally:
        spooled.remove()


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "nested"


def table_from_rows(rows: object, *, where: str = "rows") -> pa.Table:
    """JSON rows (a list of objects of plain values) as a table; InvalidValue naming the row and column of a
    value that is not a string, number, boolean or null. A column mixing numbers and strings is kept as
    strings (numbers that do not parse count as type mismatches)."""
    if not isinstance(rows, list) or not rows:
        raise InvalidValue("must be a non-empty list of objects.", field=where)
    columns: dict[str, list] = {}
    kinds: dict[str, set[str]] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidValue(f"row {index}: must be an object of column: value.", field=where)
        for name in row:
            if name not in columns:
                columns[name] = [None] * index
                kinds[name] = set()
        for name, values in columns.items():
            value = row.get(name)
            kind = _kind(value)
            if kind == "nested":
                raise InvalidValue(
                    f"row {index}, column {name!r}: {type(value).__name__} is not a plain value (string, number, "
                    "boolean or null).",
                    field=where,
                )
            if kind == "number" and isinstance(value, float) and not math.isfinite(value):
                value = None
            kinds[name].add(kind)
            values.append(value)
    arrays = {}
    for name, values in columns.items():
        present = kinds[name] - {"null"}
        if not present:
            arrays[name] = pa.array(values, pa.null())
        elif present == {"number"}:
            as_int = all(v is None or isinstance(v, int) for v in values)
            arrays[name] = pa.array(values, pa.int64() if as_int else pa.float64())
        elif present == {"bool"}:
            arrays[name] = pa.array(values, pa.bool_())
        elif present == {"string"}:
            arrays[name] = pa.array(values, pa.string())
        else:
            arrays[name] = pa.array([None if v is None else _as_text(v) for v in values], pa.string())
    return pa.table(arrays)


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- checking a batch against the schema --------------------------------------------------------------------


def _first_row(mask: pa.ChunkedArray | pa.Array) -> int:
    """The index of the first true value of a boolean array."""
    indices = pc.indices_nonzero(pc.fill_null(mask, False).combine_chunks() if hasattr(mask, "combine_chunks")
                                 else pc.fill_null(mask, False))  # fmt: skip
    return int(indices[0].as_py()) if len(indices) else -1


def parse_timestamps(values: pa.ChunkedArray, column: str) -> pa.ChunkedArray:
    """A timestamp column as UTC timestamps (ISO 8601 strings, Unix seconds, or Arrow timestamps/dates);
    InvalidValue naming the first row that does not parse."""
    kind = values.type
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            return pc.assume_timezone(values, "UTC") if len(values) else values.cast(pa.timestamp(kind.unit, "UTC"))
        return values
    if pa.types.is_date(kind):
        return values.cast(pa.timestamp("s")).cast(pa.timestamp("s", "UTC"))
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        seconds = pc.cast(values, pa.float64())
        micros = pc.cast(pc.round(pc.multiply(seconds, 1_000_000)), pa.int64())
        return micros.cast(pa.timestamp("us", "UTC"))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
        if pa.types.is_null(kind):
            return values.cast(pa.timestamp("us", "UTC"))
        parsed = []
        for index, value in enumerate(values.to_pylist()):
            parsed.append(None if value in (None, "") else _parse_time(value, column, index))
        return pa.chunked_array([pa.array(parsed, pa.timestamp("us", "UTC"))])
    raise InvalidValue(f"column {column!r}: {kind} values are not timestamps.", field="timestamp")


def _parse_time(value: str, column: str, index: int) -> datetime.datetime:
    text = value.strip()
    try:
        moment = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        try:
            moment = datetime.datetime.fromtimestamp(float(text), tz=datetime.UTC)
        except (ValueError, OverflowError):
            raise InvalidValue(
                f"row {index}, column {column!r}: {value[:60]!r} is not an ISO 8601 timestamp or Unix seconds.",
                field=column,
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


def check_table(monitor: Monitor, table: pa.Table) -> pa.Table:
    """`table` checked against the monitor's schema; InvalidValue naming the column (and row) that does not fit.

    Every schema column must be there except the target (labels may come later), the id and the timestamp;
    a column the schema does not have is refused, unless it is one of the monitor's role columns. The timestamp
    column, when there, is parsed to UTC.
    """
    schema = monitor.schema
    if not schema:
        raise InvalidValue("the monitor has no reference data yet: upload a reference first.", field="reference")
    if table.num_rows == 0:
        raise InvalidValue("the batch has no rows.", field="rows")
    optional = {monitor.target_column, monitor.id_column, monitor.timestamp_column}
    roles = {*optional, monitor.prediction_column, monitor.score_column} - {""}
    missing = [name for name in schema if name not in table.column_names and name not in optional]
    # Role columns are welcome even when the reference lacked them (training data without predictions).
    extra = [name for name in table.column_names if name not in schema and name not in roles]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(repr(n) for n in missing)}")
        if extra:
            parts.append(f"column(s) not in the monitor's schema {', '.join(repr(n) for n in extra)}")
        raise InvalidValue("; ".join(parts) + f" (schema: {', '.join(schema)}).", field=(missing or extra)[0])
    for name in table.column_names:
        if name not in schema:
            continue
        kind = schema[name]["type"]
        values = table.column(name)
        if kind == "numerical":
            _check_numbers(name, values)
        elif kind in ("categorical", "boolean") and not _plain_type(values.type):
            raise InvalidValue(f"column {name!r}: {values.type} values are not {kind}.", field=name)
    if monitor.timestamp_column in table.column_names:
        index = table.column_names.index(monitor.timestamp_column)
        table = table.set_column(
            index, monitor.timestamp_column, parse_timestamps(table.column(index), monitor.timestamp_column)
        )
    return table


def _plain_type(kind: pa.DataType) -> bool:
    return not (pa.types.is_nested(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind))


def _check_numbers(name: str, values: pa.ChunkedArray) -> None:
    """InvalidValue when a numerical column is of a type that holds no numbers, or mostly words."""
    kind = values.type
    if not (_plain_type(kind) and not pa.types.is_timestamp(kind) and not pa.types.is_date(kind)):
        raise InvalidValue(f"column {name!r}: {kind} values are not numbers.", field=name)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return
    numbers, mismatches = numerical_values(values)
    present = len(values) - values.null_count
    if present and mismatches / present > MISMATCH_REFUSED:
        bad = pc.and_(pc.is_valid(values), pc.is_nan(pc.fill_null(pa.chunked_array([numbers]), 0.0)))
        row = _first_row(bad)
        sample = values[row].as_py() if row >= 0 else ""
        raise InvalidValue(
            f"row {row}, column {name!r}: {str(sample)[:60]!r} is not a number ({mismatches:,} of {present:,} "
            "values are not numbers).",
            field=name,
        )


# --- profiling a batch ----------------------------------------------------------------------------------------


def drift_options(monitor: Monitor) -> DriftOptions:
    """The monitor's drift settings as the engine takes them."""
    options = monitor.options or {}
    return DriftOptions(
        columns={
            name: ColumnOptions(column.get("method"), column.get("threshold"))
            for name, column in (options.get("columns") or {}).items()
        },
        method=options.get("method"),
        threshold=options.get("threshold"),
        drift_share=drift_share_of(monitor),
    )


def reference_parts(reference: ReferenceDataset) -> tuple[ProfileSpec, BatchProfile]:
    return ProfileSpec.from_dict(reference.spec), BatchProfile.from_dict(reference.profile)


def profile_drift(
    reference: ReferenceDataset, spec: ProfileSpec, profile: BatchProfile, options: DriftOptions, rows: pa.Table | None
) -> DriftReport:
    """Drift of a batch's profile against the reference's; columns whose method needs the rows (Anderson-
    Darling, Cramér-von Mises) are compared on `rows` against the reference's stored rows."""
    reference_spec, reference_profile = reference_parts(reference)
    by_rows = [name for name in spec.columns if options.for_column(name).method in NOT_FROM_PROFILES]
    if by_rows and rows is None:
        by_rows = []
    kept = ProfileSpec({n: c for n, c in reference_spec.columns.items() if n not in by_rows})
    report = window_drift(
        kept,
        BatchProfile(reference_profile.rows, {n: reference_profile.columns[n] for n in kept.columns}),
        BatchProfile(profile.rows, {n: profile.columns[n] for n in kept.columns}),
        options,
    )
    if by_rows:
        with reference.file.open("rb") as f:
            reference_rows = pq.read_table(f, columns=by_rows)
        schema = {n: ColumnSchema(n, spec.columns[n].type, spec.columns[n].role) for n in by_rows}
        own = DriftOptions(
            columns={n: c for n, c in options.columns.items() if n in by_rows},
            method=options.method,
            threshold=options.threshold,
            drift_share=options.drift_share,
        )
        exact = compare(reference_rows, rows.select(by_rows), schema=schema, options=own)
        report.columns.extend(exact.columns)
        report.skipped.update(exact.skipped)
        report.schema.update(exact.schema)
    return report


def column_values(table: pa.Table, name: str) -> list | None:
    return table.column(name).to_pylist() if name and name in table.column_names else None


def table_performance(monitor: Monitor, table: pa.Table) -> tuple[dict[str, float], int]:
    """The model's metrics on the rows of `table` that have a target and a prediction, and how many they are."""
    targets = column_values(table, monitor.target_column)
    predictions = column_values(table, monitor.prediction_column)
    if targets is None or predictions is None or monitor.task not in ("classification", "regression"):
        return {}, 0
    scores = column_values(table, monitor.score_column)
    metrics = performance(monitor.task, targets, predictions, scores)
    return metrics, int(metrics.get("rows", 0))


def time_range(monitor: Monitor, table: pa.Table, now: datetime.datetime) -> tuple[datetime.datetime, ...]:
    """The first and last timestamp of the batch's rows, else (both) when it arrived."""
    if monitor.timestamp_column not in table.column_names:
        return now, now
    values = table.column(monitor.timestamp_column)
    if values.null_count == len(values):
        return now, now
    bounds = pc.min_max(values)
    return bounds["min"].as_py(), bounds["max"].as_py()


def keep_rows(table: pa.Table) -> Path | None:
    """The rows as a temporary Parquet file when it is at most MLOPS_BATCH_KEEP_BYTES, else None."""
    limit = settings.MLOPS_BATCH_KEEP_BYTES
    if limit <= 0 or table.nbytes > limit * 20:
        return None
    handle, raw_path = tempfile.mkstemp(prefix="opsportal-batch-", suffix=".parquet")
    os.close(handle)
    path = Path(raw_path)
    pq.write_table(table, path, compression="zstd")
    if path.stat().st_size > limit:
        path.unlink()
        return None
    return path


def analyse(monitor: Monitor, reference: ReferenceDataset, table: pa.Table) -> dict[str, Any]:
    """Profile, quality, drift and performance of one batch: the fields a MonitoringBatch stores."""
    spec = ProfileSpec.from_dict(reference.spec)
    try:
        profile = spec.profile(table)
    except ValueError as error:
        raise InvalidValue(str(error), field="rows") from None
    options = drift_options(monitor)
    try:
        report = profile_drift(reference, spec, profile, options, table)
    except ValueError as error:
        raise InvalidValue(f"drift options: {error}", field="options") from None
    metrics, labelled = table_performance(monitor, table)
    return {
        "rows": table.num_rows,
        "profile": profile.to_dict(),
        "quality": [q.to_dict() for q in profile_quality(spec, profile)],
        "drift": report.to_dict(),
        "drift_share": report.drift_share,
        "dataset_drift": report.dataset_drift,
        "drifted_columns": report.drifted_columns,
        "performance": metrics,
        "labelled_rows": labelled,
    }


def record_batch(
    *,
    monitor: Monitor,
    table: pa.Table,
    source: str,
    name: str = "",
    actor: Actor = None,
    start: datetime.datetime | None = None,
    end: datetime.datetime | None = None,
    version: ModelVersion | object | None = FOLLOWED,
) -> MonitoringBatch:
    """Check `table` against the monitor's schema, then store the batch with its profile, data quality, drift
    against the monitor's reference and performance (where it has targets), for the version the monitor follows
    now (or `version`, None included); its per-batch checks run after commit (mlops.tasks.evaluate_monitor_batch).

    `start`/`end` give the time the batch covers (logged predictions: their window); else its rows' timestamps.
    """
    if source not in MonitoringBatch.Source.values:
        raise InvalidValue(f"must be one of {', '.join(MonitoringBatch.Source.values)}.", field="source")
    reference = monitor.reference
    if reference is None:
        raise InvalidValue("the monitor has no reference data yet: upload a reference first.", field="reference")
    table = check_table(monitor, table)
    fields = analyse(monitor, reference, table)
    now = timezone.now()
    first, last = time_range(monitor, table, now)
    kept = keep_rows(table)
    batch = MonitoringBatch(
        monitor=monitor,
        version=monitor.current_version() if version is FOLLOWED else version,
        reference=reference,
        source=source,
        name=(name or "")[:500],
        start=start or first,
        end=end or last,
        received_at=now,
        created_by=actor_user(actor),
        **fields,
    )
    stored = ""
    try:
        with transaction.atomic():
            if kept is not None:
                with kept.open("rb") as f:
                    batch.file.save(f"batch-{now:%H%M%S%f}.parquet", File(f), save=False)
                stored = batch.file.name
            batch.save(force_insert=True)
            if actor_user(actor) is not None:
                audit.record(
                    action=audit.Action.CREATE,
                    actor=actor,
                    obj=batch,
                    message=f"{batch.rows:,} rows ({batch.get_source_display()}) for {monitor}.",
                )
            enqueue_on_commit("mlops.tasks.evaluate_monitor_batch", batch.pk)
    except BaseException:
        if stored:
            batch.file.storage.delete(stored)
        raise
    finally:
        if kept is not None:
            kept.unlink(missing_ok=True)
    return batch


def batch_rows(batch: MonitoringBatch) -> pa.Table | None:
    """The batch's kept rows, or None when they were over MLOPS_BATCH_KEEP_BYTES (only the profile is kept)."""
    if not batch.file:
        return None
    with batch.file.open("rb") as f:
        return pq.read_table(f)


def reprofile_batch(*, batch: MonitoringBatch, table: pa.Table) -> MonitoringBatch:
    """Replace a batch's rows (logged predictions that arrived late for its window): profiled, compared and
    scored again against the reference it was made with, its kept rows replaced, its checks run again."""
    monitor = batch.monitor
    reference = batch.reference or monitor.reference
    if reference is None:
        raise InvalidValue("the monitor has no reference data yet: upload a reference first.", field="reference")
    table = check_table(monitor, table)
    fields = analyse(monitor, reference, table)
    kept = keep_rows(table)
    old = batch.file.name if batch.file else ""
    stored = ""
    try:
        with transaction.atomic():
            for name, value in fields.items():
                setattr(batch, name, value)
            batch.reference = reference
            batch.received_at = timezone.now()
            batch.evaluated_at = None
            batch.file = None
            if kept is not None:
                with kept.open("rb") as f:
                    batch.file.save(f"batch-{batch.received_at:%H%M%S%f}.parquet", File(f), save=False)
                stored = batch.file.name
            batch.save()
            if old:
                storage = batch.file.storage
                transaction.on_commit(lambda: storage.delete(old))
            enqueue_on_commit("mlops.tasks.evaluate_monitor_batch", batch.pk)
    except BaseException:
        if stored:
            batch.file.storage.delete(stored)
        raise
    finally:
        if kept is not None:
            kept.unlink(missing_ok=True)
    return batch
