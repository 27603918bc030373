"""The streaming detectors: one class, configured by `Params`, with two paths that give the same scores.

- `Detector.catch_up(state, stamps, values)` scores a stretch of one series' history with whole-array numpy
  (order-statistic filters, linear recursions, cumulative maxima) and leaves the state where feeding the
  samples one by one would have.
- `Detector.update(batch, stamps, values)` takes one new sample for each of many series (a `StateBatch`) and
  scores them all with one numpy operation per step: the live path.

The score of a sample (in [0, 1), causal) is built in five stages:

1. Residual models. *local*: the sample minus the median of the `level_window` samples before it (catches
   spikes, dips and the onset of level shifts). *seasonal*: the sample minus the value last seen at the same
   time of day (one of `day_slots` slots; catches a daily pattern that breaks, e.g. a peak that does not come).
2. Each residual is a robust z-score against that residual's own last `residual_window` values (median and
   interquartile range, so past anomalies barely move the baseline), with a floor of `floor_share` of the
   range seen so far (flat series do not divide by zero).
3. The model whose mean absolute residual (EWMA over about `selection_span` samples) has been smaller is the
   one trusted: a daily peak is not surprising once the seasonal model predicts it. Its z-score becomes a
   surprise, -log of the two-sided Gaussian tail probability.
4. Calibration per series: the surprise is divided by the series' own recent peak surprise (a maximum that
   decays by `peak_decay` per sample), so a series that is always spiky needs a bigger spike than before to
   score high, and a burst scores high once, at its start: the ratio r.
5. Novelty of range: how far the sample lies beyond the highest or lowest value the series ever had,
   in parts of that range, times `range_gain` (a new extreme is rare in a healthy series: the number of
   records in n samples of a stationary series grows like log n). The larger of the two ratios r gives
   the score r / (1 + r).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import windows
from .state import SeriesState, StateBatch

PARTS = ("local", "seasonal", "range", "knn")
RESIDUAL_MODELS = ("local", "seasonal")


@dataclass(frozen=True)
class Params:
    """A detector's settings (the defaults are the ones tuned on NAB; see bench/bench_anomaly.py)."""

    parts: tuple[str, ...] = PARTS
    level_window: int = 32
    residual_window: int = 256
    day_slots: int = 288
    selection_span: float = 200.0
    seasonal_bias: float = 1.0
    floor_share: float = 0.03
    peak_decay: float = 0.995
    peak_offset: float = 0.3
    residual_weight: float = 0.5
    range_gain: float = 1000.0
    range_noise: float = 1.0
    knn_length: int = 8
    knn_reach: int = 400
    knn_weight: float = 1.0
    knn_decay: float = 0.998
    knn_offset: float = 1.0

    def __post_init__(self) -> None:
        unknown = set(self.parts) - set(PARTS)
        if unknown or not self.parts:
            raise ValueError(f"parts must be some of {PARTS}, not {self.parts}")
        if self.level_window < 4 or self.residual_window < 8:
            raise ValueError("level_window >= 4 and residual_window >= 8")
        if self.knn_length < 1 or self.knn_reach < self.knn_length:
            raise ValueError("knn_length >= 1 and knn_reach >= knn_length")

    @property
    def history(self) -> int:
        """How many past values the state keeps."""
        knn = self.knn_reach + self.knn_length - 1 if "knn" in self.parts else 0
        return max(self.level_window, knn)

    @property
    def warmup(self) -> int:
        """Samples before the first nonzero score."""
        return self.level_window + self.residual_window


