"""Live anomaly detection: monitors score every new sample of their series and alert through raise_alert.

`score_anomaly_monitors` (the periodic task on queue `collection`, every minute) takes each enabled
monitor, reads the samples of each series it matches that came after the last one scored (on first
sight the last `CATCH_UP_SECONDS`, at most `CATCH_UP_SAMPLES`), scores them with the monitor's detector
(aiops.anomaly: the batch `update` path, one sample of every series per step, or `catch_up` for a long
stretch; both give the same scores) and stores each series' detector state, so a worker restart resumes
where it was.

Sensitivity: a sample is anomalous when its score reaches the series' threshold. Low, medium and high are
the NAB optimal thresholds of the detector on the benchmark (bench/anomaly_sensitivity.py): of the
reward-low-FP, standard and reward-low-FN profiles. Each "not interesting" a person gives an anomaly raises
that series' threshold a notch: the odds t / (1 - t) times `FEEDBACK_ODDS_STEP`.

The expected band at a sample is the range of values that would have scored below the threshold there,
found by asking the detector itself (its `update` on copies of the state before that sample, for a grid
of candidate values, then bisecting the edges): exact for whatever the detector is. The explorer's band
over a whole window is the detector's local model at the chart's resolution (`chart_band`): rolling median
plus the median residual, plus or minus the z-score the threshold allows times the residuals' robust scale.

An anomaly opens at the first sample at or above the threshold and raises an alert (dedup key
`anomaly:<monitor>:<series>`) with the score, the value, the expected range and a link to the explorer on
that series over its time; it ends, and its alert resolves, when no sample has reached the threshold for
`QUIET_SECONDS`, when the series stops reporting, or when someone marks it not interesting. Anomalies found
in the history read on first sight are recorded (the explorer shades them) but only one still going on
at the end alerts.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.errors import InvalidInput

from .. import anomaly
from ..metrics import promql, query
from ..models import SEVERITY_RANK, Anomaly, AnomalyMonitor, AnomalySeries, Series
from .actor import Actor
from .alerts import raise_alert
from .anomaly_bands import chart_band as chart_band  # the explorer reads it here
from .anomaly_bands import expected_bands
from .metric_fields import apply_values, ensure_unique, record_change, valid_name
from .metrics import series_url

logger = logging.getLogger(__name__)

# NAB optimal thresholds of the default detector on the 41 shared NAB files (bench/anomaly_sensitivity.py,
# run on aiops.anomaly as of commit 5ec7e9b): low = the reward-low-FP profile's, medium = the standard
# profile's, high = the reward-low-FN profile's. The three profiles shared one optimum (0.7588: standard 75.6,
# low-FP 71.8, low-FN 78.5), so low is the low-FP profile's best threshold at least 0.02 above it (0.78) and
# high the low-FN profile's best at least 0.02 below it (0.73); see that script's docstring.
SENSITIVITY_THRESHOLDS = {"low": 0.78, "medium": 0.7588, "high": 0.73}
FEEDBACK_ODDS_STEP = 1.5
MAX_FEEDBACK_STEPS = 10
ALERT_SOURCE = "metrics"
DEDUP_PREFIX = "anomaly:"
QUIET_SECONDS = 300
STALE_SECONDS = 900
CATCH_UP_SECONDS = 86400
CATCH_UP_SAMPLES = 20_000
# A series' first scores, just after the detector's warm-up, come before its per-series calibration has
# seen anything to calibrate against (NAB does not score its first 15% either): no anomaly opens until the
# series has had the detector's warm-up plus this many samples.
PROBATION_SAMPLES = 64
BATCH_STEPS = 64  # more new samples than this: the series catches up alone (catch_up), else in the batch
KEEP_SECONDS = 86400  # series not reporting for this long are dropped from a monitor
MAX_SERIES = 1000
PRECISION_DAYS = 30
EXPLORER_BEFORE = datetime.timedelta(hours=1)
EXPLORER_AFTER = datetime.timedelta(minutes=30)
MONITOR_FIELDS = ("name", "selector", "detector", "sensitivity", "severity", "service", "description", "enabled")
UTC = datetime.UTC
DASH = "\u2013"


# --- Thresholds ------------------------------------------------------------------------------------------------


def threshold_for(sensitivity: str, steps: int = 0) -> float:
    """The score a series' sample must reach to be anomalous: the sensitivity's, raised `steps` feedback notches."""
    base = SENSITIVITY_THRESHOLDS.get(sensitivity, SENSITIVITY_THRESHOLDS["medium"])
    odds = base / (1.0 - base) * FEEDBACK_ODDS_STEP ** max(0, steps)
    return odds / (1.0 + odds)


# --- Saving ----------------------------------------------------------------------------------------------------


@transaction.atomic
def save_anomaly_monitor(
    *,
    actor: Actor,
    monitor: AnomalyMonitor | None = None,
    name: str | None = None,
    selector: str | None = None,
    detector: str | None = None,
    sensitivity: str | None = None,
    severity: str | None = None,
    service: str | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> AnomalyMonitor:
    """Create or update a monitor; its series are scored from the next run (within a minute).

    A new detector starts every series afresh (the states of another detector do not carry over); a
    disabled monitor ends what it had open and resolves its alerts.
    """
    created = monitor is None
    monitor = monitor or AnomalyMonitor()
    before = {} if created else audit.snapshot(monitor, MONITOR_FIELDS)
    was_enabled = monitor.enabled
    apply_values(
        monitor,
        {"name": name, "selector": selector, "detector": detector, "sensitivity": sensitivity, "severity": severity,
         "service": service, "description": description, "enabled": enabled},
    )  # fmt: skip
    monitor.name = valid_name(monitor.name)
    if not monitor.selector:
        raise InvalidInput('required (a series selector such as node_load1{job="node"}).', field="selector")
    promql.parse_selector(monitor.selector, field="selector")
    if monitor.detector not in anomaly.detector_names():
        raise InvalidInput(f"must be one of {', '.join(anomaly.detector_names())}.", field="detector")
    if monitor.sensitivity not in AnomalyMonitor.Sensitivity.values:
        raise InvalidInput(f"must be one of {', '.join(AnomalyMonitor.Sensitivity.values)}.", field="sensitivity")
    if monitor.severity not in SEVERITY_RANK:
        raise InvalidInput(f"must be one of {', '.join(SEVERITY_RANK)}.", field="severity")
    if len(monitor.service) > 200:
        raise InvalidInput("at most 200 characters.", field="service")
    if not isinstance(monitor.enabled, bool):
        raise InvalidInput("must be true or false.", field="enabled")
    ensure_unique(AnomalyMonitor, monitor.name, monitor.pk)
    monitor.save()
    if not created and (
        (was_enabled and not monitor.enabled)
        or before.get("selector") != monitor.selector
        or before.get("detector") != monitor.detector
    ):
        # What it watched no longer holds: open anomalies end (alerts resolved) and the series start afresh.
        _end_open(monitor, timezone.now())
        monitor.series_states.all().delete()
    record_change(monitor, actor, created, before, MONITOR_FIELDS, None)
    return monitor


@transaction.atomic
def delete_anomaly_monitor(*, monitor: AnomalyMonitor, actor: Actor) -> None:
    """Delete the monitor with its anomalies; the alerts still firing are resolved."""
    _end_open(monitor, timezone.now())
    audit.record(action=audit.Action.DELETE, actor=actor, obj=monitor, changes={"name": [monitor.name, None]})
    monitor.delete()


def _end_open(monitor: AnomalyMonitor, now: datetime.datetime) -> None:
    for found in monitor.anomalies.open().select_related("series"):
        _resolve(monitor, found.series_id)
        found.ended_at = now
        found.save(update_fields=["ended_at"])


@transaction.atomic
def set_anomaly_feedback(*, anomaly_row: Anomaly, feedback: str, actor: Actor) -> Anomaly:
    """Mark an anomaly "not_interesting" (or "" to take that back).

    Not interesting: the anomaly is kept (and counts against the monitor's precision), its alert resolves,
    and the series' threshold goes up a notch (`FEEDBACK_ODDS_STEP`); taking it back lowers it again. A
    repeat changes nothing.
    """
    if feedback == "none":
        feedback = ""
    if feedback not in Anomaly.Feedback.values:
        raise InvalidInput("must be not_interesting or none.", field="feedback")
    found = Anomaly.objects.select_for_update().select_related("monitor").get(pk=anomaly_row.pk)
    if found.feedback == feedback:
        return found
    before = found.feedback
    found.feedback = feedback
    found.feedback_by = actor if feedback and getattr(actor, "is_authenticated", False) else None
    found.feedback_at = timezone.now() if feedback else None
    found.save(update_fields=["feedback", "feedback_by", "feedback_at"])
    state = AnomalySeries.objects.select_for_update().filter(monitor=found.monitor, series_id=found.series_id).first()
    if state is not None:
        change = 1 if feedback else -1
        state.threshold_steps = min(MAX_FEEDBACK_STEPS, max(0, state.threshold_steps + change))
        state.save(update_fields=["threshold_steps"])
    if feedback and found.is_open:
        _resolve(found.monitor, found.series_id)
    audit.record(action=audit.Action.UPDATE, actor=actor, obj=found, changes={"feedback": [before, feedback]})
    return found


# --- Alerts ------------------------------------------------------------------------------------------------------


def _dedup_key(monitor: AnomalyMonitor, series_id: int) -> str:
    return f"{DEDUP_PREFIX}{monitor.pk}:{series_id}"


def explorer_url(series_id: int, start: datetime.datetime, end: datetime.datetime | None = None) -> str:
    """The metric explorer (a path) on one series from an hour before `start` to a little after `end`."""
    end = end or start
    params = {"series": series_id, "start": int((start - EXPLORER_BEFORE).timestamp()),
              "end": int((end + EXPLORER_AFTER).timestamp())}  # fmt: skip
    try:
        path = reverse("aiops:metric_explorer")
    except NoReverseMatch:
        return ""
    return f"{path}?{urlencode(params)}"


def band_text(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return "not known yet (learning)"
    return f"{_number(low, '-inf')}{DASH}{_number(high, '+inf')}"


def _number(value: float | None, missing: str) -> str:
    return missing if value is None else query.format_value(float(f"{value:.4g}"))


def _fire(monitor: AnomalyMonitor, series: Series, found: Anomaly, threshold: float) -> Anomaly:
    selector = series.selector()
    band = band_text(found.expected_low, found.expected_high)
    shown = query.format_value(float(f"{found.value:.6g}"))
    links = []
    explorer = explorer_url(series.pk, found.started_at, found.last_above_at)
    if explorer:
        links.append({"href": f"{settings.OPSPORTAL_BASE_URL}{explorer}", "text": "Explorer"})
    else:
        links.append({"href": series_url(series), "text": "Series"})
    with contextlib.suppress(NoReverseMatch):
        links.append({"href": f"{settings.OPSPORTAL_BASE_URL}{monitor.get_absolute_url()}", "text": "Monitor"})
    raised = raise_alert(
        source=ALERT_SOURCE,
        dedup_key=_dedup_key(monitor, series.pk),
        title=f"{monitor.name}: {series.name} anomalous ({shown}, expected {band})"[:250],
        severity=monitor.severity,
        service=monitor.service or series.labels.get("service", ""),
        description=monitor.description
        or (
            f"{selector} was {shown} at {found.peak_at.isoformat()}, outside the expected {band}: anomaly score "
            f"{found.peak_score:.3f}, at or above the threshold {threshold:.3f} (sensitivity "
            f"{monitor.sensitivity}). Anomalous since {found.started_at.isoformat()}."
        ),
        labels={**series.labels, "alertname": monitor.name, "metric": series.name},
        annotations={
            "series": selector[:1000],
            "series_id": str(series.pk),
            "monitor_id": str(monitor.pk),
            "anomaly_id": str(found.pk),
            "score": f"{found.peak_score:.3f}",
            "threshold": f"{threshold:.3f}",
            "sensitivity": monitor.sensitivity,
            "value": shown,
            "expected": band,
            "expected_low": "" if found.expected_low is None else repr(found.expected_low),
            "expected_high": "" if found.expected_high is None else repr(found.expected_high),
            "started_at": found.started_at.isoformat(),
        },
        links=links,
    )
    return raised.alert


def _resolve(monitor: AnomalyMonitor, series_id: int) -> None:
    raise_alert(source=ALERT_SOURCE, dedup_key=_dedup_key(monitor, series_id), resolve=True)


# --- The expected band -------------------------------------------------------------------------------------------


@dataclass
class MonitorRun:
    """What one scoring run of a monitor did."""

    series: int = 0
    samples: int = 0
    opened: int = 0
    ended: int = 0
    fired: int = 0
    resolved: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class _Track:
    """One series during a run: its stored row, state, the new samples and what they scored."""

    row: AnomalySeries
    state: anomaly.SeriesState
    stamps: np.ndarray
    values: np.ndarray
    threshold: float
    open: Anomaly | None
    first_eligible: int = 0
    scores: np.ndarray = field(default_factory=lambda: np.empty(0))
    needed: set[int] = field(default_factory=set)
    bands: dict[int, tuple[float, float]] = field(default_factory=dict)


def score_anomaly_monitors(*, now: datetime.datetime | None = None, budget_seconds: float = 50.0) -> dict[str, int]:
    """Score the new samples of every enabled monitor's series (the periodic task); counts of what happened."""
    started = time.monotonic()
    counts = {"monitors": 0, "series": 0, "samples": 0, "opened": 0, "fired": 0, "resolved": 0}
    for monitor_id in (
        AnomalyMonitor.objects.filter(enabled=True).order_by("last_run_at", "pk").values_list("pk", flat=True)
    ):
        if time.monotonic() - started > budget_seconds:
            break
        run = score_monitor(monitor_id=monitor_id, now=now)
        if run is None:
            continue
        counts["monitors"] += 1
        counts["series"] += run.series
        counts["samples"] += run.samples
        counts["opened"] += run.opened
        counts["fired"] += run.fired
        counts["resolved"] += run.resolved
    return counts


def score_monitor(*, monitor_id: int, now: datetime.datetime | None = None) -> MonitorRun | None:
    """Score one monitor's new samples under its row lock (None: gone, disabled, or being scored elsewhere)."""
    now = now or timezone.now()
    clock = time.monotonic()
    with transaction.atomic():
        monitor = AnomalyMonitor.objects.select_for_update(skip_locked=True).filter(pk=monitor_id, enabled=True).first()
        if monitor is None:
            return None
        run = MonitorRun()
        try:
            _score(monitor, now, run)
        except InvalidInput as exc:
            run.problems.append(str(exc))
        AnomalyMonitor.objects.filter(pk=monitor.pk).update(
            last_run_at=now, last_duration_seconds=time.monotonic() - clock, last_error=" ".join(run.problems)[:2000]
        )
    return run


def _matched(monitor: AnomalyMonitor, now: datetime.datetime) -> list[Series]:
    selector = promql.parse_selector(monitor.selector, field="selector")
    try:
        found = query.select_series(selector, since=now.timestamp() - KEEP_SECONDS, limit=MAX_SERIES)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="selector") from None
    return [s for s in found if not (s.kind == "counter" or (not s.kind and s.name.endswith("_total")))]


