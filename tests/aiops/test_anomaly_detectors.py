"""Streaming anomaly detectors (aiops.anomaly) and the detect_anomalies command.

Synthetic series with known anomalies score high there and low elsewhere; scores are causal; the live
path (one sample at a time, many series per batch) gives the catch-up path's scores; a stored state
resumes where it stopped; the command writes one scored row per input row and names bad input.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from aiops import anomaly

STEP = 300
ROWS = 3000
AT = 2000


def seasonal_series(seed: int = 1, rows: int = ROWS) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    stamps = 1_700_000_000 + np.arange(rows, dtype=np.int64) * STEP
    values = 50 + 10 * np.sin(2 * np.pi * np.arange(rows) / 288) + rng.normal(0, 1, rows)
    return stamps, values


def with_anomaly(kind: str) -> tuple[np.ndarray, np.ndarray]:
    stamps, values = seasonal_series()
    if kind == "spike":
        values[AT] += 15
    elif kind == "level_shift":
        values[AT:] += 8
    elif kind == "variance":
        values[AT:] += np.random.default_rng(2).normal(0, 6, ROWS - AT)
    return stamps, values


@pytest.mark.parametrize("name", anomaly.detector_names())
def test_scores_are_in_the_unit_interval_and_zero_while_warming_up(name):
    detector = anomaly.get_detector(name)
    stamps, values = with_anomaly("spike")
    scores = detector.score(stamps, values)
    assert scores.shape == values.shape
    assert np.all((scores >= 0) & (scores <= 1))
    assert np.all(scores[: detector.params.warmup] == 0)
    assert scores.max() > 0.5


@pytest.mark.parametrize("kind", ["spike", "level_shift", "variance"])
def test_known_anomaly_scores_high_and_the_rest_low(kind):
    detector = anomaly.get_detector()
    stamps, values = with_anomaly(kind)
    scores = detector.score(stamps, values)
    normal = scores[detector.params.warmup : AT]
    near = scores[AT : AT + 50]
    assert near.max() > 0.8, (kind, near.max())
    # among the top few of the series: only chance records (new extremes of the noise) come close
    assert np.sum(normal >= near.max()) <= 3, (kind, np.sort(normal)[-5:])
    assert np.percentile(normal, 99) < 0.5
    # the same series without the anomaly stays low there
    clean = detector.score(*seasonal_series())
    assert clean[AT : AT + 50].max() < 0.6


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_steady_series_rarely_scores_high_and_a_flat_line_never(seed):
    detector = anomaly.get_detector()
    stamps, values = seasonal_series(seed=seed)
    scores = detector.score(stamps, values)
    assert np.percentile(scores, 99) < 0.5
    assert np.mean(scores > 0.8) < 0.002
    flat = detector.score(stamps, np.full(ROWS, 42.0))
    assert flat.max() == 0


def test_scores_are_causal():
    detector = anomaly.get_detector()
    stamps, values = with_anomaly("level_shift")
    full = detector.score(stamps, values)
    for cut in (300, 1999, 2000, 2001, 2500):
        assert np.array_equal(detector.score(stamps[:cut], values[:cut]), full[:cut])
    changed = values.copy()
    changed[2400:] = 0
    assert np.array_equal(detector.score(stamps, changed)[:2400], full[:2400])


@pytest.mark.parametrize("name", anomaly.detector_names())
def test_live_updates_give_the_catch_up_scores(name):
    detector = anomaly.get_detector(name)
    series = [with_anomaly(kind) for kind in ("spike", "level_shift", "variance")]
    # different lengths and starts: the series of one batch are at different points of their lives
    series.append((series[0][0][:1500] + 7 * STEP, series[1][1][:1500] * 1000))
    expected = [detector.score(stamps, values) for stamps, values in series]
    batch = detector.initial_batch(len(series))
    live = [[] for _ in series]
    for step in range(ROWS):
        active = [i for i, (stamps, _) in enumerate(series) if step < len(stamps)]
        if len(active) < len(series):
            states = [batch[i] for i in active]
            batch = anomaly.StateBatch.stack(states)
            series = [series[i] for i in active]
            expected = [expected[i] for i in active]
            live = [live[i] for i in active]
        scores = detector.update(batch, np.array([s[step] for s, _ in series]), np.array([v[step] for _, v in series]))
        for i, score in enumerate(scores):
            live[i].append(score)
    for got, want in zip(live, expected, strict=True):
        np.testing.assert_allclose(got, want[: len(got)], rtol=0, atol=1e-9)


def test_catch_up_in_pieces_gives_the_whole_series_scores():
    detector = anomaly.get_detector()
    stamps, values = with_anomaly("variance")
    full = detector.score(stamps, values)
    state = detector.initial_state()
    pieces = [detector.catch_up(state, stamps[a:b], values[a:b]) for a, b in
              ((0, 1), (1, 40), (40, 41), (41, 700), (700, 2000), (2000, 2001), (2001, ROWS))]  # fmt: skip
    np.testing.assert_allclose(np.concatenate(pieces), full, rtol=0, atol=1e-9)
    assert state.count == ROWS


@pytest.mark.parametrize("form", ["dict", "bytes"])
def test_a_stored_state_resumes_identically(form):
    detector = anomaly.get_detector()
    stamps, values = with_anomaly("level_shift")
    full = detector.score(stamps, values)
    state = detector.initial_state()
    first = detector.catch_up(state, stamps[:1800], values[:1800])
    if form == "dict":
        stored = json.dumps(state.to_dict())
        resumed = anomaly.SeriesState.from_dict(json.loads(stored))
    else:
        stored = state.to_bytes()
        resumed = anomaly.SeriesState.from_bytes(stored)
    assert len(stored) < (30_000 if form == "dict" else 12_000)
    rest = detector.catch_up(resumed, stamps[1800:], values[1800:])
    np.testing.assert_allclose(np.concatenate([first, rest]), full, rtol=0, atol=1e-9)
    # and in the live path
    batch = anomaly.StateBatch.stack([anomaly.SeriesState.from_dict(json.loads(json.dumps(state.to_dict())))])
    live = [detector.update(batch, stamps[i : i + 1], values[i : i + 1])[0] for i in range(1800, ROWS)]
    np.testing.assert_allclose(live, full[1800:], rtol=0, atol=1e-9)


def test_a_state_of_another_detector_is_refused():
    state = anomaly.get_detector("local").initial_state()
    with pytest.raises(ValueError, match="local"):
        anomaly.get_detector("ensemble").catch_up(state, np.array([0]), np.array([1.0]))
    with pytest.raises(KeyError, match="ensemble"):
        anomaly.get_detector("nope")


# --- the command ---


def write_csv(path: Path, stamps: np.ndarray, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        for stamp, value in zip(stamps, values, strict=True):
            moment = np.datetime64(int(stamp), "s").astype(object).strftime("%Y-%m-%d %H:%M:%S")
            writer.writerow([moment, f"{value:.4f}"])


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_command_scores_a_directory_at_the_same_relative_paths(tmp_path):
    source = tmp_path / "in"
    stamps, values = with_anomaly("spike")
    write_csv(source / "a" / "spiky.csv", stamps, values)
    write_csv(source / "b" / "c" / "short.csv", stamps[:50], values[:50])
    out = tmp_path / "out"
    call_command("detect_anomalies", "--input-dir", str(source), "--output-dir", str(out))
    rows = read_csv(out / "a" / "spiky.csv")
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score"]
    assert len(rows) == ROWS
    original = read_csv(source / "a" / "spiky.csv")
    assert [(r["timestamp"], r["value"]) for r in rows] == [(r["timestamp"], r["value"]) for r in original]
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    # the command runs the library's detector on the parsed values
    expected = anomaly.get_detector().score(stamps, np.array([float(r["value"]) for r in original]))
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)
    assert scores[AT] > 0.85
    assert len(read_csv(out / "b" / "c" / "short.csv")) == 50
    # deterministic: a second run writes the same bytes
    again = tmp_path / "again"
    call_command("detect_anomalies", "--input-dir", str(source), "--output-dir", str(again), "--detector", "ensemble")
    assert (again / "a" / "spiky.csv").read_bytes() == (out / "a" / "spiky.csv").read_bytes()


def test_command_scores_one_file_with_a_chosen_detector(tmp_path):
    stamps, values = with_anomaly("level_shift")
    write_csv(tmp_path / "one.csv", stamps, values)
    call_command("detect_anomalies", "--input", str(tmp_path / "one.csv"), "--output", str(tmp_path / "o.csv"),
                 "--detector", "local")  # fmt: skip
    scores = [float(r["anomaly_score"]) for r in read_csv(tmp_path / "o.csv")]
    assert len(scores) == ROWS and max(scores) > 0.5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("time,value\n2024-01-01 00:00:00,1\n", r"bad\.csv: line 1: no 'timestamp' column"),
        ("timestamp,val\n2024-01-01 00:00:00,1\n", r"bad\.csv: line 1: no 'value' column"),
        ("timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,abc\n", r"bad\.csv: line 3: value 'abc'"),
        ("timestamp,value\n2024-01-01 00:00:00,1\nyesterday,2\n", r"bad\.csv: line 3: timestamp 'yesterday'"),
        ("timestamp,value\n2024-01-01 00:00:00,nan\n", r"bad\.csv: line 2: value 'nan' is not a finite number"),
        ("", r"bad\.csv: line 1: empty file"),
    ],
)
def test_command_names_the_file_and_line_of_bad_input_and_writes_nothing(tmp_path, content, message):
    source = tmp_path / "in"
    stamps, values = seasonal_series(rows=100)
    write_csv(source / "good.csv", stamps, values)
    (source / "sub").mkdir()
    (source / "sub" / "bad.csv").write_text(content)
    out = tmp_path / "out"
    with pytest.raises(CommandError, match=message):
        call_command("detect_anomalies", "--input-dir", str(source), "--output-dir", str(out))
    assert not out.exists()


def test_command_refuses_missing_paths_and_unknown_detectors(tmp_path):
    with pytest.raises(CommandError, match="--input-dir: no directory"):
        call_command("detect_anomalies", "--input-dir", str(tmp_path / "nowhere"), "--output-dir", str(tmp_path))
    with pytest.raises(CommandError, match="--input: no file"):
        call_command("detect_anomalies", "--input", str(tmp_path / "x.csv"), "--output", str(tmp_path / "y.csv"))
    with pytest.raises(CommandError, match=r"no \.csv files"):
        call_command("detect_anomalies", "--input-dir", str(tmp_path), "--output-dir", str(tmp_path / "o"))
    with pytest.raises(CommandError, match="--detector: no anomaly detector 'magic'; choose from ensemble"):
        call_command("detect_anomalies", "--input-dir", str(tmp_path), "--output-dir", str(tmp_path / "o"),
                     "--detector", "magic")  # fmt: skip


def test_live_update_of_some_rows_leaves_the_others_alone():
    detector = anomaly.get_detector()
    series = [with_anomaly(kind) for kind in ("spike", "level_shift", "variance")]
    expected = [detector.score(stamps, values) for stamps, values in series]
    batch = detector.initial_batch(3)
    got = [[], [], []]
    position = [0, 0, 0]
    rng = np.random.default_rng(3)
    while min(position) < 600:
        rows = np.flatnonzero(rng.random(3) < 0.6)
        if not len(rows):
            continue
        scores = detector.update(
            batch,
            np.array([series[i][0][position[i]] for i in rows]),
            np.array([series[i][1][position[i]] for i in rows]),
            rows=rows,
        )
        for i, score in zip(rows, scores, strict=True):
            got[i].append(score)
            position[i] += 1
    for i in range(3):
        np.testing.assert_allclose(got[i], expected[i][: position[i]], rtol=0, atol=1e-9)
        assert batch[i].count == position[i]


def test_values_that_are_not_finite_are_refused():
    detector = anomaly.get_detector()
    with pytest.raises(ValueError, match="row 1 is not finite"):
        detector.score(np.array([0, 300]), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="series 0 is not finite"):
        detector.update(detector.initial_batch(2), np.array([0, 0]), np.array([np.inf, 1.0]))


def test_a_state_stored_with_other_settings_is_refused():
    detector = anomaly.get_detector()
    stored = detector.initial_state().to_dict()
    stored["arrays"]["values"] = stored["arrays"]["values"][:-1]
    with pytest.raises(ValueError, match="start from a fresh state"):
        detector.catch_up(anomaly.SeriesState.from_dict(stored), np.array([0]), np.array([1.0]))
    assert len(detector.initial_batch(0)) == 0
    assert len(detector.initial_batch(5)) == 5
