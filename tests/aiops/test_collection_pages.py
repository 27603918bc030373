"""Scrape target pages as people use them: the list in a fixed number of queries, the form with Test and
field errors, Scrape now and the other actions, secrets never shown, viewers read only."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aiops import services
from aiops.metrics import partitions, store
from aiops.models import ScrapeTarget, Series
from opsportal.audit.models import AuditEntry
from opsportal.encryption import decrypt
from tests.aiops.pages import text_of
from tests.helpers import client_for

from .metrics_helpers import ExpositionServer

pytestmark = pytest.mark.django_db

EXPOSITION = """# TYPE http_requests_total counter
http_requests_total{code="200",path="/"} 1027
http_requests_total{code="500",path="/"} 3
# TYPE temperature_celsius gauge
temperature_celsius{room="a"} 21.5
"""
SECRET = "s3cr3t-token-value"


@pytest.fixture(autouse=True)
def _loopback_allowed(allow_loopback):
    """Targets in these tests are local servers on 127.0.0.1 (or unused ports there)."""


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Each test's database rows roll back; the writer's per-process caches must forget them too."""
    store.CACHE.clear()
    partitions.forget_known()
    yield
    store.CACHE.clear()
    partitions.forget_known()


@pytest.fixture
def exporter():
    server = ExpositionServer(EXPOSITION)
    yield server
    server.close()


def target(name: str = "node", url: str = "http://127.0.0.1:9100/metrics", **kwargs) -> ScrapeTarget:
    return services.save_scrape_target(actor=None, name=name, url=url, **kwargs)


def row_of(html: str, element_id: str) -> str:
    match = re.search(rf'<tr id="{element_id}">(.*?)</tr>', html, re.S)
    assert match, f"no row #{element_id}"
    return match.group(1)


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def target_form(**values) -> dict:
    data = {"name": "app", "url": "", "interval_seconds": "30", "timeout_seconds": "5", "labels": "", "auth": "none",
            "username": "", "secret": "", "enabled": "on"}  # fmt: skip
    data.update(values)
    return {k: v for k, v in data.items() if v is not None}


# --- Scrape targets: list ------------------------------------------------------------------------------


def test_the_target_list_shows_each_last_scrape_in_words_and_filters(viewer, operator):
    up = target("node", labels={"env": "prod"})
    ScrapeTarget.objects.filter(pk=up.pk).update(
        last_ok=True, last_run_at=timezone.now(), last_duration_seconds=0.0123, last_sample_count=812
    )
    down = target("broken", url="http://127.0.0.1:8080/metrics")
    ScrapeTarget.objects.filter(pk=down.pk).update(
        last_ok=False, last_run_at=timezone.now(), last_error="connection refused (127.0.0.1:8080)"
    )
    off = target("retired", url="http://127.0.0.1:7070/old/metrics", enabled=False)
    client = client_for(viewer)

    response = client.get("/aiops/metrics/targets/")

    html = response.content.decode()
    assert response.status_code == 200
    row = row_of(html, f"target-{up.pk}")
    assert ">Up<" in row and "812" in row and "12 ms" in row and "env=prod" in row and "30 s" not in row
    assert "http://127.0.0.1:9100/metrics" in row and "60 s" in row
    assert ">Down<" in row_of(html, f"target-{down.pk}")
    assert "connection refused (127.0.0.1:8080)" in row_of(html, f"target-{down.pk}")
    assert ">Disabled<" in row_of(html, f"target-{off.pk}") and "never" in row_of(html, f"target-{off.pk}")
    assert 'aria-label="Metrics sections"' in html and "New target" not in html

    def names(query: str) -> list[str]:
        page = client.get(f"/aiops/metrics/targets/{query}").content.decode()
        return re.findall(r'<a class="cell-text" href="/aiops/metrics/targets/\d+/" title="([^"]+)"', page)

    assert names("?state=down") == ["broken"]
    assert names("?state=up&state=paused") == ["node", "retired"]
    assert names("?q=old/metrics") == ["retired"]
    assert "state: " in text_of(client.get("/aiops/metrics/targets/?state=sideways")).lower()
    assert "New target" in client_for(operator).get("/aiops/metrics/targets/").content.decode()


def test_the_target_list_reads_in_a_fixed_number_of_queries(viewer):
    client = client_for(viewer)
    target("t0")
    few = count_queries(client, "/aiops/metrics/targets/")
    for i in range(1, 12):
        target(f"t{i}", labels={"n": str(i)})
    assert count_queries(client, "/aiops/metrics/targets/") == few


