"""The monitoring data API: monitors, reference uploads, schema edits, batches as JSON, CSV and Parquet."""

from __future__ import annotations

import io

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from mlops import services
from mlops.models import Monitor, MonitoringBatch, ReferenceDataset, Stage

from . import factories

pytestmark = pytest.mark.django_db

MONITORS = "/api/v1/mlops/monitors/"


@pytest.fixture
def production(churn, admin_user, media):
    services.transition_stage(version=factories.version(churn, 1), stage=Stage.PRODUCTION, actor=admin_user)
    return churn


@pytest.fixture
def monitor(production, admin_user):
    return factories.monitor(model=production, actor=admin_user)


def csv_bytes(table) -> bytes:
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    return buffer.getvalue()


def parquet_bytes(table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def test_admin_creates_a_monitor_and_uploads_its_reference(admin_api, production):
    answer = admin_api.post(
        MONITORS, {"model": "churn", "name": "prod", "score_column": "score", "batch_minutes": 30}, format="json"
    )
    assert answer.status_code == 201, answer.json()
    created = answer.json()
    assert created["follows"] == "stage Production"
    assert created["current_version"] == 1
    assert created["reference"] is None
    assert created["url"].endswith(f"/mlops/models/churn/monitoring/?monitor={created['id']}")

    upload = factories.csv_upload(factories.monitoring_table(rows=500), name="train.csv")
    answer = admin_api.post(f"{MONITORS}{created['id']}/reference/", {"file": upload}, format="multipart")
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert body["reference"]["rows"] == 500
    assert body["reference"]["name"] == "train.csv"
    assert body["reference"]["version"] == 1
    assert body["schema"]["plan"] == {"type": "categorical", "role": "feature"}
    assert body["reference"]["performance"]["accuracy"] > 0.7


def test_roles(viewer_api, operator_api, admin_api, monitor):
    assert viewer_api.get(MONITORS).status_code == 200
    assert viewer_api.get(f"{MONITORS}{monitor.pk}/batches/").status_code == 200
    assert operator_api.post(MONITORS, {"model": "churn", "name": "x"}, format="json").status_code == 403
    assert operator_api.patch(f"{MONITORS}{monitor.pk}/", {"enabled": False}, format="json").status_code == 403
    assert operator_api.delete(f"{MONITORS}{monitor.pk}/").status_code == 403
    assert (
        operator_api.patch(f"{MONITORS}{monitor.pk}/schema/", {"types": {"age": "categorical"}}, format="json")
    ).status_code == 403
    rows = factories.monitoring_table(rows=20).to_pylist()
    assert viewer_api.post(f"{MONITORS}{monitor.pk}/batches/", {"rows": rows}, format="json").status_code == 403
    assert operator_api.post(f"{MONITORS}{monitor.pk}/batches/", {"rows": rows}, format="json").status_code == 201
    assert admin_api.patch(f"{MONITORS}{monitor.pk}/", {"enabled": False}, format="json").json()["enabled"] is False


def test_batches_as_json_csv_parquet_and_multipart(operator_api, monitor):
    url = f"{MONITORS}{monitor.pk}/batches/"
    table = factories.monitoring_table(rows=300, seed=4)
    as_json = operator_api.post(url, {"rows": table.to_pylist(), "name": "morning"}, format="json")
    assert as_json.status_code == 201, as_json.json()
    assert as_json.json()["source"] == "rows"
    assert as_json.json()["name"] == "morning"
    as_csv = operator_api.generic("POST", url + "?name=noon.csv", csv_bytes(table), content_type="text/csv")
    assert as_csv.status_code == 201, as_csv.json()
    assert as_csv.json()["source"] == "csv"
    as_parquet = operator_api.generic("POST", url, parquet_bytes(table), content_type="application/vnd.apache.parquet")
    assert as_parquet.status_code == 201, as_parquet.json()
    assert as_parquet.json()["source"] == "parquet"
    upload = factories.parquet_upload(table, name="evening.parquet")
    as_file = operator_api.post(url, {"file": upload}, format="multipart")
    assert as_file.status_code == 201, as_file.json()
    assert as_file.json()["source"] == "parquet"
    assert as_file.json()["name"] == "evening.parquet"
    # Same rows, same verdicts, whatever the format.
    verdicts = {(b["drift_share"], b["rows"], b["performance"]["accuracy"]) for b in
                (as_json.json(), as_csv.json(), as_parquet.json(), as_file.json())}  # fmt: skip
    assert len(verdicts) == 1

    listed = operator_api.get(url).json()
    assert listed["count"] == 4
    assert "drift" not in listed["results"][0]


def test_batch_detail_and_report(viewer_api, monitor):
    batch = factories.monitoring_batch(monitor=monitor, shift=2.0)
    detail = viewer_api.get(f"/api/v1/mlops/batches/{batch.pk}/").json()
    assert detail["dataset_drift"] is True
    assert detail["version"] == 1
    assert {c["column"] for c in detail["drift"]["columns"]} >= {"age", "income", "plan"}
    assert detail["reference_performance"]["accuracy"] > 0.7
    report = viewer_api.get(f"/api/v1/mlops/batches/{batch.pk}/report/").json()
    assert report["dataset_drift"] is True
    assert {"column", "type", "method", "statistic", "p_value", "threshold", "drifted"} <= set(report["columns"][0])
    assert report["quality"][0]["column"]
    listed = viewer_api.get(f"/api/v1/mlops/batches/?monitor={monitor.pk}").json()
    assert [b["id"] for b in listed["results"]] == [batch.pk]


def test_list_batches_by_version(viewer_api, monitor, admin_user):
    factories.monitoring_batch(monitor=monitor, seed=2)
    services.transition_stage(version=factories.version(monitor.model, 2), stage=Stage.PRODUCTION, actor=admin_user)
    factories.monitoring_batch(monitor=monitor, seed=3, start="2026-01-06T00:00:00+00:00")
    url = f"{MONITORS}{monitor.pk}/batches/"
    assert [b["version"] for b in viewer_api.get(url).json()["results"]] == [2, 1]
    assert [b["version"] for b in viewer_api.get(url + "?version=1").json()["results"]] == [1]


def test_schema_edit(admin_api, monitor):
    answer = admin_api.patch(f"{MONITORS}{monitor.pk}/schema/", {"types": {"prediction": "categorical"}}, format="json")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["schema"]["prediction"]["type"] == "categorical"
    assert answer.json()["reference"]["id"] != monitor.reference_id
    bad = admin_api.patch(f"{MONITORS}{monitor.pk}/schema/", {"types": {"nope": "categorical"}}, format="json")
    assert bad.status_code == 400
    assert "nope" in bad.json()["detail"]
    bad = admin_api.patch(f"{MONITORS}{monitor.pk}/schema/", {"types": {"age": "fancy"}}, format="json")
    assert bad.status_code == 400
    assert "fancy" in bad.json()["detail"]
    bad = admin_api.patch(f"{MONITORS}{monitor.pk}/schema/", {"types": {"id": "numerical"}}, format="json")
    assert bad.status_code == 400
    assert "id column" in bad.json()["detail"]


def test_reference_from_a_dataset_artifact(admin_api, production, operator):
    version = factories.version(production, 1)
    upload = factories.parquet_upload(factories.monitoring_table(rows=250), name="data/train.parquet")
    artifact = services.upload_artifact(version=version, upload=upload, actor=operator, path="data/train.parquet")
    monitor = factories.monitor(model=production, actor=operator, reference_rows=0)
    answer = admin_api.post(f"{MONITORS}{monitor.pk}/reference/", {"artifact": artifact.pk}, format="json")
    assert answer.status_code == 201, answer.json()
    assert answer.json()["reference"]["source"] == "artifact"
    assert answer.json()["reference"]["rows"] == 250
    assert answer.json()["reference"]["name"] == "data/train.parquet"


def test_monitor_settings_are_checked(admin_api, monitor):
    url = f"{MONITORS}{monitor.pk}/"
    for body, field in [
        ({"batch_minutes": 0}, "batch_minutes"),
        ({"follow_alias": "latest"}, "follow_alias"),
        ({"options": {"method": "magic"}}, "options"),
        ({"options": {"columns": {"nope": {"method": "psi"}}}}, "options.columns.nope"),
        ({"target_column": "prediction"}, "target_column"),
    ]:
        answer = admin_api.patch(url, body, format="json")
        assert answer.status_code == 400, body
        assert field in answer.json()["errors"], answer.json()
    taken = admin_api.post(MONITORS, {"model": "churn", "name": "production"}, format="json")
    assert taken.status_code == 409
    assert admin_api.post(MONITORS, {"model": "nope", "name": "x"}, format="json").status_code == 404


def test_drift_options_change_the_method(admin_api, operator_api, monitor):
    answer = admin_api.patch(
        f"{MONITORS}{monitor.pk}/",
        {"options": {"columns": {"age": {"method": "psi", "threshold": 0.2}, "income": {"method": "anderson"}}}},
        format="json",
    )
    assert answer.status_code == 200, answer.json()
    rows = factories.monitoring_table(rows=300, seed=9).to_pylist()
    batch = operator_api.post(f"{MONITORS}{monitor.pk}/batches/", {"rows": rows}, format="json").json()
    methods = {c["column"]: (c["method"], c["threshold"]) for c in batch["drift"]["columns"]}
    assert methods["age"] == ("psi", 0.2)
    assert methods["income"][0] == "anderson"


def test_delete_monitor(admin_api, monitor):
    factories.monitoring_batch(monitor=monitor)
    assert admin_api.delete(f"{MONITORS}{monitor.pk}/").status_code == 204
    assert not Monitor.objects.filter(pk=monitor.pk).exists()
    assert not MonitoringBatch.objects.exists()
    assert not ReferenceDataset.objects.exists()


def test_monitor_list_answers_each_followed_version_in_constant_queries(
    viewer_api, production, admin_user, django_assert_max_num_queries
):
    services.set_alias(model=production, alias="champion", version=factories.version(production, 2), actor=admin_user)
    factories.monitor(model=production, actor=admin_user, name="stage", reference_rows=0)
    factories.monitor(model=production, actor=admin_user, name="alias", follow_alias="champion", reference_rows=0)
    factories.monitor(model=production, actor=admin_user, name="staging", follow_stage=Stage.STAGING, reference_rows=0)
    with django_assert_max_num_queries(8):
        listed = viewer_api.get(MONITORS + "?model=churn").json()
    assert {m["name"]: m["current_version"] for m in listed["results"]} == {"alias": 2, "stage": 1, "staging": None}
    for i in range(5):
        other = factories.registered_model(actor=admin_user, name=f"m{i}", versions=1)
        factories.monitor(model=other, actor=admin_user, reference_rows=0)
    with django_assert_max_num_queries(8):
        assert viewer_api.get(MONITORS).json()["count"] == 8
