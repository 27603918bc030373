"""Comparing model versions side by side: which rows differ, and which metric value is the best.

Pure: it reads the versions it is given (their `metrics`, `params` and lineage fields) and
never a request or the database, so it is tested without either.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import ModelVersion

MAX_COMPARED = 10
# Words in a metric's name that say smaller is better (log_loss, val_error, latency_ms); otherwise larger is.
LOWER_IS_BETTER = {
    "loss", "error", "err", "errors", "rmse", "mse", "mae", "mape", "smape", "wer", "cer", "perplexity", "latency",
    "duration", "time", "seconds", "ms", "fpr", "fnr", "brier", "logloss", "cost",
}  # fmt: skip
DETAIL_FIELDS = [
    ("Stage", "stage"),
    ("Framework", "framework"),
    ("Source", "source"),
    ("Run ID", "run_id"),
    ("Dataset", "dataset"),
    ("Code version", "code_version"),
]


def version_numbers(raw: Iterable[str], *, limit: int = MAX_COMPARED) -> tuple[list[int], list[str]]:
    """The distinct version numbers asked for (in the order given, at most `limit`), and what was wrong."""
    numbers: list[int] = []
    problems = []
    for value in raw:
        if value.strip().isdigit() and int(value) > 0:
            if int(value) not in numbers:
                numbers.append(int(value))
        else:
            problems.append(f"“{value}” is not a version number.")
    if len(numbers) > limit:
        problems.append(f"Compare at most {limit} versions at a time; showing the first {limit}.")
        numbers = numbers[:limit]
    return numbers, problems


def same(values: Sequence[object]) -> bool:
    """All equal; 1000 and 1000.0 count as the same number, a missing value differs from any value."""

    def key(value: object) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return repr(float(value))
        return json.dumps(value, sort_keys=True)

    return len({key(value) for value in values}) == 1


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of this metric is the better one, judged by the words of its name."""
    words = re.split(r"[^a-z0-9]+", metric.lower())
    return any(word in LOWER_IS_BETTER or word.endswith(("loss", "error")) for word in words)


def metric_rows(versions: Sequence[ModelVersion]) -> list[dict]:
    """One row per metric: each version's value, its change from the first version, and the best value marked."""
    rows = []
    for key in sorted({key for v in versions for key in (v.metrics or {})}):
        values = [(v.metrics or {}).get(key) for v in versions]
        numbers = [value for value in values if isinstance(value, int | float)]
        lower = lower_is_better(key)
        differs = not same(values)
        best = (min(numbers) if lower else max(numbers)) if numbers and differs else None
        base = values[0]
        cells = []
        for value in values:
            delta = value - base if isinstance(value, int | float) and isinstance(base, int | float) else None
            cells.append({"value": value, "best": best is not None and value == best, "delta": delta})
        rows.append({"key": key, "cells": cells, "differs": differs, "lower_is_better": lower})
    return rows


def param_rows(versions: Sequence[ModelVersion]) -> list[dict]:
    """One row per parameter any of the versions has (a missing one shows as None)."""
    rows = []
    for key in sorted({key for v in versions for key in (v.params or {})}):
        values = [(v.params or {}).get(key) for v in versions]
        rows.append({"key": key, "cells": [{"value": value} for value in values], "differs": not same(values)})
    return rows


def detail_rows(versions: Sequence[ModelVersion]) -> list[dict]:
    """The stage and lineage of each version, one row per field."""
    rows = []
    for label, attr in DETAIL_FIELDS:
        values = [getattr(v, attr) for v in versions]
        rows.append({"key": label, "cells": [{"value": value} for value in values], "differs": not same(values)})
    return rows


def comparison(versions: Sequence[ModelVersion], *, only_differences: bool = False) -> dict:
    """The compare page's tables (all rows, or only those that differ) and how many parameters and metrics differ."""
    details, params, metrics = detail_rows(versions), param_rows(versions), metric_rows(versions)

    def shown(rows: list[dict]) -> list[dict]:
        return [row for row in rows if row["differs"]] if only_differences else rows

    return {
        "details": shown(details),
        "params": shown(params),
        "metrics": shown(metrics),
        "differing": sum(row["differs"] for row in params + metrics),
    }