# --- Scrape targets: form, Test, save ------------------------------------------------------------------


def test_test_scrapes_the_unsaved_values_and_shows_the_first_samples(operator, exporter, allow_loopback):
    client = client_for(operator)
    response = client.post(
        "/aiops/metrics/targets/new/",
        target_form(url=exporter.url, labels="env=test", _test="1"),
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    html = response.content.decode()
    text = text_of(response)
    assert 'id="test-outcome"' in html and "Up" in text and "3 samples" in text and "Nothing was saved" in text
    assert re.search(r"\d+ ms", text)
    assert "http_requests_total" in html and "code=500" in html and "21.5" in html
    assert "env=test" in html and "job=app" in html
    assert ScrapeTarget.objects.count() == 0

    exporter.status = 500
    text = text_of(client.post("/aiops/metrics/targets/new/", target_form(url=exporter.url, _test="1"),
                               HTTP_HX_REQUEST="true"))  # fmt: skip
    assert "Down" in text and "500" in text

    refused = client.post("/aiops/metrics/targets/new/", target_form(url="ftp://nowhere", _test="1"),
                          HTTP_HX_REQUEST="true")  # fmt: skip
    assert refused.status_code == 400 and "Not run: URL:" in text_of(refused)


def test_a_target_is_created_and_edited_through_the_form_with_the_secret_write_only(operator, exporter, allow_loopback):
    client = client_for(operator)
    exporter.token = SECRET
    response = client.post(
        "/aiops/metrics/targets/new/",
        target_form(name="api", url=exporter.url, labels="env=prod\nteam=core", auth="bearer", secret=SECRET),
    )
    saved = ScrapeTarget.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/aiops/metrics/targets/{saved.pk}/"
    assert saved.labels == {"env": "prod", "team": "core"} and saved.interval_seconds == 30
    assert decrypt(saved.secret_encrypted) == SECRET
    assert AuditEntry.objects.filter(object_id=str(saved.pk), action="create").exists()

    page = client.get(f"/aiops/metrics/targets/{saved.pk}/edit/")
    html = page.content.decode()
    assert SECRET not in html and saved.secret_encrypted not in html
    assert "secret set" in html and "leave blank to keep" in html
    # Test with the secret left blank uses the stored one.
    tested = client.post(
        f"/aiops/metrics/targets/{saved.pk}/edit/",
        target_form(name="api", url=exporter.url, auth="bearer", _test="1"),
        HTTP_HX_REQUEST="true",
    )
    assert "3 samples" in text_of(tested)
    assert exporter.requests[-1]["headers"]["Authorization"] == f"Bearer {SECRET}"
    # Saving with the secret blank keeps it; auth none clears it.
    client.post(f"/aiops/metrics/targets/{saved.pk}/edit/",
                target_form(name="api", url=exporter.url, interval_seconds="15", auth="bearer"))  # fmt: skip
    saved.refresh_from_db()
    assert saved.interval_seconds == 15 and decrypt(saved.secret_encrypted) == SECRET
    client.post(f"/aiops/metrics/targets/{saved.pk}/edit/", target_form(name="api", url=exporter.url, auth="none"))
    saved.refresh_from_db()
    assert saved.auth == "none" and saved.secret_encrypted == ""
    for url in ("/aiops/metrics/targets/", f"/aiops/metrics/targets/{saved.pk}/"):
        assert SECRET not in client.get(url).content.decode()


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"name": ""}, "name", "required"),
        ({"url": "ftp://nowhere"}, "url", "http"),
        ({"interval_seconds": "0"}, "interval_seconds", "between 1 and 86400"),
        ({"timeout_seconds": "120"}, "timeout_seconds", "must not exceed the interval"),
        ({"labels": "not a label"}, "labels", "is not name=value"),
        ({"labels": "__bad=1"}, "labels", "is not a label name"),
        ({"auth": "bearer"}, "secret", "required for bearer auth"),
        ({"auth": "basic"}, "username", "required for basic auth"),
    ],
)
def test_bad_target_input_is_shown_under_its_field_and_nothing_is_saved(operator, allow_loopback, values, field, words):
    target("taken")
    response = client_for(operator).post(
        "/aiops/metrics/targets/new/", target_form(**{"url": "http://127.0.0.1:9/metrics", **values})
    )
    assert response.status_code == 400
    html = response.content.decode()
    feedback = re.search(rf'id="id_{field}".*?<div class="invalid-feedback d-block">([^<]*)</div>', html, re.S)
    assert feedback and words in feedback.group(1), html
    assert ScrapeTarget.objects.count() == 1