def _score(monitor: AnomalyMonitor, now: datetime.datetime, run: MonitorRun) -> None:
    detector = anomaly.get_detector(monitor.detector)
    probation = int(getattr(detector.params, "warmup", 0)) + PROBATION_SAMPLES
    matched = _matched(monitor, now)
    by_id = {s.pk: s for s in matched}
    rows = {r.series_id: r for r in monitor.series_states.all()}
    for series_id in set(rows) - set(by_id):
        # No longer matched: what it had open ends.
        _end_series(monitor, series_id, now, run)
        rows.pop(series_id).delete()
    opened = {a.series_id: a for a in monitor.anomalies.open()}
    stamp_now = now.timestamp()
    lower = stamp_now - CATCH_UP_SECONDS
    states: dict[int, anomaly.SeriesState] = {}
    fresh: set[int] = set()
    for series in matched:
        row = rows.get(series.pk)
        state = _stored_state(detector, row)
        if state is None:
            # First sight, another detector's state, or one stored under other settings: start afresh
            # (and read the history again, as for a new series).
            fresh.add(series.pk)
            row = rows[series.pk] = row or AnomalySeries(monitor=monitor, series=series)
            row.detector = detector.name
            row.state = b""
            row.samples_seen = 0
            row.last_time = None
            state = detector.initial_state()
        states[series.pk] = state
    known = [r.last_time.timestamp() for r in rows.values() if r.last_time is not None]
    since = max(lower, min(known)) if known and len(known) == len(by_id) else lower
    data = query.raw_points(list(by_id), since, stamp_now)
    tracks: list[_Track] = []
    for series in matched:
        row = rows[series.pk]
        state = states[series.pk]
        first_sight = series.pk in fresh
        times, values = data.get(series.pk, ([], []))
        stamps = np.asarray(times, dtype=float)
        x = np.asarray(values, dtype=float)
        after = row.last_time.timestamp() if row.last_time is not None else lower
        keep = (stamps > after) & np.isfinite(x)
        stamps, x = stamps[keep][-CATCH_UP_SAMPLES:], x[keep][-CATCH_UP_SAMPLES:]
        row.series = series
        track = _Track(row, state, stamps, x, threshold_for(monitor.sensitivity, row.threshold_steps),
                       opened.get(series.pk))  # fmt: skip
        # The history read on first sight only teaches the detector (its first daily cycle sets new extremes).
        track.first_eligible = len(stamps) if first_sight else max(0, probation - row.samples_seen)
        tracks.append(track)
    run.series = len(tracks)
    _score_tracks(detector, tracks)
    _mark_needed(tracks)
    _bands_at_needed(detector, tracks)
    for track in tracks:
        _apply(monitor, track, now, run)
    new = [t.row for t in tracks if t.row.pk is None]
    old = [t.row for t in tracks if t.row.pk is not None]
    AnomalySeries.objects.bulk_create(new, batch_size=200)
    AnomalySeries.objects.bulk_update(
        old, ["detector", "state", "samples_seen", "last_time", "last_value", "last_score", "expected_low",
              "expected_high", "updated_at"], batch_size=200,
    )  # fmt: skip


