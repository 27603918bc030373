"""Run Evidently's DataDriftPreset on two CSV files and print what it decided, as JSON.

Runs inside the benchmark-only venv (var/bench-evidently-venv, `make bench-evidently-env`), started by
bench/bench_drift.py as a child process so that its time and peak memory are its own:

    var/bench-evidently-venv/bin/python bench/evidently/run_evidently.py REF.csv CUR.csv
"""

import json
import resource
import sys
import time

started = time.perf_counter()
import pandas as pd  # noqa: E402
from evidently import Report  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402

imported = time.perf_counter()
reference = pd.read_csv(sys.argv[1])
current = pd.read_csv(sys.argv[2])
read = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
result = snapshot.dict()
ran = time.perf_counter()

columns = {}
for metric in result["metrics"]:
    config = metric.get("config") or {}
    if not str(config.get("type", "")).endswith(":ValueDrift"):
        continue
    method, threshold, value = str(config.get("method")), float(config["threshold"]), float(metric["value"])
    # Tests report a p-value (drift below the threshold), distances a distance (drift at or above it).
    drifted = value < threshold if "p_value" in method else value >= threshold
    columns[config["column"]] = {"method": method, "value": value, "threshold": threshold, "drifted": drifted}

print(
    json.dumps(
        {
            "import_s": imported - started,
            "read_s": read - imported,
            "run_s": ran - read,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "columns": columns,
            "drifted_count": next(
                (m["value"]["count"] for m in result["metrics"] if "DriftedColumnsCount" in str(m.get("metric_name"))),
                None,
            ),
        }
    )
)
