"""Capacity forecasts: a filling disk is full on time, flat usage never; warnings open and resolve incidents."""

from __future__ import annotations

import datetime
import math

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aiops import forecasting, services
from aiops.metrics import partitions, store
from aiops.models import Alert, CapacityForecast, CapacityForecastResult, Incident
from opsportal import enqueue
from opsportal.audit.models import AuditEntry
from tests.helpers import client_for, wait_for

pytestmark = pytest.mark.django_db

GB = 1e9
DAY = 86400
STEP = 300
FS = {"job": "node", "instance": "db1:9100", "device": "/dev/sda1", "mountpoint": "/data", "service": "db"}


@pytest.fixture(autouse=True)
def _fresh_caches():
    store.CACHE.clear()
    partitions.forget_known()
    yield
    store.CACHE.clear()
    partitions.forget_known()


def disk(
    labels: dict[str, str],
    *,
    used_gb: float,
    per_day_gb: float,
    size_gb: float = 500.0,
    days: float = 7.0,
    end: datetime.datetime | None = None,
    swing_gb: float = 10.0,
    noise_gb: float = 1.0,
    seed: int = 1,
) -> float:
    """`days` of a filesystem every 5 minutes up to `end`: used bytes growing `per_day_gb` a day with a daily swing.

    Writes node_filesystem_used_bytes (at `used_gb` at `end`) and node_filesystem_size_bytes; returns the
    days until the used bytes' trend and daily peak reach the size.
    """
    end = end or timezone.now()
    rng = np.random.default_rng(seed)
    count = int(days * DAY / STEP)
    stamps = end.timestamp() - STEP * np.arange(count)[::-1]
    ago = (stamps - stamps[-1]) / DAY  # 0 at the end, negative before
    used = (used_gb + per_day_gb * ago + swing_gb * np.sin(2 * np.pi * stamps / DAY)) * GB
    used += rng.normal(0, noise_gb * GB, count)
    used_key = store.series_key("node_filesystem_used_bytes", labels)
    size_key = store.series_key("node_filesystem_size_bytes", labels)
    samples = [(used_key, float(at), float(value)) for at, value in zip(stamps, used, strict=True)]
    samples += [(size_key, float(at), size_gb * GB) for at in stamps[::12]]
    store.write_samples(samples, kinds={used_key: "gauge", size_key: "gauge"})
    # Full when the trend plus the daily peak reaches the size.
    return (size_gb - swing_gb - used_gb) / per_day_gb if per_day_gb else math.inf


def disk_forecast(actor, **overrides) -> CapacityForecast:
    values = {
        "name": "Data disks",
        "usage_selector": 'node_filesystem_used_bytes{mountpoint="/data"}',
        "limit_kind": "series",
        "limit_selector": "node_filesystem_size_bytes",
        "match_labels": ["instance", "device", "mountpoint"],
        "horizon_days": 14,
        "severity": "warning",
    }
    return services.save_capacity_forecast(actor=actor, **{**values, **overrides})


def days_from(now: datetime.datetime, at: datetime.datetime | None) -> float | None:
    return None if at is None else (at - now).total_seconds() / DAY


# --- The forecast ---------------------------------------------------------------------------------------------


def test_a_filling_disk_with_daily_seasonality_is_full_on_time_with_mase(operator):
    now = timezone.now()
    expected = disk(FS, used_gb=300, per_day_gb=6, end=now)  # about 31.7 days
    forecast = disk_forecast(operator)
    run = services.compute_forecast(forecast_id=forecast.pk, now=now)
    assert run.series == 1 and run.errors == 0
    result = CapacityForecastResult.objects.get()
    assert result.error == "" and result.limit == 500 * GB and result.limit_series.name == "node_filesystem_size_bytes"
    full, earliest, latest = (
        days_from(now, at) for at in (result.full_at, result.full_at_earliest, result.full_at_latest)
    )
    assert abs(full - expected) < 2.5, (full, expected)
    assert earliest <= full <= latest
    assert earliest > expected - 5 and latest < expected + 5
    # The daily swing was found: a seasonal model at an hourly step, and it beats the naive forecast.
    assert result.model == "ETS(A,A,A) season 24 steps" and result.step_seconds == 3600
    assert result.mase is not None and 0 < result.mase < 1
    assert not result.alerting and result.state == "ok"
    forecast.refresh_from_db()
    assert forecast.state == "ok" and forecast.last_error == "" and forecast.last_run_at == now
    text = services.full_text(result, now)
    assert text.startswith(f"full in {full:.0f} days (") and "\u2013" in text
    # The drawn forecast runs past the latest full time, mean between the interval's lines.
    curve = result.curve
    assert curve["times"][-1] >= result.full_at_latest.timestamp()
    assert all(lo <= mid <= hi for lo, mid, hi in zip(curve["lower"], curve["mean"], curve["upper"], strict=True))
    assert not Alert.objects.exists()
    # What a page showing this series says of it (the explorer's details).
    (said,) = services.series_forecasts(series_ids=[result.series_id], now=now)[result.series_id]
    assert said.text == text and said.forecast == "Data disks" and said.url.endswith(f"?series={result.series_id}")