def _stored_state(detector: anomaly.Detector, row: AnomalySeries | None) -> anomaly.SeriesState | None:
    """The row's stored state when the detector can resume it, else None (start afresh)."""
    if row is None or row.detector != detector.name or not row.state:
        return None
    try:
        state = anomaly.SeriesState.from_bytes(bytes(row.state))
    except (ValueError, KeyError, TypeError):
        logger.warning("anomaly state of series %s unreadable; starting afresh", row.series_id)
        return None
    if not detector.fits(state):
        logger.warning("anomaly state of series %s does not fit %s now; starting afresh", row.series_id, detector.name)
        return None
    return state


def _short(track: _Track) -> bool:
    return len(track.stamps) <= BATCH_STEPS


def _score_tracks(detector: anomaly.Detector, tracks: list[_Track]) -> None:
    """Pass one: every new sample's score, on copies of the states (the batch path for the few-samples series)."""
    short = [t for t in tracks if _short(t) and len(t.stamps)]
    for track in tracks:
        if not _short(track):
            track.scores = detector.catch_up(track.state.copy(), track.stamps, track.values)
    if short:
        _step_batch(detector, short, probe=False)


def _step_batch(detector: anomaly.Detector, tracks: list[_Track], *, probe: bool) -> anomaly.StateBatch:
    """Feed the tracks' samples to one batch, one sample of every series per step (longest first, so the series
    still taking samples at a step are a prefix). With `probe`, bands are found at the needed samples first."""
    tracks.sort(key=lambda t: -len(t.stamps))
    batch = anomaly.StateBatch.stack([t.state if probe else t.state.copy() for t in tracks])
    lengths = np.array([len(t.stamps) for t in tracks])
    scores = np.full((len(tracks), int(lengths.max())), np.nan)
    for step in range(int(lengths.max())):
        active = int(np.sum(lengths > step))
        view = anomaly.StateBatch(batch.detector, {key: array[:active] for key, array in batch.arrays.items()})
        stamps = np.array([t.stamps[step] for t in tracks[:active]])
        values = np.array([t.values[step] for t in tracks[:active]])
        if probe:
            wanted = [i for i in range(active) if step in tracks[i].needed]
            if wanted:
                sub = anomaly.StateBatch(batch.detector, {k: a[wanted].copy() for k, a in view.arrays.items()})
                _probe_into(detector, sub, [tracks[i] for i in wanted], step)
        scores[:active, step] = detector.update(view, stamps, values)
        for key, array in view.arrays.items():
            batch.arrays[key][:active] = array
    if not probe:
        for i, track in enumerate(tracks):
            track.scores = scores[i, : len(track.stamps)]
    return batch


