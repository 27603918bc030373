"""MLOps test data, made through the services as people make it (so every row has its history and audit entry)."""

from __future__ import annotations

import datetime
import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.core.files.uploadedfile import SimpleUploadedFile

from mlops import services
from mlops.models import (
    ModelVersion,
    Monitor,
    MonitoringBatch,
    ReferenceDataset,
    RegisteredModel,
    Stage,
    Webhook,
)


def registered_model(*, actor, name: str = "churn", versions: int = 2, **fields) -> RegisteredModel:
    """A model with `versions` versions, each with a source, params (max_depth 4, 5, ...) and metrics.

    Version n has auc 0.80 + (n-1)/100 and f1 0.70 + (n-1)/50; `fields` as `create_model` takes them.
    """
    model = services.create_model(name=name, actor=actor, **fields)
    for i in range(versions):
        model_version(
            model=model,
            actor=actor,
            source=f"s3://models/{name}/{i + 1}",
            metrics={"auc": 0.80 + i / 100, "f1": 0.70 + i / 50},
            params={"max_depth": str(4 + i), "learning_rate": "0.1"},
        )
    return model


def model_version(*, model: RegisteredModel, actor, source: str = "s3://models/x", **fields) -> ModelVersion:
    """The model's next version; `fields` as `create_version` takes them (metrics, params, tags ...)."""
    return services.create_version(model=model, actor=actor, source=source, **fields)


def guarded_model(*, actor, admin, name: str = "fraud") -> RegisteredModel:
    """A model with an approval policy: version 1 is in Production (moved by `admin`), version 2 is new."""
    model = registered_model(actor=actor, name=name)
    services.transition_stage(version=version(model, 1), stage=Stage.PRODUCTION, actor=admin)
    return services.update_model(model=model, actor=admin, approval_required=True)


def webhook(*, actor, url: str, name: str = "ci", **fields) -> tuple[Webhook, str]:
    """A registry webhook and its signing secret; `fields` as `create_webhook` takes them (events, model)."""
    return services.create_webhook(name=name, url=url, actor=actor, **fields)


def version(model: RegisteredModel, number: int) -> ModelVersion:
    """The model's version `number`, as stored now."""
    return ModelVersion.objects.get(model=model, version=number)


def stages(model: RegisteredModel) -> dict[int, str]:
    """Each version number of the model with its stage, as stored now."""
    return dict(ModelVersion.objects.filter(model=model).values_list("version", "stage"))


def monitoring_table(
    *, rows: int = 400, seed: int = 0, shift: float = 0.0, start: str = "2026-01-05T00:00:00+00:00", minutes: int = 60
) -> pa.Table:
    """Production-like rows of a binary classifier: `id`, `timestamp` (spread over `minutes` from `start`),
    numerical `age`, `income`, `score` (the positive class's probability), categorical `plan`, `prediction`
    and `target` (the prediction is right for about 85 % of the rows).

    `shift` moves `age` and `income` by that many standard deviations and tilts `plan` towards "premium":
    drift a monitor sees.
    """
    rng = np.random.default_rng(seed)
    begin = datetime.datetime.fromisoformat(start)
    offsets = np.sort(rng.uniform(0, minutes * 60, rows))
    plan_weights = np.array([0.5, 0.3, 0.2]) if shift == 0 else np.array([0.2, 0.3, 0.5])
    target = rng.integers(0, 2, rows)
    right = rng.random(rows) < 0.85
    prediction = np.where(right, target, 1 - target)
    score = np.clip(np.where(prediction == 1, 0.7, 0.3) + rng.normal(0, 0.15, rows), 0.01, 0.99)
    return pa.table(
        {
            "id": [f"{seed}-{i}" for i in range(rows)],
            "timestamp": [(begin + datetime.timedelta(seconds=float(s))).isoformat() for s in offsets],
            "age": rng.normal(40 + 12 * shift, 12, rows).round(1),
            "income": rng.normal(50_000 + 15_000 * shift, 15_000, rows).round(0),
            "plan": rng.choice(["basic", "plus", "premium"], rows, p=plan_weights / plan_weights.sum()),
            "score": score.round(4),
            "prediction": prediction,
            "target": target,
        }
    )


def parquet_upload(table: pa.Table, name: str = "reference.parquet") -> SimpleUploadedFile:
    """`table` as an uploaded Parquet file."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="application/vnd.apache.parquet")


def csv_upload(table: pa.Table, name: str = "reference.csv") -> SimpleUploadedFile:
    """`table` as an uploaded CSV file."""
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="text/csv")


def monitor(*, model: RegisteredModel, actor, reference_rows: int = 2000, **fields) -> Monitor:
    """A monitor of `model` (`fields` as `create_monitor` takes them; `score_column` "score" by default) with
    a reference of `reference_rows` rows of `monitoring_table` (none when 0)."""
    fields.setdefault("score_column", "score")
    made = services.create_monitor(model=model, actor=actor, **fields)
    if reference_rows:
        reference_dataset(monitor=made, actor=actor, rows=reference_rows)
        made.refresh_from_db()
    return made


def reference_dataset(
    *, monitor: Monitor, actor, rows: int = 2000, seed: int = 1000, table: pa.Table | None = None
) -> ReferenceDataset:
    """An uploaded reference (Parquet) for `monitor`: `table`, else `rows` undrifted rows of `monitoring_table`."""
    table = table if table is not None else monitoring_table(rows=rows, seed=seed, minutes=24 * 60)
    return services.upload_reference(monitor=monitor, actor=actor, file=parquet_upload(table), name="reference.parquet")


def monitoring_batch(
    *,
    monitor: Monitor,
    actor=None,
    rows: int = 400,
    seed: int = 1,
    shift: float = 0.0,
    start: str = "2026-01-05T00:00:00+00:00",
    labelled: bool = True,
    table: pa.Table | None = None,
) -> MonitoringBatch:
    """A batch of JSON-like rows for `monitor` through `record_batch`: `table`, else `monitoring_table` rows
    (drifted by `shift`; without the target column unless `labelled`)."""
    table = table if table is not None else monitoring_table(rows=rows, seed=seed, shift=shift, start=start)
    if not labelled and "target" in table.column_names:
        table = table.drop_columns(["target"])
    return services.record_batch(monitor=monitor, table=table, source=MonitoringBatch.Source.ROWS, actor=actor)
