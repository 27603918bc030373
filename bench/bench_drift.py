"""Drift figures, side by side with Evidently 0.7's DataDriftPreset on the same generated files.

- 100,000 x 25 reference and current CSV (20 numerical, 5 categorical; drift injected into 5 numerical
  and 1 categorical column): `manage.py drift_report` and Evidently each run as a child process; for
  each, the wall time, the child's own timing of the comparison (after reading), and the peak RSS
  (os.wait4's rusage of that child). The columns flagged must be the same.
- 1,000,000 x 20 numerical (Parquet): `manage.py drift_report`, wall time and peak RSS (Evidently on it
  only with DRIFT_BENCH_EVIDENTLY_1M=1: it takes minutes).
- Window drift over 1,000 batch profiles: merge and `window_drift`, in process (and the JSON decode).

Evidently runs in var/bench-evidently-venv (`make bench-evidently-env`); without it the benchmark says
how to make it and reports ours alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
EVIDENTLY_PYTHON = ROOT / "var" / "bench-evidently-venv" / "bin" / "python"
EVIDENTLY_RUNNER = Path(__file__).parent / "evidently" / "run_evidently.py"
ENGINE_RUNNER = """
import json, sys, time, resource
t0 = time.perf_counter()
from mlops.drift import compare, read_table
t1 = time.perf_counter()
reference, current = read_table(sys.argv[1]), read_table(sys.argv[2])
t2 = time.perf_counter()
report = compare(reference, current)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "read_s": t2 - t1, "run_s": t3 - t2,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "drifted": report.drifted_columns}))
"""


def generate(n: int, numerical: int, categorical: int, drift: bool, seed: int) -> pa.Table:
    """Normal numerical columns (the first 5 shifted by 0.5 sd when drifting) and 4-level categories
    (the first with reversed proportions when drifting)."""
    rng = np.random.default_rng(seed)
    columns = {}
    for i in range(numerical):
        columns[f"num_{i}"] = rng.normal(0.5 if drift and i < 5 else 0.0, 1.0, n)
    for j in range(categorical):
        p = [0.1, 0.2, 0.3, 0.4] if drift and j == 0 else [0.4, 0.3, 0.2, 0.1]
        columns[f"cat_{j}"] = np.array(["a", "b", "c", "d"])[rng.choice(4, n, p=p)]
    return pa.table(columns)


def measured(command: list[str]) -> tuple[float, float, str]:
    """Like `child`, with the peak RSS of that child alone (os.wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err, text=True)  # noqa: S603 (our own commands)
        _pid, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:3])} failed ({process.returncode}): {err.read()[-2000:]}")
        return wall, usage.ru_maxrss / 1024, out.read()


def ours_command(reference: Path, current: Path, output: Path) -> list[str]:
    return [
        sys.executable,
        "manage.py",
        "drift_report",
        "--reference",
        str(reference),
        "--current",
        str(current),
        "--output",
        str(output),
    ]


def row(ms: float, rows: int, notes: str, **extra) -> dict:
    return {
        "p50_ms": ms,
        "p95_ms": ms,
        "per_second": rows / (ms / 1000) if ms else 0.0,
        "queries": 0,
        "notes": notes,
        **extra,
    }


def best_of(runs: int, command: list[str]) -> tuple[float, float, str]:
    results = [measured(command) for _ in range(runs)]
    return min(results, key=lambda r: r[0])