def _mark_needed(tracks: list[_Track]) -> None:
    """The samples whose band is wanted: the last one, and each that starts an anomaly or raises its peak."""
    for track in tracks:
        if not len(track.stamps):
            continue
        track.needed.add(len(track.stamps) - 1)
        peak = track.open.peak_score if track.open is not None else None
        quiet_from = track.open.last_above_at.timestamp() if track.open is not None else None
        for i, (at, score) in enumerate(zip(track.stamps, track.scores, strict=True)):
            if score >= track.threshold and i >= track.first_eligible:
                if peak is None or score > peak:
                    track.needed.add(i)
                    peak = score
                quiet_from = at
            elif quiet_from is not None and at - quiet_from >= QUIET_SECONDS:
                peak = quiet_from = None


def _bands_at_needed(detector: anomaly.Detector, tracks: list[_Track]) -> None:
    """Pass two: feed the samples to the real states, finding the band just before each needed sample."""
    short = [t for t in tracks if _short(t) and len(t.stamps)]
    if short:
        batch = _step_batch(detector, short, probe=True)
        for i, track in enumerate(short):
            track.state = batch[i]
    for track in tracks:
        if _short(track):
            continue
        done = 0
        for index in sorted(track.needed):
            detector.catch_up(track.state, track.stamps[done:index], track.values[done:index])
            _probe_into(detector, anomaly.StateBatch.stack([track.state]), [track], index)
            done = index
        detector.catch_up(track.state, track.stamps[done:], track.values[done:])


