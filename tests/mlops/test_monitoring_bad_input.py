"""Bad monitoring input: unparseable files, columns not matching the schema, wrong types, size limits.
Each is a 400 (413 for size) naming the column, row or limit, and nothing is stored, no file left behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from mlops import services
from mlops.models import MonitoringBatch, ReferenceDataset, Stage

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


def stored_files(media) -> list:
    return sorted(p.name for p in media.rglob("*") if p.is_file()) if media.exists() else []


def batches_url(monitor) -> str:
    return f"{MONITORS}{monitor.pk}/batches/"


def good_rows(count: int = 30) -> list[dict]:
    return factories.monitoring_table(rows=count, seed=11).to_pylist()


def assert_refused(answer, status: int, *words: str) -> None:
    assert answer.status_code == status, answer.content
    detail = answer.json()["detail"]
    for word in words:
        assert word in detail, detail


def test_batch_columns_must_match_the_schema(operator_api, monitor, media):
    files = stored_files(media)
    missing = [{k: v for k, v in row.items() if k != "income"} for row in good_rows()]
    assert_refused(operator_api.post(batches_url(monitor), {"rows": missing}, format="json"), 400, "'income'")
    extra = [{**row, "colour": "red"} for row in good_rows()]
    assert_refused(operator_api.post(batches_url(monitor), {"rows": extra}, format="json"), 400, "'colour'")
    assert not MonitoringBatch.objects.exists()
    assert stored_files(media) == files


def test_wrong_types_name_the_row_and_column(operator_api, monitor):
    rows = good_rows()
    for row in rows[:20]:
        row["age"] = "forty"
    answer = operator_api.post(batches_url(monitor), {"rows": rows}, format="json")
    assert_refused(answer, 400, "row 0", "'age'", "'forty'")
    assert answer.json()["errors"] == {"age": [answer.json()["detail"].split(": ", 1)[1]]}
    rows = good_rows()
    rows[7]["plan"] = {"tier": "gold"}
    assert_refused(operator_api.post(batches_url(monitor), {"rows": rows}, format="json"), 400, "row 7", "'plan'")
    rows = good_rows()
    rows[4]["timestamp"] = "tomorrow-ish"
    assert_refused(operator_api.post(batches_url(monitor), {"rows": rows}, format="json"), 400, "row 4", "'timestamp'")
    assert not MonitoringBatch.objects.exists()


def test_a_few_words_in_a_numerical_column_are_data_quality(operator_api, monitor):
    rows = good_rows(40)
    rows[3]["age"] = "unknown"
    answer = operator_api.post(batches_url(monitor), {"rows": rows}, format="json")
    assert answer.status_code == 201, answer.json()
    age = next(q for q in answer.json()["quality"] if q["column"] == "age")
    assert age["type_mismatches"] == 1


def test_unparseable_files_are_refused_and_leave_nothing(admin_api, operator_api, monitor, media):
    files = stored_files(media)
    references = ReferenceDataset.objects.count()
    broken = factories.SimpleUploadedFile("ref.parquet", b"PAR1 this is not parquet at all PAR1")
    assert_refused(
        admin_api.post(f"{MONITORS}{monitor.pk}/reference/", {"file": broken}, format="multipart"), 400, "ref.parquet"
    )
    ragged = b"id,age,plan\n1,30,basic\n2,31\n3,x,y,z\n"
    assert_refused(
        operator_api.generic("POST", batches_url(monitor) + "?name=day.csv", ragged, content_type="text/csv"),
        400,
        "day.csv",
    )
    empty = factories.SimpleUploadedFile("empty.csv", b"id,age\n")
    assert_refused(
        admin_api.post(f"{MONITORS}{monitor.pk}/reference/", {"file": empty}, format="multipart"), 400, "no rows"
    )
    assert ReferenceDataset.objects.count() == references
    assert not MonitoringBatch.objects.exists()
    assert stored_files(media) == files


def test_csv_with_a_bad_value_names_the_column_and_line(operator_api, monitor):
    table = factories.monitoring_table(rows=30, seed=3)
    body = factories.csv_upload(table).read().decode()
    lines = body.splitlines()
    cells = lines[12].split(",")
    cells[4] = '"[1, 2]"'
    lines[12] = ",".join(cells)
    answer = operator_api.generic(
        "POST", batches_url(monitor), ("\n".join(lines) + "\n").encode(), content_type="text/csv"
    )
    # One word among numbers: the column comes as text; the majority are numbers, so it is data quality.
    assert answer.status_code == 201, answer.json()


def test_size_limits_answer_413_naming_the_setting(admin_api, operator_api, monitor, settings):
    settings.MLOPS_REFERENCE_MAX_BYTES = 2048
    settings.MLOPS_BATCH_MAX_BYTES = 2048
    big = factories.csv_upload(factories.monitoring_table(rows=400), name="big.csv")
    assert_refused(
        admin_api.post(f"{MONITORS}{monitor.pk}/reference/", {"file": big}, format="multipart"),
        413,
        "MLOPS_REFERENCE_MAX_BYTES",
        "2,048",
    )
    body = factories.csv_upload(factories.monitoring_table(rows=400)).read()
    assert_refused(
        operator_api.generic("POST", batches_url(monitor), body, content_type="text/csv"), 413, "MLOPS_BATCH_MAX_BYTES"
    )
    assert_refused(
        operator_api.post(batches_url(monitor), {"rows": good_rows(200)}, format="json"), 413, "MLOPS_BATCH_MAX_BYTES"
    )
    assert_refused(
        operator_api.post(
            f"/api/v1/mlops/models/{monitor.model.name}/predictions/", {"rows": good_rows(200)}, format="json"
        ),
        413,
        "MLOPS_BATCH_MAX_BYTES",
    )


def test_the_upload_cap_counts_streamed_bytes(monitor, admin_user, tmp_path, settings):
    """A file object with no declared size (a stream) is cut off at the cap, and its partial copy removed."""
    settings.MLOPS_REFERENCE_MAX_BYTES = 4096
    path = tmp_path / "ref.csv"
    path.write_bytes(factories.csv_upload(factories.monitoring_table(rows=2000)).read())
    spool_dir = Path(tempfile.gettempdir())
    before = set(spool_dir.glob("opsportal-upload-*"))
    with path.open("rb") as stream, pytest.raises(services.PayloadTooLarge) as refused:
        services.upload_reference(monitor=monitor, actor=admin_user, file=stream, name="ref.csv")
    assert refused.value.status == 413
    assert "4,096 bytes (MLOPS_REFERENCE_MAX_BYTES)" in str(refused.value)
    assert set(spool_dir.glob("opsportal-upload-*")) <= before
    assert monitor.references.count() == 1


def test_batch_before_any_reference(operator_api, production, admin_user):
    monitor = factories.monitor(model=production, actor=admin_user, reference_rows=0)
    assert_refused(
        operator_api.post(batches_url(monitor), {"rows": good_rows()}, format="json"), 400, "upload a reference first"
    )


def test_json_rows_must_be_objects(operator_api, monitor):
    assert_refused(operator_api.post(batches_url(monitor), {"rows": [1, 2]}, format="json"), 400, "row 0")
    assert_refused(operator_api.post(batches_url(monitor), {"rows": []}, format="json"), 400, "rows")
    assert_refused(operator_api.post(batches_url(monitor), {"lines": []}, format="json"), 400, "rows")
    assert_refused(
        operator_api.generic("POST", batches_url(monitor), b"<xml/>", content_type="application/xml"), 415, "xml"
    )