def test_flat_usage_is_never_full(operator):
    now = timezone.now()
    disk(FS, used_gb=200, per_day_gb=0, swing_gb=5, end=now)
    forecast = disk_forecast(operator)
    services.compute_forecast(forecast_id=forecast.pk, now=now)
    result = CapacityForecastResult.objects.get()
    assert result.error == ""
    assert result.full_at is None and result.full_at_earliest is None and result.full_at_latest is None
    assert services.full_text(result, now) == "not full within 365 days"
    assert result.mase is not None and result.state == "ok" and not Alert.objects.exists()


def test_constant_and_percentage_limits_and_the_pure_model():
    rng = np.random.default_rng(5)
    step = 3600
    times = 1.7e9 + step * np.arange(24 * 6)
    values = 40 + 2 * (times - times[0]) / DAY + rng.normal(0, 0.3, len(times))  # 2 points a day from 40
    result = forecasting.forecast(times, values, step=step, limit=100, horizon_days=7)
    days = (result.full_at - times[-1]) / DAY
    assert abs(days - (100 - 52) / 2) < 2.5
    assert result.full_at_earliest <= result.full_at <= result.full_at_latest
    assert result.seasonal_period == 0  # no daily swing in this one: the backtest prefers no season
    with pytest.raises(forecasting.ForecastError, match="at least 24"):
        forecasting.forecast(times[:10], values[:10], step=step, limit=100, horizon_days=7)
    gappy = values.copy()
    gappy[::3] = np.nan
    gappy[1::3] = np.nan
    with pytest.raises(forecasting.ForecastError, match="missing"):
        forecasting.forecast(times, gappy, step=step, limit=100, horizon_days=7)
    assert forecasting.choose_step(DAY) == 300 and forecasting.choose_step(10 * DAY) == 3600
    assert forecasting.choose_step(200 * DAY) == 10800


def test_a_usage_series_without_its_limit_series_or_history_is_an_error_on_that_series(operator):
    now = timezone.now()
    disk(FS, used_gb=300, per_day_gb=6, end=now)
    other = {**FS, "instance": "db2:9100"}
    key = store.series_key("node_filesystem_used_bytes", other)
    store.write_samples([(key, now.timestamp() - 60 * i, 10 * GB) for i in range(30)], kinds={key: "gauge"})
    forecast = disk_forecast(operator, match_labels=["instance"])
    run = services.compute_forecast(forecast_id=forecast.pk, now=now)
    assert run.series == 2 and run.errors == 1
    broken = CapacityForecastResult.objects.get(series__labels__instance="db2:9100")
    assert broken.error == "no series of node_filesystem_size_bytes has the same instance."
    forecast.refresh_from_db()
    assert forecast.state == "ok" and "1 of 2 series could not be forecast" in forecast.last_error
    # Its page says why, on the series and above.
    html = client_for(operator).get(f"/aiops/metrics/forecasts/{forecast.pk}/?series={broken.series_id}").content
    assert b"Not forecast: no series of node_filesystem_size_bytes has the same instance." in html
    assert b"1 of 2 series could not be forecast" in html
    # With a constant limit the short series is refused for its history instead.
    services.save_capacity_forecast(actor=operator, forecast=forecast, limit_kind="constant", limit_value=500 * GB)
    services.compute_forecast(forecast_id=forecast.pk, now=now)
    broken.refresh_from_db()
    assert broken.error == "the history spans less than 2 hours."


# --- Alerts ---------------------------------------------------------------------------------------------------


