"""Live anomaly detection: monitors score stored series, raise and resolve alerts, learn from "not interesting"."""

from __future__ import annotations

import datetime
import math

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aiops import anomaly, services
from aiops.metrics import partitions, store
from aiops.models import Alert, Anomaly, AnomalyMonitor, AnomalySeries, Incident
from aiops.services import anomalies as live
from opsportal import enqueue
from opsportal.audit.models import AuditEntry
from tests.helpers import client_for, wait_for

pytestmark = pytest.mark.django_db

STEP = 60
LABELS = {"job": "api", "instance": "web1", "service": "checkout"}
NAME = "http_latency_ms"


@pytest.fixture(autouse=True)
def _fresh_caches():
    store.CACHE.clear()
    partitions.forget_known()
    yield
    store.CACHE.clear()
    partitions.forget_known()


def normal(count: int, start_index: int = 0, seed: int = 3) -> np.ndarray:
    """A latency with a 30-sample cycle and bounded noise: its extremes are all seen early, so no false alarm."""
    index = np.arange(start_index, start_index + count)
    noise = np.random.default_rng(seed + start_index).uniform(-0.5, 0.5, count)
    return 50 + 5 * np.sin(2 * np.pi * index / 30) + noise


def write(values, *, end: float, labels: dict[str, str] = LABELS, name: str = NAME) -> list[float]:
    """`values` every STEP seconds, the last at `end`; their times."""
    key = store.series_key(name, labels)
    times = [end - STEP * (len(values) - 1 - i) for i in range(len(values))]
    store.write_samples([(key, at, float(v)) for at, v in zip(times, values, strict=True)], kinds={key: "gauge"})
    return times


def monitor(actor, **overrides) -> AnomalyMonitor:
    values = {"name": "Checkout latency", "selector": f'{NAME}{{job="api"}}', "sensitivity": "medium",
              "severity": "error", "service": "checkout"}  # fmt: skip
    return services.save_anomaly_monitor(actor=actor, **{**values, **overrides})


def at(stamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC)


@pytest.fixture
def history():
    """Ten hours of normal latency ending 20 minutes ago; the next sample's index and time."""
    now = timezone.now().timestamp() // STEP * STEP
    end = now - 20 * STEP
    write(normal(600), end=end)
    return {"index": 600, "next": end + STEP, "now": now}


# --- Raising and resolving ---------------------------------------------------------------------------------


def test_a_spike_raises_an_alert_with_its_score_and_band_and_it_resolves(operator, history):
    watched = monitor(operator)
    run = services.score_monitor(monitor_id=watched.pk, now=at(history["next"]))
    assert run.series == 1 and run.samples == 600 and run.opened == 0  # caught up, nothing anomalous
    row = AnomalySeries.objects.get()
    assert row.samples_seen == 600 and row.last_time == at(history["next"] - STEP)
    assert row.expected_low is not None and row.expected_low < row.last_value < row.expected_high
    assert 0 <= row.last_score < live.threshold_for("medium")

    # Five normal samples, a spike of +40, two normal ones: one alert, the spike outside the expected band.
    values = normal(8, history["index"])
    values[5] += 40
    spike_value = values[5]
    times = write(values, end=history["next"] + 7 * STEP)
    run = services.score_monitor(monitor_id=watched.pk, now=at(times[-1]))
    assert run.samples == 8 and run.opened == 1 and run.fired == 1
    found = Anomaly.objects.get()
    assert found.started_at == at(times[5]) and found.is_open and found.value == pytest.approx(spike_value)
    assert found.peak_score >= live.threshold_for("medium")
    assert found.expected_low < 55.5 and 55.5 < found.expected_high < spike_value
    alert = Alert.objects.get(fingerprint=f"anomaly:{watched.pk}:{found.series_id}")
    assert alert.status == "firing" and alert.severity == "error" and alert.service == "checkout"
    assert found.alert == alert
    assert float(alert.annotations["score"]) == pytest.approx(found.peak_score, abs=1e-3)
    assert float(alert.annotations["expected_low"]) == found.expected_low
    assert float(alert.annotations["expected_high"]) == found.expected_high
    assert "expected" in alert.title and alert.labels["alertname"] == "Checkout latency"
    explorer = next(link["href"] for link in alert.links if link["text"] == "Explorer")
    assert f"series={found.series_id}" in explorer
    assert f"start={int(times[5]) - 3600}" in explorer
    services.process_pending_alerts()
    assert Incident.objects.get().status == "triggered"

    # Quiet for five minutes: the anomaly ends and the alert (and its incident) resolve.
    times = write(normal(6, history["index"] + 8), end=times[-1] + 6 * STEP)
    run = services.score_monitor(monitor_id=watched.pk, now=at(times[-1]))
    assert run.resolved == 1 and run.opened == 0
    found.refresh_from_db()
    assert found.ended_at is not None and found.last_above_at == at(history["next"] + 5 * STEP)
    assert Alert.objects.get().status == "resolved"
    services.process_pending_alerts()
    assert Incident.objects.get().status == "resolved"


