"""Consistent sampling: whether a trace is in an evaluator's sample depends only on the trace id and the filter.

The trace id and the filter's canonical JSON are hashed (SHA-256) into a number in [0, 1); a trace is in
the sample when that number is below the sampling rate. So every evaluator with the same filter takes the
same traces (a 10% sample is the first tenth of a 20% one), every span of a trace is in or out together,
and a trace is decided the same way in every worker and every run.
"""

from __future__ import annotations

import hashlib

from ..scorers.base import canonical_json


def sample_point(trace_id: str, filter_: dict) -> float:
    """The trace's place in [0, 1) for evaluators with this filter."""
    digest = hashlib.sha256(f"{canonical_json(filter_ or {})}|{trace_id.lower()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_sample(trace_id: str, filter_: dict, rate: float) -> bool:
    """Whether the trace is in a sample of `rate` (0 to 1) of the traces this filter matches."""
    if rate >= 1:
        return True
    if rate <= 0:
        return False
    return sample_point(trace_id, filter_) < rate
