"""The metric explorer on stored samples: picking series by label, the chart, zoom data, bad parameters, incidents."""

from __future__ import annotations

import datetime
import html
import itertools
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aiops import services
from aiops.metrics import partitions, store
from aiops.models import Incident, Series
from tests.aiops.pages import json_script, text_of
from tests.helpers import client_for

pytestmark = pytest.mark.django_db

EXPLORER = "/aiops/metrics/"
DATA = "/aiops/metrics/explorer/data/"
PICKER = "/aiops/metrics/explorer/picker/"


@pytest.fixture(autouse=True)
def _fresh_caches():
    store.CACHE.clear()
    partitions.forget_known()
    yield
    store.CACHE.clear()
    partitions.forget_known()


@pytest.fixture
def now() -> float:
    return float(int(timezone.now().timestamp()))


def write(
    name: str, labels: dict[str, str], values: list[float], *, end: float, every: int = 15, kind: str = ""
) -> Series:
    """`values` every `every` seconds, the last at `end`; the stored series."""
    key = store.series_key(name, labels)
    samples = [(key, end - every * (len(values) - 1 - i), value) for i, value in enumerate(values)]
    store.write_samples(samples, kinds={key: kind} if kind else None)
    return Series.objects.get(name=name, hash=store.series_hash(key))


def temperatures(now: float) -> tuple[Series, Series]:
    a = write("temperature", {"job": "dc", "room": "a"}, [20.0 + i % 3 for i in range(240)], end=now)
    b = write("temperature", {"job": "dc", "room": "b"}, [30.0] * 240, end=now)
    return a, b


def traces(response) -> list[dict]:
    return json_script(response, "explorer-figure")["data"]


def problems(response) -> str:
    match = re.search(r'<div class="alert alert-danger" role="alert" id="explorer-problems">(.*?)</div>',
                      response.content.decode(), re.S)  # fmt: skip
    assert match, "no problems shown"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


# --- The page -------------------------------------------------------------------------------------


def test_a_selector_overlays_its_series_with_legends_that_tell_them_apart(viewer, now):
    _, b = temperatures(now)
    write("humidity", {"job": "dc", "room": "a"}, [50.0], end=now)

    response = client_for(viewer).get(EXPLORER, {"q": 'temperature{job="dc"}', "range": "1h"})

    assert response.status_code == 200
    lines = traces(response)
    assert [line["name"] for line in lines] == ['temperature{room="a"}', 'temperature{room="b"}']
    assert {v for v in lines[1]["y"] if v is not None} == {30.0}
    assert len(lines[0]["x"]) > 100  # about 600 points over the hour, samples every 15 s
    layout = json_script(response, "explorer-figure")["layout"]
    assert [b["label"] for b in layout["xaxis"]["rangeselector"]["buttons"]] == ["1h", "6h", "24h", "7d", "30d"]
    text = text_of(response)
    assert "Series shown" in text and 'temperature{job="dc",room="b"}' in text
    row = re.search(rf'<tr id="series-{b.pk}">(.*?)</tr>', response.content.decode(), re.S).group(1)
    assert '<td class="text-end font-monospace last-value">30</td>' in row
    api = re.search(r'class="query-api" href="([^"]+)"', row).group(1).replace("&amp;", "&")
    assert api.startswith("/api/v1/aiops/metrics/query_range?")
    assert parse_qs(urlsplit(api).query)["query"] == ['temperature{job="dc",room="b"}']
    assert 'aria-current="page" href="/aiops/metrics/">Metrics</a>' in response.content.decode()


def test_one_series_by_id_as_a_threshold_alert_links_it(viewer, now):
    a, _ = temperatures(now)
    assert services.series_url(a).endswith(f"/aiops/metrics/?series={a.pk}")

    response = client_for(viewer).get(EXPLORER, {"series": a.pk})

    assert response.status_code == 200
    (line,) = traces(response)
    assert line["name"] == 'temperature{job="dc",room="a"}'
    # The picker starts at the series' metric, with the series ticked.
    body = response.content.decode()
    assert '<option value="temperature" selected>' in body
    assert re.search(rf'id="pick-{a.pk}" checked', body)


