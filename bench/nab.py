"""A scorer for the Numenta Anomaly Benchmark (NAB), written from NAB's published rules.

The rules (NAB's whitepaper and its scorer, as reproduced against the published per-series rows):

- Each series has labelled anomaly windows. The first ``min(floor(0.15 * rows), 750)`` rows are a
  probationary period that is never scored.
- A detection is a row whose anomaly score is at or above the threshold.
- Every row gets a weight from the scaled sigmoid ``S(p) = 2 / (1 + exp(5 p)) - 1`` (``-1`` once
  ``p >= 3``). Inside a window of ``w`` rows, ``p = -(right - i + 1) / w`` (``-1`` at the left edge)
  and the row is worth ``tp_weight * S(p) / S(-1)``; outside, ``p = |i - right of the previous
  window| / (its w - 1)`` (``p = 3``, so ``-1``, before the first window) and a detection there
  costs ``fp_weight * S(p)`` (negative).
- A window is credited once, with its best detection (the earliest, as the weights fall through
  the window); a window without a detection costs ``-fn_weight``. False positives add up.
- A detector's raw score is the sum over series; the threshold is the one (over all distinct
  anomaly scores) that maximises the corpus raw score. Normalised score
  ``100 * (raw - null) / (perfect - null)`` where the null detector detects nothing (every
  scorable window a false negative) and the perfect one detects at the left edge of every window
  (``tp_weight`` per labelled window).

Rows counted as TP/TN/FP/FN in the per-series results are scorable (non-probationary) rows:
TP = detected inside a window, FN = not detected inside a window, and so on; Total_Count is every row.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PROBATION_PERCENT = 0.15
PROBATION_CAP = 5000 * PROBATION_PERCENT
PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
DATA_ROOT = Path(os.environ.get("NAB_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"))

# Rows with this window id are in the probationary period; -1 is "outside every window".
PROBATIONARY = -2
OUTSIDE = -1


def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray:
    """NAB's weighting curve: ~0.987 at p=-1 (left edge of a window), 0 at p=0, -1 from p=3 on."""
    p = np.asarray(position, dtype=float)
    with np.errstate(over="ignore"):
        value = 2.0 / (1.0 + np.exp(5.0 * p)) - 1.0
    return np.where(p >= 3.0, -1.0, value)


MAX_TP = float(scaled_sigmoid(-1.0))


@dataclass(frozen=True)
class Cost:
    """One application profile's cost matrix."""

    tp: float
    fp: float
    fn: float


