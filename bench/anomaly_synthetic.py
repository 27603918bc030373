"""Generated series with known anomalies, scored by NAB's rules: series the detector's tuning never saw.

Each series is a mix of what metrics look like (a daily cycle or none, noise of a chosen size, a slow
drift, sometimes regular harmless spikes or integer quantisation), sampled every 5 minutes for 14 days,
with one to three anomalies after the first 15%: a spike, a dip, a level shift, a variance burst, a daily
peak that does not come, or a stuck (flat) stretch. Windows are laid out as NAB does: 10% of the series'
rows split evenly between its anomalies, centred on each anomaly's start.
"""

from __future__ import annotations

import numpy as np

from bench import nab

STEP = 300
ROWS = 14 * 288
KINDS = ("spike", "dip", "level_shift", "variance", "missing_peak", "stuck")


def _anomaly(rng: np.random.Generator, kind: str, x: np.ndarray, start: int, noise: float, daily: np.ndarray,
             amplitude: float) -> None:  # fmt: skip
    size = max(noise, 0.05 * max(amplitude, noise))
    if kind == "spike":
        x[start] += rng.choice([-1, 1]) * rng.uniform(8, 15) * size
    elif kind == "dip":
        x[start : start + 3] -= rng.uniform(6, 10) * size
    elif kind == "level_shift":
        x[start:] += rng.choice([-1, 1]) * rng.uniform(5, 8) * size
    elif kind == "variance":
        length = int(rng.integers(30, 120))
        burst = x[start : start + length]
        burst += rng.normal(0, rng.uniform(4, 6) * max(noise, 0.02 * amplitude), len(burst))
    elif kind == "missing_peak":
        day = start - start % 288
        x[day : day + 288] -= daily[day : day + 288] if amplitude > 0 else 0
    elif kind == "stuck":
        length = int(rng.integers(60, 200))
        x[start : start + length] = x[start]


def generate(seed: int = 7, count: int = 24) -> list[nab.Series]:
    rng = np.random.default_rng(seed)
    corpus = []
    for number in range(count):
        t = np.arange(ROWS)
        amplitude = float(rng.choice([0.0, 20.0, 50.0]))
        phase = rng.uniform(0, 2 * np.pi)
        daily = amplitude * (0.5 + 0.5 * np.sin(2 * np.pi * t / 288 + phase))
        if rng.random() < 0.3:
            daily = amplitude * (daily > amplitude / 2)
        noise = float(rng.choice([0.5, 2.0, 5.0]))
        x = 100 + daily + rng.normal(0, noise, ROWS) + np.cumsum(rng.normal(0, noise * 0.02, ROWS))
        if rng.random() < 0.3:
            x[:: int(rng.integers(100, 300))] += 6 * noise
        kinds = [kind for kind in rng.choice(KINDS, size=int(rng.integers(1, 4)), replace=False)
                 if amplitude > 0 or kind != "missing_peak"] or ["spike"]  # fmt: skip
        probation = nab.probationary_length(ROWS)
        starts = np.sort(rng.choice(np.arange(probation + 300, ROWS - 300, 400), size=len(kinds), replace=False))
        for kind, start in zip(kinds, starts, strict=True):
            _anomaly(rng, str(kind), x, int(start), noise, daily, amplitude)
        if rng.random() < 0.3:
            x = np.round(x)
        width = int(0.1 * ROWS / len(kinds))
        windows = [(max(int(s) - width // 2, 0), min(int(s) + width // 2 - 1, ROWS - 1)) for s in starts]
        stamps = (np.datetime64("2024-03-01T00:00:00") + t * np.timedelta64(STEP, "s")).astype("datetime64[s]")
        corpus.append(nab.Series(name=f"synthetic/{number:02d}_{'+'.join(map(str, kinds))}.csv",
                                 timestamps=stamps, values=x, windows=windows))  # fmt: skip
    return corpus
