"""The comparison of versions (`mlops.compare`) without a page or a database: what differs, what is best."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mlops.compare import comparison, detail_rows, lower_is_better, metric_rows, param_rows, same, version_numbers


def fake_version(number: int, *, metrics=None, params=None, stage: str = "None", **lineage) -> SimpleNamespace:
    """What the comparison reads of a ModelVersion."""
    fields = {"framework": "", "source": f"s3://m/{number}", "run_id": "", "dataset": "", "code_version": ""}
    return SimpleNamespace(version=number, metrics=metrics, params=params, stage=stage, **{**fields, **lineage})


@pytest.mark.parametrize(
    ("metric", "lower"),
    [
        ("log_loss", True),
        ("valLoss", True),
        ("error_rate", True),
        ("latency_ms", True),
        ("rmse", True),
        ("auc", False),
        ("f1", False),
        ("cancer_recall", False),
        ("power", False),
    ],
)
def test_which_metric_values_count_as_best(metric, lower):
    assert lower_is_better(metric) is lower


def test_equal_numbers_are_the_same_and_a_missing_value_differs():
    assert same([1000, 1000.0])
    assert same(["a", "a"])
    assert not same([0.3, None])
    assert not same(["1", 1])  # a parameter "1" is text, not the number 1


def test_the_best_metric_is_marked_with_the_change_from_the_first_version():
    versions = [
        fake_version(1, metrics={"auc": 0.80, "log_loss": 0.40, "rows": 1000}),
        fake_version(2, metrics={"auc": 0.85, "log_loss": 0.35, "rows": 1000}),
        fake_version(3, metrics={"auc": 0.83, "log_loss": 0.30}),
    ]
    rows = {row["key"]: row for row in metric_rows(versions)}
    assert list(rows) == ["auc", "log_loss", "rows"]
    auc, loss, counted = rows["auc"], rows["log_loss"], rows["rows"]
    assert [cell["best"] for cell in auc["cells"]] == [False, True, False] and not auc["lower_is_better"]
    assert [cell["best"] for cell in loss["cells"]] == [False, False, True] and loss["lower_is_better"]
    assert auc["cells"][1]["delta"] == pytest.approx(0.05) and loss["cells"][2]["delta"] == pytest.approx(-0.1)
    assert auc["cells"][0]["delta"] == 0
    # Version 3 has no row count: the row differs, and the missing value has no change to show.
    assert counted["differs"] and counted["cells"][2] == {"value": None, "best": False, "delta": None}


def test_no_value_is_best_when_all_are_equal():
    versions = [fake_version(1, metrics={"auc": 0.9}), fake_version(2, metrics={"auc": 0.9})]
    (row,) = metric_rows(versions)
    assert not row["differs"] and not any(cell["best"] for cell in row["cells"])


def test_parameters_and_lineage_rows_say_what_differs():
    versions = [
        fake_version(1, params={"max_depth": "4", "seed": "1"}, stage="Production", framework="xgboost"),
        fake_version(2, params={"max_depth": "6", "seed": "1", "dropout": "0.2"}, framework="xgboost"),
    ]
    params = {row["key"]: row for row in param_rows(versions)}
    assert list(params) == ["dropout", "max_depth", "seed"]
    assert params["dropout"]["differs"] and [c["value"] for c in params["dropout"]["cells"]] == [None, "0.2"]
    assert params["max_depth"]["differs"] and not params["seed"]["differs"]
    details = {row["key"]: row["differs"] for row in detail_rows(versions)}
    assert details == {
        "Stage": True,
        "Framework": False,
        "Source": True,
        "Run ID": False,
        "Dataset": False,
        "Code version": False,
    }


def test_only_differences_leaves_out_equal_rows_but_counts_the_same():
    versions = [
        fake_version(1, params={"max_depth": "4", "seed": "1"}, metrics={"auc": 0.8, "rows": 10}),
        fake_version(2, params={"max_depth": "6", "seed": "1"}, metrics={"auc": 0.9, "rows": 10}),
    ]
    everything = comparison(versions)
    only = comparison(versions, only_differences=True)
    assert [row["key"] for row in everything["params"]] == ["max_depth", "seed"]
    assert [row["key"] for row in only["params"]] == ["max_depth"]
    assert [row["key"] for row in only["metrics"]] == ["auc"]
    assert [row["key"] for row in only["details"]] == ["Source"]
    assert everything["differing"] == only["differing"] == 2


def test_version_numbers_from_the_query_string():
    assert version_numbers(["2", "1", "2"]) == ([2, 1], [])
    assert version_numbers(["1", "x", "0"]) == ([1], ["“x” is not a version number.", "“0” is not a version number."])
    numbers, problems = version_numbers([str(n) for n in range(1, 13)], limit=10)
    assert numbers == list(range(1, 11))
    assert problems == ["Compare at most 10 versions at a time; showing the first 10."]
