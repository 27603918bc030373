"""Prediction logging and delayed labels: idempotent ingest, row checks, labels joined by id, batches cut
from closed windows, performance recomputed as labels arrive."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mlops import services, tasks
from mlops.models import MonitoringBatch, PredictionRecord, Stage

from . import factories

pytestmark = pytest.mark.django_db

PREDICTIONS = "/api/v1/mlops/models/churn/predictions/"
LABELS = "/api/v1/mlops/models/churn/labels/"
DAY = datetime.datetime(2026, 1, 5, tzinfo=datetime.UTC)


@pytest.fixture
def production(churn, admin_user, media):
    services.transition_stage(version=factories.version(churn, 1), stage=Stage.PRODUCTION, actor=admin_user)
    return churn


@pytest.fixture
def monitor(production, admin_user):
    return factories.monitor(model=production, actor=admin_user)


def prediction_rows(count: int, *, seed: int = 1, start: str = "2026-01-05T00:00:00+00:00", minutes: int = 60,
                    shift: float = 0.0, prefix: str = "") -> tuple[list[dict], dict[str, int]]:  # fmt: skip
    """Rows as a service would log them, and each id's true label (sent later)."""
    table = factories.monitoring_table(rows=count, seed=seed, start=start, minutes=minutes, shift=shift)
    rows, truth = [], {}
    for row in table.to_pylist():
        identifier = prefix + row["id"]
        rows.append(
            {
                "id": identifier,
                "timestamp": row["timestamp"],
                "features": {k: row[k] for k in ("age", "income", "plan", "score")},
                "prediction": row["prediction"],
            }
        )
        truth[identifier] = row["target"]
    return rows, truth


def test_logging_is_idempotent_on_the_id(operator_api, monitor, django_assert_max_num_queries):
    few, _ = prediction_rows(5, seed=9, prefix="few")
    with CaptureQueriesContext(connection) as small:
        operator_api.post(PREDICTIONS, {"rows": few}, format="json")
    rows, _ = prediction_rows(500)
    # As many statements for 500 rows as for 5 (the rows travel by COPY).
    with django_assert_max_num_queries(len(small.captured_queries)):
        answer = operator_api.post(PREDICTIONS, {"rows": rows}, format="json")
    assert answer.status_code == 201, answer.json()
    assert answer.json() == {"accepted": 500, "duplicates": 0, "version": 1, "late": 0}
    # The sender retries (it never saw the answer), with 10 new rows at the end.
    more, _ = prediction_rows(10, seed=2)
    retry = operator_api.post(PREDICTIONS, rows + more, format="json")
    assert retry.json()["accepted"] == 10
    assert retry.json()["duplicates"] == 500
    assert PredictionRecord.objects.filter(model=monitor.model).count() == 515
    again = operator_api.post(PREDICTIONS, more, format="json")
    assert again.status_code == 200
    assert again.json()["accepted"] == 0


def test_a_bad_row_names_its_index_and_field_and_nothing_is_stored(operator_api, monitor):
    rows, _ = prediction_rows(6)
    cases = [
        (3, {"timestamp": "yesterday"}, "rows[3].timestamp"),
        (2, {"prediction": None}, "rows[2].prediction"),
        (4, {"id": ""}, "rows[4].id"),
        (1, {"features": {"age": {"years": 3}}}, "rows[1].features.age"),
        (5, {"features": {**rows[5]["features"], "shoe_size": 44}}, "rows[5].features.shoe_size"),
        (0, {"features": {**rows[0]["features"], "age": "old"}}, "rows[0].features.age"),
        (2, {"features": "age=3"}, "rows[2].features"),
        (1, {"colour": "red"}, "rows[1]"),
        (3, {"version": 9}, "rows[3].version"),
    ]
    for index, change, field in cases:
        bad = [dict(row) for row in rows]
        bad[index] = {**bad[index], **change}
        answer = operator_api.post(PREDICTIONS, {"rows": bad}, format="json")
        assert answer.status_code == 400, (field, answer.json())
        assert field in answer.json()["errors"], answer.json()
        assert answer.json()["detail"].startswith(field)
    assert not PredictionRecord.objects.exists()
    assert operator_api.post(PREDICTIONS, {"rows": []}, format="json").status_code == 400
    assert operator_api.post(PREDICTIONS, {"predictions": rows}, format="json").status_code == 400
    assert operator_api.post("/api/v1/mlops/models/nope/predictions/", rows, format="json").status_code == 404


def test_roles_for_predictions_and_labels(viewer_api, monitor):
    rows, _ = prediction_rows(2)
    assert viewer_api.post(PREDICTIONS, rows, format="json").status_code == 403
    assert viewer_api.post(LABELS, [{"id": "1-0", "label": 1}], format="json").status_code == 403


def test_labels_join_by_id_and_unknown_ids_are_answered(operator_api, monitor):
    rows, truth = prediction_rows(50)
    operator_api.post(PREDICTIONS, rows, format="json")
    labels = [{"id": i, "label": v} for i, v in list(truth.items())[:20]] + [{"id": "ghost", "label": 1}]
    answer = operator_api.post(LABELS, {"labels": labels}, format="json")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["labelled"] == 20
    assert answer.json()["unknown"] == ["ghost"]
    record = PredictionRecord.objects.get(model=monitor.model, prediction_id=labels[0]["id"])
    assert record.label == labels[0]["label"]
    assert record.labelled_at is not None
    bad = operator_api.post(LABELS, [{"id": "1-0"}], format="json")
    assert bad.status_code == 400
    assert "labels[0].label" in bad.json()["errors"]


