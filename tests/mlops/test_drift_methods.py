"""Drift methods against scipy (to 1e-9) and against known distributions; Evidently's default selection."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial import distance

from mlops.drift import ColumnOptions, DriftOptions, compare, get_method
from mlops.drift import methods as m

RNG = np.random.default_rng(20261203)


def samples(n: int = 800, k: int = 700, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    return RNG.normal(0, 1, n), RNG.normal(shift, 1, k)


@pytest.mark.parametrize("sizes", [(300, 250), (800, 800), (5000, 3000), (20_000, 15_000)])
def test_ks_equals_scipy(sizes):
    ref, cur = samples(*sizes, shift=0.05)
    expected = stats.ks_2samp(ref, cur)
    result = get_method("ks")(ref, cur)
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-9)
    assert result.drifted == (expected.pvalue < 0.05)


@pytest.mark.parametrize("sizes", [(300, 250), (1000, 1000), (4000, 2500)])
def test_wasserstein_equals_scipy_over_reference_std(sizes):
    ref, cur = samples(*sizes, shift=0.2)
    result = get_method("wasserstein")(ref, cur)
    assert result.statistic == pytest.approx(stats.wasserstein_distance(ref, cur) / np.std(ref), abs=1e-9)
    assert result.p_value is None
    assert result.threshold == 0.1
    assert m.wasserstein_1d(ref, cur) == pytest.approx(stats.wasserstein_distance(ref, cur), abs=1e-9)


def test_anderson_cramer_energy_equal_scipy():
    ref, cur = samples(600, 500, shift=0.1)
    ad = stats.anderson_ksamp([ref, cur])
    result = get_method("anderson")(ref, cur)
    assert (result.statistic, result.p_value) == (
        pytest.approx(ad.statistic, abs=1e-9),
        pytest.approx(ad.pvalue, abs=1e-9),
    )
    cvm = stats.cramervonmises_2samp(ref, cur)
    result = get_method("cramer_von_mises")(ref, cur)
    assert result.statistic == pytest.approx(cvm.statistic, abs=1e-9)
    assert result.p_value == pytest.approx(cvm.pvalue, abs=1e-9)
    result = get_method("energy")(ref, cur)
    assert result.statistic == pytest.approx(stats.energy_distance(ref, cur), abs=1e-9)
    assert result.p_value is None


def test_binned_distances_equal_scipy_on_evidently_bins():
    ref, cur = samples(3000, 2000, shift=0.3)
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins=30)
    p = np.histogram(ref, edges)[0] / len(ref)
    q = np.histogram(cur, edges)[0] / len(cur)
    p_filled, q_filled = np.where(p == 0, 0.0001, p), np.where(q == 0, 0.0001, q)
    js = get_method("jensenshannon")(ref, cur)
    assert js.statistic == pytest.approx(distance.jensenshannon(p_filled, q_filled), abs=1e-9)
    kl = get_method("kl_div")(ref, cur)
    assert kl.statistic == pytest.approx(stats.entropy(p_filled, q_filled), abs=1e-9)
    psi = get_method("psi")(ref, cur)
    assert psi.statistic == pytest.approx(np.sum((p_filled - q_filled) * np.log(p_filled / q_filled)), abs=1e-9)
    hellinger = get_method("hellinger")(ref, cur)
    assert hellinger.statistic == pytest.approx(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2), abs=1e-9)


def test_categorical_distances_count_categories():
    ref = RNG.choice(4, 2000, p=[0.4, 0.3, 0.2, 0.1])
    cur = RNG.choice(5, 1500, p=[0.1, 0.2, 0.3, 0.3, 0.1])  # category 4 is new
    p = np.bincount(ref, minlength=5) / len(ref)
    q = np.bincount(cur, minlength=5) / len(cur)
    p, q = np.where(p == 0, 0.0001, p), np.where(q == 0, 0.0001, q)
    js = get_method("jensenshannon")(ref, cur, numerical=False)
    assert js.statistic == pytest.approx(distance.jensenshannon(p, q), abs=1e-9)
    assert js.drifted


def test_chisquare_equals_scipy_contingency_with_unseen_category():
    ref = RNG.choice(["a", "b", "c"], 700, p=[0.5, 0.3, 0.2])
    cur = np.concatenate([RNG.choice(["a", "b", "c"], 600, p=[0.5, 0.3, 0.2]), ["new"] * 3])
    table = np.array([[np.sum(ref == c) for c in "abc"] + [0], [np.sum(cur == c) for c in "abc"] + [3]])
    expected = stats.chi2_contingency(table, correction=False)
    result = get_method("chisquare")(ref, cur)
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-9)
    assert np.isfinite(result.statistic)  # an unseen category does not make it infinite


def test_chisquare_gof_equals_scipy_with_reference_proportions():
    ref = RNG.choice(["a", "b", "c"], 900, p=[0.5, 0.3, 0.2])
    cur = np.concatenate([RNG.choice(["a", "b", "c"], 500, p=[0.45, 0.35, 0.2]), ["x", "y"]])
    ref_counts = np.array([np.sum(ref == c) for c in "abc"] + [0.5], dtype=float)
    observed = np.array([np.sum(cur == c) for c in "abc"] + [2], dtype=float)
    expected = stats.chisquare(observed, observed.sum() * ref_counts / ref_counts.sum())
    result = get_method("chisquare_gof")(ref, cur)
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-9)
    # Without new categories: the current counts against the reference proportions, as Evidently does.
    cur = RNG.choice(["a", "b", "c"], 500, p=[0.5, 0.3, 0.2])
    observed = np.array([np.sum(cur == c) for c in "abc"], dtype=float)
    proportions = np.array([np.sum(ref == c) for c in "abc"]) / len(ref)
    assert get_method("chisquare_gof")(ref, cur).p_value == pytest.approx(
        stats.chisquare(observed, len(cur) * proportions).pvalue, abs=1e-9
    )


def test_chisquare_flags_undrifted_columns_at_the_nominal_rate():
    """1,000 undrifted categorical columns (reference and current from one distribution) flag at about 5 %."""
    p = [0.35, 0.25, 0.2, 0.1, 0.06, 0.04]
    flagged = 0
    gof_flagged = 0
    trials = 1000
    for _ in range(trials):
        ref = RNG.choice(6, 500, p=p)
        cur = RNG.choice(6, 500, p=p)
        flagged += get_method("chisquare")(ref, cur).drifted
        gof_flagged += get_method("chisquare_gof")(ref, cur).drifted
    # Binomial(1000, 0.05): mean 50, sd 6.9; 3.5 sd either side.
    assert 26 <= flagged <= 74, flagged
    # The goodness-of-fit variant treats the reference sample as the truth and over-flags (documented).
    assert gof_flagged > 150, gof_flagged


def test_chisquare_detects_a_shift():
    ref = RNG.choice(4, 800, p=[0.4, 0.3, 0.2, 0.1])
    cur = RNG.choice(4, 800, p=[0.25, 0.25, 0.25, 0.25])
    assert get_method("chisquare")(ref, cur).drifted


def test_z_test_two_proportions():
    ref = RNG.random(700) < 0.3
    cur = RNG.random(600) < 0.38
    p1, p2 = np.mean(~ref), np.mean(~cur)  # share of the first sorted value (False)
    pooled = (np.sum(~ref) + np.sum(~cur)) / (len(ref) + len(cur))
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / len(ref) + 1 / len(cur)))
    result = get_method("z")(ref, cur)
    assert result.statistic == pytest.approx(z, abs=1e-9)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), abs=1e-9)
    same = np.ones(50, dtype=bool)
    assert get_method("z")(same, same).p_value == 1.0


def test_known_distributions_drift_and_do_not():
    ref = RNG.normal(0, 1, 5000)
    assert not get_method("wasserstein")(ref, RNG.normal(0, 1, 5000)).drifted
    assert get_method("wasserstein")(ref, RNG.normal(0.5, 1, 5000)).drifted
    assert get_method("ks")(ref[:500], RNG.exponential(1, 500)).drifted
    assert not get_method("psi")(ref, RNG.normal(0, 1, 5000)).drifted
    assert get_method("hellinger")(ref, RNG.normal(1, 1, 5000)).drifted


def test_unknown_method_names_the_choices():
    with pytest.raises(ValueError, match="unknown drift method 'bogus'; choose from ks, chisquare"):
        get_method("bogus")
    assert get_method("wasserstein_distance").name == "wasserstein"


def table(n: int, drift: bool, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "x": rng.normal(0.8 if drift else 0, 1, n),
            "y": rng.normal(0, 1, n),
            "few": rng.choice([1.0, 2.0, 3.0], n),
            "flag": rng.random(n) < (0.6 if drift else 0.3),
            "city": rng.choice(["a", "b", "c", "d"], n, p=[0.1, 0.2, 0.3, 0.4] if drift else [0.4, 0.3, 0.2, 0.1]),
        }
    )


def test_default_selection_small_reference_uses_tests():
    report = compare(table(800, False, 1), table(800, True, 2))
    methods = {c.column: (c.method, c.threshold) for c in report.columns}
    assert methods == {
        "x": ("ks", 0.05),
        "y": ("ks", 0.05),
        "few": ("chisquare", 0.05),
        "flag": ("z", 0.05),
        "city": ("chisquare", 0.05),
    }
    assert set(report.drifted_columns) == {"x", "flag", "city"}
    assert report.drift_share == pytest.approx(0.6)
    assert report.dataset_drift


def test_default_selection_large_reference_uses_distances():
    report = compare(table(3000, False, 1), table(2000, False, 2))
    methods = {c.column: (c.method, c.threshold) for c in report.columns}
    assert methods == {
        "x": ("wasserstein", 0.1),
        "y": ("wasserstein", 0.1),
        "few": ("jensenshannon", 0.1),
        "flag": ("jensenshannon", 0.1),
        "city": ("jensenshannon", 0.1),
    }
    assert report.drifted_columns == []
    assert not report.dataset_drift


def test_dataset_drift_at_half_the_columns():
    ref, cur = table(3000, False, 1), table(3000, True, 2)
    # x, flag, city drift: 3 of 5 >= 0.5; dropping city and flag from the comparison leaves 1 of 3.
    assert compare(ref, cur).dataset_drift
    narrow = compare(ref.select(["x", "y", "few"]), cur.select(["x", "y", "few"]))
    assert narrow.drifted_columns == ["x"] and not narrow.dataset_drift
    assert not compare(ref, cur, options=DriftOptions(drift_share=0.7)).dataset_drift


def test_method_and_threshold_per_column():
    options = DriftOptions(
        columns={"x": ColumnOptions(method="psi", threshold=5.0), "city": ColumnOptions(method="hellinger")},
        threshold=None,
    )
    report = compare(table(3000, False, 1), table(3000, True, 2), options=options)
    by_name = {c.column: c for c in report.columns}
    assert (by_name["x"].method, by_name["x"].threshold, by_name["x"].drifted) == ("psi", 5.0, False)
    assert by_name["city"].method == "hellinger" and by_name["city"].drifted
    everything = compare(table(3000, False, 1), table(3000, True, 2), options=DriftOptions(method="psi"))
    assert {c.method for c in everything.columns} == {"psi"}


def test_numerical_method_on_categorical_column_is_refused():
    with pytest.raises(ValueError, match="column 'city' \\(categorical\\): method 'ks' takes numerical"):
        compare(table(100, False, 1), table(100, False, 2), options=DriftOptions(columns={"city": ColumnOptions("ks")}))


def test_missing_values_are_dropped_and_counted():
    ref = pa.table({"x": pa.array([1.0, None, 3.0, 4.0, 5.0, 6.0, 7.0])})
    cur = pa.table({"x": pa.array([None, None, 3.0, 4.5, 5.0, 6.0, 8.0])})
    column = compare(ref, cur).columns[0]
    assert (column.reference_missing, column.current_missing) == (1, 2)
    expected = stats.ks_2samp([1.0, 3.0, 4.0, 5.0, 6.0, 7.0], [3.0, 4.5, 5.0, 6.0, 8.0])
    assert column.p_value == pytest.approx(expected.pvalue, abs=1e-9)