def test_counters_are_marked_and_shown_as_rates_unless_stored_values_are_asked(viewer, now):
    jobs = write("jobs_total", {"job": "batch"}, [float(15 * i) for i in range(240)], end=now, kind="counter")
    client = client_for(viewer)

    response = client.get(EXPLORER, {"series": jobs.pk, "range": "1h"})
    (line,) = traces(response)
    assert line["name"].startswith('rate(jobs_total{job="batch"}[')
    assert [round(v, 6) for v in line["y"][-20:] if v is not None] == [1.0] * 20  # 15 per 15 s
    assert "counter" in text_of(response) and "per second" in str(json_script(response, "explorer-figure")["layout"])

    (raw,) = traces(client.get(EXPLORER, {"series": jobs.pk, "range": "1h", "fn": "value"}))
    assert raw["name"] == 'jobs_total{job="batch"}' and max(v for v in raw["y"] if v is not None) == 15 * 239


def test_an_empty_range_says_so_on_the_chart(viewer, now):
    old = write("temperature", {"room": "a"}, [20.0] * 10, end=now - 3 * 86400)

    response = client_for(viewer).get(EXPLORER, {"series": old.pk, "range": "1h"})

    assert response.status_code == 200
    figure = json_script(response, "explorer-figure")
    assert "no samples in this range" in [a["text"] for a in figure["layout"]["annotations"]]
    assert "No samples in this range." in text_of(response)


def test_threshold_rules_matching_the_series_are_dashed_lines_with_their_names(viewer, operator, now):
    temperatures(now)
    services.save_threshold_rule(actor=operator, name="Too hot", selector='temperature{room="b"}',
                                 comparison="above", value=35)  # fmt: skip
    services.save_threshold_rule(actor=operator, name="Other metric", selector="humidity", comparison="above", value=5)

    response = client_for(viewer).get(EXPLORER, {"q": "temperature"})

    layout = json_script(response, "explorer-figure")["layout"]
    (line,) = [s for s in layout["shapes"] if s["type"] == "line"]
    assert line["y0"] == line["y1"] == 35 and line["line"]["dash"] == "dash"
    assert "Too hot (above 35)" in [a["text"] for a in layout["annotations"]]


def test_the_overlay_is_capped_and_says_so(viewer, now):
    ids = [write("load", {"host": f"h{i:02}"}, [float(i)], end=now).pk for i in range(25)]
    client = client_for(viewer)

    response = client.get(EXPLORER, {"q": "load"})
    assert len(traces(response)) == 20
    assert "The selector matches 25 series; at most 20 are overlaid" in text_of(response)

    response = client.get(EXPLORER, {"series": ids})
    assert len(traces(response)) == 20 and "showing the first 20 of 25" in text_of(response)


def test_the_page_reads_in_a_fixed_number_of_queries(viewer, operator, now):
    services.save_threshold_rule(actor=operator, name="Loaded", selector="load", comparison="above", value=5)
    for i in range(3):
        write("load", {"host": f"h{i}"}, [1.0, 2.0], end=now)
    client = client_for(viewer)
    client.get(EXPLORER, {"q": "load"})
    with CaptureQueriesContext(connection) as few:
        client.get(EXPLORER, {"q": "load"})
    for i in range(3, 15):
        write("load", {"host": f"h{i}"}, [1.0, 2.0], end=now)
    with CaptureQueriesContext(connection) as many:
        response = client.get(EXPLORER, {"q": "load"})
    assert len(traces(response)) == 15
    assert len(many) == len(few) <= 16