def test_a_restart_resumes_from_the_stored_state_with_the_same_scores(operator, history):
    watched = monitor(operator)
    services.score_monitor(monitor_id=watched.pk, now=at(history["next"]))
    values = normal(20, history["index"])
    values[10] -= 30
    times = write(values, end=history["next"] + 19 * STEP)
    # The state as stored, read back as a restarted worker would: the new samples score as one unbroken run does.
    row = AnomalySeries.objects.get()
    stored = anomaly.SeriesState.from_bytes(bytes(row.state))
    detector = anomaly.get_detector()
    resumed = detector.catch_up(stored, np.array(times), values)
    whole = detector.score(np.array(write(normal(600), end=history["next"] - STEP) + times),
                           np.concatenate((normal(600), values)))  # fmt: skip
    assert np.allclose(resumed, whole[600:], rtol=0, atol=1e-9)
    services.score_monitor(monitor_id=watched.pk, now=at(times[-1]))
    row.refresh_from_db()
    assert row.last_score == pytest.approx(resumed[-1]) and row.samples_seen == 620
    found = Anomaly.objects.get()
    assert found.started_at == at(times[10]) and found.peak_score == pytest.approx(resumed[10])
    # Scoring again without new samples changes nothing.
    again = services.score_monitor(monitor_id=watched.pk, now=at(times[-1] + 30))
    assert again.samples == 0 and Anomaly.objects.count() == 1


def test_a_state_the_detector_no_longer_fits_starts_the_series_afresh(operator, history):
    """A state stored under other settings (an upgrade changed a window) is not resumed: the series is read
    again from its history, as on first sight, and scoring goes on."""
    watched = monitor(operator)
    services.score_monitor(monitor_id=watched.pk, now=at(history["next"]))
    row = AnomalySeries.objects.get()
    stale = anomaly.SeriesState.from_bytes(bytes(row.state))
    stale.arrays["values"] = stale.arrays["values"][:10]  # the layout of another configuration
    row.state = stale.to_bytes()
    row.save(update_fields=["state"])
    times = write(normal(5, history["index"]), end=history["next"] + 4 * STEP)
    run = services.score_monitor(monitor_id=watched.pk, now=at(times[-1]))
    # The whole history is read again (600 old samples and the 5 new ones), none of it alarming.
    assert run.series == 1 and run.samples == 605 and run.opened == 0
    row.refresh_from_db()
    assert row.samples_seen == 605 and row.last_time == at(times[-1])
    assert anomaly.get_detector().fits(anomaly.SeriesState.from_bytes(bytes(row.state)))


def test_history_read_on_first_sight_only_teaches_the_detector(operator):
    now = timezone.now().timestamp() // STEP * STEP
    values = normal(700)
    values[500] += 50  # three hours ago, over long since
    write(values, end=now)
    watched = monitor(operator)
    run = services.score_monitor(monitor_id=watched.pk, now=at(now))
    assert run.samples == 700 and run.opened == 0 and not Anomaly.objects.exists() and not Alert.objects.exists()
    # A spike after that is found.
    spike = normal(2, 700)
    spike[0] += 50
    times = write(spike, end=now + 2 * STEP)
    run = services.score_monitor(monitor_id=watched.pk, now=at(times[-1]))
    assert run.opened == 1 and run.fired == 1 and Anomaly.objects.get().started_at == at(times[0])


# --- Feedback ----------------------------------------------------------------------------------------------


