"""Run every benchmark, print a table and write bench/results/<name>.json.

Uses DATABASE_URL when set (PostgreSQL), otherwise a throw-away SQLite file, so a
benchmark never touches the development database.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = [
    "bench.bench_portal",
    "bench.bench_aiops",
    "bench.bench_correlation",
    "bench.bench_anomaly",
    "bench.bench_checks",
    "bench.bench_metrics",
    "bench.bench_logs",
    "bench.bench_mlops",
    "bench.bench_mlflow_compare",
    "bench.bench_llmops",
    "bench.bench_llmops_scorers",
    "bench.bench_guard",
    "bench.bench_trace_pages",
    "bench.bench_trace_filters",
    "bench.bench_traces",
    "bench.bench_drift",
]
RESULTS = Path(__file__).parent / "results"


def main() -> int:
    # `python -m bench mlops llmops` runs only those modules (a word that is not a module's name: every module
    # whose name contains it).
    wanted = sys.argv[1:]

    def chosen(module: str) -> bool:
        name = module.rsplit(".", 1)[-1].removeprefix("bench_")
        return not wanted or any(word == name or (word in name and word not in short) for word in wanted)

    short = {m.rsplit(".", 1)[-1].removeprefix("bench_") for m in BENCHMARKS}
    modules = [m for m in BENCHMARKS if chosen(m)]
    if not modules:
        print(f"no benchmark matches {wanted}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    if not os.environ.get("DATABASE_URL"):
        os.environ["OPSPORTAL_VAR_DIR"] = tempfile.mkdtemp(prefix="opsportal-bench-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")
    os.environ.setdefault("API_THROTTLE_USER", "1000000/minute")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()
    from django.db import connection

    # Benchmarks run in their own database, like tests.
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    print(f"database: {connection.vendor} ({test_db})")
    call_command("migrate", verbosity=0)
    RESULTS.mkdir(exist_ok=True)
    rows = []
    try:
        for module_name in modules:
            module = importlib.import_module(module_name)
            for name, result in module.run():
                result["database"] = connection.vendor
                result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
                rows.append((name, result))
    finally:
        connection.creation.destroy_test_db(test_db, verbosity=0)
    width = max(len(name) for name, _ in rows)
    print(f"\n{'benchmark'.ljust(width)}  {'p50 ms':>8}  {'p95 ms':>8}  {'req/s':>8}  {'queries':>7}  notes")
    for name, r in rows:
        print(
            f"{name.ljust(width)}  {r['p50_ms']:8.2f}  {r['p95_ms']:8.2f}  {r['per_second']:8.1f}  "
            f"{r['queries']:7d}  {r.get('notes', '')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
