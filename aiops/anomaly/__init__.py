"""Streaming anomaly detection for metric series: small per-series states, O(1) work per sample.

    from aiops import anomaly

    detector = anomaly.get_detector("ensemble")
    state = detector.initial_state()
    scores = detector.catch_up(state, stamps, values)      # history, vectorised
    batch = anomaly.StateBatch.stack([state, ...])          # many series' states
    live = detector.update(batch, new_stamps, new_values)   # one new sample per series
    stored = batch[0].to_dict()                             # JSON-able (or .to_bytes())
    resumed = anomaly.SeriesState.from_dict(stored)

Both paths give the same scores for the same samples; see `detectors` for how a score is made.
"""

from __future__ import annotations

from .detectors import PARTS, Detector, Params
from .state import SeriesState, StateBatch

DEFAULT_DETECTOR = "ensemble"

_REGISTRY: dict[str, Detector] = {
    "ensemble": Detector(
        "ensemble",
        Params(),
        "Local and seasonal robust z-scores (the better predictor of the two trusted), nearest-neighbour "
        "distance of the recent shape, each calibrated per series, and novelty of range.",
    ),
    "knn": Detector(
        "knn",
        Params(parts=("knn",)),
        "Distance from the last few samples to the nearest earlier stretch of the series (a new shape).",
    ),
    "range": Detector(
        "range",
        Params(parts=("range",)),
        "How far a sample lies beyond the range of everything the series did before.",
    ),
    "local": Detector(
        "local",
        Params(parts=("local",)),
        "Robust z-score of the sample against the median of the samples just before it.",
    ),
    "seasonal": Detector(
        "seasonal",
        Params(parts=("seasonal",)),
        "Robust z-score of the sample against the value at the same time of day before.",
    ),
}


def detector_names() -> list[str]:
    """Registered detector names, the default first."""
    return [DEFAULT_DETECTOR, *sorted(name for name in _REGISTRY if name != DEFAULT_DETECTOR)]


def get_detector(name: str = DEFAULT_DETECTOR) -> Detector:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no anomaly detector {name!r}; choose from {', '.join(detector_names())}") from None


__all__ = [
    "DEFAULT_DETECTOR",
    "PARTS",
    "Detector",
    "Params",
    "SeriesState",
    "StateBatch",
    "detector_names",
    "get_detector",
]
