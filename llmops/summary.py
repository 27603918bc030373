"""A run's summary: pass rate and mean score per column and per scorer.

Written when a run finishes or is re-scored; the engine and the services both call it, so it
depends on the models only.
"""

from __future__ import annotations

from collections import defaultdict

from .models import EvalRun, RunColumn


def summarise(run: EvalRun) -> dict:
    """Pass rate and mean score per column and per scorer; stored on the run and its columns."""
    columns = {c.pk: c for c in run.columns.all()}
    per_column: dict[int, dict] = {
        pk: {"results": 0, "errors": 0, "passed": 0, "scorers": defaultdict(lambda: [0, 0, 0.0])} for pk in columns
    }
    latencies: dict[int, list[float]] = defaultdict(list)
    for column_id, passed, error, scores, latency in run.results.values_list(
        "column_id", "passed", "error", "scores", "latency_ms"
    ).iterator(chunk_size=2000):
        stats = per_column[column_id]
        stats["results"] += 1
        if error:
            stats["errors"] += 1
            continue
        stats["passed"] += bool(passed)
        if latency is not None:
            latencies[column_id].append(latency)
        for entry in scores or []:
            scorer = stats["scorers"][entry["name"]]
            scorer[0] += 1
            scorer[1] += bool(entry["passed"])
            scorer[2] += float(entry["score"])
    summary = {"columns": []}
    for pk, column in columns.items():
        stats = per_column[pk]
        scored = stats["results"] - stats["errors"]
        column.pass_rate = stats["passed"] / scored if scored else None
        lat = sorted(latencies[pk])
        column.stats = {
            "results": stats["results"],
            "errors": stats["errors"],
            "passed": stats["passed"],
            "latency_p50_ms": lat[len(lat) // 2] if lat else None,
            "scorers": {
                name: {"count": n, "pass_rate": p / n if n else None, "mean_score": s / n if n else None}
                for name, (n, p, s) in stats["scorers"].items()
            },
        }
        summary["columns"].append({"id": pk, "label": column.label, "pass_rate": column.pass_rate, **column.stats})
    RunColumn.objects.bulk_update(list(columns.values()), ["pass_rate", "stats"])
    return summary
