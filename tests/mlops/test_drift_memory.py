"""The drift engine's lean paths give the same results as the rows, and keep memory near the data's size.

Categorical columns are compared from their counts per category (Arrow's hash kernel, no per-row
codes), numbers with few values from their counts per value, numerical columns from views of the
Arrow buffers (tables are read into one chunk per column, Parquet column by column); a comparison
in a fresh process imports neither pandas nor scipy and its peak RSS stays near the two tables.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from scipy import stats

from mlops.drift import ColumnOptions, DriftOptions, compare, get_method, read_table
from mlops.drift.schema import codes_to_numpy, to_numpy

ROOT = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(20261203)


def labels(n: int, p: list[float], missing: float, values: list[str]) -> pa.Array:
    chosen = np.array(values, dtype=object)[RNG.choice(len(values), n, p=p)]
    chosen[RNG.random(n) < missing] = None
    return pa.array(chosen.tolist(), pa.string())


def present(array: pa.Array) -> np.ndarray:
    return np.array([v for v in array.to_pylist() if v is not None], dtype=object)


@pytest.mark.parametrize("method", ["chisquare", "chisquare_gof", "jensenshannon", "psi", "kl_div", "hellinger"])
def test_categorical_column_from_counts_equals_the_method_on_its_rows(method):
    # Missing values on both sides, a category only in the current data.
    ref = labels(3000, [0.5, 0.3, 0.2, 0.0], 0.05, ["a", "b", "c", "new"])
    cur = labels(2000, [0.4, 0.3, 0.2, 0.1], 0.1, ["a", "b", "c", "new"])
    options = DriftOptions(columns={"plan": ColumnOptions(method)})
    column = compare(pa.table({"plan": ref}), pa.table({"plan": cur}), options=options).columns[0]
    expected = get_method(method)(present(ref), present(cur), numerical=False)
    assert column.statistic == pytest.approx(expected.statistic, rel=1e-12)
    if expected.p_value is None:
        assert column.p_value is None
    else:
        assert column.p_value == pytest.approx(expected.p_value, rel=1e-12)
    assert column.drifted == expected.drifted
    assert (column.reference_missing, column.current_missing) == (ref.null_count, cur.null_count)
    assert column.reference_count == len(ref) - ref.null_count


def test_boolean_z_test_from_counts_equals_two_proportions():
    ref = pa.array([True] * 300 + [False] * 500 + [None] * 20)
    cur = pa.array([True] * 400 + [False] * 380 + [None] * 5)
    column = compare(pa.table({"flag": ref}), pa.table({"flag": cur})).columns[0]
    assert column.method == "z"
    # The first value met in the reference (true) is the one whose share is compared.
    p1, p2, pooled = 300 / 800, 400 / 780, 700 / 1580
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / 800 + 1 / 780))
    assert column.statistic == pytest.approx(z, abs=1e-9)
    assert column.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), abs=1e-9)


def test_numbers_with_few_values_are_counted_per_value_like_scipy():
    ref = RNG.choice([1.0, 2.0, 3.0], 900, p=[0.5, 0.3, 0.2])
    cur = RNG.choice([1.0, 2.0, 3.0, 4.0], 700, p=[0.4, 0.3, 0.2, 0.1])
    column = compare(pa.table({"few": ref}), pa.table({"few": cur})).columns[0]
    assert column.method == "chisquare"
    table = [[np.sum(ref == v) for v in (1, 2, 3, 4)], [np.sum(cur == v) for v in (1, 2, 3, 4)]]
    expected = stats.chi2_contingency(table, correction=False)
    assert column.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert column.p_value == pytest.approx(expected.pvalue, abs=1e-9)


def test_numbers_are_read_from_the_arrow_buffers_as_pyarrow_reads_them():
    nan = np.nan
    chunked = pa.chunked_array([pa.array([1.5, None, 3.0]), pa.array([4.0, 5.0, 6.0, 7.0]).slice(1, 2)])
    np.testing.assert_array_equal(to_numpy(chunked), [1.5, nan, 3.0, 5.0, 6.0])
    # An offset into the values and into the validity bitmap; integers with nulls become floats.
    ints = pa.array([1, None, 3, None, 5, 6, 7, 8, None, 10], pa.int16()).slice(3)
    np.testing.assert_array_equal(to_numpy(ints), [nan, 5, 6, 7, 8, nan, 10])
    whole = to_numpy(pa.array([1, 2, 3], pa.int64()).slice(1))
    assert whole.dtype == np.int64 and whole.tolist() == [2, 3]
    assert to_numpy(pa.array([0.5, 1.5], pa.float32())).dtype == np.float32
    assert len(to_numpy(pa.chunked_array([], pa.float64()))) == 0
    # Dictionary codes, missing as -1.
    codes = pa.array(["a", None, "b", "a", None]).dictionary_encode().indices.slice(1)
    assert codes_to_numpy(codes).tolist() == [-1, 1, 0, -1]


def test_csv_is_read_into_one_chunk_per_column(tmp_path):
    n = 30_000  # well over one 256 KB block
    table = pa.table({"x": RNG.normal(0, 1, n), "plan": labels(n, [0.5, 0.5], 0.01, ["free", "pro"])})
    pacsv.write_csv(table, tmp_path / "big.csv")
    read = read_table(tmp_path / "big.csv")
    assert [read.column(name).num_chunks for name in read.column_names] == [1, 1]
    whole = pacsv.read_csv(tmp_path / "big.csv", convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    assert read.equals(whole.combine_chunks())
    assert read.column("plan").null_count == table.column("plan").null_count


def test_parquet_is_read_column_by_column_into_one_chunk_each(tmp_path):
    n = 5000
    table = pa.table(
        {
            "a.b": RNG.normal(0, 1, n),
            "plan": labels(n, [0.5, 0.5], 0.1, ["free", "pro"]),
            "nested": pa.array([{"y": i} for i in range(n)]),
            "count": pa.array([None if i % 7 == 0 else i for i in range(n)], pa.int64()),
        }
    )
    pq.write_table(table, tmp_path / "groups.parquet", row_group_size=1000)
    read = read_table(tmp_path / "groups.parquet")
    assert read.column_names == ["a.b", "plan", "nested", "count"]
    assert all(read.column(i).num_chunks == 1 for i in range(read.num_columns))
    assert read.equals(pq.read_table(tmp_path / "groups.parquet"))


def test_parquet_with_duplicated_names_is_still_read(tmp_path):
    table = pa.Table.from_arrays([pa.array([1.0, 2.0]), pa.array([3.0, 4.0])], names=["x", "x"])
    pq.write_table(table, tmp_path / "twice.parquet")
    assert read_table(tmp_path / "twice.parquet").equals(table)


ENGINE = """
import json, sys
def rss(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith(field + ":"))
from mlops.drift import compare, read_table
baseline = rss("VmRSS")
reference, current = read_table(sys.argv[1]), read_table(sys.argv[2])
report = compare(reference, current)
print(json.dumps({"baseline": baseline, "peak": rss("VmHWM"), "data": (reference.nbytes + current.nbytes) / 2**20,
                  "drifted": report.drifted_columns, "modules": [m for m in ("pandas", "scipy") if m in sys.modules]}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the RSS from Linux's /proc")
def test_a_comparison_holds_little_more_than_its_two_tables(tmp_path):
    n = 100_000
    for name, shift in (("ref.csv", 0.0), ("cur.csv", 0.5)):
        columns = {f"num_{i}": RNG.normal(shift if i == 0 else 0.0, 1, n) for i in range(10)}
        columns["plan"] = labels(n, [0.4, 0.3, 0.2, 0.1], 0.0, ["a", "b", "c", "d"])
        pacsv.write_csv(pa.table(columns), tmp_path / name)
    done = subprocess.run(
        [sys.executable, "-c", ENGINE, str(tmp_path / "ref.csv"), str(tmp_path / "cur.csv")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(done.stdout)
    assert figures["drifted"] == ["num_0"]
    # pandas (~50 MB) and scipy (~70 MB) are not needed for the default methods above 1,000 rows.
    assert figures["modules"] == []
    # The tables (~17 MB) plus the reader's and one column's working memory, not copies of whole tables.
    assert figures["peak"] - figures["baseline"] < figures["data"] + 24, figures