def test_closed_windows_become_batches_and_labels_rescore_them(operator_api, monitor):
    monitor = services.update_monitor(monitor=monitor, actor=None, batch_minutes=60)
    first, truth = prediction_rows(300, seed=1, start="2026-01-05T10:00:00+00:00")
    second, truth2 = prediction_rows(200, seed=2, start="2026-01-05T11:00:00+00:00", shift=1.5, prefix="b")
    open_window, _ = prediction_rows(40, seed=3, start="2026-01-05T12:00:00+00:00", minutes=30, prefix="c")
    # Half of the first window's ground truth is known before the cut.
    operator_api.post(PREDICTIONS, first + second + open_window, format="json")
    early = [{"id": i, "label": v} for i, v in list(truth.items())[:150]]
    operator_api.post(LABELS, early, format="json")

    made = services.cut_prediction_batches(monitor=monitor, now=DAY.replace(hour=12, minute=40))
    assert [(b.start.hour, b.end.hour, b.rows) for b in made] == [(10, 11, 300), (11, 12, 200)]
    ten, eleven = made
    assert ten.source == MonitoringBatch.Source.PREDICTIONS
    assert ten.version.version == 1
    assert ten.labelled_rows == 150
    assert not ten.dataset_drift
    assert eleven.dataset_drift
    assert eleven.labelled_rows == 0
    monitor.refresh_from_db()
    assert monitor.batched_until == DAY.replace(hour=12)

    # The rest of the labels arrive after the cut: both batches are scored again from all their labels.
    late = [{"id": i, "label": v} for i, v in list(truth.items())[150:]] + [
        {"id": i, "label": v} for i, v in truth2.items()
    ]
    answer = operator_api.post(LABELS, late, format="json").json()
    assert sorted(answer["batches"]) == sorted([ten.pk, eleven.pk])
    ten.refresh_from_db()
    eleven.refresh_from_db()
    assert ten.labelled_rows == 300
    assert eleven.labelled_rows == 200
    assert 0.75 < ten.performance["accuracy"] < 0.95
    assert 0.5 < ten.performance["roc_auc"] <= 1
    assert ten.evaluated_at is None  # its checks run again

    # A second cut in the same window makes nothing new.
    assert services.cut_prediction_batches(monitor=monitor, now=DAY.replace(hour=12, minute=50)) == []


def test_late_predictions_remake_their_window(operator_api, monitor):
    rows, _ = prediction_rows(100, start="2026-01-05T10:00:00+00:00")
    operator_api.post(PREDICTIONS, rows, format="json")
    (batch,) = services.cut_prediction_batches(monitor=monitor, now=DAY.replace(hour=11, minute=5))
    assert batch.rows == 100
    late, _ = prediction_rows(30, seed=5, start="2026-01-05T10:10:00+00:00", minutes=20, prefix="late")
    assert operator_api.post(PREDICTIONS, late, format="json").json()["late"] == 30
    remade = services.cut_prediction_batches(monitor=monitor, now=DAY.replace(hour=11, minute=10))
    assert [b.pk for b in remade] == [batch.pk]
    batch.refresh_from_db()
    assert batch.rows == 130
    assert MonitoringBatch.objects.filter(monitor=monitor).count() == 1


def test_promotion_moves_logged_predictions_to_the_new_version(operator_api, monitor, admin_user):
    before, truth = prediction_rows(100, start="2026-01-05T10:00:00+00:00")
    operator_api.post(PREDICTIONS, before, format="json")
    operator_api.post(LABELS, [{"id": i, "label": v} for i, v in truth.items()], format="json")
    (v1_batch,) = services.cut_prediction_batches(monitor=monitor, now=DAY.replace(hour=11, minute=1))
    v1_results = (v1_batch.performance, v1_batch.drift)

    services.transition_stage(version=factories.version(monitor.model, 2), stage=Stage.PRODUCTION, actor=admin_user)
    after, _ = prediction_rows(100, seed=4, start="2026-01-05T11:00:00+00:00", prefix="v2-")
    assert operator_api.post(PREDICTIONS, after, format="json").json()["version"] == 2
    (v2_batch,) = services.cut_prediction_batches(monitor=monitor, now=DAY.replace(hour=12, minute=1))
    assert v2_batch.version.version == 2
    v1_batch.refresh_from_db()
    assert v1_batch.version.version == 1
    assert (v1_batch.performance, v1_batch.drift) == v1_results


def test_one_window_with_two_versions_makes_two_batches(operator_api, monitor):
    rows, _ = prediction_rows(60, start="2026-01-05T10:00:00+00:00")
    for row in rows[:20]:
        row["version"] = 2
    operator_api.post(PREDICTIONS, rows, format="json")
    made = services.cut_prediction_batches(monitor=monitor, now=DAY.replace(hour=11, minute=1))
    assert sorted((b.version.version, b.rows) for b in made) == [(1, 40), (2, 20)]


def test_the_beat_task_cuts_every_monitor_with_new_predictions(operator_api, monitor, production, admin_user):
    idle = factories.monitor(model=factories.registered_model(actor=admin_user, name="idle"), actor=admin_user)
    rows, _ = prediction_rows(20, start="2026-01-05T10:00:00+00:00")
    operator_api.post(PREDICTIONS, rows, format="json")
    assert services.predictions.monitors_to_cut() == [monitor.pk]
    assert idle.pk not in services.predictions.monitors_to_cut()
    assert tasks.cut_monitor_prediction_batches(monitor.pk) == 1
    assert MonitoringBatch.objects.filter(monitor=monitor, source="predictions").count() == 1
    assert tasks.cut_monitor_prediction_batches(10**9) == 0


def test_predictions_without_a_monitor_are_kept(operator_api, churn):
    rows, _ = prediction_rows(5)
    rows[0]["features"]["anything"] = "goes"
    answer = operator_api.post(PREDICTIONS, rows, format="json")
    assert answer.status_code == 201
    assert answer.json()["version"] is None
