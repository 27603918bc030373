"""Monitoring data in: monitors following a stage or alias, reference uploads, production batches."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mlops import services
from mlops.models import MonitoringBatch, ReferenceDataset, Stage, VersionEvent
from opsportal.audit.models import AuditEntry

from . import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def production(churn, admin_user):
    """churn with version 1 in Production."""
    services.transition_stage(version=factories.version(churn, 1), stage=Stage.PRODUCTION, actor=admin_user)
    return churn


@pytest.fixture
def monitor(production, admin_user, media):
    return factories.monitor(model=production, actor=admin_user)


def test_reference_upload_infers_the_schema_with_the_monitor_roles(monitor):
    reference = monitor.reference
    assert reference.rows == 2000
    assert reference.file.name.endswith(".parquet")
    assert monitor.schema["id"] == {"type": "id", "role": "id"}
    assert monitor.schema["timestamp"] == {"type": "datetime", "role": "timestamp"}
    assert monitor.schema["age"] == {"type": "numerical", "role": "feature"}
    assert monitor.schema["plan"] == {"type": "categorical", "role": "feature"}
    assert monitor.schema["prediction"]["role"] == "prediction"
    assert monitor.schema["target"]["role"] == "target"
    assert monitor.schema["score"]["role"] == "score"
    # The target is not profiled (production rows come without it); the prediction is.
    profiled = {column["name"] for column in reference.spec["columns"]}
    assert profiled == {"age", "income", "plan", "score", "prediction"}
    assert 0.8 < reference.performance["accuracy"] < 0.9
    assert 0.8 < reference.performance["roc_auc"] <= 1.0
    assert reference.version == factories.version(monitor.model, 1)


def test_csv_reference_is_stored_as_parquet(production, admin_user, media):
    monitor = factories.monitor(model=production, actor=admin_user, reference_rows=0)
    table = factories.monitoring_table(rows=300, seed=5)
    reference = services.upload_reference(
        monitor=monitor, actor=admin_user, file=factories.csv_upload(table), name="ref.csv"
    )
    assert reference.rows == 300
    assert reference.file.name.endswith(".parquet")
    assert reference.name == "ref.csv"
    assert len(reference.sha256) == 64
    event = VersionEvent.objects.filter(model=production).first()
    assert "reference data ref.csv (300 rows" in event.message


def test_undrifted_and_drifted_batches(monitor, operator):
    calm = factories.monitoring_batch(monitor=monitor, actor=operator, seed=2)
    drifted = factories.monitoring_batch(monitor=monitor, actor=operator, seed=3, shift=1.5)
    assert not calm.dataset_drift
    assert calm.drifted_columns == []
    assert drifted.dataset_drift
    assert {"age", "income", "plan"} <= set(drifted.drifted_columns)
    assert drifted.drift["columns"][0]["method"] in {"wasserstein", "jensenshannon"}
    assert calm.rows == 400
    assert calm.labelled_rows == 400
    assert 0.75 < calm.performance["accuracy"] < 0.95
    assert calm.start.isoformat().startswith("2026-01-05T00:")
    assert calm.file.name.endswith(".parquet")
    assert [q["column"] for q in calm.quality] == [c["name"] for c in monitor.reference.spec["columns"]]
    assert AuditEntry.objects.filter(model="monitoringbatch", object_id=str(drifted.pk)).exists()


def test_promotion_moves_monitoring_to_the_new_version(monitor, operator, admin_user):
    first = factories.monitoring_batch(monitor=monitor, seed=2)
    assert first.version.version == 1
    services.transition_stage(version=factories.version(monitor.model, 2), stage=Stage.PRODUCTION, actor=admin_user)
    second = factories.monitoring_batch(monitor=monitor, seed=3)
    assert second.version.version == 2
    first_again = MonitoringBatch.objects.get(pk=first.pk)
    assert first_again.version.version == 1
    assert first_again.performance == first.performance
    assert first_again.drift == first.drift


def test_a_monitor_following_an_alias(production, admin_user, media):
    services.set_alias(model=production, alias="champion", version=factories.version(production, 2), actor=admin_user)
    monitor = factories.monitor(model=production, actor=admin_user, name="champion", follow_alias="champion")
    assert monitor.follows == "@champion"
    assert factories.monitoring_batch(monitor=monitor).version.version == 2


def test_batch_without_labels_has_no_performance(monitor):
    batch = factories.monitoring_batch(monitor=monitor, labelled=False)
    assert batch.performance == {}
    assert batch.labelled_rows == 0


def test_batch_from_json_rows(monitor):
    rows = [
        {"id": "a", "timestamp": "2026-02-01T10:00:00Z", "age": 30, "income": 40000.5, "plan": "basic",
         "score": 0.8, "prediction": 1},
        {"id": "b", "timestamp": "2026-02-01T10:30:00Z", "age": 52.5, "income": 61000, "plan": "gold",
         "score": 0.2, "prediction": 0},
    ]  # fmt: skip
    batch = services.record_batch(monitor=monitor, table=services.table_from_rows(rows), source="rows")
    assert batch.rows == 2
    assert batch.start.isoformat() == "2026-02-01T10:00:00+00:00"
    assert batch.end.isoformat() == "2026-02-01T10:30:00+00:00"
    plan = next(q for q in batch.quality if q["column"] == "plan")
    assert plan["new_categories"] == {"gold": 1}


def test_update_schema_profiles_a_new_reference(monitor, admin_user):
    before = monitor.reference
    batch = factories.monitoring_batch(monitor=monitor)
    services.update_schema(monitor=monitor, actor=admin_user, types={"prediction": "categorical"})
    monitor.refresh_from_db()
    assert monitor.reference != before
    assert monitor.schema["prediction"]["type"] == "categorical"
    assert ReferenceDataset.objects.filter(monitor=monitor).count() == 2
    # Earlier batches keep the reference they were compared with.
    assert MonitoringBatch.objects.get(pk=batch.pk).reference == before
    # A later reference upload keeps the chosen type.
    factories.reference_dataset(monitor=monitor, actor=admin_user, seed=7)
    monitor.refresh_from_db()
    assert monitor.schema["prediction"]["type"] == "categorical"


def test_delete_monitor_removes_its_files(monitor, admin_user, media, django_capture_on_commit_callbacks):
    batch = factories.monitoring_batch(monitor=monitor)
    files = [media / monitor.reference.file.name, media / batch.file.name]
    assert all(path.exists() for path in files)
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_monitor(monitor=monitor, actor=admin_user)
    assert not any(path.exists() for path in files)


def test_big_batches_keep_only_their_profile(monitor, settings):
    settings.MLOPS_BATCH_KEEP_BYTES = 1024
    batch = factories.monitoring_batch(monitor=monitor, rows=2000)
    assert not batch.file
    assert batch.profile["rows"] == 2000


def test_table_from_rows_keeps_mixed_columns_as_text():
    table = services.table_from_rows([{"a": 1, "b": "x"}, {"a": "two", "b": None}])
    assert table.column("a").type == pa.string()
    assert table.column("a").to_pylist() == ["1", "two"]


def test_a_reference_without_predictions_takes_batches_with_them(production, admin_user, operator):
    monitor = factories.monitor(model=production, actor=admin_user, reference_rows=0)
    training = factories.monitoring_table(rows=500, seed=8).drop_columns(["prediction", "score"])
    factories.reference_dataset(monitor=monitor, actor=admin_user, table=training)
    monitor.refresh_from_db()
    assert "prediction" not in monitor.schema
    batch = factories.monitoring_batch(monitor=monitor, actor=operator)
    assert 0.75 < batch.performance["accuracy"] < 0.95
    assert "prediction" not in {c["column"] for c in batch.drift["columns"]}