def _probe_into(detector: anomaly.Detector, batch: anomaly.StateBatch, tracks: list[_Track], index: int) -> None:
    centres, spreads = [], []
    for track in tracks:
        centre, spread = _anchor(track, index)
        centres.append(centre)
        spreads.append(spread)
    low, high = expected_bands(
        detector, batch, np.array([t.stamps[index] for t in tracks]), np.array([t.threshold for t in tracks]),
        np.array(centres), np.array(spreads), np.array([t.values[index] for t in tracks]),
    )  # fmt: skip
    for track, lo, hi in zip(tracks, low, high, strict=True):
        track.bands[index] = (float(lo), float(hi))


def _anchor(track: _Track, index: int) -> tuple[float, float]:
    """Where to look for the band before sample `index`: the recent samples' median and spread, else the band
    stored at the last sample, else the sample itself."""
    before = track.values[max(0, index - 32) : index]
    row = track.row
    if len(before) >= 8:
        q1, median, q3 = np.percentile(before, [25, 50, 75])
        return float(median), float(max(q3 - q1, 1e-9 + 1e-6 * abs(median)))
    if row.expected_low is not None and row.expected_high is not None:
        return (row.expected_low + row.expected_high) / 2, max((row.expected_high - row.expected_low) / 8, 1e-9)
    centre = row.last_value if row.last_value is not None else float(track.values[index])
    return float(centre), max(abs(centre) * 0.01, 1e-6)


