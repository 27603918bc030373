"""Drift figures, side by side with Evidently 0.7's DataDriftPreset on the same generated files.

- 100,000 x 25 reference and current CSV (20 numerical, 5 categorical; drift injected into 5 numerical
  and 1 categorical column). Both tools are measured the same way, each in a fresh child process that
  imports the library, reads the two files and compares them (ours: `mlops.drift.read_table` and
  `compare`, ENGINE_RUNNER; Evidently: bench/evidently/run_evidently.py): the wall time, the child's own
  timing of the comparison (after reading), the peak RSS of the whole process (os.wait4's rusage:
  interpreter, imports, data and work) and the peak above the RSS measured once the library is
  imported (the data and the work alone). `manage.py drift_report` (what users run: Django's start-up
  included) is measured too, its baseline being the same command on 10-row files. The columns flagged
  must be the same. Every figure is the best of a few runs, for both tools alike.
- 1,000,000 x 20 numerical (Parquet): ours, wall time and peak RSS (Evidently on it only with
  DRIFT_BENCH_EVIDENTLY_1M=1: it takes minutes).
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
# The same steps and measurements as run_evidently.py, with OpsPortal's engine.
ENGINE_RUNNER = """
import json, sys, time
def rss_mb(field="VmRSS"):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith(field + ":"))
t0 = time.perf_counter()
from mlops.drift import compare, read_table
t1 = time.perf_counter()
baseline = rss_mb()
reference, current = read_table(sys.argv[1]), read_table(sys.argv[2])
t2 = time.perf_counter()
report = compare(reference, current)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "read_s": t2 - t1, "run_s": t3 - t2, "baseline_rss_mb": baseline,
                  "peak_rss_mb": rss_mb("VmHWM"),
                  "imported": sorted(m for m in ("pandas", "scipy") if m in sys.modules),
                  "drifted": report.drifted_columns}))
"""
# Starts the measured command and writes its ru_maxrss (KB) to the file named first (see `measured`).
LAUNCHER = """
import os, subprocess, sys
process = subprocess.Popen(sys.argv[2:])
_pid, status, usage = os.wait4(process.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""
# Allocator settings the parent may carry: each child starts from the same clean environment.
CLEAN_ENVIRONMENT = {
    k: v for k, v in os.environ.items() if k not in {"JE_ARROW_MALLOC_CONF", "ARROW_DEFAULT_MEMORY_POOL"}
}


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


def measured(command: list[str]) -> dict:
    """Run `command` in a child process: its wall time, its peak RSS and its output.

    The peak RSS is os.wait4's ru_maxrss of that child as seen by LAUNCHER, a bare interpreter started
    in between: Linux counts in a child's ru_maxrss the peak RSS of the process image it replaced at
    exec, which for a child of this benchmark process is this process itself (Django, the generated
    tables: 200 MB and more), not the few MB of the launcher.
    """
    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.NamedTemporaryFile("r", suffix=".rss") as rss,
    ):
        started = time.perf_counter()
        launched = [sys.executable, "-S", "-c", LAUNCHER, rss.name, *command]
        process = subprocess.run(  # noqa: S603 (our own commands)
            launched, cwd=ROOT, stdout=out, stderr=err, text=True, env=CLEAN_ENVIRONMENT, check=False
        )
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:3])} failed ({process.returncode}): {err.read()[-2000:]}")
        return {"wall_s": wall, "peak_rss_mb": int(rss.read()) / 1024, "output": out.read()}


def best_of(runs: int, command: list[str]) -> dict:
    """`runs` runs of `command`: the least wall time and the least peak RSS (and the last run's output),
    with the child's JSON (if it prints one) as `child`, its times, baseline and own peak (VmHWM, a
    check on the launcher's figure) the least too."""
    results = [measured(command) for _ in range(runs)]
    best = {
        "wall_s": min(r["wall_s"] for r in results),
        "peak_rss_mb": min(r["peak_rss_mb"] for r in results),
        "output": results[-1]["output"],
    }
    try:
        children = [json.loads(r["output"]) for r in results]
    except ValueError:
        return best
    child = dict(children[-1])
    for key in ("import_s", "read_s", "run_s", "baseline_rss_mb", "peak_rss_mb"):
        child[key] = min(c[key] for c in children)
    best["child"] = child
    pairs = zip(results, children, strict=True)
    best["above_baseline_mb"] = min(r["peak_rss_mb"] - c["baseline_rss_mb"] for r, c in pairs)
    return best


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


