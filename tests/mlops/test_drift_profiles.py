"""Mergeable profiles: JSON round trip, merge, drift over a window from merged profiles (exact and
approximate methods, with the error measured against the rows), and per-batch data quality."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from mlops.drift import ColumnOptions, DriftOptions, compare
from mlops.drift.profiles import BatchProfile, ProfileSpec, merge_profiles, window_drift
from mlops.drift.quality import data_quality, profile_quality

RNG = np.random.default_rng(7)


def frame(n: int, drift: bool) -> pa.Table:
    return pa.table(
        {
            "normal": RNG.normal(0.3 if drift else 0, 1.5 if drift else 1, n),
            "skewed": RNG.exponential(1.5 if drift else 1, n),
            "steady": RNG.normal(5, 2, n),
            "few": RNG.choice([1.0, 2.0, 3.0], n, p=[0.2, 0.3, 0.5] if drift else [0.5, 0.3, 0.2]),
            "plan": RNG.choice(["free", "pro", "team"], n, p=[0.2, 0.3, 0.5] if drift else [0.5, 0.3, 0.2]),
            "flag": RNG.random(n) < (0.5 if drift else 0.3),
        }
    )


def window(spec: ProfileSpec, table: pa.Table, size: int) -> BatchProfile:
    """The table cut in batches, each profiled and sent through JSON (as it would be stored), then merged."""
    profiles = []
    for start in range(0, table.num_rows, size):
        stored = json.dumps(spec.profile(table.slice(start, size)).to_dict())
        profiles.append(BatchProfile.from_dict(json.loads(stored)))
    return merge_profiles(profiles)


@pytest.fixture(scope="module")
def data():
    reference, current = frame(20_000, False), frame(15_000, True)
    spec = ProfileSpec.from_reference(reference)
    spec = ProfileSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    return reference, current, spec, spec.profile(reference), window(spec, current, 500)


def test_merged_profile_equals_the_profile_of_all_rows(data):
    _reference, current, spec, _ref_profile, merged = data
    whole = spec.profile(current)
    assert merged.rows == whole.rows == 15_000
    for name, column in whole.columns.items():
        assert np.array_equal(merged.columns[name].counts, column.counts), name
        assert merged.columns[name].count == column.count
        assert merged.columns[name].minimum == column.minimum and merged.columns[name].maximum == column.maximum
        assert merged.columns[name].total == pytest.approx(column.total)
    assert merged.columns["few"].few == whole.columns["few"].few
    pairwise = spec.profile(current.slice(0, 7000)).merge(spec.profile(current.slice(7000)))
    assert np.array_equal(pairwise.columns["normal"].counts, whole.columns["normal"].counts)


def test_default_selection_from_profiles_matches_the_rows(data):
    reference, current, spec, ref_profile, merged = data
    from_rows = compare(reference, current)
    from_profiles = window_drift(spec, ref_profile, merged)
    rows = {c.column: c for c in from_rows.columns}
    for column in from_profiles.columns:
        assert column.method == rows[column.column].method
        assert column.drifted == rows[column.column].drifted, column.column
    assert from_profiles.drifted_columns == from_rows.drifted_columns
    assert from_profiles.dataset_drift == from_rows.dataset_drift


@pytest.mark.parametrize("method", ["chisquare", "chisquare_gof", "jensenshannon", "psi", "kl_div", "hellinger"])
def test_categorical_methods_are_exact_from_profiles(data, method):
    reference, current, spec, ref_profile, merged = data
    options = DriftOptions(columns={c: ColumnOptions(method) for c in ("plan", "few")})
    rows = {c.column: c for c in compare(reference, current, options=options).columns}
    for column in window_drift(spec, ref_profile, merged, options).columns:
        if column.column in ("plan", "few"):
            assert column.statistic == pytest.approx(rows[column.column].statistic, abs=1e-9)
            if column.p_value is not None:
                assert column.p_value == pytest.approx(rows[column.column].p_value, abs=1e-9)


def test_z_test_is_exact_from_profiles():
    reference = pa.table({"flag": RNG.random(800) < 0.3})
    current = pa.table({"flag": RNG.random(600) < 0.4})
    spec = ProfileSpec.from_reference(reference)
    rows = compare(reference, current).columns[0]
    profiled = window_drift(spec, spec.profile(reference), window(spec, current, 100)).columns[0]
    assert (rows.method, profiled.method) == ("z", "z")
    assert profiled.p_value == pytest.approx(rows.p_value, abs=1e-12)


@pytest.mark.parametrize(
    ("method", "tolerance"),
    [("ks", 0.003), ("wasserstein", 0.005), ("energy", 0.003), ("psi", 0.01), ("jensenshannon", 0.005)],
)
def test_numerical_methods_from_profiles_are_close(data, method, tolerance):
    """Approximate methods: the absolute error on the statistic, drifted and undrifted columns."""
    reference, current, spec, ref_profile, merged = data
    options = DriftOptions(columns={c: ColumnOptions(method) for c in ("normal", "skewed", "steady")})
    rows = {c.column: c for c in compare(reference, current, options=options).columns}
    for column in window_drift(spec, ref_profile, merged, options).columns:
        if column.column in ("normal", "skewed", "steady"):
            assert abs(column.statistic - rows[column.column].statistic) <= tolerance, column.column
            assert column.drifted == rows[column.column].drifted


def test_ks_p_value_from_profiles_is_close():
    reference, current = pa.table({"x": RNG.normal(0, 1, 900)}), pa.table({"x": RNG.normal(0.1, 1, 800)})
    spec = ProfileSpec.from_reference(reference)
    rows = compare(reference, current).columns[0]
    profiled = window_drift(spec, spec.profile(reference), window(spec, current, 100)).columns[0]
    assert profiled.method == rows.method == "ks"
    # The statistic is within a sketch bin's share; the p-value (asymptotic, from that statistic) within ~40 %.
    assert abs(profiled.statistic - rows.statistic) < 0.004
    assert abs(np.log(profiled.p_value) - np.log(rows.p_value)) < 0.35
    assert profiled.drifted == rows.drifted


def test_methods_that_need_rows_are_refused(data):
    _reference, _current, spec, ref_profile, merged = data
    with pytest.raises(ValueError, match="'anderson' needs the rows"):
        window_drift(spec, ref_profile, merged, DriftOptions(columns={"normal": ColumnOptions("anderson")}))


def test_profiles_of_another_spec_are_refused(data):
    _reference, current, spec, ref_profile, _merged = data
    other = ProfileSpec.from_reference(frame(100, False))
    with pytest.raises(ValueError, match="not made with this spec"):
        window_drift(spec, ref_profile, other.profile(current))


def test_data_quality_per_batch():
    reference = pa.table({"age": [20.0, 30.0, 40.0, 50.0], "plan": ["free", "pro", "pro", "team"]})
    spec = ProfileSpec.from_reference(reference)
    batch = pa.table(
        {
            "age": pa.array(["25", "ninety", None, "70", "10", "30"]),
            "plan": pa.array(["free", "gold", "gold", None, "pro", "platinum"]),
        }
    )
    quality = {q.column: q.to_dict() for q in data_quality(spec, batch)}
    assert quality["age"]["missing"] == 1 and quality["age"]["missing_share"] == pytest.approx(1 / 6)
    assert quality["age"]["type_mismatches"] == 1  # "ninety"
    assert quality["age"]["out_of_range"] == 2  # 70 and 10 outside [20, 50]
    assert quality["plan"]["new_categories"] == {"gold": 2, "platinum": 1}
    assert quality["plan"]["new_category_share"] == pytest.approx(0.5)
    assert quality["plan"]["missing"] == 1
    # The same from a merged window.
    merged = merge_profiles([spec.profile(batch), spec.profile(batch)])
    window_quality = {q.column: q.to_dict() for q in profile_quality(spec, merged)}
    assert window_quality["plan"]["new_categories"] == {"gold": 4, "platinum": 2}
    assert window_quality["age"]["out_of_range_share"] == pytest.approx(2 / 6)