def _dt(stamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(stamp, UTC)


def _optional(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _apply(monitor: AnomalyMonitor, track: _Track, now: datetime.datetime, run: MonitorRun) -> None:
    """Open, grow and end the series' anomalies from its scores; store its state; fire and resolve the alert."""
    row = track.row
    series = row.series
    found = track.open
    started_here = False
    changed = False
    for i, (at, value, score) in enumerate(zip(track.stamps, track.values, track.scores, strict=True)):
        if score >= track.threshold and i >= track.first_eligible:
            low, high = track.bands.get(i, (math.nan, math.nan))
            if found is None:
                found = Anomaly(monitor=monitor, series=series, started_at=_dt(at), last_above_at=_dt(at),
                                peak_score=float(score), peak_at=_dt(at), value=float(value),
                                expected_low=_optional(low), expected_high=_optional(high),
                                threshold=track.threshold)  # fmt: skip
                started_here = changed = True
                run.opened += 1
            else:
                found.last_above_at = _dt(at)
                if score > found.peak_score:
                    found.peak_score, found.peak_at, found.value = float(score), _dt(at), float(value)
                    found.expected_low, found.expected_high = _optional(low), _optional(high)
                    changed = True
        elif found is not None and at - found.last_above_at.timestamp() >= QUIET_SECONDS:
            found.ended_at = _dt(at)
            _finish(monitor, found, run)
            found, changed, started_here = None, False, False
    if found is not None and len(track.stamps) == 0 and found.pk is not None:
        last = row.last_time.timestamp() if row.last_time is not None else 0.0
        if now.timestamp() - last >= STALE_SECONDS:
            # The series stopped reporting: nothing says the anomaly goes on.
            found.ended_at = now
            _finish(monitor, found, run)
            found = None
    if found is not None:
        found.save()
        if changed and not found.not_interesting:
            alert = _fire(monitor, series, found, found.threshold)
            run.fired += started_here
            if alert is not None and found.alert_id != alert.pk:
                found.alert = alert
                found.save(update_fields=["alert"])
    if len(track.stamps):
        last = len(track.stamps) - 1
        row.last_time = _dt(track.stamps[last])
        row.last_value = float(track.values[last])
        row.last_score = float(track.scores[last])
        low, high = track.bands.get(last, (math.nan, math.nan))
        row.expected_low, row.expected_high = _optional(low), _optional(high)
        row.samples_seen += len(track.stamps)
        run.samples += len(track.stamps)
    row.state = track.state.to_bytes()
    row.updated_at = now


def _finish(monitor: AnomalyMonitor, found: Anomaly, run: MonitorRun) -> None:
    found.save()
    run.ended += 1
    if found.alert_id is not None:
        _resolve(monitor, found.series_id)
        run.resolved += 1


def _end_series(monitor: AnomalyMonitor, series_id: int, now: datetime.datetime, run: MonitorRun) -> None:
    for found in monitor.anomalies.open().filter(series_id=series_id):
        found.ended_at = now
        _finish(monitor, found, run)


# --- Reading ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Precision:
    """Of a monitor's anomalies over the last PRECISION_DAYS days: how many, how many marked not interesting."""

    total: int
    not_interesting: int

    @property
    def share(self) -> float | None:
        """Anomalies not marked not interesting / all anomalies (None: none yet)."""
        return (self.total - self.not_interesting) / self.total if self.total else None


def monitor_figures(monitor_ids: Iterable[int], *, now: datetime.datetime | None = None) -> dict[int, dict]:
    """Per monitor: series scored, open anomalies and the precision (three grouped queries for any number)."""
    ids = list(monitor_ids)
    now = now or timezone.now()
    since = now - datetime.timedelta(days=PRECISION_DAYS)
    series = dict(
        AnomalySeries.objects.filter(monitor_id__in=ids).order_by().values("monitor_id").annotate(n=Count("id"))
        .values_list("monitor_id", "n")
    )  # fmt: skip
    rows = (
        Anomaly.objects.filter(monitor_id__in=ids)
        .filter(Q(started_at__gte=since) | Q(ended_at__isnull=True))
        .order_by()
        .values("monitor_id")
        .annotate(
            total=Count("id", filter=Q(started_at__gte=since)),
            not_interesting=Count("id", filter=Q(started_at__gte=since, feedback=Anomaly.Feedback.NOT_INTERESTING)),
            open=Count("id", filter=Q(ended_at__isnull=True)),
        )
    )
    by_monitor = {r["monitor_id"]: r for r in rows}
    out = {}
    for pk in ids:
        r = by_monitor.get(pk, {"total": 0, "not_interesting": 0, "open": 0})
        out[pk] = {
            "series": series.get(pk, 0),
            "open": r["open"],
            "precision": Precision(total=r["total"], not_interesting=r["not_interesting"]),
        }
    return out


@dataclass
class SeriesOverlay:
    """What the explorer draws for a monitored series: the monitor, its threshold, the anomalies in the window."""

    monitor: AnomalyMonitor
    row: AnomalySeries
    threshold: float
    anomalies: list[Anomaly]

    @property
    def band(self) -> str:
        return band_text(self.row.expected_low, self.row.expected_high)


def series_overlays(*, series_ids: list[int], start: datetime.datetime,
                    end: datetime.datetime) -> dict[int, SeriesOverlay]:  # fmt: skip
    """For each of these series an enabled monitor scores (the first by name): its overlay (two queries)."""
    out: dict[int, SeriesOverlay] = {}
    states = (
        AnomalySeries.objects.filter(series_id__in=series_ids, monitor__enabled=True)
        .select_related("monitor")
        .defer("state")
        .order_by("monitor__name", "id")
    )
    for row in states:
        if row.series_id not in out:
            threshold = threshold_for(row.monitor.sensitivity, row.threshold_steps)
            out[row.series_id] = SeriesOverlay(monitor=row.monitor, row=row, threshold=threshold, anomalies=[])
    if not out:
        return out
    wanted = Q()
    for series_id, overlay in out.items():
        wanted |= Q(series_id=series_id, monitor_id=overlay.monitor.pk)
    for found in Anomaly.objects.filter(wanted).overlapping(start, end).order_by("started_at"):
        out[found.series_id].anomalies.append(found)
    return out