def bench_100k(workdir: Path) -> Iterator[tuple[str, dict]]:
    reference, current = workdir / "ref_100k.csv", workdir / "cur_100k.csv"
    pacsv.write_csv(generate(100_000, 20, 5, False, 1), reference)
    pacsv.write_csv(generate(100_000, 20, 5, True, 2), current)
    output = workdir / "ours_100k.json"
    wall, rss, _ = best_of(3, ours_command(reference, current, output))
    document = json.loads(output.read_text())
    ours_flagged = sorted(c["column"] for c in document["columns"] if c["drifted"])
    _w, engine_rss, engine_out = best_of(3, [sys.executable, "-c", ENGINE_RUNNER, str(reference), str(current)])
    engine = json.loads(engine_out)
    extra = {
        "ours_wall_s": wall,
        "ours_peak_rss_mb": rss,
        "ours_compare_s": engine["run_s"],
        "ours_read_s": engine["read_s"],
        "ours_engine_peak_rss_mb": engine_rss,
        "ours_flagged": ours_flagged,
    }
    if not EVIDENTLY_PYTHON.exists():
        note = "Evidently not measured: run `make bench-evidently-env` (var/bench-evidently-venv)"
        yield "drift_100k_x25", row(wall * 1000, 200_000, f"{note}; ours {wall:.2f} s wall, {rss:.0f} MB", **extra)
        return
    their_wall, their_rss, their_out = measured(
        [str(EVIDENTLY_PYTHON), str(EVIDENTLY_RUNNER), str(reference), str(current)]
    )
    theirs = json.loads(their_out)
    their_flagged = sorted(c for c, v in theirs["columns"].items() if v["drifted"])
    extra |= {
        "evidently_wall_s": their_wall,
        "evidently_run_s": theirs["run_s"],
        "evidently_read_s": theirs["read_s"],
        "evidently_peak_rss_mb": their_rss,
        "evidently_flagged": their_flagged,
        "same_columns_flagged": their_flagged == ours_flagged,
        "speedup_compare": theirs["run_s"] / engine["run_s"],
        "speedup_wall": their_wall / wall,
        "memory_ratio": rss / their_rss,
    }
    notes = (
        f"ours {wall:.2f} s wall / {engine['run_s'] * 1000:.0f} ms compare, {rss:.0f} MB; Evidently "
        f"{their_wall:.1f} s wall / {theirs['run_s']:.1f} s run, {their_rss:.0f} MB: "
        f"{extra['speedup_compare']:.0f}x faster comparing, {extra['speedup_wall']:.1f}x wall, "
        f"{extra['memory_ratio']:.2f} of its memory; same columns flagged: {extra['same_columns_flagged']}"
    )
    yield "drift_100k_x25", row(wall * 1000, 200_000, notes, **extra)


def bench_1m(workdir: Path) -> Iterator[tuple[str, dict]]:
    reference, current = workdir / "ref_1m.parquet", workdir / "cur_1m.parquet"
    pq.write_table(generate(1_000_000, 20, 0, False, 3), reference)
    pq.write_table(generate(1_000_000, 20, 0, True, 4), current)
    output = workdir / "ours_1m.json"
    wall, rss, _ = best_of(2, ours_command(reference, current, output))
    _w, _rss, engine_out = measured([sys.executable, "-c", ENGINE_RUNNER, str(reference), str(current)])
    engine = json.loads(engine_out)
    extra = {"ours_wall_s": wall, "ours_peak_rss_mb": rss, "ours_compare_s": engine["run_s"], "target_s": 5.0}
    notes = f"1,000,000 x 20 Parquet: {wall:.2f} s wall ({engine['run_s']:.2f} s compare), {rss:.0f} MB; target < 5 s"
    if os.environ.get("DRIFT_BENCH_EVIDENTLY_1M") == "1" and EVIDENTLY_PYTHON.exists():
        csv_ref, csv_cur = workdir / "ref_1m.csv", workdir / "cur_1m.csv"
        pacsv.write_csv(pq.read_table(reference), csv_ref)
        pacsv.write_csv(pq.read_table(current), csv_cur)
        their_wall, their_rss, out = measured(
            [str(EVIDENTLY_PYTHON), str(EVIDENTLY_RUNNER), str(csv_ref), str(csv_cur)]
        )
        extra |= {
            "evidently_wall_s": their_wall,
            "evidently_peak_rss_mb": their_rss,
            "evidently_run_s": json.loads(out)["run_s"],
        }
        notes += f"; Evidently {their_wall:.0f} s, {their_rss:.0f} MB"
    yield "drift_1m_x20", row(wall * 1000, 2_000_000, notes, **extra)


def bench_window() -> Iterator[tuple[str, dict]]:
    from mlops.drift.profiles import BatchProfile, ProfileSpec, merge_profiles, window_drift

    reference = generate(100_000, 20, 5, False, 5)
    current = generate(100_000, 20, 5, True, 6)
    spec = ProfileSpec.from_reference(reference)
    reference_profile = spec.profile(reference)
    stored = [json.dumps(spec.profile(current.slice(i * 100, 100)).to_dict()) for i in range(1000)]
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        profiles = [BatchProfile.from_dict(json.loads(s)) for s in stored]
        decoded = time.perf_counter()
        report = window_drift(spec, reference_profile, merge_profiles(profiles))
        timings.append((time.perf_counter() - decoded, decoded - started))
    merge_and_drift, decode = min(timings)
    notes = (
        f"1,000 batch profiles x 25 columns: merge + drift {merge_and_drift * 1000:.0f} ms "
        f"(+ {decode * 1000:.0f} ms JSON decode); {len(report.drifted_columns)} columns drifted; target < 1 s"
    )
    yield "drift_window_1000_batches", row(merge_and_drift * 1000, 1000, notes, json_decode_ms=decode * 1000)


def run() -> Iterator[tuple[str, dict]]:
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        workdir = Path(tmp)
        yield from bench_100k(workdir)
        yield from bench_1m(workdir)
    yield from bench_window()