def test_a_disk_full_within_the_horizon_warns_and_the_warning_resolves_after_a_clean_up(operator):
    start = timezone.now() - datetime.timedelta(days=1)
    disk(FS, used_gb=420, per_day_gb=12, end=start, days=6)  # about 5.8 days from `start`
    forecast = disk_forecast(operator, horizon_days=7, severity="error", service="storage")
    run = services.compute_forecast(forecast_id=forecast.pk, now=start)
    assert run.fired == 1 and run.alerting == 1
    result = CapacityForecastResult.objects.get()
    assert result.alerting and result.state == "warning"
    assert days_from(start, result.full_at_earliest) <= 7
    alert = Alert.objects.get(source="metrics")
    assert alert.fingerprint == f"forecast:{forecast.pk}:{result.series_id}"
    assert alert.severity == "error" and alert.service == "storage" and alert.status == "firing"
    assert alert.title.startswith("Data disks: node_filesystem_used_bytes full in ")
    assert alert.labels["mountpoint"] == "/data" and alert.labels["alertname"] == "Data disks"
    assert alert.annotations["forecast_id"] == str(forecast.pk) and float(alert.annotations["mase"]) > 0
    assert [link["text"] for link in alert.links] == ["Forecast", "Series"]
    services.process_pending_alerts()
    incident = Incident.objects.get()
    assert incident.status == "triggered"
    forecast.refresh_from_db()
    assert forecast.state == "warning"
    # Computed again while still filling: the same alert, no second incident.
    again = services.compute_forecast(forecast_id=forecast.pk, now=start)
    assert again.fired == 0 and Alert.objects.filter(source="metrics").count() == 1
    # A clean-up: usage falls to 100 GB and stays flat for the last day.
    now = timezone.now()
    labels_key = store.series_key("node_filesystem_used_bytes", FS)
    stamps = np.arange(start.timestamp() + STEP, now.timestamp(), STEP)
    rng = np.random.default_rng(9)
    store.write_samples([(labels_key, float(at), float(100 * GB + rng.normal(0, GB))) for at in stamps])
    run = services.compute_forecast(forecast_id=forecast.pk, now=now)
    assert run.resolved == 1 and run.alerting == 0
    result.refresh_from_db()
    assert not result.alerting and (result.full_at_earliest is None or days_from(now, result.full_at_earliest) > 7)
    services.process_pending_alerts()
    assert Alert.objects.get(source="metrics").status == "resolved"
    assert Incident.objects.get().status == "resolved"


def test_deleting_or_disabling_a_forecast_resolves_its_warnings(operator):
    now = timezone.now()
    disk(FS, used_gb=450, per_day_gb=15, end=now)
    forecast = disk_forecast(operator)
    assert services.compute_forecast(forecast_id=forecast.pk, now=now).fired == 1
    services.save_capacity_forecast(actor=operator, forecast=forecast, enabled=False)
    assert Alert.objects.get(source="metrics").status == "resolved"
    assert services.compute_forecast(forecast_id=forecast.pk, now=now) is None  # disabled: not fitted
    services.save_capacity_forecast(actor=operator, forecast=forecast, enabled=True)
    assert services.compute_forecast(forecast_id=forecast.pk, now=now).fired == 1
    services.delete_capacity_forecast(forecast=forecast, actor=operator)
    assert set(Alert.objects.values_list("status", flat=True)) == {"resolved"}
    assert not CapacityForecastResult.objects.exists()
    assert AuditEntry.objects.filter(action="delete", object_repr="Data disks").exists()


def test_due_forecasts_are_refitted_hourly(operator):
    now = timezone.now()
    disk(FS, used_gb=300, per_day_gb=6, end=now, days=4)
    forecast = disk_forecast(operator)  # due at once
    now = timezone.now()
    assert services.update_due_forecasts(now=now)["forecasts"] == 1
    assert services.update_due_forecasts(now=now)["forecasts"] == 0  # not due again for an hour
    later = now + datetime.timedelta(seconds=services.forecasts.REFRESH_SECONDS + 1)
    assert services.update_due_forecasts(now=later)["forecasts"] == 1
    forecast.refresh_from_db()
    assert forecast.last_run_at == later


# --- API --------------------------------------------------------------------------------------------------------