def test_not_interesting_keeps_the_anomaly_resolves_its_alert_and_raises_the_threshold(operator, viewer, history):
    watched = monitor(operator)
    services.score_monitor(monitor_id=watched.pk, now=at(history["next"]))
    values = normal(3, history["index"])
    values[1] += 40
    times = write(values, end=history["next"] + 2 * STEP)
    services.score_monitor(monitor_id=watched.pk, now=at(times[-1]))
    found = Anomaly.objects.get()
    before = live.threshold_for("medium")
    assert Alert.objects.get().status == "firing"

    page = client_for(operator).post(f"/aiops/metrics/anomalies/anomaly/{found.pk}/not-interesting/")
    assert page.status_code == 302
    found.refresh_from_db()
    assert found.not_interesting and found.feedback_by == operator and found.feedback_at is not None
    assert Alert.objects.get().status == "resolved"
    row = AnomalySeries.objects.get()
    assert row.threshold_steps == 1
    assert live.threshold_for("medium", row.threshold_steps) > before
    assert AuditEntry.objects.filter(changes__feedback=["", "not_interesting"]).exists()
    # A repeat changes nothing; viewers may not give feedback.
    services.set_anomaly_feedback(anomaly_row=found, feedback="not_interesting", actor=operator)
    assert AnomalySeries.objects.get().threshold_steps == 1
    assert client_for(viewer).post(f"/aiops/metrics/anomalies/anomaly/{found.pk}/not-interesting/").status_code == 403
    # The monitors page counts it in the precision: 0 of 1 anomaly kept as interesting.
    html = client_for(viewer).get("/aiops/metrics/anomalies/").content.decode()
    assert 'data-precision="0%"' in html and "0 of 1" in html


def test_the_raised_threshold_lets_a_spike_of_the_same_size_pass(operator, history):
    watched = monitor(operator)
    services.score_monitor(monitor_id=watched.pk, now=at(history["next"]))
    row = AnomalySeries.objects.get()
    # The band at the same point widens with each notch: the same deviation scores under a higher threshold.
    state = anomaly.SeriesState.from_bytes(bytes(row.state))
    detector = anomaly.get_detector()
    batch = anomaly.StateBatch.stack([state])
    bands = []
    for steps in (0, 1, 3):
        low, high = live.expected_bands(
            detector, batch, np.array([history["next"]]), np.array([live.threshold_for("medium", steps)]),
            np.array([50.0]), np.array([3.0]), np.array([50.0]),
        )  # fmt: skip
        bands.append((low[0], high[0]))
    assert bands[0][0] > bands[1][0] > bands[2][0] and bands[0][1] < bands[1][1] < bands[2][1]
    # The band's edges are the detector's own: just inside scores under the threshold, just outside at or above.
    threshold = live.threshold_for("medium")
    low, high = bands[0]
    inside = detector.update(anomaly.StateBatch.stack([state] * 2), np.array([history["next"]] * 2),
                             np.array([low + 1e-3 * (high - low), high - 1e-3 * (high - low)]))  # fmt: skip
    outside = detector.update(anomaly.StateBatch.stack([state] * 2), np.array([history["next"]] * 2),
                              np.array([low - 0.02 * (high - low), high + 0.02 * (high - low)]))  # fmt: skip
    assert (inside < threshold).all() and (outside >= threshold).all()


# --- Input -------------------------------------------------------------------------------------------------


def test_bad_input_names_the_field_and_stores_nothing(operator, operator_api):
    base = {"name": "Latency", "selector": NAME, "sensitivity": "medium"}
    for change, field in (
        ({"selector": "x{"}, "selector"),
        ({"selector": ""}, "selector"),
        ({"sensitivity": "extreme"}, "sensitivity"),
        ({"detector": "magic"}, "detector"),
        ({"severity": "loud"}, "severity"),
        ({"name": ""}, "name"),
    ):
        answer = operator_api.post("/api/v1/aiops/anomalies/monitors/", {**base, **change}, format="json")
        assert answer.status_code == 400, change
        assert field in answer.json()["errors"], answer.json()
    assert not AnomalyMonitor.objects.exists()
    created = operator_api.post("/api/v1/aiops/anomalies/monitors/", base, format="json")
    assert created.status_code == 201 and created.json()["detector"] == "ensemble"
    dup = operator_api.post("/api/v1/aiops/anomalies/monitors/", base, format="json")
    assert dup.status_code == 400 and "name" in dup.json()["errors"]
    page = client_for(operator).post("/aiops/metrics/anomalies/new/", {**base, "name": "Other", "selector": "a{",
                                                                         "detector": "ensemble", "severity": "warning",
                                                                         "enabled": "on"})  # fmt: skip
    assert page.status_code == 400 and "selector" in page.context["form"].errors
    assert AnomalyMonitor.objects.count() == 1


