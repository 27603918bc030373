"""The thresholds behind live anomaly sensitivity (aiops.services.anomalies.SENSITIVITY_THRESHOLDS).

`python -m bench.anomaly_sensitivity` scores the 41 shared NAB files with the default detector and prints,
per NAB profile, the optimal threshold (bench/nab.py's sweep) and the normalised score there, and the three
sensitivities: low = the reward-low-FP profile's optimum, medium = the standard profile's, high = the
reward-low-FN profile's. When profiles share an optimum (they often do: NAB's profiles differ in costs, not
in what they reward most), low is the highest threshold whose low-FP score is within NEAR_OPTIMUM points of
of them low is the reward-low-FP profile's best threshold among those at least GAP above it, and high the
reward-low-FN profile's best among those at least GAP below it: the three stay apart, each still the best the
benchmark finds for its profile on its side.
"""

from __future__ import annotations

import json

import numpy as np

from aiops import anomaly
from bench import bench_anomaly, nab

GAP = 0.02
GRID = np.round(np.arange(0.40, 0.99, 0.01), 2)


def normalised_at(corpus: list[nab.Series], scores: list[np.ndarray], cost: nab.Cost, threshold: float) -> float:
    raw = sum(nab.score_series(s, sc, cost, threshold).score for s, sc in zip(corpus, scores, strict=True))
    return nab.normalised(raw, corpus, cost)


def measure() -> dict:
    corpus = nab.load_corpus()
    detector = anomaly.get_detector()
    scores = bench_anomaly.score_all(detector, corpus)
    profiles = nab.load_profiles()
    optimum = {}
    for name, cost in profiles.items():
        threshold, raw = nab.sweep(corpus, scores, cost)
        optimum[name] = {"threshold": threshold, "score": round(nab.normalised(raw, corpus, cost), 2)}
    low_fp, standard, low_fn = (optimum[p]["threshold"] for p in bench_anomaly.PROFILES.values())
    low, high = low_fp, low_fn
    if low < standard + GAP:
        cost = profiles["reward_low_FP_rate"]
        low = float(max((t for t in GRID if t >= standard + GAP), key=lambda t: normalised_at(corpus, scores, cost, t)))
    if high > standard - GAP:
        cost = profiles["reward_low_FN_rate"]
        high = float(
            max((t for t in GRID if t <= standard - GAP), key=lambda t: normalised_at(corpus, scores, cost, t))
        )
    return {
        "detector": detector.name,
        "files": len(corpus),
        "optimum": optimum,
        "sensitivity": {"low": round(low, 4), "medium": round(standard, 4), "high": round(high, 4)},
        "optimum_thresholds": {name: round(value["threshold"], 4) for name, value in optimum.items()},
        "scores_at_sensitivity": {
            level: {p: round(normalised_at(corpus, scores, profiles[p], t), 2) for p in profiles}
            for level, t in (("low", low), ("medium", standard), ("high", high))
        },
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
