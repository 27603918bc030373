"""Run Evidently's DataDriftPreset on two CSV files and print what it decided, as JSON.

Runs inside the benchmark-only venv (var/bench-evidently-venv, `make bench-evidently-env`), started by
bench/bench_drift.py as a child process so that its time and peak memory are its own:

    var/bench-evidently-venv/bin/python bench/evidently/run_evidently.py REF.csv CUR.csv

Measured the same way as OpsPortal's engine (bench_drift.ENGINE_RUNNER): the import time, the RSS once
its modules are imported (`baseline_rss_mb`: the peak above it is what the comparison itself costs),
the reading and the run times, and its own peak RSS (`peak_rss_mb`, VmHWM); the parent reads the peak
of the whole process too (os.wait4).
"""

import json
import sys
import time


def rss_mb(field: str = "VmRSS") -> float:
    """The process's resident set size now (VmRSS) or its peak (VmHWM), from Linux's /proc."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith(field + ":"))


started = time.perf_counter()
import pandas as pd  # noqa: E402
from evidently import Report  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402

imported = time.perf_counter()
baseline = rss_mb()
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
            "baseline_rss_mb": baseline,
            "peak_rss_mb": rss_mb("VmHWM"),
            "columns": columns,
            "drifted_count": next(
                (m["value"]["count"] for m in result["metrics"] if "DriftedColumnsCount" in str(m.get("metric_name"))),
                None,
            ),
        }
    )
)
