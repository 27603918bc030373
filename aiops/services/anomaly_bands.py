"""Expected bands of live anomaly detection: the range of values a series' detector would not flag
at a sample (searched on copies of its state), for the alert, the explorer band and the chart."""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import special

from .. import anomaly

PROBE_BYTES = 32_000_000
# Candidate offsets of the band search, in units of the series' spread: 0 and ±2^-4 .. ±2^14.
_GRID = np.concatenate(([0.0], 2.0 ** np.arange(-4, 15)))
_OFFSETS = np.concatenate((-_GRID[:0:-1], _GRID))
_REFINE = 8
_ROUNDS = 2


def _scores_of(detector: anomaly.Detector, batch: anomaly.StateBatch, stamps: np.ndarray,
               candidates: np.ndarray) -> np.ndarray:  # fmt: skip
    """(m, k) scores the samples `candidates[i]` would get at `stamps[i]` after state i (the batch is not changed)."""
    m, k = candidates.shape
    per_state = max(1, batch.nbytes // max(1, len(batch)))
    chunk = max(1, PROBE_BYTES // (per_state * k))
    out = np.empty((m, k))
    for start in range(0, m, chunk):
        rows = slice(start, start + chunk)
        arrays = {key: np.repeat(array[rows], k, axis=0) for key, array in batch.arrays.items()}
        probe = anomaly.StateBatch(batch.detector, arrays)
        count = len(probe)
        out[rows] = detector.update(probe, np.repeat(stamps[rows], k), candidates[rows].ravel()).reshape(count // k, k)
    return out


def expected_bands(
    detector: anomaly.Detector,
    batch: anomaly.StateBatch,
    stamps: np.ndarray,
    thresholds: np.ndarray,
    centres: np.ndarray,
    spreads: np.ndarray,
    values: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """For each state i of `batch` (before a sample at `stamps[i]`): the lowest and highest value that would score
    below `thresholds[i]` there (NaN where no bound was found: still learning, or nothing would pass).

    The detector is asked directly: candidates around `centres` (and the sample's own value) at multiples of
    `spreads` from 2^-4 to 2^14, then each edge is narrowed between the last accepted and the first refused
    candidate (`_ROUNDS` rounds of `_REFINE`). The accepted values form one interval: the score grows with
    the distance from each model's prediction and from the range seen before.
    """
    m = len(stamps)
    low = np.full(m, np.nan)
    high = np.full(m, np.nan)
    if m == 0:
        return low, high
    spreads = np.where(np.isfinite(spreads) & (spreads > 0), spreads, np.maximum(np.abs(centres) * 0.01, 1e-6))
    candidates = np.concatenate((centres[:, None] + spreads[:, None] * _OFFSETS[None, :], values[:, None]), axis=1)
    order = np.argsort(candidates, axis=1, kind="stable")
    candidates = np.take_along_axis(candidates, order, axis=1)
    scores = _scores_of(detector, batch, stamps, candidates)
    ok = scores < thresholds[:, None]
    anchor = np.argmin(np.where(ok, scores, np.inf), axis=1)
    found = ok.any(axis=1)
    k = candidates.shape[1]
    positions = np.arange(k)[None, :]
    refused_above = ~ok & (positions > anchor[:, None])
    refused_below = ~ok & (positions < anchor[:, None])
    has_high = refused_above.any(axis=1) & found
    has_low = refused_below.any(axis=1) & found
    first_above = np.where(has_high, np.argmax(refused_above, axis=1), k - 1)
    last_below = np.where(has_low, k - 1 - np.argmax(refused_below[:, ::-1], axis=1), 0)
    rows = np.arange(m)
    # Brackets (accepted, refused) on each side.
    hi_in = candidates[rows, np.maximum(first_above - 1, 0)]
    hi_out = candidates[rows, first_above]
    lo_in = candidates[rows, np.minimum(last_below + 1, k - 1)]
    lo_out = candidates[rows, last_below]
    fractions = np.arange(1, _REFINE + 1) / (_REFINE + 1)
    for _ in range(_ROUNDS):
        up = hi_in[:, None] + (hi_out - hi_in)[:, None] * fractions[None, :]
        down = lo_in[:, None] + (lo_out - lo_in)[:, None] * fractions[None, :]
        probe = _scores_of(detector, batch, stamps, np.concatenate((up, down), axis=1))
        up_ok = probe[:, :_REFINE] < thresholds[:, None]
        down_ok = probe[:, _REFINE:] < thresholds[:, None]
        # The first refused point going outwards closes the bracket; the one before it opens it.
        up_first = np.where((~up_ok).any(axis=1), np.argmax(~up_ok, axis=1), _REFINE)
        down_first = np.where((~down_ok).any(axis=1), np.argmax(~down_ok, axis=1), _REFINE)
        up_ext = np.concatenate((hi_in[:, None], up, hi_out[:, None]), axis=1)
        down_ext = np.concatenate((lo_in[:, None], down, lo_out[:, None]), axis=1)
        hi_in, hi_out = up_ext[rows, up_first], up_ext[rows, up_first + 1]
        lo_in, lo_out = down_ext[rows, down_first], down_ext[rows, down_first + 1]
    high[has_high] = hi_in[has_high]
    low[has_low] = lo_in[has_low]
    return low, high


def chart_band(
    times: np.ndarray, values: np.ndarray, *, threshold: float, detector: anomaly.Detector
) -> tuple[np.ndarray, np.ndarray]:
    """The band the detector's local model draws over a chart's points (NaN until it has seen enough).

    At each point: the median of the `level_window` points before it plus the median of the residuals
    (value minus that median) of the `residual_window` points before, plus or minus z times their robust
    scale (interquartile range / 1.349). z is where the tail surprise -log P(|Z| > z) reaches what the
    threshold allows: t / (1 - t) times (the series' recent peak surprise + 1), as the detector calibrates a
    score per series. The ensemble also flags new extremes and broken daily patterns, so an anomaly can be
    shaded inside this band; the band of each anomaly itself (stored when it was scored) is exact.
    """
    params = detector.params
    w = int(getattr(params, "level_window", 32))
    rw = int(getattr(params, "residual_window", 256))
    decay = float(getattr(params, "peak_decay", 0.995))
    offset = float(getattr(params, "peak_offset", 1.0))
    x = np.asarray(values, dtype=float)
    n = len(x)
    low = np.full(n, np.nan)
    high = np.full(n, np.nan)
    if n <= w + 64:
        return low, high
    finite = np.isfinite(x)
    level = _trailing(np.where(finite, x, np.nan), w, 0.5)
    resid = x - level
    enough = min(rw, 64)
    q1 = _trailing(resid, rw, 0.25, minimum=enough)
    q2 = _trailing(resid, rw, 0.5, minimum=enough)
    q3 = _trailing(resid, rw, 0.75, minimum=enough)
    span = np.nanmax(x) - np.nanmin(x) if finite.any() else 0.0
    scale = np.maximum((q3 - q1) / 1.349, max(0.01 * span, 1e-9))
    with np.errstate(invalid="ignore"):
        z = np.abs(resid - q2) / scale
    surprise = np.where(np.isfinite(z), -special.log_ndtr(-z) - math.log(2.0), 0.0)
    surprise = np.maximum(surprise, 0.0)
    peak_before = np.zeros(n)
    peak = 0.0
    for i in range(n):
        peak_before[i] = peak
        peak = max(surprise[i], decay * peak)
    allowed = threshold / (1.0 - threshold) * (peak_before + offset)
    z_max = -special.ndtri_exp(-allowed - math.log(2.0))
    ready = np.isfinite(level) & np.isfinite(q2)
    low[ready] = (level + q2 - z_max * scale)[ready]
    high[ready] = (level + q2 + z_max * scale)[ready]
    return low, high


def _trailing(x: np.ndarray, size: int, q: float, minimum: int | None = None) -> np.ndarray:
    """The q-quantile of the (finite) values among the `size` before each point (not the point itself)."""
    n = len(x)
    out = np.full(n, np.nan)
    need = minimum or size
    if n <= need:
        return out
    padded = np.concatenate((np.full(size, np.nan), x))
    windows = np.lib.stride_tricks.sliding_window_view(padded, size)[:n]
    counts = np.sum(np.isfinite(windows), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # windows with no finite value: NaN, as wanted
        values = np.nanquantile(windows, q, axis=1)
    out[counts >= need] = values[counts >= need]
    return out


# --- Scoring -------------------------------------------------------------------------------------------------------
