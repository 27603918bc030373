"""Capacity forecasting: when a gauge reaches its limit, with a prediction interval and a backtest error.

Pure numbers in, numbers out (no database), so the pages, the task and the tests share one code path:

1. `choose_step` picks the sampling step of the fit from the history's span: about `MAX_FIT_POINTS`
   points, at least an hour once daily seasonality is possible (a daily season of 24 steps keeps the
   seasonal model small), five minutes for a short history.
2. `forecast` fits statsmodels' ETS (error, trend, season) state-space models with additive error and
   trend: ETS(A,A,N), and ETS(A,A,A) with a daily season of `86400 / step` steps when the history
   holds at least `SEASONAL_MIN_CYCLES` days. The model kept is the one with the lower backtest
   MASE: each candidate is fitted on the history without its last part (`holdout_size`), forecasts
   that part, and its mean absolute error is divided by the in-sample error of the (seasonal) naive
   forecast (Hyndman & Koehler's MASE; below 1 beats the naive forecast). The kept model is then
   refitted on the whole history and forecast `lookahead` steps ahead with its analytic prediction
   interval (`LEVEL`).
3. The forecast is full when the mean reaches the limit; the interval's upper line reaching it is the
   earliest full time, its lower line the latest (None: not within the look-ahead).

Values are divided by the limit before fitting (1.0 = full), so bytes and percentages fit alike.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

DAY = 86400
STEPS = (300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, DAY)
MAX_FIT_POINTS = 2200
MIN_POINTS = 24
MIN_SPAN_SECONDS = 2 * 3600
SEASONAL_MIN_CYCLES = 3
SEASONAL_MIN_STEP = 1800
MAX_GAP_SHARE = 0.5
LEVEL = 0.95
LOOKAHEAD_DAYS = 365
LOOKAHEAD_MIN_POINTS = 10_000
HOLDOUT_SHARE = 0.2
CURVE_POINTS = 400


class ForecastError(ValueError):
    """The history cannot be forecast (too short, too many gaps, a limit that is not positive)."""


@dataclass
class Forecast:
    """The outcome for one series; times are unix seconds, values in the series' own unit."""

    step_seconds: int
    seasonal_period: int
    model: str
    last_time: float
    last_value: float
    limit: float
    full_at: float | None
    full_at_earliest: float | None
    full_at_latest: float | None
    mase: float | None
    points: int
    lookahead_seconds: float
    curve: dict = field(default_factory=dict)

    @property
    def already_full(self) -> bool:
        return self.last_value >= self.limit


def choose_step(span_seconds: float) -> int:
    """The fit's step: the smallest of `STEPS` giving at most MAX_FIT_POINTS, an hour or more past two days."""
    floor = 3600 if span_seconds >= 2 * DAY else STEPS[0]
    for step in STEPS:
        if step >= floor and span_seconds / step <= MAX_FIT_POINTS:
            return step
    return STEPS[-1]


def seasonal_period(span_seconds: float, step: int) -> int:
    """Steps in a day when the history holds SEASONAL_MIN_CYCLES days at a step that divides a day; else 0."""
    if step < SEASONAL_MIN_STEP or DAY % step or span_seconds < SEASONAL_MIN_CYCLES * DAY:
        return 0
    period = DAY // step
    return period if period >= 2 else 0