def test_a_taken_name_is_shown_under_the_name(operator, allow_loopback):
    target("node")
    response = client_for(operator).post(
        "/aiops/metrics/targets/new/", target_form(name="NODE", url="http://127.0.0.1:9/")
    )
    assert response.status_code == 400 and "is taken" in text_of(response)
    assert ScrapeTarget.objects.count() == 1


# --- Scrape targets: page and actions ------------------------------------------------------------------


def test_scrape_now_stores_a_scrape_and_the_page_shows_its_report_series_and_last_scrapes(
    operator, exporter, allow_loopback
):
    saved = target("app", url=exporter.url, labels={"env": "test"})
    client = client_for(operator)

    response = client.post(f"/aiops/metrics/targets/{saved.pk}/scrape/")

    assert response.status_code == 302
    page = client.get(response["Location"])
    text = text_of(page)
    assert "Scraped app: up, 3 samples" in text
    report = re.search(r'id="scrape-report".*?</div>\s*</div>', page.content.decode(), re.S).group(0)
    assert "http_requests_total" in report and "6 stored" in text_of(page)
    job_instance = f'{{job="app",instance="127.0.0.1:{exporter.port}"}}'
    assert f"6 series stored with {job_instance}" in text
    assert f'href="/aiops/metrics/?q=%7Bjob%3D%22app%22%2Cinstance%3D%22127.0.0.1%3A{exporter.port}%22%7D"' in (
        page.content.decode()
    )
    scrapes = re.search(r'<table[^>]*id="target-scrapes".*?</table>', page.content.decode(), re.S).group(0)
    assert scrapes.count("<tr>") == 2 and ">Up<" in scrapes  # the header row and the one scrape
    # The report is shown once.
    assert 'id="scrape-report"' not in client.get(response["Location"]).content.decode()

    exporter.body = "<html>nginx</html>"
    client.post(f"/aiops/metrics/targets/{saved.pk}/scrape/")
    page = client.get(f"/aiops/metrics/targets/{saved.pk}/")
    text = text_of(page)
    assert "Down" in text and "the body does not parse" in text
    assert Series.objects.filter(name="up", labels__job="app").count() == 1
    assert AuditEntry.objects.filter(object_id=str(saved.pk), message__startswith="Scraped now").count() == 2


def test_disable_enable_and_delete_a_target(operator):
    saved = target("app")
    client = client_for(operator)
    client.post(f"/aiops/metrics/targets/{saved.pk}/disable/")
    saved.refresh_from_db()
    assert saved.enabled is False
    page = client.get(f"/aiops/metrics/targets/{saved.pk}/").content.decode()
    assert ">Disabled<" in page and ">Enable</button>" in page
    client.post(f"/aiops/metrics/targets/{saved.pk}/enable/")
    saved.refresh_from_db()
    assert saved.enabled is True
    assert (
        'data-confirm="Delete the scrape target app?'
        in client.get(f"/aiops/metrics/targets/{saved.pk}/").content.decode()
    )
    response = client.post(f"/aiops/metrics/targets/{saved.pk}/delete/")
    assert response["Location"] == "/aiops/metrics/targets/" and not ScrapeTarget.objects.exists()
    assert AuditEntry.objects.filter(object_id=str(saved.pk), action="delete").exists()


def test_viewers_read_targets_but_get_no_buttons_and_their_posts_are_refused(viewer, exporter, allow_loopback):
    saved = target("app", url=exporter.url)
    client = client_for(viewer)
    page = client.get(f"/aiops/metrics/targets/{saved.pk}/").content.decode()
    assert page.count("Scrape now") == 0 and ">Delete<" not in page and ">Edit<" not in page
    for url in (f"/aiops/metrics/targets/{saved.pk}/scrape/", f"/aiops/metrics/targets/{saved.pk}/delete/",
                "/aiops/metrics/targets/new/"):  # fmt: skip
        assert client.post(url, target_form(url=exporter.url)).status_code == 403
    assert client.get("/aiops/metrics/targets/new/").status_code == 403
    assert ScrapeTarget.objects.count() == 1 and exporter.requests == []


def test_the_target_pages_need_login(client):
    saved = target("app")
    for url in ("/aiops/metrics/targets/", f"/aiops/metrics/targets/{saved.pk}/", "/aiops/metrics/targets/new/"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