# --- Bad parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"series": "abc"}, "series: 'abc' is not a series id."),
        ({"series": "999999"}, "series: no stored series with id 999999."),
        ({"q": "temperature{room="}, "q: "),
        ({"q": "rate(temperature[5m])"}, "q: must be a series selector"),
        ({"q": "nothing_stored"}, "q: no stored series matches this selector."),
        ({"q": "temperature", "range": "2h"}, "range: '2h' is not one of 1h, 6h, 24h, 7d, 30d."),
        ({"q": "temperature", "fn": "sum"}, "fn: 'sum' is not one of value, rate"),
        ({"q": "temperature", "start": "yesterday"}, "start: cannot parse 'yesterday'"),
        (
            {"q": "temperature", "start": "2024-05-02T00:00:00Z", "end": "2024-05-01T00:00:00Z"},
            "end: must be after start.",
        ),
        ({"q": "temperature", "start": "0", "end": "2000000000"}, "start: the window is longer than 400 days."),
        ({"q": "temperature", "incident": "424242"}, "incident: no incident '424242'."),
        ({"q": "temperature", "points": "5"}, "points: must be a whole number from 20 to 2000."),
    ],
)
def test_a_bad_parameter_is_named_on_the_page_and_nothing_is_drawn(viewer, now, params, named):
    temperatures(now)

    response = client_for(viewer).get(EXPLORER, params)

    assert response.status_code == 400
    assert named in problems(response)
    assert 'id="explorer-figure"' not in response.content.decode()
    assert "Nothing is drawn until the parameters above are fixed." in text_of(response)


def test_the_data_endpoint_names_bad_parameters_in_json(viewer, now):
    temperatures(now)
    client = client_for(viewer)
    response = client.get(DATA, {"q": "temperature", "fn": "sum"})
    assert response.status_code == 400 and response.json()["problems"] == [
        "fn: 'sum' is not one of value, rate, increase, avg_over_time, min_over_time, max_over_time, "
        "sum_over_time, count_over_time, last_over_time."
    ]
    response = client.get(DATA, {})
    assert response.status_code == 400 and "series: choose series" in response.json()["error"]


# --- Zoom: the data at the new window's resolution ---------------------------------------------------


def test_a_narrower_window_is_read_again_at_its_own_resolution(viewer, now):
    a, _ = temperatures(now)
    client = client_for(viewer)

    wide = client.get(DATA, {"series": a.pk, "start": int(now - 3600), "end": int(now), "points": 60}).json()
    narrow = client.get(DATA, {"series": a.pk, "start": int(now - 600), "end": int(now), "points": 60}).json()

    assert (wide["step_seconds"], narrow["step_seconds"]) == (60, 10)
    (wide_line,), (narrow_line,) = wide["figure"]["data"], narrow["figure"]["data"]
    assert len(narrow_line["x"]) == 61 and len(wide_line["x"]) in (60, 61)  # the first sample is 15 s in

    def spacing(line: dict) -> set[float]:
        times = [datetime.datetime.fromisoformat(x).timestamp() for x in line["x"]]
        return {b - a for a, b in itertools.pairwise(times)}

    assert (spacing(wide_line), spacing(narrow_line)) == ({60.0}, {10.0})
    assert narrow["figure"]["layout"]["xaxis"]["range"][0].startswith(
        datetime.datetime.fromtimestamp(now - 600, datetime.UTC).strftime("%Y-%m-%dT%H:%M")
    )
    assert not narrow["empty"]
    empty = client.get(DATA, {"series": a.pk, "start": int(now - 30 * 86400), "end": int(now - 29 * 86400)}).json()
    assert empty["empty"] and "no samples in this range" in str(empty["figure"]["layout"]["annotations"])


# --- Picker ------------------------------------------------------------------------------------------