def test_the_api_creates_a_forecast_runs_it_and_answers_its_results(viewer_api, operator_api):
    now = timezone.now()
    disk(FS, used_gb=300, per_day_gb=6, end=now)
    body = {
        "name": "Data disks",
        "usage_selector": 'node_filesystem_used_bytes{mountpoint="/data"}',
        "limit_kind": "series",
        "limit_selector": "node_filesystem_size_bytes",
        "match_labels": ["instance", "mountpoint"],
        "horizon_days": 45,
    }
    assert viewer_api.post("/api/v1/aiops/forecasts/", body, format="json").status_code == 403
    created = operator_api.post("/api/v1/aiops/forecasts/", body, format="json")
    assert created.status_code == 201, created.content
    forecast_id = created.json()["id"]
    assert created.json()["state"] == "pending" and created.json()["results"] == []
    ran = operator_api.post(f"/api/v1/aiops/forecasts/{forecast_id}/run/")
    assert ran.status_code == 200, ran.content
    listed = viewer_api.get("/api/v1/aiops/forecasts/").json()
    assert listed["count"] == 1
    (result,) = listed["results"][0]["results"]
    assert result["series"].startswith("node_filesystem_used_bytes{") and result["error"] == ""
    assert 25 < (datetime.datetime.fromisoformat(result["full_at"]) - now).total_seconds() / DAY < 38
    assert result["full_at_earliest"] <= result["full_at"] <= result["full_at_latest"]
    assert result["mase"] > 0 and result["summary"].startswith("full in ")
    # Within a 45-day horizon the earliest time warns.
    assert result["alerting"] is True and result["state"] == "warning"
    assert listed["results"][0]["state"] == "warning"
    patched = operator_api.patch(f"/api/v1/aiops/forecasts/{forecast_id}/", {"horizon_days": 7}, format="json")
    assert patched.status_code == 200 and patched.json()["horizon_days"] == 7
    assert operator_api.delete(f"/api/v1/aiops/forecasts/{forecast_id}/").status_code == 204
    assert not CapacityForecast.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"usage_selector": "node_filesystem_used_bytes{"}, "usage_selector"),
        ({"usage_selector": ""}, "usage_selector"),
        ({"limit_kind": "guess"}, "limit_kind"),
        ({"limit_kind": "constant", "limit_value": None}, "limit_value"),
        ({"limit_kind": "constant", "limit_value": -5}, "limit_value"),
        ({"limit_kind": "series", "limit_selector": ""}, "limit_selector"),
        ({"limit_kind": "series", "limit_selector": "size{a=~"}, "limit_selector"),
        ({"limit_kind": "series", "limit_selector": "size", "match_labels": ["in valid"]}, "match_labels"),
        ({"horizon_days": 0}, "horizon_days"),
        ({"horizon_days": 1000}, "horizon_days"),
        ({"horizon_days": "soon"}, "horizon_days"),
        ({"severity": "urgent"}, "severity"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_stores_nothing(operator_api, change, field):
    body = {"name": "Quota", "usage_selector": "quota_used_bytes", "limit_kind": "constant", "limit_value": 100.0}
    body.update(change)
    answer = operator_api.post("/api/v1/aiops/forecasts/", body, format="json")
    assert answer.status_code == 400, answer.content
    assert field in answer.json()["errors"], answer.json()
    assert not CapacityForecast.objects.exists() and not AuditEntry.objects.filter(model="capacityforecast").exists()


def test_the_openapi_schema_documents_the_forecasts_api(viewer_api):
    schema = viewer_api.get("/api/schema/?format=json").json()
    assert "/api/v1/aiops/forecasts/" in schema["paths"]
    assert "/api/v1/aiops/forecasts/{id}/run/" in schema["paths"]
    result = schema["components"]["schemas"]["ForecastResult"]["properties"]
    assert {"full_at", "full_at_earliest", "full_at_latest", "mase", "fitted_at", "error"} <= set(result)


# --- Pages ------------------------------------------------------------------------------------------------------


def test_the_list_is_soonest_first_in_a_fixed_number_of_queries(operator, viewer, viewer_api):
    now = timezone.now()
    disk(FS, used_gb=300, per_day_gb=6, end=now, days=4, seed=1)  # about 32 days
    disk({**FS, "instance": "db2:9100"}, used_gb=400, per_day_gb=10, end=now, days=4, seed=2)  # about 9 days
    forecast = disk_forecast(operator)
    services.compute_forecast(forecast_id=forecast.pk, now=now)
    client = client_for(viewer)
    with CaptureQueriesContext(connection) as few:
        page = client.get("/aiops/metrics/forecasts/")
    assert page.status_code == 200
    viewer_api.get("/api/v1/aiops/")  # the token is looked up once, then cached
    with CaptureQueriesContext(connection) as few_api:
        assert len(viewer_api.get("/api/v1/aiops/forecasts/").json()["results"][0]["results"]) == 2
    html = page.content.decode()
    assert html.index("db2:9100") < html.index("db1:9100")
    assert html.count("full in ") >= 2 and "MASE" in html
    for index in range(3, 8):
        labels = {**FS, "instance": f"db{index}:9100"}
        disk(labels, used_gb=100 + 10 * index, per_day_gb=5, end=now, days=4, seed=index)
    services.compute_forecast(forecast_id=forecast.pk, now=now)
    services.save_capacity_forecast(actor=operator, name="Quota", usage_selector="quota_used", limit_kind="percentage")
    with CaptureQueriesContext(connection) as more:
        page = client.get("/aiops/metrics/forecasts/")
    assert page.status_code == 200 and page.content.decode().count('id="forecast-result-') == 7
    assert "Quota" in page.content.decode() and "not computed yet" in page.content.decode()
    assert len(more.captured_queries) == len(few.captured_queries)
    with CaptureQueriesContext(connection) as more_api:
        listed = viewer_api.get("/api/v1/aiops/forecasts/").json()["results"]
    assert sorted(len(f["results"]) for f in listed) == [0, 7]
    assert len(more_api.captured_queries) == len(few_api.captured_queries)


def test_the_forecast_page_draws_history_forecast_band_limit_and_full_date(operator, viewer):
    now = timezone.now()
    disk(FS, used_gb=300, per_day_gb=6, end=now)
    forecast = disk_forecast(operator)
    services.compute_forecast(forecast_id=forecast.pk, now=now)
    page = client_for(viewer).get(f"/aiops/metrics/forecasts/{forecast.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="forecast-summary">Full in ' in html and "Backtest MASE" in html
    figure = page.context["chart"]
    names = [trace.get("name") for trace in figure["data"]]
    assert names == ["95% interval (lower)", "95% prediction interval", "history", "forecast"]
    shapes = {shape["name"] for shape in figure["layout"]["shapes"]}
    assert {"limit", "full", "full between", "horizon"} <= shapes
    limit = next(shape for shape in figure["layout"]["shapes"] if shape["name"] == "limit")
    assert limit["y0"] == 500 * GB
    history = next(trace for trace in figure["data"] if trace["name"] == "history")
    assert len(history["x"]) >= 24 * 6
    # Not logged in: the login page.
    anonymous = client_for(viewer).__class__().get(f"/aiops/metrics/forecasts/{forecast.pk}/")
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


def test_the_form_names_a_bad_field_and_saves_nothing_then_creates_edits_and_deletes(operator, viewer):
    client = client_for(operator)
    base = {
        "name": "Root disk", "usage_selector": 'node_filesystem_used_bytes{mountpoint="/"}', "limit_kind": "constant",
        "limit_value": "", "limit_selector": "", "match_labels": "", "horizon_days": "14", "severity": "warning",
        "service": "", "description": "", "enabled": "on",
    }  # fmt: skip
    refused = client.post("/aiops/metrics/forecasts/new/", base)
    assert refused.status_code == 400
    assert refused.context["form"].errors == {"limit_value": ["required for a constant limit."]}
    assert not CapacityForecast.objects.exists()
    bad_selector = client.post("/aiops/metrics/forecasts/new/", {**base, "limit_value": "100", "usage_selector": "x{"})
    assert bad_selector.status_code == 400 and "usage_selector" in bad_selector.context["form"].errors
    saved = client.post("/aiops/metrics/forecasts/new/", {**base, "limit_kind": "series",
                                                          "limit_selector": "node_filesystem_size_bytes",
                                                          "match_labels": "instance, mountpoint"})  # fmt: skip
    assert saved.status_code == 302
    forecast = CapacityForecast.objects.get()
    assert forecast.match_labels == ["instance", "mountpoint"] and forecast.limit_kind == "series"
    edit = client.get(f"/aiops/metrics/forecasts/{forecast.pk}/edit/")
    assert edit.status_code == 200 and 'value="instance, mountpoint"' in edit.content.decode()
    assert client_for(viewer).get("/aiops/metrics/forecasts/new/").status_code == 403
    assert client_for(viewer).post(f"/aiops/metrics/forecasts/{forecast.pk}/delete/").status_code == 403
    deleted = client.post(f"/aiops/metrics/forecasts/{forecast.pk}/delete/")
    assert deleted.status_code == 302 and deleted["Location"] == "/aiops/metrics/forecasts/"
    assert not CapacityForecast.objects.exists()


def test_the_overview_shows_the_soonest_forecasts(operator, viewer):
    now = timezone.now()
    disk(FS, used_gb=400, per_day_gb=10, end=now, days=4)
    forecast = disk_forecast(operator)
    services.compute_forecast(forecast_id=forecast.pk, now=now)
    page = client_for(viewer).get("/")
    html = page.content.decode()
    assert 'id="aiops-soonest-full"' in html and "Capacity forecasts: soonest full" in html
    assert 'data-stat="forecasts-full-within-horizon">1<' in html


# --- A real worker ----------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
def test_a_worker_fits_a_saved_forecast_opens_the_incident_and_resolves_it(operator_api, worker):
    now = timezone.now()
    disk(FS, used_gb=440, per_day_gb=12, end=now)  # about 4 days to full
    body = {
        "name": "Data disks",
        "usage_selector": 'node_filesystem_used_bytes{mountpoint="/data"}',
        "limit_kind": "series",
        "limit_selector": "node_filesystem_size_bytes",
        "horizon_days": 7,
        "service": "storage",
    }
    created = operator_api.post("/api/v1/aiops/forecasts/", body, format="json")
    assert created.status_code == 201
    forecast_id = created.json()["id"]
    # Saving enqueued the fit; the worker fits it, raises the warning, and correlation opens the incident.
    assert wait_for(lambda: Incident.objects.filter(service="storage").exists(), timeout=60)
    result = CapacityForecastResult.objects.get()
    assert result.alerting and 2 < days_from(now, result.full_at) < 6
    alert = Alert.objects.get(source="metrics")
    assert alert.status == "firing" and alert.incident.status == "triggered"
    # A one-day horizon: the earliest full time is outside it now; the worker's refit resolves the incident.
    patched = operator_api.patch(f"/api/v1/aiops/forecasts/{forecast_id}/", {"horizon_days": 1}, format="json")
    assert patched.status_code == 200
    assert wait_for(lambda: Incident.objects.get().status == "resolved", timeout=60)
    assert Alert.objects.get(source="metrics").status == "resolved"
    # The periodic task refits what is due: back to two weeks, the warning fires again.
    CapacityForecast.objects.update(next_run_at=timezone.now() - datetime.timedelta(seconds=1), horizon_days=14)
    enqueue.send("aiops.tasks.collect_forecasts")
    assert wait_for(lambda: Alert.objects.filter(source="metrics", status="firing").exists(), timeout=60)


def test_the_demo_forecast_warns_for_the_filling_disk_only(operator):
    from aiops.forecast_demo import seed_forecasts

    assert seed_forecasts(actor=operator) is True
    results = {r.series.labels["instance"]: r for r in CapacityForecastResult.objects.select_related("series")}
    assert set(results) == {"db1:9100", "web1:9100"}
    assert results["db1:9100"].alerting and 2 < days_from(timezone.now(), results["db1:9100"].full_at) < 6
    assert not results["web1:9100"].alerting and results["web1:9100"].error == ""
    assert seed_forecasts(actor=operator) is False


def test_a_selector_matching_too_many_series_is_an_error_naming_it(operator):
    now = timezone.now().timestamp()
    samples = [(store.series_key("quota_used", {"tenant": f"t{index}"}), now, 1.0) for index in range(201)]
    store.write_samples(samples)
    forecast = services.save_capacity_forecast(
        actor=operator, name="Quotas", usage_selector="quota_used", limit_kind="constant", limit_value=10
    )
    run = services.compute_forecast(forecast_id=forecast.pk)
    assert run.series == 0
    forecast.refresh_from_db()
    assert forecast.state == "error"
    assert forecast.last_error == (
        "usage_selector: the selector matches more than 200 series; add matchers to narrow it."
    )