@dataclass
class Series:
    """One labelled series: its rows and its windows as inclusive row-index pairs."""

    name: str
    timestamps: np.ndarray
    values: np.ndarray
    windows: list[tuple[int, int]]
    _weights: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def probation(self) -> int:
        """Rows at the start that are never scored."""
        return probationary_length(len(self))

    def labels(self) -> np.ndarray:
        """1 for a row inside a window, else 0."""
        out = np.zeros(len(self), dtype=np.int8)
        for left, right in self.windows:
            out[left : right + 1] = 1
        return out

    def weights(self, cost: Cost) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the weighted sweep score a detection there earns, and its window id (or OUTSIDE/PROBATIONARY)."""
        key = (cost.tp, cost.fp, cost.fn)
        if key not in self._weights:
            self._weights[key] = sweep_weights(len(self), self.windows, cost)
        return self._weights[key]


def probationary_length(rows: int) -> int:
    return int(min(math.floor(PROBATION_PERCENT * rows), PROBATION_CAP))


def sweep_weights(rows: int, windows: list[tuple[int, int]], cost: Cost) -> tuple[np.ndarray, np.ndarray]:
    """What a detection at each row is worth, and which window (if any) it credits."""
    weight = np.empty(rows, dtype=float)
    window_id = np.full(rows, OUTSIDE, dtype=np.int64)
    index = np.arange(rows, dtype=float)
    previous_right: int | None = None
    previous_width = 0.0
    cursor = 0
    for number, (left, right) in enumerate(sorted(windows)):
        _outside(weight, index, cursor, left, previous_right, previous_width, cost)
        width = float(right - left + 1)
        inside = index[left : right + 1]
        weight[left : right + 1] = scaled_sigmoid(-(right - inside + 1) / width) * cost.tp / MAX_TP
        window_id[left : right + 1] = number
        previous_right, previous_width, cursor = right, width, right + 1
    _outside(weight, index, cursor, rows, previous_right, previous_width, cost)
    window_id[: probationary_length(rows)] = PROBATIONARY
    return weight, window_id


def _outside(
    weight: np.ndarray,
    index: np.ndarray,
    start: int,
    stop: int,
    previous_right: int | None,
    previous_width: float,
    cost: Cost,
) -> None:
    if stop <= start:
        return
    if previous_right is None:
        weight[start:stop] = -1.0 * cost.fp
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        position = np.abs(previous_right - index[start:stop]) / (previous_width - 1.0)
    position = np.where(np.isfinite(position), position, 3.0)
    weight[start:stop] = scaled_sigmoid(position) * cost.fp


@dataclass(frozen=True)
class SeriesResult:
    """One series scored at one threshold (a row of NAB's <detector>_<profile>_scores.csv)."""

    score: float
    tp: int
    tn: int
    fp: int
    fn: int
    total: int


def score_series(series: Series, scores: np.ndarray, cost: Cost, threshold: float) -> SeriesResult:
    """Score one series' anomaly scores at `threshold`."""
    scores = np.asarray(scores, dtype=float)
    if len(scores) != len(series):
        raise ValueError(f"{series.name}: {len(scores)} scores for {len(series)} rows")
    weight, window_id = series.weights(cost)
    scorable = window_id != PROBATIONARY
    detected = (scores >= threshold) & scorable
    in_window = window_id >= 0
    fp_mask = detected & (window_id == OUTSIDE)
    total = float(np.sum(weight[fp_mask]))
    for number in np.unique(window_id[in_window]):
        hits = detected & (window_id == number)
        total += float(weight[hits].max()) if hits.any() else -cost.fn
    return SeriesResult(
        score=total,
        tp=int(np.sum(detected & in_window)),
        tn=int(np.sum(~detected & scorable & ~in_window)),
        fp=int(np.sum(fp_mask)),
        fn=int(np.sum(~detected & in_window)),
        total=len(series),
    )


def sweep(corpus: list[Series], scores: list[np.ndarray], cost: Cost) -> tuple[float, float]:
    """The threshold that maximises the corpus raw score, and that score (every distinct score is tried)."""
    all_scores, all_deltas, base = [], [], 0.0
    for series, series_scores in zip(corpus, scores, strict=True):
        weight, window_id = series.weights(cost)
        scorable = window_id != PROBATIONARY
        s = np.asarray(series_scores, dtype=float)[scorable]
        w = weight[scorable]
        wid = window_id[scorable]
        order = np.argsort(-s, kind="stable")
        s, w, wid = s[order], w[order], wid[order]
        delta = np.where(wid == OUTSIDE, w, 0.0)
        for number in np.unique(wid[wid >= 0]):
            positions = np.flatnonzero(wid == number)
            best = np.maximum.accumulate(np.maximum(w[positions], -cost.fn))
            delta[positions] = np.diff(best, prepend=-cost.fn)
            base -= cost.fn
        all_scores.append(s)
        all_deltas.append(delta)
    s = np.concatenate(all_scores) if all_scores else np.empty(0)
    d = np.concatenate(all_deltas) if all_deltas else np.empty(0)
    order = np.argsort(-s, kind="stable")
    s, d = s[order], d[order]
    running = base + np.cumsum(d)
    # A threshold t detects every score >= t: evaluate at the last row of each run of equal scores.
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True)) if len(s) else np.empty(0, dtype=int)
    if not len(ends) or running[ends].max() <= base:
        return 1.1, base
    best = ends[int(np.argmax(running[ends]))]
    return float(s[best]), float(running[best])


def null_score(corpus: list[Series], cost: Cost) -> float:
    """The null detector's raw score: every window with a scorable row is a false negative."""
    total = 0.0
    for series in corpus:
        _, window_id = series.weights(cost)
        total -= cost.fn * len(np.unique(window_id[window_id >= 0]))
    return total


def perfect_score(corpus: list[Series], cost: Cost) -> float:
    return cost.tp * sum(len(series.windows) for series in corpus)


def normalised(raw: float, corpus: list[Series], cost: Cost) -> float:
    null = null_score(corpus, cost)
    return 100.0 * (raw - null) / (perfect_score(corpus, cost) - null)


