"""Reference data of a monitor: an upload (CSV or Parquet) or a dataset artifact of a version.

The file is streamed to disk (refused past MLOPS_REFERENCE_MAX_BYTES with a 413 naming the limit), read once
into a pyarrow table, and stored as Parquet; its schema is inferred (the monitor's role columns and the
types a user chose before are applied), then its profiling plan, profile and the model's performance on it
(when it has predictions and targets) are computed. It becomes the monitor's reference: new batches are
compared with it; batches already stored keep the reference they were compared with.

A schema change (`update_schema`) makes a new reference from the same rows, so the profiles of earlier
batches stay comparable with the reference they were made for.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from opsportal.audit import services as audit

from ..drift import TYPES, infer_schema
from ..drift.profiles import ProfileSpec
from ..drift.schema import ColumnSchema
from ..models import Artifact, ModelVersion, Monitor, ReferenceDataset, VersionEvent
from .batches import read_spooled, spool, table_performance
from .errors import InvalidValue
from .history import Actor, actor_user, record_event
from .monitors import ROLE_TYPES, schema_with_roles

# Column types a user may not change: the id and timestamp columns are what their role says.
FIXED_ROLES = {"id", "timestamp"}


def schema_of(table: pa.Table, monitor: Monitor) -> dict[str, dict]:
    """The inferred schema of `table`, with the types chosen for the monitor before, and its role columns."""
    inferred = {name: {"type": column.type, "role": column.role} for name, column in infer_schema(table).items()}
    for name, kind in ((monitor.options or {}).get("types") or {}).items():
        if name in inferred:
            inferred[name]["type"] = kind
    return schema_with_roles(inferred, monitor)


def profiling_plan(table: pa.Table, schema: dict[str, dict], monitor: Monitor) -> tuple[dict, dict]:
    """The reference's profiling plan and profile: every numerical, categorical and boolean column except the
    target (production rows come without it until labels arrive)."""
    columns = {
        name: ColumnSchema(name, column["type"], column["role"])
        for name, column in schema.items()
        if name != monitor.target_column
    }
    kept = table.select([name for name in table.column_names if name in columns])
    spec = ProfileSpec.from_reference(kept, columns)
    return spec.to_dict(), spec.profile(kept).to_dict()


def _parquet(table: pa.Table) -> Path:
    handle, raw_path = tempfile.mkstemp(prefix="opsportal-reference-", suffix=".parquet")
    os.close(handle)
    path = Path(raw_path)
    pq.write_table(table, path, compression="zstd")
    return path


def _store(
    *,
    monitor: Monitor,
    table: pa.Table,
    actor: Actor,
    name: str,
    source: str,
    size: int,
    sha256: str,
    version: ModelVersion | None,
    schema: dict[str, dict] | None = None,
    message: str,
) -> ReferenceDataset:
    """Profile `table`, store it as Parquet and make it the monitor's reference, in one transaction (the stored
    file is removed if anything fails)."""
    schema = schema or schema_of(table, monitor)
    spec, profile = profiling_plan(table, schema, monitor)
    metrics, _labelled = table_performance(monitor, table)
    reference = ReferenceDataset(
        monitor=monitor,
        version=version,
        source=source,
        name=name[:500],
        size=size,
        sha256=sha256,
        rows=table.num_rows,
        schema=schema,
        spec=spec,
        profile=profile,
        performance=metrics,
        created_by=actor_user(actor),
        created_at=timezone.now(),
    )
    parquet = _parquet(table)
    stored = ""
    try:
        with transaction.atomic():
            with parquet.open("rb") as f:
                reference.file.save(f"{Path(name).stem or 'reference'}.parquet", File(f), save=False)
            stored = reference.file.name
            reference.save(force_insert=True)
            monitor.reference = reference
            monitor.schema = schema
            monitor.updated_at = timezone.now()
            monitor.save(update_fields=["reference", "schema", "updated_at"])
            record_event(
                monitor.model,
                VersionEvent.Kind.MODEL_UPDATED,
                message,
                actor,
                version=version,
                audit_action=audit.Action.UPLOAD,
                monitor=monitor.pk,
                reference=reference.pk,
                rows=reference.rows,
                size=size,
                sha256=sha256,
            )
    except BaseException:
        if stored:
            reference.file.storage.delete(stored)
        raise
    finally:
        parquet.unlink(missing_ok=True)
    return reference


def upload_reference(
    *, monitor: Monitor, actor: Actor, file: object, name: str, version: ModelVersion | None = None
) -> ReferenceDataset:
    """Make an uploaded CSV or Parquet file the monitor's reference (see the module docstring).

    `version` is the version the data describes (by default the one the monitor follows now); InvalidValue
    naming the file, column or row when it does not parse, PayloadTooLarge (413) past the limit."""
    name = (name or getattr(file, "name", "") or "reference").strip()
    if version is not None and version.model_id != monitor.model_id:
        raise InvalidValue(f"version {version.version} is not a version of {monitor.model.name}.", field="version")
    spooled = spool(file, name, limit=settings.MLOPS_REFERENCE_MAX_BYTES, setting="MLOPS_REFERENCE_MAX_BYTES")
    try:
        table = read_spooled(spooled, name)
        version = version or monitor.current_version()
        return _store(
            monitor=monitor,
            table=table,
            actor=actor,
            name=name,
            source=ReferenceDataset.Source.UPLOAD,
            size=spooled.size,
            sha256=spooled.sha256,
            version=version,
            message=f"Monitoring: reference data {name} ({table.num_rows:,} rows, {table.num_columns} columns) "
            f"uploaded for monitor {monitor.name!r}.",
        )
    finally:
        spooled.remove()


def reference_from_artifact(*, monitor: Monitor, artifact: Artifact, actor: Actor) -> ReferenceDataset:
    """Make a dataset artifact (CSV or Parquet) of one of the model's versions the monitor's reference."""
    if artifact.version.model_id != monitor.model_id:
        raise InvalidValue(
            f"artifact {artifact.path!r} belongs to {artifact.version.model.name}, not {monitor.model.name}.",
            field="artifact",
        )
    limit = settings.MLOPS_REFERENCE_MAX_BYTES
    with artifact.file.open("rb") as f:
        spooled = spool(f, artifact.path, limit=limit, setting="MLOPS_REFERENCE_MAX_BYTES")
    try:
        table = read_spooled(spooled, artifact.path)
        return _store(
            monitor=monitor,
            table=table,
            actor=actor,
            name=artifact.path,
            source=ReferenceDataset.Source.ARTIFACT,
            size=spooled.size,
            sha256=spooled.sha256,
            version=artifact.version,
            message=f"Monitoring: artifact {artifact.path} of version {artifact.version.version} "
            f"({table.num_rows:,} rows) is now the reference of monitor {monitor.name!r}.",
        )
    finally:
        spooled.remove()


def update_schema(*, monitor: Monitor, actor: Actor, types: dict[str, str]) -> Monitor:
    """Set column types (`{"zip": "categorical"}`); the reference is profiled again with them (as a new
    reference of the same rows) and later references keep them. InvalidValue naming an unknown column or type,
    or a role column's type (id, timestamp)."""
    reference = monitor.reference
    if reference is None or not monitor.schema:
        raise InvalidValue("the monitor has no reference data yet: upload a reference first.", field="reference")
    if not isinstance(types, dict) or not types:
        raise InvalidValue("must be an object of column: type.", field="types")
    schema = {name: dict(column) for name, column in monitor.schema.items()}
    for name, kind in types.items():
        if name not in schema:
            raise InvalidValue(f"the schema has no column {name!r}; columns: {', '.join(schema)}.", field=name)
        if kind not in TYPES:
            raise InvalidValue(f"unknown type {kind!r}; choose from {', '.join(TYPES)}.", field=name)
        if schema[name]["role"] in FIXED_ROLES and kind != ROLE_TYPES[f"{schema[name]['role']}_column"]:
            raise InvalidValue(
                f"{name!r} is the {schema[name]['role']} column; its type is {schema[name]['type']}.", field=name
            )
    changed = {name: kind for name, kind in types.items() if schema[name]["type"] != kind}
    if not changed:
        return monitor
    before = {name: schema[name]["type"] for name in changed}
    for name, kind in changed.items():
        schema[name]["type"] = kind
    with reference.file.open("rb") as f:
        table = pq.read_table(f)
    options = dict(monitor.options or {})
    options["types"] = {**(options.get("types") or {}), **changed}
    with transaction.atomic():
        monitor.options = options
        monitor.save(update_fields=["options"])
        new = _store(
            monitor=monitor,
            table=table,
            actor=actor,
            name=reference.name,
            source=reference.source,
            size=reference.size,
            sha256=reference.sha256,
            version=reference.version,
            schema=schema,
            message=f"Monitoring: column types of monitor {monitor.name!r} changed: "
            + ", ".join(f"{name} {before[name]} → {kind}" for name, kind in changed.items())
            + ".",
        )
        audit.record(
            action=audit.Action.UPDATE,
            actor=actor,
            obj=monitor,
            changes={name: [before[name], kind] for name, kind in changed.items()},
            message=f"Column types changed; reference #{new.pk} profiled with them.",
        )
    return monitor
