"""Error bursts: a template's records per minute far above its own baseline.

The baseline is an exponentially weighted moving average (EWMA) of the template's records per
minute, updated once per closed minute (minutes without records count as 0): with alpha = 0.1 a minute
weighs as much as the last ~10 minutes together, so the baseline follows a slow rise and
forgets a burst after about half an hour. A minute with `n` records is a burst when

- the template is at error level or above (its highest severity seen),
- `n >= BURST_MIN_RECORDS` (a handful of errors is never a burst), and
- P(N >= n) < `BURST_P_VALUE` for N ~ Poisson(max(baseline, `BASELINE_FLOOR`)): the chance that a
  template logging at its usual rate logs this many in one minute. With a baseline of 1/minute, 10
  records have p ≈ 1e-7; with a baseline of 20/minute a burst needs about 47.

The baseline is updated before the next minute is tested, after the test: a burst raises it only
by alpha of its excess, so a sustained burst keeps firing for several minutes, then the template's new
rate becomes normal. An active burst resolves after `BURST_QUIET_MINUTES` minutes without one.
"""

from __future__ import annotations

import math

ALPHA = 0.1
BASELINE_FLOOR = 0.5
BURST_MIN_RECORDS = 10
BURST_P_VALUE = 1e-6
BURST_QUIET_MINUTES = 5
# Minutes without records are folded into the baseline at once: (1 - alpha)^gap.


def poisson_tail(n: int, rate: float) -> float:
    """P(N >= n) for N ~ Poisson(rate), summed from n upwards in log space (no underflow for large n)."""
    if n <= 0:
        return 1.0
    log_term = -rate + n * math.log(rate) - math.lgamma(n + 1)
    total = 0.0
    k = n
    while True:
        term = math.exp(log_term)
        total += term
        k += 1
        log_term += math.log(rate) - math.log(k)
        if term < total * 1e-12 or k > n + 10_000:
            return min(1.0, total)


def is_burst(count: int, baseline: float) -> bool:
    return count >= BURST_MIN_RECORDS and poisson_tail(count, max(baseline, BASELINE_FLOOR)) < BURST_P_VALUE


def fold(baseline: float, count: int, idle_minutes: int = 0) -> float:
    """The baseline after `idle_minutes` minutes without records and then a minute with `count`."""
    if idle_minutes > 0:
        baseline *= (1 - ALPHA) ** idle_minutes
    return baseline + ALPHA * (count - baseline)