def test_feedback_through_the_api_and_a_bad_value(operator, operator_api, viewer_api, history):
    watched = monitor(operator)
    services.score_monitor(monitor_id=watched.pk, now=at(history["next"]))
    values = normal(3, history["index"])
    values[1] += 40
    times = write(values, end=history["next"] + 2 * STEP)
    services.score_monitor(monitor_id=watched.pk, now=at(times[-1]))
    found = Anomaly.objects.get()
    listed = viewer_api.get("/api/v1/aiops/anomalies/", {"monitor": watched.pk, "open": "true"}).json()
    assert listed["count"] == 1
    item = listed["results"][0]
    assert item["peak_score"] == pytest.approx(found.peak_score) and item["expected_low"] == found.expected_low
    assert item["feedback"] == "none" and item["alert"] == found.alert_id
    bad = operator_api.post(f"/api/v1/aiops/anomalies/{found.pk}/feedback/", {"feedback": "boring"}, format="json")
    assert bad.status_code == 400 and "feedback" in bad.json()["errors"]
    assert viewer_api.post(f"/api/v1/aiops/anomalies/{found.pk}/feedback/", {"feedback": "not_interesting"},
                           format="json").status_code == 403  # fmt: skip
    done = operator_api.post(f"/api/v1/aiops/anomalies/{found.pk}/feedback/", {"feedback": "not_interesting"},
                             format="json")  # fmt: skip
    assert done.status_code == 200 and done.json()["feedback"] == "not_interesting"
    assert AnomalySeries.objects.get().threshold_steps == 1
    detail = viewer_api.get(f"/api/v1/aiops/anomalies/monitors/{watched.pk}/").json()
    assert detail["precision"] == 0.0 and detail["anomalies_counted"] == 1 and detail["open_anomalies"] == 1
    (series,) = detail["series"]
    assert series["threshold_steps"] == 1 and series["threshold"] > live.threshold_for("medium")


# --- Pages and queries ------------------------------------------------------------------------------------


def make_monitors(actor, count: int, now: float, first: int = 0) -> None:
    for index in range(first, first + count):
        labels = {"job": f"svc{index}", "instance": "a"}
        write(normal(400, seed=index), end=now - 2 * STEP, labels=labels)
        watched = monitor(actor, name=f"Latency {index}", selector=f'{NAME}{{job="svc{index}"}}')
        services.score_monitor(monitor_id=watched.pk, now=at(now - 2 * STEP))
        spike = normal(2, 400, seed=index)
        spike[0] += 40
        write(spike, end=now, labels=labels)
        services.score_monitor(monitor_id=watched.pk, now=at(now))


def test_the_lists_take_the_same_queries_for_more_monitors(operator, viewer, viewer_api):
    now = timezone.now().timestamp() // STEP * STEP
    make_monitors(operator, 2, now)
    client = client_for(viewer)

    def counted(url, api=False):
        with CaptureQueriesContext(connection) as queries:
            answer = (viewer_api if api else client).get(url)
            assert answer.status_code == 200
        return len(queries)

    counted("/api/v1/aiops/anomalies/", True)  # the token's first use is recorded once
    page, monitors_api, anomalies_api = (counted("/aiops/metrics/anomalies/"),
                                         counted("/api/v1/aiops/anomalies/monitors/", True),
                                         counted("/api/v1/aiops/anomalies/", True))  # fmt: skip
    make_monitors(operator, 3, now - 7200, first=2)
    assert AnomalyMonitor.objects.count() == 5
    assert counted("/aiops/metrics/anomalies/") == page
    assert counted("/api/v1/aiops/anomalies/monitors/", True) == monitors_api
    assert counted("/api/v1/aiops/anomalies/", True) == anomalies_api
    html = client.get("/aiops/metrics/anomalies/").content.decode()
    assert "Latency 4" in html and 'data-open="1"' in html


def test_the_monitor_page_lists_its_series_and_anomalies(operator, viewer, history):
    watched = monitor(operator)
    services.score_monitor(monitor_id=watched.pk, now=at(history["next"]))
    values = normal(3, history["index"])
    values[1] += 40
    times = write(values, end=history["next"] + 2 * STEP)
    services.score_monitor(monitor_id=watched.pk, now=at(times[-1]))
    html = client_for(viewer).get(f"/aiops/metrics/anomalies/{watched.pk}/").content.decode()
    assert "Checkout latency" in html and 'id="anomaly-series"' in html and 'id="anomaly-list"' in html
    assert "Not interesting" not in html  # viewers cannot mark
    html = client_for(operator).get(f"/aiops/metrics/anomalies/{watched.pk}/").content.decode()
    assert "Not interesting" in html
    assert client_for(operator).get("/aiops/metrics/anomalies/new/").status_code == 200
    assert client_for(viewer).get("/aiops/metrics/anomalies/new/").status_code == 403