def command_figures(reference: Path, current: Path, workdir: Path, runs: int) -> dict:
    """`manage.py drift_report` on the files, and on their first 10 rows (its start-up baseline)."""
    output = workdir / "ours.json"
    full = best_of(runs, ours_command(reference, current, output))
    document = json.loads(output.read_text())
    small = []
    for path in (reference, current):
        head = workdir / f"head-{path.name}"
        write_head(path, head, 10)
        small.append(head)
    # Jensen-Shannon on every column, as the defaults above 1,000 rows: no scipy import (which the tests
    # the defaults pick for 10 rows would add to the start-up).
    start_up = best_of(runs, [*ours_command(small[0], small[1], workdir / "small.json"), "--method", "*=jensenshannon"])
    return {
        "command_wall_s": full["wall_s"],
        "command_peak_rss_mb": full["peak_rss_mb"],
        "command_baseline_rss_mb": start_up["peak_rss_mb"],
        "command_above_baseline_mb": full["peak_rss_mb"] - start_up["peak_rss_mb"],
        "ours_flagged": sorted(c["column"] for c in document["columns"] if c["drifted"]),
    }


def write_head(path: Path, head: Path, rows: int) -> None:
    """The first `rows` rows of `path` into `head`, in the same format (so the command imports the same)."""
    if path.suffix == ".parquet":
        pq.write_table(pq.read_table(path).slice(0, rows), head)
    else:
        pacsv.write_csv(pacsv.read_csv(path).slice(0, rows), head)


def engine_figures(reference: Path, current: Path, runs: int) -> dict:
    """OpsPortal's engine as a library in a fresh process (ENGINE_RUNNER): times and both memory measures."""
    engine = best_of(runs, [sys.executable, "-c", ENGINE_RUNNER, str(reference), str(current)])
    child = engine["child"]
    return {
        "ours_wall_s": engine["wall_s"],
        "ours_import_s": child["import_s"],
        "ours_read_s": child["read_s"],
        "ours_compare_s": child["run_s"],
        "ours_peak_rss_mb": engine["peak_rss_mb"],
        "ours_own_peak_rss_mb": child["peak_rss_mb"],
        "ours_baseline_rss_mb": child["baseline_rss_mb"],
        "ours_above_baseline_mb": engine["above_baseline_mb"],
        "ours_imported": child["imported"],
        "ours_engine_flagged": sorted(child["drifted"]),
    }


def evidently_figures(reference: Path, current: Path, runs: int) -> dict:
    their = best_of(runs, [str(EVIDENTLY_PYTHON), str(EVIDENTLY_RUNNER), str(reference), str(current)])
    child = their["child"]
    return {
        "evidently_wall_s": their["wall_s"],
        "evidently_import_s": child["import_s"],
        "evidently_read_s": child["read_s"],
        "evidently_run_s": child["run_s"],
        "evidently_peak_rss_mb": their["peak_rss_mb"],
        "evidently_own_peak_rss_mb": child["peak_rss_mb"],
        "evidently_baseline_rss_mb": child["baseline_rss_mb"],
        "evidently_above_baseline_mb": their["above_baseline_mb"],
        "evidently_flagged": sorted(c for c, v in child["columns"].items() if v["drifted"]),
    }


