"""`manage.py drift_report`: the JSON document, the HTML report, and exit 2 with a message on bad input."""

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

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "drift_report", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def frame(n: int, drift: bool, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "age": rng.normal(45 if drift else 40, 10, n),
            "income": rng.lognormal(10, 0.5, n),
            "plan": rng.choice(["free", "pro", "team"], n, p=[0.2, 0.3, 0.5] if drift else [0.5, 0.3, 0.2]),
            "region": rng.choice(["eu", "us", "apac"], n),
            "customer_id": np.arange(n) + (10_000 if drift else 0),
            "store": rng.choice(np.array([3, 7, 9, 11]), n),
        }
    )


@pytest.fixture
def files(tmp_path):
    ref, cur = tmp_path / "ref.csv", tmp_path / "cur.parquet"
    pacsv.write_csv(frame(3000, False, 1), ref)
    pq.write_table(frame(2000, True, 2), cur)
    return ref, cur


def test_json_names_each_column_and_the_verdict(files):
    ref, cur = files
    done = run("--reference", str(ref), "--current", str(cur), "--column-type", "store=categorical")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    columns = {c["column"]: c for c in document["columns"]}
    assert set(columns) == {"age", "income", "plan", "region", "store"}
    for column in columns.values():
        assert set(column) >= {"column", "type", "method", "statistic", "p_value", "threshold", "drifted"}
    assert columns["age"] | {"statistic": None} == columns["age"] | {
        "type": "numerical",
        "method": "wasserstein",
        "p_value": None,
        "threshold": 0.1,
        "drifted": True,
        "statistic": None,
    }
    assert columns["plan"]["method"] == "jensenshannon" and columns["plan"]["drifted"]
    assert columns["store"]["type"] == "categorical"
    assert not columns["income"]["drifted"] and not columns["region"]["drifted"]
    assert document["drift_share"] == pytest.approx(2 / 5)
    assert document["dataset_drift"] is False
    assert document["skipped"] == [{"column": "customer_id", "reason": "id column: no drift method"}]


def test_small_reference_reports_p_values(tmp_path):
    ref, cur = tmp_path / "ref.csv", tmp_path / "cur.csv"
    pacsv.write_csv(frame(500, False, 1), ref)
    pacsv.write_csv(frame(400, True, 2), cur)
    done = run("--reference", str(ref), "--current", str(cur), "--method", "income=anderson", "--threshold", "*=0.01")
    assert done.returncode == 0, done.stderr
    columns = {c["column"]: c for c in json.loads(done.stdout)["columns"]}
    assert columns["age"]["method"] == "ks" and columns["age"]["p_value"] < 0.01 and columns["age"]["drifted"]
    assert columns["plan"]["method"] == "chisquare" and columns["plan"]["threshold"] == 0.01
    assert columns["income"]["method"] == "anderson"
    assert columns["store"]["method"] == "chisquare"  # 4 distinct numbers: compared as categories


def test_html_is_self_contained_with_charts(files, tmp_path):
    ref, cur = files
    out = tmp_path / "report.html"
    done = run("--reference", str(ref), "--current", str(cur), "--format", "html", "--output", str(out))
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert "Plotly.newPlot" in page and "No dataset drift" in page
    assert ">age</a></td><td>numerical</td><td>wasserstein</td>" in page
    # Plotly.js is inlined (the package's own copy); outside it nothing refers to the network.
    head, plotly_and_rest = page.split("<script>", 1)
    plotly_js, rest = plotly_and_rest.split("</script>", 1)
    assert "plotly.js v" in plotly_js[:200] and len(plotly_js) > 1_000_000
    assert "src=" not in head + rest and "http" not in head + rest and "<link" not in head + rest
    data = json.loads(page.split('<script id="report-data" type="application/json">')[1].split("</script>")[0])
    assert data["number_of_drifted_columns"] == 2


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["--reference", "{tmp}/missing.csv", "--current", "{cur}"], "missing.csv: no such file"),
        ("garbage", ["--reference", "{tmp}/bad.csv", "--current", "{cur}"], "bad.csv: cannot parse CSV"),
        ("extra", ["--reference", "{ref}", "--current", "{tmp}/extra.csv"], "not in the reference data: bonus"),
        (None, ["--reference", "{ref}", "--current", "{cur}", "--column-type", "nope=categorical"], "unknown column"),
        (
            None,
            ["--reference", "{ref}", "--current", "{cur}", "--column-type", "age=fancy"],
            "unknown column type 'fancy'",
        ),
        (None, ["--reference", "{ref}", "--current", "{cur}", "--method", "age=magic"], "unknown drift method 'magic'"),
        (None, ["--reference", "{ref}", "--current", "{cur}", "--threshold", "age=high"], "age=high: not a number"),
    ],
)
def test_bad_input_exits_2_with_the_problem_on_stderr(files, tmp_path, setup, args, message):
    ref, cur = files
    if setup == "garbage":
        (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,4,5\n")
    if setup == "extra":
        pacsv.write_csv(frame(100, False, 3).append_column("bonus", pa.array(np.ones(100))), tmp_path / "extra.csv")
    done = run(*[a.format(tmp=tmp_path, ref=ref, cur=cur) for a in args])
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_a_bad_row_is_named(tmp_path):
    ref = tmp_path / "ref.csv"
    pacsv.write_csv(frame(100, False, 1), ref)
    lines = ref.read_text().splitlines()
    # A number column whose value on a later row is a word: pyarrow names the column and the row.
    bad = tmp_path / "cur.csv"
    rows = lines[:1] + lines[1:] * 400
    rows.append("abc," + ",".join(lines[1].split(",")[1:]))
    bad.write_text("\n".join(rows) + "\n")
    done = run("--reference", str(ref), "--current", str(bad))
    assert done.returncode == 2
    assert (
        "cur.csv: cannot parse CSV" in done.stderr and "'age'" in done.stderr and f"on line {len(rows)}" in done.stderr
    )