class Detector:
    """A named, configured streaming detector (see the module docstring)."""

    def __init__(self, name: str, params: Params, description: str = "") -> None:
        self.name = name
        self.params = params
        self.description = description

    def __repr__(self) -> str:
        return f"Detector({self.name!r})"

    # --- state ---

    def initial_state(self) -> SeriesState:
        p = self.params
        return SeriesState(
            self.name,
            {
                "count": np.array(0, dtype=np.int64),
                "values": np.full(p.history, np.nan),
                "local": np.full(p.residual_window, np.nan),
                "seasonal": np.full(p.residual_window, np.nan),
                "slots": np.full(p.day_slots, np.nan),
                "error_local": np.array(0.0),
                "error_seasonal": np.array(0.0),
                "high": np.array(-np.inf),
                "low": np.array(np.inf),
                "peak": np.array(0.0),
                "knn_peak": np.array(0.0),
            },
        )

    def initial_batch(self, size: int) -> StateBatch:
        """Fresh states for `size` series."""
        fresh = self.initial_state().arrays
        return StateBatch(self.name, {key: np.repeat(array[None], size, axis=0) for key, array in fresh.items()})

    def fits(self, state: SeriesState) -> bool:
        """Whether `state` can be resumed by this detector as configured now (not another detector's,
        nor stored under other settings)."""
        try:
            self._check(state.detector, state.arrays, batched=False)
        except ValueError:
            return False
        return True

    def _check(self, detector: str, arrays: dict[str, np.ndarray], batched: bool) -> None:
        if detector != self.name:
            raise ValueError(f"a state of detector {detector!r} given to {self.name!r}")
        layout = {key: array.shape for key, array in self.initial_state().arrays.items()}
        given = {key: array.shape[1:] if batched else array.shape for key, array in arrays.items()}
        if given != layout:
            raise ValueError(
                f"the state does not fit detector {self.name!r} as configured now (stored with other settings?); "
                "start from a fresh state"
            )

    # --- catch-up: one series, many samples ---

    def score(self, stamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Scores of a whole series from a fresh state."""
        return self.catch_up(self.initial_state(), stamps, values)

    def catch_up(self, state: SeriesState, stamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Score `values` (taken at unix seconds `stamps`) after what `state` has seen; updates `state`."""
        self._check(state.detector, state.arrays, batched=False)
        p = self.params
        a = state.arrays
        x = np.asarray(values, dtype=float)
        stamps = np.asarray(stamps, dtype=np.int64)
        m = len(x)
        if len(stamps) != m:
            raise ValueError(f"{len(stamps)} timestamps for {m} values")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"value {x[~np.isfinite(x)][0]} at row {int(np.argmin(np.isfinite(x)))} is not finite")
        if m == 0:
            return np.empty(0)
        n0 = int(a["count"])
        index = n0 + np.arange(m)
        w, rw = p.level_window, p.residual_window

        high = np.maximum.accumulate(np.concatenate(([a["high"]], x)))[1:]
        low = np.minimum.accumulate(np.concatenate(([a["low"]], x)))[1:]
        floor = np.maximum(p.floor_share * (high - low), 1e-9)

        history = p.history
        kept = min(n0, history)
        extended = np.concatenate((a["values"][history - kept :], x))
        median_before = np.full(m, np.nan)
        if len(extended) >= w:
            median = windows.trailing_quantiles(extended, w)[1]
            # the window ending at the row before new row i is extended[kept + i - w .. kept + i - 1]
            rows = kept + np.arange(m) - 1
            ok = rows >= w - 1
            median_before[ok] = median[rows[ok]]
        has_residual = index >= w
        local = x - median_before

        slot = windows.day_slot(stamps, p.day_slots)
        previous, slots_after = windows.previous_in_slot(slot, x, a["slots"])
        seasonal = np.where(np.isnan(previous), local, x - previous)

        valid = np.flatnonzero(has_residual)
        residuals_before = n0 - w if n0 > w else 0  # residuals already in the state's buffers
        ready = np.zeros(m, dtype=bool)
        z_local = np.zeros(m)
        z_seasonal = np.zeros(m)
        scale_local = np.ones(m)
        err_local = np.zeros(m)
        err_seasonal = np.zeros(m)
        new_buffers = {}
        for key, resid, z_out in (("local", local, z_local), ("seasonal", seasonal, z_seasonal)):
            r = resid[valid]
            kept_r = min(residuals_before, rw)
            ext = np.concatenate((a[key][rw - kept_r :], r))
            if len(valid):
                # residual k of the new ones sits at ext[kept_r + k]; its window is the rw entries before it
                count_before = residuals_before + np.arange(len(valid))
                ok = count_before >= rw
                if ok.any():
                    q = windows.trailing_quantiles(ext, rw)
                    rows = kept_r + np.arange(len(valid)) - 1
                    z, scale = windows.robust_z(r[ok], q[:, rows[ok]], floor[valid][ok])
                    z_out[valid[ok]] = z
                    if key == "local":
                        scale_local[valid[ok]] = scale
                    ready[valid[ok]] = True
            tail = ext[-rw:]
            new_buffers[key] = np.concatenate((np.full(rw - len(tail), np.nan), tail))
        alpha = 1.0 / p.selection_span
        for key, resid, err_out in (("local", local, err_local), ("seasonal", seasonal, err_seasonal)):
            e = windows.ewma(np.abs(resid[valid]), alpha, float(a[f"error_{key}"]))
            before = np.concatenate(([a[f"error_{key}"]], e[:-1])) if len(valid) else e
            err_out[valid] = before
            new_buffers[f"error_{key}"] = np.array(e[-1] if len(valid) else a[f"error_{key}"])

        z = self._choose(z_local, z_seasonal, err_local, err_seasonal)
        s = np.where(ready, windows.surprise(z), 0.0)
        peaks = windows.decaying_peak(s, p.peak_decay, float(a["peak"]))
        peak_before = np.concatenate(([a["peak"]], peaks[:-1]))
        ratio = p.residual_weight * s / (peak_before + p.peak_offset)
        if "range" in p.parts:
            high_before = np.concatenate(([a["high"]], high[:-1]))
            low_before = np.concatenate(([a["low"]], low[:-1]))
            novelty = self._range_ratio(x, high_before, low_before, scale_local)
            ratio = np.maximum(ratio, np.where(ready, novelty, 0.0))
        if "knn" in p.parts:
            surprise = np.zeros(m)
            near = ready & (index >= p.knn_reach + p.knn_length - 1)
            if near.any():
                first = int(np.argmax(near))  # ready and enough history both hold from some row on
                best = windows.nearest_window_distance(extended, p.knn_length, p.knn_reach, kept + first)
                surprise[first:] = 0.5 * best / scale_local[first:] ** 2
            knn_peaks = windows.decaying_peak(surprise, p.knn_decay, float(a["knn_peak"]))
            knn_before = np.concatenate(([a["knn_peak"]], knn_peaks[:-1]))
            ratio = np.maximum(ratio, p.knn_weight * surprise / (knn_before + p.knn_offset))
            a["knn_peak"] = np.array(knn_peaks[-1])
        scores = ratio / (1.0 + ratio)

        tail = extended[-history:]
        a["values"] = np.concatenate((np.full(history - len(tail), np.nan), tail))
        a["local"], a["seasonal"] = new_buffers["local"], new_buffers["seasonal"]
        a["error_local"], a["error_seasonal"] = new_buffers["error_local"], new_buffers["error_seasonal"]
        a["slots"] = slots_after
        a["high"], a["low"] = np.array(high[-1]), np.array(low[-1])
        a["peak"] = np.array(peaks[-1])
        a["count"] = np.array(n0 + m, dtype=np.int64)
        return scores

    def _range_ratio(self, x: np.ndarray, high: np.ndarray, low: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """How far past the range seen before the sample lies, in `1 / range_gain` parts of that range; an
        excess smaller than `range_noise` local standard deviations counts in proportion (chance records)."""
        p = self.params
        seen = np.isfinite(high) & np.isfinite(low)
        with np.errstate(invalid="ignore"):
            span = np.where(seen, np.maximum(high - low, 1e-9), 1.0)
            excess = np.where(seen, np.maximum(np.maximum(x - high, low - x), 0.0), 0.0)
        return p.range_gain * excess / span * np.minimum(1.0, excess / (p.range_noise * scale))

    def _choose(self, z_local, z_seasonal, err_local, err_seasonal):
        models = [part for part in self.params.parts if part in RESIDUAL_MODELS]
        if not models:
            return np.zeros_like(z_local)
        if models == ["local"]:
            return z_local
        if models == ["seasonal"]:
            return z_seasonal
        return np.where(err_seasonal < self.params.seasonal_bias * err_local, z_seasonal, z_local)

    # --- live: many series, one sample each ---

    def update(
        self, batch: StateBatch, stamps: np.ndarray, values: np.ndarray, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """One new sample per series of `batch` (stamps and values of len(batch)); their scores. Updates batch.

        With `rows` (indices into the batch), only those series take a sample: stamps and values are then
        of len(rows), and the other series' states stay as they were."""
        self._check(batch.detector, batch.arrays, batched=True)
        if rows is not None:
            rows = np.asarray(rows, dtype=np.int64)
            part = batch.select(rows)
            scores = self.update(part, stamps, values)
            batch.assign(rows, part)
            return scores
        p = self.params
        a = batch.arrays
        x = np.asarray(values, dtype=float)
        stamps = np.asarray(stamps, dtype=np.int64)
        n = a["count"]
        if x.shape != n.shape or stamps.shape != n.shape:
            raise ValueError(f"{len(x)} values and {len(stamps)} timestamps for {len(n)} series")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"value {x[~np.isfinite(x)][0]} for series {int(np.argmin(np.isfinite(x)))} is not finite")
        rows = np.arange(len(n))
        w, rw = p.level_window, p.residual_window

        high_before, low_before = a["high"], a["low"]
        a["high"] = np.maximum(a["high"], x)
        a["low"] = np.minimum(a["low"], x)
        floor = np.maximum(p.floor_share * (a["high"] - a["low"]), 1e-9)

        has_residual = n >= w
        median_before = windows.window_quantiles(a["values"][:, -w:])[1]
        local = x - median_before
        slot = windows.day_slot(stamps, p.day_slots)
        previous = a["slots"][rows, slot]
        seasonal = np.where(np.isnan(previous), local, x - previous)
        a["slots"][rows, slot] = x

        ready = has_residual & (n - w >= rw)
        z_local = np.zeros(len(n))
        z_seasonal = np.zeros(len(n))
        scale_local = np.ones(len(n))
        if ready.any():
            z_local[ready], scale_local[ready] = windows.robust_z(
                local[ready], windows.window_quantiles(a["local"][ready]), floor[ready]
            )
            z_seasonal[ready], _ = windows.robust_z(
                seasonal[ready], windows.window_quantiles(a["seasonal"][ready]), floor[ready]
            )
        z = self._choose(z_local, z_seasonal, a["error_local"], a["error_seasonal"])
        s = np.where(ready, windows.surprise(z), 0.0)
        ratio = p.residual_weight * s / (a["peak"] + p.peak_offset)
        a["peak"] = np.maximum(s, p.peak_decay * a["peak"])
        if "range" in p.parts:
            novelty = self._range_ratio(x, high_before, low_before, scale_local)
            ratio = np.maximum(ratio, np.where(ready, novelty, 0.0))
        if "knn" in p.parts:
            surprise = np.zeros(len(n))
            near = ready & (n >= p.knn_reach + p.knn_length - 1)
            if near.any():
                recent = a["values"][near][:, p.history - (p.knn_reach + p.knn_length - 1) :]
                best = windows.nearest_window_distance_step(
                    np.concatenate((recent, x[near][:, None]), axis=1), p.knn_length, p.knn_reach
                )
                surprise[near] = 0.5 * best / scale_local[near] ** 2
            ratio = np.maximum(ratio, p.knn_weight * surprise / (a["knn_peak"] + p.knn_offset))
            a["knn_peak"] = np.maximum(surprise, p.knn_decay * a["knn_peak"])

        alpha = 1.0 / p.selection_span
        for key, resid in (("local", local), ("seasonal", seasonal)):
            a[f"error_{key}"] = np.where(
                has_residual, windows.ewma_step(a[f"error_{key}"], np.abs(resid), alpha), a[f"error_{key}"]
            )
            buffer = a[key]
            shifted = np.concatenate((buffer[:, 1:], resid[:, None]), axis=1)
            a[key] = np.where(has_residual[:, None], shifted, buffer)
        a["values"] = np.concatenate((a["values"][:, 1:], x[:, None]), axis=1)
        a["count"] = n + 1
        return ratio / (1.0 + ratio)
