"""Causal building blocks shared by the catch-up path (a whole array at once) and the live path (one step
for many series at once). Each comes in both forms, computing the same numbers.

Windows are trailing: the statistic at a row uses the `size` rows before it, never the row itself.
Order statistics are exact (an element of the window is selected), so both paths agree to the bit.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, special
from scipy.signal import lfilter

QUANTILES = (0.25, 0.5, 0.75)
IQR_TO_SIGMA = 1.349  # the interquartile range of a standard normal distribution
DAY_SECONDS = 86400


def ranks(size: int) -> tuple[int, ...]:
    """The positions of QUANTILES in a sorted window of `size` elements."""
    return tuple(round(q * (size - 1)) for q in QUANTILES)


def trailing_quantiles(values: np.ndarray, size: int) -> np.ndarray:
    """(3, len) quartiles of values[j-size+1..j] at each j (the window ending at j); valid from j >= size - 1."""
    values = np.ascontiguousarray(values, dtype=float)
    if len(values) == 0:
        return np.empty((3, 0))
    return np.stack(
        [
            ndimage.rank_filter(values, rank=rank, size=size, origin=(size - 1) // 2, mode="nearest")
            for rank in ranks(size)
        ]
    )


def window_quantiles(windows: np.ndarray) -> np.ndarray:
    """(3, N) quartiles of each row of an (N, size) array of windows."""
    size = windows.shape[1]
    picked = ranks(size)
    part = np.partition(windows, picked, axis=1)
    return part[:, picked].T


def robust_z(value: np.ndarray, quartiles: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|value - median| in robust standard deviations (IQR / 1.349, never below `floor`), and that deviation."""
    q1, median, q3 = quartiles
    scale = np.maximum((q3 - q1) / IQR_TO_SIGMA, floor)
    return np.abs(value - median) / scale, scale


def surprise(z: np.ndarray) -> np.ndarray:
    """-log of the two-sided Gaussian tail probability of |z| (0 at z = 0), computed without underflow."""
    return np.maximum(-special.log_ndtr(-np.asarray(z, dtype=float)) - np.log(2.0), 0.0)


def ewma(values: np.ndarray, alpha: float, start: float) -> np.ndarray:
    """e_i = alpha * v_i + (1 - alpha) * e_{i-1}, e_{-1} = start (the same arithmetic as `ewma_step`)."""
    if len(values) == 0:
        return np.empty(0)
    out, _ = lfilter([alpha], [1.0, -(1.0 - alpha)], values, zi=[(1.0 - alpha) * start])
    return out


def ewma_step(previous: np.ndarray, value: np.ndarray, alpha: float) -> np.ndarray:
    return alpha * value + (1.0 - alpha) * previous


def decaying_peak(values: np.ndarray, decay: float, start: float) -> np.ndarray:
    """m_i = max(v_i, decay * m_{i-1}), m_{-1} = start, for non-negative values (in log space: no loop)."""
    n = len(values)
    if n == 0:
        return np.empty(0)
    rate = -np.log(decay)
    steps = np.arange(1, n + 1, dtype=float)
    with np.errstate(divide="ignore"):
        logs = np.log(np.concatenate(([start], values))) + rate * np.concatenate(([0.0], steps))
    running = np.maximum.accumulate(logs)[1:] - rate * steps
    return np.exp(running)


def day_slot(stamps: np.ndarray, slots: int) -> np.ndarray:
    """Which of `slots` equal parts of the UTC day each unix timestamp falls in."""
    return (np.asarray(stamps, dtype=np.int64) % DAY_SECONDS) * slots // DAY_SECONDS


def previous_in_slot(slot: np.ndarray, values: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row the value last seen in its slot before it (table: the last value per slot before these rows,
    NaN where none); and the table after the rows."""
    n = len(values)
    previous = np.empty(n)
    order = np.lexsort((np.arange(n), slot))
    ordered_slot = slot[order]
    first = np.ones(n, dtype=bool)
    first[1:] = ordered_slot[1:] != ordered_slot[:-1]
    shifted = np.empty(n)
    shifted[1:] = values[order][:-1]
    shifted[first] = table[ordered_slot[first]]
    previous[order] = shifted
    last = np.ones(n, dtype=bool)
    last[:-1] = ordered_slot[1:] != ordered_slot[:-1]
    updated = table.copy()
    updated[ordered_slot[last]] = values[order][last]
    return previous, updated


def nearest_window_distance(values: np.ndarray, length: int, reach: int, start: int) -> np.ndarray:
    """For each j >= start: the smallest squared distance between the `length` values ending at j and any
    earlier `length` values ending 'length'..'reach' rows before (not overlapping it). start >= reach + length - 1.

    The sum runs over the window from its newest value back, the order `nearest_window_distance_step` uses."""
    n = len(values)
    best = np.full(n - start, np.inf)
    lagged = np.empty(n)
    for offset in range(length, reach + 1):
        lagged[offset:] = values[offset:] - values[:-offset]
        lagged[offset:] *= lagged[offset:]
        total = lagged[start:n].copy()
        for back in range(1, length):
            total += lagged[start - back : n - back]
        np.minimum(best, total, out=best)
    return best


def nearest_window_distance_step(history: np.ndarray, length: int, reach: int, chunk: int = 2048) -> np.ndarray:
    """The same for the newest row of each series: history is (N, reach + length) values, newest last."""
    newest = history.shape[1] - 1
    offsets = np.arange(length, reach + 1)
    best = np.empty(history.shape[0])
    for begin in range(0, history.shape[0], chunk):
        rows = history[begin : begin + chunk]
        total = None
        for back in range(length):
            diff = rows[:, newest - back][:, None] - rows[:, newest - back - offsets]
            diff *= diff
            total = diff if total is None else total + diff
        best[begin : begin + chunk] = total.min(axis=1)
    return best