def bench_100k(workdir: Path) -> Iterator[tuple[str, dict]]:
    reference, current = workdir / "ref_100k.csv", workdir / "cur_100k.csv"
    pacsv.write_csv(generate(100_000, 20, 5, False, 1), reference)
    pacsv.write_csv(generate(100_000, 20, 5, True, 2), current)
    extra = engine_figures(reference, current, 3) | command_figures(reference, current, workdir, 3)
    ours = (
        f"ours {extra['ours_wall_s']:.2f} s wall / {extra['ours_compare_s'] * 1000:.0f} ms compare, "
        f"{extra['ours_peak_rss_mb']:.0f} MB peak ({extra['ours_above_baseline_mb']:.0f} MB above its "
        f"{extra['ours_baseline_rss_mb']:.0f} MB after imports); drift_report {extra['command_wall_s']:.2f} s, "
        f"{extra['command_peak_rss_mb']:.0f} MB ({extra['command_above_baseline_mb']:.0f} MB above start-up)"
    )
    if not EVIDENTLY_PYTHON.exists():
        note = "Evidently not measured: run `make bench-evidently-env` (var/bench-evidently-venv)"
        yield "drift_100k_x25", row(extra["ours_wall_s"] * 1000, 200_000, f"{note}; {ours}", **extra)
        return
    extra |= evidently_figures(reference, current, 2)
    extra |= {
        "same_columns_flagged": extra["evidently_flagged"] == extra["ours_flagged"] == extra["ours_engine_flagged"],
        "speedup_compare": extra["evidently_run_s"] / extra["ours_compare_s"],
        "speedup_wall": extra["evidently_wall_s"] / extra["ours_wall_s"],
        "speedup_command_wall": extra["evidently_wall_s"] / extra["command_wall_s"],
        "memory_ratio": extra["ours_peak_rss_mb"] / extra["evidently_peak_rss_mb"],
        "memory_ratio_above_baseline": extra["ours_above_baseline_mb"] / extra["evidently_above_baseline_mb"],
        "memory_ratio_command": extra["command_peak_rss_mb"] / extra["evidently_peak_rss_mb"],
    }
    notes = (
        f"{ours}; Evidently {extra['evidently_wall_s']:.1f} s wall / {extra['evidently_run_s']:.1f} s run, "
        f"{extra['evidently_peak_rss_mb']:.0f} MB peak ({extra['evidently_above_baseline_mb']:.0f} MB above its "
        f"{extra['evidently_baseline_rss_mb']:.0f} MB after imports): {extra['speedup_compare']:.0f}x faster "
        f"comparing, {extra['speedup_wall']:.0f}x wall; memory {extra['memory_ratio']:.2f} of its peak, "
        f"{extra['memory_ratio_above_baseline']:.2f} above baseline ({extra['memory_ratio_command']:.2f} with "
        f"drift_report); same columns flagged: {extra['same_columns_flagged']}"
    )
    yield "drift_100k_x25", row(extra["ours_wall_s"] * 1000, 200_000, notes, **extra)


def bench_1m(workdir: Path) -> Iterator[tuple[str, dict]]:
    reference, current = workdir / "ref_1m.parquet", workdir / "cur_1m.parquet"
    pq.write_table(generate(1_000_000, 20, 0, False, 3), reference)
    pq.write_table(generate(1_000_000, 20, 0, True, 4), current)
    extra = engine_figures(reference, current, 2) | command_figures(reference, current, workdir, 2)
    extra["target_s"] = 5.0
    notes = (
        f"1,000,000 x 20 Parquet: drift_report {extra['command_wall_s']:.2f} s wall, "
        f"{extra['command_peak_rss_mb']:.0f} MB; engine {extra['ours_wall_s']:.2f} s wall "
        f"({extra['ours_read_s']:.2f} s read, {extra['ours_compare_s']:.2f} s compare), "
        f"{extra['ours_peak_rss_mb']:.0f} MB peak ({extra['ours_above_baseline_mb']:.0f} MB above imports); "
        "target < 5 s"
    )
    if os.environ.get("DRIFT_BENCH_EVIDENTLY_1M") == "1" and EVIDENTLY_PYTHON.exists():
        csv_ref, csv_cur = workdir / "ref_1m.csv", workdir / "cur_1m.csv"
        pacsv.write_csv(pq.read_table(reference), csv_ref)
        pacsv.write_csv(pq.read_table(current), csv_cur)
        extra |= evidently_figures(csv_ref, csv_cur, 1)
        notes += (
            f"; Evidently (CSV) {extra['evidently_wall_s']:.0f} s, {extra['evidently_peak_rss_mb']:.0f} MB "
            f"({extra['evidently_above_baseline_mb']:.0f} MB above imports)"
        )
    yield "drift_1m_x20", row(extra["command_wall_s"] * 1000, 2_000_000, notes, **extra)


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
