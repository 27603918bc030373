"""Column type inference, roles and overrides; reading CSV and Parquet with clear errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops.drift import DriftInputError, apply_overrides, infer_schema, read_table


def test_types_and_roles_are_inferred():
    n = 200
    rng = np.random.default_rng(1)
    table = pa.table(
        {
            "customer_id": np.arange(n),
            "age": rng.normal(40, 10, n),
            "visits": rng.integers(0, 30, n),
            "plan": rng.choice(["free", "pro", "team"], n),
            "active": rng.random(n) < 0.5,
            "opted_in": rng.choice(["yes", "no"], n),
            "signed_up": [f"2026-01-{1 + i % 28:02d}T10:00:00" for i in range(n)],
            "comment": [f"the customer wrote message number {i} about the product" for i in range(n)],
            "session": [f"s{i:05d}x" for i in range(n)],
            "prediction": rng.random(n),
            "target": rng.choice([0, 1], n),
        }
    )
    schema = infer_schema(table)
    assert {name: c.type for name, c in schema.items()} == {
        "customer_id": "id",
        "age": "numerical",
        "visits": "numerical",
        "plan": "categorical",
        "active": "boolean",
        "opted_in": "boolean",
        "signed_up": "datetime",
        "comment": "text",
        "session": "id",
        "prediction": "numerical",
        "target": "numerical",
    }
    assert schema["prediction"].role == "prediction" and schema["target"].role == "target"
    assert schema["age"].role == "feature"


def test_overrides_name_unknown_columns_and_types():
    schema = infer_schema(pa.table({"store": [1, 2, 3]}))
    assert apply_overrides(schema, {"store": "categorical"})["store"].type == "categorical"
    with pytest.raises(ValueError, match="unknown column\\(s\\) in --column-type: shop"):
        apply_overrides(schema, {"shop": "categorical"})
    with pytest.raises(ValueError, match="unknown column type 'colour' for 'store'"):
        apply_overrides(schema, {"store": "colour"})


def test_reading_csv_and_parquet(tmp_path):
    (tmp_path / "a.csv").write_text("x,plan\n1.5,free\n2.5,pro\n,team\n")
    table = read_table(tmp_path / "a.csv")
    assert table.column_names == ["x", "plan"] and table.num_rows == 3
    assert table.column("x").null_count == 1
    pq.write_table(table, tmp_path / "a.parquet")
    assert read_table(tmp_path / "a.parquet").equals(table)


def test_reading_errors_name_the_file(tmp_path):
    with pytest.raises(DriftInputError, match=r"nope\.csv: no such file"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DriftInputError, match=r"broken\.parquet: cannot read Parquet"):
        read_table(tmp_path / "broken.parquet")
    (tmp_path / "dup.csv").write_text("a,a\n1,2\n")
    with pytest.raises(DriftInputError, match="duplicated column names: a"):
        read_table(tmp_path / "dup.csv")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(DriftInputError, match=r"ragged\.csv: cannot parse CSV: .*Expected 2 columns, got 3"):
        read_table(tmp_path / "ragged.csv")