def regular(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times and values on a regular grid from the first to the last value, gaps interpolated linearly.

    ForecastError when too few values are known or too much is missing.
    """
    known = np.isfinite(values)
    if known.sum() < MIN_POINTS:
        raise ForecastError(f"only {int(known.sum())} values in the history; at least {MIN_POINTS} are needed.")
    first = int(np.argmax(known))
    last = len(known) - int(np.argmax(known[::-1]))
    times, values, known = times[first:last], values[first:last], known[first:last]
    if 1 - known.mean() > MAX_GAP_SHARE:
        raise ForecastError(f"{(1 - known.mean()) * 100:.0f}% of the history is missing.")
    if not known.all():
        values = np.interp(times, times[known], values[known])
    return times, values


def holdout_size(points: int, period: int) -> int:
    """The backtest's held-out tail: a fifth of the history, at least a season (when seasonal) and 4 points."""
    size = max(4, round(points * HOLDOUT_SHARE), period)
    return min(size, points - max(MIN_POINTS // 2, 2 * period + 2))


def naive_scale(train: np.ndarray, period: int) -> float | None:
    """MASE's denominator: the mean absolute error of the (seasonal) naive forecast inside the training part."""
    lag = period if period and len(train) > period else 1
    errors = np.abs(train[lag:] - train[:-lag])
    scale = float(errors.mean()) if len(errors) else 0.0
    return scale if scale > 1e-12 else None


def _fit(values: np.ndarray, period: int, start: float, step: int):
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    index = pd.date_range(pd.Timestamp(start, unit="s", tz="UTC"), periods=len(values), freq=pd.Timedelta(seconds=step))
    data = pd.Series(values, index=index)
    seasonal = {"seasonal": "add", "seasonal_periods": period} if period else {}
    model = ETSModel(data, error="add", trend="add", initialization_method="estimated", **seasonal)
    with warnings.catch_warnings():
        # Convergence notes of the optimiser are expected on flat or short series; the backtest judges the fit.
        warnings.simplefilter("ignore")
        return model.fit(disp=False, maxiter=200)


def _predict(result, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nobs = int(result.nobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = result.get_prediction(start=nobs, end=nobs + horizon - 1).summary_frame(alpha=1 - LEVEL)
    return frame["mean"].to_numpy(), frame["pi_lower"].to_numpy(), frame["pi_upper"].to_numpy()


def backtest_mase(values: np.ndarray, period: int, start: float, step: int, scale_period: int) -> float | None:
    """MASE of the model fitted without the held-out tail, on that tail (None: the series does not vary)."""
    size = holdout_size(len(values), scale_period)
    if size < 4:
        return None
    train, test = values[:-size], values[-size:]
    scale = naive_scale(train, scale_period)
    if scale is None:
        return None
    mean, _, _ = _predict(_fit(train, period, start, step), size)
    if not np.all(np.isfinite(mean)):
        return None
    return float(np.mean(np.abs(test - mean)) / scale)


def _first_reaching(times: np.ndarray, line: np.ndarray, limit: float, start: tuple[float, float]) -> float | None:
    """When `line` first reaches `limit`, interpolated linearly between steps (`start`: the last known point)."""
    reached = np.nonzero(line >= limit)[0]
    if not len(reached):
        return None
    index = int(reached[0])
    before_time, before = (float(times[index - 1]), float(line[index - 1])) if index else start
    after = float(line[index])
    if after <= before:
        return float(times[index])
    return before_time + (limit - before) / (after - before) * (float(times[index]) - before_time)


def lookahead_points(step: int, horizon_days: float) -> int:
    """How far to forecast: a year, or fewer steps at a fine step (at least twice the horizon)."""
    year = math.ceil(LOOKAHEAD_DAYS * DAY / step)
    return min(year, max(LOOKAHEAD_MIN_POINTS, math.ceil(2 * horizon_days * DAY / step)))


def forecast(
    times: np.ndarray | list[float], values: np.ndarray | list[float], *, step: int, limit: float, horizon_days: float
) -> Forecast:
    """Forecast a history sampled every `step` seconds (NaN: no value) against `limit`; see the module."""
    if not math.isfinite(limit) or limit <= 0:
        raise ForecastError(f"the limit must be a positive number, not {limit:g}.")
    times = np.asarray(times, dtype=float)
    raw = np.asarray(values, dtype=float)
    if len(times) and times[-1] - times[0] < MIN_SPAN_SECONDS:
        raise ForecastError(f"the history spans less than {MIN_SPAN_SECONDS // 3600} hours.")
    times, filled = regular(times, raw)
    span = float(times[-1] - times[0])
    if span < MIN_SPAN_SECONDS:
        raise ForecastError(f"the history spans less than {MIN_SPAN_SECONDS // 3600} hours.")
    scaled = filled / limit
    period = seasonal_period(span + step, step)
    candidates = [0, period] if period else [0]
    errors = {candidate: backtest_mase(scaled, candidate, times[0], step, period) for candidate in candidates}
    scored = {candidate: error for candidate, error in errors.items() if error is not None and math.isfinite(error)}
    chosen = min(scored, key=lambda candidate: (scored[candidate], candidate)) if scored else 0
    result = _fit(scaled, chosen, times[0], step)
    ahead = lookahead_points(step, horizon_days)
    mean, lower, upper = (line * limit for line in _predict(result, ahead))
    future = times[-1] + step * np.arange(1, ahead + 1)
    last_value = float(raw[np.isfinite(raw)][-1])
    if last_value >= limit:
        full_at = earliest = latest = float(times[-1])
    else:
        start = (float(times[-1]), float(filled[-1]))
        full_at = _first_reaching(future, mean, limit, start)
        earliest = _first_reaching(future, upper, limit, start)
        latest = _first_reaching(future, lower, limit, start)
        # The interval's lines hold the mean between them; a crossing order broken by rounding is put right.
        if earliest is None and full_at is not None:
            earliest = full_at
        if full_at is not None and latest is not None and latest < full_at:
            latest = full_at
    return Forecast(
        step_seconds=step,
        seasonal_period=chosen,
        model=f"ETS(A,A,A) season {chosen} steps" if chosen else "ETS(A,A,N)",
        last_time=float(times[-1]),
        last_value=last_value,
        limit=float(limit),
        full_at=full_at,
        full_at_earliest=earliest,
        full_at_latest=latest,
        mase=errors.get(chosen),
        points=len(filled),
        lookahead_seconds=float(ahead * step),
        curve=_curve(future, mean, lower, upper, horizon_days, (full_at, earliest, latest)),
    )


def _curve(
    future: np.ndarray,
    mean: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    horizon_days: float,
    crossings: tuple[float | None, ...],
) -> dict:
    """The forecast to draw: up to a little past the horizon or the latest crossing, at most CURVE_POINTS."""
    start = future[0]
    until = start + horizon_days * DAY
    known = [at for at in crossings if at is not None]
    if known:
        until = max(until, max(known))
    until = start + (until - start) * 1.1
    shown = int(np.searchsorted(future, until, side="right"))
    shown = max(2, min(len(future), shown))
    every = max(1, math.ceil(shown / CURVE_POINTS))
    picked = list(range(0, shown, every))
    if picked[-1] != shown - 1:
        picked.append(shown - 1)
    return {
        "times": [float(future[i]) for i in picked],
        "mean": [_rounded(mean[i]) for i in picked],
        "lower": [_rounded(lower[i]) for i in picked],
        "upper": [_rounded(upper[i]) for i in picked],
    }


def _rounded(value: float) -> float | None:
    return float(f"{value:.6g}") if math.isfinite(value) else None
