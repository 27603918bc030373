"""The PromQL subset over stored samples: selectors, lookback, rate/increase with a counter reset, rollups."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from aiops import services
from aiops.metrics import partitions, promql, rollups, store
from opsportal.errors import InvalidInput

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_caches():
    store.CACHE.clear()
    partitions.forget_known()
    yield
    store.CACHE.clear()
    partitions.forget_known()


@pytest.fixture
def base() -> float:
    """A round time two hours ago: samples are written from here on, every 15 s."""
    now = timezone.now().timestamp()
    return float(int(now - 7200) // 3600 * 3600)


def write(name: str, labels: dict[str, str], points: list[tuple[float, float]]) -> None:
    key = store.series_key(name, labels)
    store.write_samples([(key, at, value) for at, value in points])


def query(text: str, start: float, end: float, step: float) -> dict:
    result = services.run_query_range(query_text=text, start=start, end=end, step=step)
    return {tuple(sorted(s.metric.items())): s.points for s in result.series if s.points}


def test_selectors_match_like_prometheus(base):
    for labels in (
        {"job": "api", "env": "prod", "code": "200"},
        {"job": "api", "env": "staging", "code": "500"},
        {"job": "web", "env": "prod"},
    ):
        write("requests_total", labels, [(base + 15, 1.0)])
    write("other_metric", {"job": "api"}, [(base + 15, 2.0)])

    def jobs(text: str) -> list[tuple[str, str, str]]:
        found = query(text, base + 15, base + 15, 15)
        return sorted((dict(m)["__name__"], dict(m).get("env", ""), dict(m).get("code", "")) for m in found)

    assert jobs('requests_total{job="api"}') == [
        ("requests_total", "prod", "200"),
        ("requests_total", "staging", "500"),
    ]
    assert jobs('requests_total{env!="prod"}') == [("requests_total", "staging", "500")]
    assert jobs('requests_total{env=~"prod|stag.*"}') == [
        ("requests_total", "prod", ""),
        ("requests_total", "prod", "200"),
        ("requests_total", "staging", "500"),
    ]
    assert jobs('requests_total{env=~"stag"}') == []  # regexes are anchored
    assert jobs('requests_total{code!~"5.."}') == [("requests_total", "prod", ""), ("requests_total", "prod", "200")]
    assert jobs('requests_total{code=""}') == [("requests_total", "prod", "")]  # a missing label is ""
    assert jobs('{__name__=~"other.*|requests_total",job="api"}') == [
        ("other_metric", "", ""),
        ("requests_total", "prod", "200"),
        ("requests_total", "staging", "500"),
    ]


def test_a_selector_takes_the_latest_sample_within_five_minutes(base):
    write("temperature", {"room": "a"}, [(base + 10, 20.0), (base + 70, 21.0)])
    ((metric, points),) = query('temperature{room="a"}', base, base + 600, 60).items()
    assert dict(metric) == {"__name__": "temperature", "room": "a"}
    # Nothing before the first sample; 21 until five minutes after the last one, then nothing (stale).
    assert points == [(base + 60, 20.0), *[(base + 60 * k, 21.0) for k in range(2, 7)]]


def counter(base: float, count: int, reset_at: int | None = None) -> list[tuple[float, float]]:
    """Every 15 s (7 s after the step grid), +15 per sample; at `reset_at` it restarts from 5."""
    points = []
    for k in range(count):
        value = 15.0 * k if reset_at is None or k < reset_at else 5.0 + 15.0 * (k - reset_at)
        points.append((base + 7 + 15 * k, value))
    return points


def test_rate_and_increase_follow_prometheus_extrapolation(base):
    write("jobs_total", {"queue": "mail"}, counter(base, 40))
    t = base + 7 + 15 * 30  # on a sample: the window (t - 60, t] holds the samples at t-45 .. t
    (rate,) = query('rate(jobs_total{queue="mail"}[1m])', t, t, 15).values()
    (increase,) = query('increase(jobs_total{queue="mail"}[1m])', t, t, 15).values()
    # 45 over 45 s sampled, extrapolated by 15 s to the window's start (closer than 1.1 intervals): 60 in 60 s.
    assert rate == [(t, 1.0)]
    assert increase == [(t, 60.0)]
    # The metric name goes, as with any function.
    assert query("rate(jobs_total[1m])", t, t, 15).keys() == {(("queue", "mail"),)}


def test_a_counter_reset_counts_the_value_after_it(base):
    write("jobs_total", {"queue": "mail"}, counter(base, 40, reset_at=20))
    t = base + 7 + 15 * 22  # samples 17..22 in (t - 90, t]: 255, 270, 285, reset to 5, 20, 35
    (increase,) = query("increase(jobs_total[90s])", t, t, 15).values()
    (rate,) = query("rate(jobs_total[90s])", t, t, 15).values()
    # 35 - 255 + 285 (the value before the drop) = 65 over 75 s sampled, extrapolated to 90 s.
    assert increase == [(t, pytest.approx(65 * 90 / 75))]
    assert rate == [(t, pytest.approx(65 / 75))]


def test_over_time_functions(base):
    write("load", {}, [(base + 7 + 15 * k, float(k % 4)) for k in range(20)])  # 0 1 2 3 0 1 2 3 ...
    t = base + 7 + 15 * 11  # (t - 60, t]: samples 8..11 -> 0 1 2 3
    for function, expected in (
        ("avg_over_time", 1.5),
        ("min_over_time", 0.0),
        ("max_over_time", 3.0),
        ("sum_over_time", 6.0),
        ("count_over_time", 4.0),
        ("last_over_time", 3.0),
    ):
        assert list(query(f"{function}(load[1m])", t, t, 15).values()) == [[(t, expected)]], function


def test_wide_steps_read_rollups_and_agree_with_raw_samples(base):
    write("jobs_total", {"queue": "mail"}, counter(base, 480))  # two hours, 1 per second
    write("temperature", {}, [(base + 7 + 15 * k, 20.0 + k % 2) for k in range(480)])
    rollups.roll_up(datetime.datetime.fromtimestamp(base + 7200 + 300, datetime.UTC))
    start, end = base + 3600, base + 7200
    raw = services.run_query_range(query_text="rate(jobs_total[10m])", start=start, end=end, step=60)
    wide = services.run_query_range(query_text="rate(jobs_total[10m])", start=start, end=end, step=600)
    assert (raw.source, wide.source) == ("raw", "rollup")
    assert [v for _, v in wide.series[0].points] == pytest.approx([1.0] * 7)
    assert [v for _, v in raw.series[0].points] == pytest.approx([1.0] * 61)
    mean = services.run_query_range(query_text="avg_over_time(temperature[1h])", start=end, end=end, step=300)
    assert mean.source == "rollup" and mean.series[0].points == [(end, 20.5)]
    high = services.run_query_range(query_text="max_over_time(temperature[1h])", start=end, end=end, step=300)
    assert high.series[0].points == [(end, 21.0)]


def test_steps_after_the_rollup_checkpoint_read_raw_samples(base):
    write("jobs_total", {}, counter(base, 480))
    rollups.roll_up(datetime.datetime.fromtimestamp(base + 3600, datetime.UTC))  # rolled up: the first 58 min
    result = services.run_query_range(query_text="rate(jobs_total[5m])", start=base + 1800, end=base + 7200, step=300)
    assert result.source == "mixed"
    assert [v for _, v in result.series[0].points] == pytest.approx([1.0] * 19)


def test_number_expressions_answer_a_scalar(base):
    result = services.run_query_instant(query_text="1+1", at=base)
    assert result.to_prometheus() == {"resultType": "scalar", "result": [int(base), "2"]}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("sum(up)", "the aggregation 'sum' is not supported; supported: series selectors"),
        ("up + up", "the operator '+' between series is not supported"),
        ("histogram_quantile(0.9, x)", "the function histogram_quantile() is not supported"),
        ("rate(up)", "rate() needs a range"),
        ("up offset 5m", "'offset' modifier is not supported"),
        ('{job=""}', "at least one matcher that does not match the empty string"),
        ('up{job=~"("}', "bad regular expression"),
        ("up{", "unexpected end of the query"),
        ("", "required"),
    ],
)
def test_unsupported_or_bad_queries_say_what_is_supported(text, words, base):
    with pytest.raises(InvalidInput) as refused:
        services.run_query_range(query_text=text, start=base, end=base + 60, step=15)
    assert refused.value.field == "query" and words in refused.value.message
    if "not supported" in words:
        assert promql.SUPPORTED in refused.value.message


def test_too_many_points_are_refused(base):
    with pytest.raises(InvalidInput, match="exceeded maximum resolution of 11,000 points") as refused:
        services.run_query_range(query_text="up", start=base, end=base + 86400, step=1)
    assert refused.value.field == "step"


def test_the_services_pages_use_find_series_and_chart_them(base):
    write("temperature", {"room": "a"}, [(base + 7 + 15 * k, 20.0 + k % 2) for k in range(240)])
    write("temperature", {"room": "b"}, [(base + 7 + 15 * k, 30.0) for k in range(240)])
    write("jobs_total", {}, counter(base, 240))
    found = services.find_series(selector='temperature{room=~"a|b"}')
    assert [s.labels["room"] for s in found] == ["a", "b"]
    start = datetime.datetime.fromtimestamp(base + 600, datetime.UTC)
    end = datetime.datetime.fromtimestamp(base + 3600, datetime.UTC)
    chart = services.series_chart(series_ids=[s.id for s in found], start=start, end=end, points=50)
    assert [c.series_id for c in sorted(chart, key=lambda c: c.metric["room"])] == [s.id for s in found]
    assert all(len(c.points) == 51 for c in chart)  # 3,000 s / 50 points = a 60 s step, both ends
    b = next(c for c in chart if c.metric["room"] == "b")
    assert {v for _, v in b.points} == {30.0} and b.metric["__name__"] == "temperature"
    (jobs,) = services.find_series(selector="jobs_total")
    (rate,) = services.series_chart(series_ids=[jobs.id], start=start, end=end, function="rate", points=10)
    assert [v for _, v in rate.points] == pytest.approx([1.0] * 11)
    with pytest.raises(InvalidInput) as refused:
        services.series_chart(series_ids=[jobs.id], start=start, end=end, function="sum")
    assert refused.value.field == "function"
    assert services.label_values(label="room") == ["a", "b"]
    assert services.label_names() == ["__name__", "room"]