def test_disabling_or_deleting_a_monitor_resolves_its_alerts(operator, history):
    watched = monitor(operator)
    services.score_monitor(monitor_id=watched.pk, now=at(history["next"]))
    values = normal(3, history["index"])
    values[1] += 40
    times = write(values, end=history["next"] + 2 * STEP)
    services.score_monitor(monitor_id=watched.pk, now=at(times[-1]))
    assert Alert.objects.get().status == "firing"
    services.save_anomaly_monitor(actor=operator, monitor=watched, enabled=False)
    assert Alert.objects.get().status == "resolved" and Anomaly.objects.get().ended_at is not None
    assert services.score_monitor(monitor_id=watched.pk) is None
    client = client_for(operator)
    assert client.post(f"/aiops/metrics/anomalies/{watched.pk}/delete/").status_code == 302
    assert not AnomalyMonitor.objects.exists() and not Anomaly.objects.exists()


def test_the_explorer_draws_the_band_and_shades_the_anomaly(operator, viewer, history):
    watched = monitor(operator)
    services.score_monitor(monitor_id=watched.pk, now=at(history["next"]))
    values = normal(3, history["index"])
    values[1] += 40
    times = write(values, end=history["next"] + 2 * STEP)
    services.score_monitor(monitor_id=watched.pk, now=at(times[-1]))
    found = Anomaly.objects.get()
    page = client_for(viewer).get("/aiops/metrics/", {"series": found.series_id, "range": "6h"})
    assert page.status_code == 200
    figure = page.context["chart"]
    names = [trace.get("name", "") for trace in figure["data"]]
    assert "expected band (Checkout latency)" in names
    shapes = [s for s in figure["layout"]["shapes"] if s.get("name", "").startswith("anomaly")]
    assert len(shapes) == 1 and shapes[0]["type"] == "rect"
    band = next(t for t in figure["data"] if t.get("name") == "expected band (Checkout latency)")
    assert sum(1 for v in band["y"] if v is not None and math.isfinite(v)) > 100
    html = page.content.decode()
    assert 'class="anomaly-monitor"' in html and "Checkout latency" in html


def test_the_demo_seeds_a_series_with_an_anomaly(operator):
    from aiops.anomaly_demo import seed_anomalies

    assert seed_anomalies(actor=operator) is True
    found, *earlier = Anomaly.objects.order_by("-started_at")
    assert found.monitor.name == "Checkout latency (demo)" and found.is_open and found.alert is not None
    # The burst of three hours ago: recorded, over, its alert raised and resolved.
    assert earlier and all(one.ended_at is not None for one in earlier)
    assert not Alert.objects.filter(status="firing").exclude(pk=found.alert_id).exists()
    assert seed_anomalies(actor=operator) is False


# --- A real worker -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
def test_a_worker_raises_and_resolves_an_anomaly_alert(operator_api, worker):
    now = timezone.now().timestamp() // STEP * STEP
    write(normal(600), end=now - 20 * STEP)
    body = {"name": "Checkout latency", "selector": NAME, "service": "checkout"}
    created = operator_api.post("/api/v1/aiops/anomalies/monitors/", body, format="json")
    assert created.status_code == 201
    # The periodic task, as beat sends it every minute: the worker catches the series up and stores its state.
    enqueue.send("aiops.tasks.collect_anomalies")
    assert wait_for(lambda: AnomalySeries.objects.filter(samples_seen=600).exists(), timeout=60)
    spike = normal(3, 600)
    spike[0] += 40
    write(spike, end=now - 17 * STEP)
    enqueue.send("aiops.tasks.collect_anomalies")
    assert wait_for(lambda: Incident.objects.filter(service="checkout").exists(), timeout=60)
    alert = Alert.objects.get(fingerprint__startswith="anomaly:")
    assert alert.status == "firing" and float(alert.annotations["score"]) >= live.threshold_for("medium")
    assert alert.annotations["expected"] and Anomaly.objects.get().is_open
    # Seven quiet minutes later the worker ends the anomaly; the alert and its incident resolve.
    write(normal(7, 603), end=now - 10 * STEP)
    enqueue.send("aiops.tasks.collect_anomalies")
    assert wait_for(lambda: Incident.objects.get().status == "resolved", timeout=60)
    assert Alert.objects.get().status == "resolved" and Anomaly.objects.get().ended_at is not None
