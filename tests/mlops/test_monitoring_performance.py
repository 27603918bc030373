"""Model performance metrics (mlops.drift.performance) on known cases, and performance over time per batch
against the reference's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlops import services
from mlops.drift.performance import classification_metrics, performance, regression_metrics
from mlops.models import Stage, TaskType

from . import factories


def test_binary_classification_by_hand():
    targets = [1, 1, 1, 0, 0, 0, 0, 1]
    predictions = [1, 1, 0, 0, 0, 1, 0, 1]
    # TP 3, FN 1, FP 1, TN 3
    metrics = classification_metrics(targets, predictions)
    assert metrics["accuracy"] == 6 / 8
    assert metrics["precision"] == 3 / 4
    assert metrics["recall"] == 3 / 4
    assert metrics["f1"] == 3 / 4
    assert metrics["support[1]"] == 4
    assert metrics["rows"] == 8
    assert "roc_auc" not in metrics


def test_scores_give_roc_auc_and_log_loss():
    targets = [0, 0, 1, 1]
    predictions = [0, 1, 0, 1]
    scores = [0.1, 0.6, 0.35, 0.8]
    metrics = classification_metrics(targets, predictions, scores)
    # Pairs (positive, negative) ranked right: (0.35 > 0.1), (0.8 > 0.1), (0.8 > 0.6); wrong: 0.35 < 0.6.
    assert metrics["roc_auc"] == pytest.approx(3 / 4)
    expected = -np.mean([math.log(0.9), math.log(0.4), math.log(0.35), math.log(0.8)])
    assert metrics["log_loss"] == pytest.approx(expected)


def test_probabilities_as_predictions_are_scored_at_one_half():
    metrics = performance(TaskType.CLASSIFICATION, [0, 1, 1, 0], [0.2, 0.9, 0.4, 0.7])
    assert metrics["accuracy"] == 0.5
    assert metrics["roc_auc"] == pytest.approx(0.75)


def test_multiclass_macro_averages_and_per_class():
    targets = ["cat", "dog", "bird", "cat", "dog", "bird"]
    predictions = ["cat", "dog", "cat", "cat", "bird", "bird"]
    metrics = classification_metrics(targets, predictions)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["recall[cat]"] == 1.0
    assert metrics["precision[cat]"] == pytest.approx(2 / 3)
    assert metrics["recall[dog]"] == 0.5
    assert metrics["recall"] == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_labels_from_json_csv_and_parquet_are_one_class():
    metrics = classification_metrics([1, "1", 1.0, True, "true"], ["1", 1, 1, "true", True])
    assert metrics["accuracy"] == 1.0


def test_missing_values_are_left_out():
    metrics = classification_metrics([1, None, 0, 1], [1, 0, None, 0])
    assert metrics["rows"] == 2
    assert metrics["accuracy"] == 0.5
    assert classification_metrics([None], [1]) == {}


def test_regression_by_hand():
    targets = [3.0, -0.5, 2.0, 7.0]
    predictions = [2.5, 0.0, 2.0, 8.0]
    metrics = regression_metrics(targets, predictions)
    assert metrics["mae"] == pytest.approx(0.5)
    assert metrics["rmse"] == pytest.approx(math.sqrt(0.375))
    assert metrics["r2"] == pytest.approx(0.9486081370449679)
    assert metrics["mape"] == pytest.approx(np.mean([0.5 / 3, 0.5 / 0.5, 0, 1 / 7]))
    assert metrics["mean_error"] == pytest.approx(0.25)
    # A zero target has no percentage error: it is left out of MAPE only.
    with_zero = regression_metrics([0.0, 2.0], [1.0, 1.0])
    assert with_zero["mape"] == pytest.approx(0.5)
    assert with_zero["mae"] == pytest.approx(1.0)
    assert regression_metrics(["x"], [1]) == {}


@pytest.mark.django_db
def test_regression_monitor_scores_batches(churn, admin_user, media):
    services.transition_stage(version=factories.version(churn, 1), stage=Stage.PRODUCTION, actor=admin_user)
    monitor = factories.monitor(
        model=churn,
        actor=admin_user,
        task=TaskType.REGRESSION,
        score_column="",
        reference_rows=0,
        prediction_column="predicted_income",
        target_column="income",
    )
    table = factories.monitoring_table(rows=500, seed=3).drop_columns(["prediction", "target"])
    rng = np.random.default_rng(0)
    noisy = table.column("income").to_numpy() + rng.normal(0, 1000, table.num_rows)
    reference = table.append_column("predicted_income", [noisy])
    factories.reference_dataset(monitor=monitor, actor=admin_user, table=reference)
    monitor.refresh_from_db()
    assert 700 < monitor.reference.performance["mae"] < 900
    worse = table.append_column("predicted_income", [table.column("income").to_numpy() + 5000])
    batch = factories.monitoring_batch(monitor=monitor, table=worse)
    assert batch.performance["mae"] == pytest.approx(5000)
    assert batch.performance["mean_error"] == pytest.approx(5000)
    assert batch.performance["mae"] > monitor.reference.performance["mae"]


@pytest.mark.django_db
def test_a_monitor_without_performance(churn, admin_user, media):
    monitor = factories.monitor(model=churn, actor=admin_user, task=TaskType.NONE)
    assert monitor.reference.performance == {}
    assert factories.monitoring_batch(monitor=monitor).performance == {}