def test_the_picker_narrows_label_values_by_what_is_chosen(viewer, now):
    for env, hosts in (("prod", ["web1", "web2"]), ("staging", ["web3"])):
        for host in hosts:
            write("node_load1", {"env": env, "instance": host}, [1.0], end=now)
    write("node_load1", {"env": "prod", "instance": "db1", "role": "db"}, [1.0], end=now)
    client = client_for(viewer)

    chosen = client.get(PICKER, {"from": "labels", "metric": "node_load1"}, HTTP_HX_REQUEST="true")
    body = chosen.content.decode()
    assert 'value="node_load1" selected' in body
    assert re.findall(r'<option value="(\w+)">\1</option>', body.split('id="picker-add"')[1].split("</select>")[0]) == [
        "env", "instance", "role"
    ]  # fmt: skip
    assert "Matching series (4)" in text_of(chosen)

    adding = client.get(PICKER, {"from": "labels", "metric": "node_load1", "add": "env"}, HTTP_HX_REQUEST="true")
    assert 'data-label="env"' in adding.content.decode()

    prod = client.get(
        PICKER, {"from": "labels", "metric": "node_load1", "label": "env", "value": "prod", "add": "instance"}
    )
    body = prod.content.decode()
    assert 'value="node_load1{env=&quot;prod&quot;}"' in body
    instance = body.split('data-label="instance"')[1].split("</select>")[0]
    assert re.findall(r'<option value="(\w+)"', instance) == ["db1", "web1", "web2"]  # web3 is staging
    assert "Matching series (3)" in text_of(prod)


def test_a_typed_selector_lists_its_series_capped_with_a_note(viewer, now):
    for i in range(60):
        write("requests_total", {"pod": f"p{i:02}"}, [1.0, 2.0], end=now, kind="counter")
    client = client_for(viewer)

    response = client.get(PICKER, {"from": "q", "q": 'requests_total{pod=~"p.*"}'})
    text = text_of(response)
    assert "showing 50 of 60" in text and "add label filters to narrow the list" in text
    assert response.content.decode().count('name="series"') == 50
    assert "counter" in text and "matchers the filters above cannot show" in text

    bad = client.get(PICKER, {"from": "q", "q": "requests_total{"})
    assert bad.status_code == 200 and "q: " in bad.content.decode()


# --- Permissions ----------------------------------------------------------------------------------------


def test_the_explorer_needs_a_login(viewer, now):
    for url in (EXPLORER, DATA, PICKER):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


# --- From an incident to its series -------------------------------------------------------------------


def test_an_incident_from_a_threshold_rule_links_to_the_explorer_on_its_series(viewer, operator):
    end = timezone.now()
    hot = write("temperature_celsius", {"job": "dc", "room": "a"}, [25, 26, 31, 32, 33, 34, 35], end=end.timestamp())
    write("temperature_celsius", {"job": "dc", "room": "b"}, [20] * 7, end=end.timestamp())
    services.save_threshold_rule(actor=operator, name="Server room too hot", selector='temperature_celsius{job="dc"}',
                                 comparison="above", value=30, for_seconds=60)  # fmt: skip
    assert services.evaluate_threshold_rules(now=end)["fired"] == 1
    services.process_pending_alerts()
    incident = Incident.objects.get()
    client = client_for(viewer)

    page = client.get(f"/aiops/incidents/{incident.pk}/")
    link = re.search(r'href="([^"]+)" id="incident-explorer"', page.content.decode()).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(link).query) == {"series": [str(hot.pk)], "incident": [str(incident.pk)]}

    explorer = client.get(link)
    assert explorer.status_code == 200
    figure = json_script(explorer, "explorer-figure")
    (line,) = figure["data"]
    assert line["name"] == 'temperature_celsius{job="dc",room="a"}'
    assert f"incident #{incident.pk} opened" in [a["text"] for a in figure["layout"]["annotations"]]
    assert "Server room too hot (above 30)" in [a["text"] for a in figure["layout"]["annotations"]]
    # From an hour before the incident opened.
    start = datetime.datetime.fromisoformat(figure["layout"]["xaxis"]["range"][0])
    assert start == incident.created_at - datetime.timedelta(hours=1)
    assert f"incident #{incident.pk}" in text_of(explorer)


def test_an_incident_without_series_has_no_explorer_link(viewer, two_incidents):
    checkout, _ = two_incidents
    page = client_for(viewer).get(f"/aiops/incidents/{checkout.pk}/")
    assert page.status_code == 200 and 'id="incident-explorer"' not in page.content.decode()