def evaluate(corpus: list[Series], scores: list[np.ndarray], profiles: dict[str, Cost] | None = None) -> dict:
    """Per profile: the best threshold, the raw score there and the normalised score."""
    profiles = profiles or load_profiles()
    out = {}
    for name, cost in profiles.items():
        threshold, raw = sweep(corpus, scores, cost)
        out[name] = {"threshold": threshold, "raw": raw, "score": normalised(raw, corpus, cost)}
    return out


def load_profiles(root: Path = DATA_ROOT) -> dict[str, Cost]:
    data = json.loads((root / "profiles.json").read_text())
    return {
        name: Cost(tp=c["CostMatrix"]["tpWeight"], fp=c["CostMatrix"]["fpWeight"], fn=c["CostMatrix"]["fnWeight"])
        for name, c in ((name, data[name]) for name in PROFILE_NAMES)
    }


def read_series_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (datetime64[s]) and values of a NAB-format CSV."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    stamps = np.array([row["timestamp"] for row in rows], dtype="datetime64[s]")
    values = np.array([float(row["value"]) for row in rows], dtype=float)
    return stamps, values


def _window_indices(stamps: np.ndarray, limits: list[list[str]]) -> list[tuple[int, int]]:
    windows = []
    for start, end in limits:
        left = int(np.searchsorted(stamps, np.datetime64(start.split(".")[0]), side="left"))
        right = int(np.searchsorted(stamps, np.datetime64(end.split(".")[0]), side="right")) - 1
        if right >= left:
            windows.append((left, right))
    return windows


def load_corpus(root: Path = DATA_ROOT, names: list[str] | None = None) -> list[Series]:
    """Every series under root/data with its windows from labels/combined_windows.json, sorted by name."""
    labels = json.loads((root / "labels" / "combined_windows.json").read_text())
    corpus = []
    for name in sorted(names if names is not None else labels):
        stamps, values = read_series_csv(root / "data" / name)
        windows = _window_indices(stamps, labels[name])
        corpus.append(Series(name=name, timestamps=stamps, values=values, windows=windows))
    return corpus


def reference_scores(series: Series, root: Path = DATA_ROOT, detector: str = "numenta") -> np.ndarray:
    """The published anomaly scores of `detector` for one series (reference/<detector>/<category>/<detector>_<file>)."""
    category, file_name = series.name.split("/")
    path = root / "reference" / detector / category / f"{detector}_{file_name}"
    with path.open(newline="") as handle:
        return np.array([float(row["anomaly_score"]) for row in csv.DictReader(handle)], dtype=float)


def reference_rows(profile: str, root: Path = DATA_ROOT, detector: str = "numenta") -> dict[str, dict]:
    """The published per-series rows of reference/<detector>/<detector>_<profile>_scores.csv, by file."""
    path = root / "reference" / detector / f"{detector}_{profile}_scores.csv"
    with path.open(newline="") as handle:
        return {row["File"]: row for row in csv.DictReader(handle)}


def reference_threshold(profile: str, root: Path = DATA_ROOT, detector: str = "numenta") -> float:
    data = json.loads((root / "reference" / detector / "thresholds.json").read_text())
    return float(data[detector][profile]["threshold"])


def reproduce_reference(corpus: list[Series], root: Path = DATA_ROOT, detector: str = "numenta") -> dict:
    """Score the published anomaly scores at the published thresholds; the largest gaps to the published rows."""
    profiles = load_profiles(root)
    scores = {series.name: reference_scores(series, root, detector) for series in corpus}
    worst_score, mismatched, rows = 0.0, [], 0
    for profile, cost in profiles.items():
        threshold = reference_threshold(profile, root, detector)
        published = reference_rows(profile, root, detector)
        for series in corpus:
            ours = score_series(series, scores[series.name], cost, threshold)
            row = published[series.name]
            rows += 1
            worst_score = max(worst_score, abs(ours.score - float(row["Score"])))
            counts = (ours.tp, ours.tn, ours.fp, ours.fn, ours.total)
            theirs = tuple(int(row[k]) for k in ("TP", "TN", "FP", "FN", "Total_Count"))
            if counts != theirs:
                mismatched.append((profile, series.name, counts, theirs))
    return {"rows": rows, "max_score_error": worst_score, "count_mismatches": mismatched}
