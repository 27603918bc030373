"""Prometheus-compatible source and watched-query pages as people use them: against Debian's real
Prometheus (and a local server speaking its API where auth matters), the lists in a fixed number of
queries, Test of unsaved values, Pull now, field errors, secrets never shown, viewers read only."""

from __future__ import annotations

import re
import urllib.parse

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aiops import services
from aiops.metrics import partitions, store
from aiops.models import PromSource, Sample, Series, WatchedQuery
from aiops.services.prom_sources import record_prom_source_test
from opsportal.audit.models import AuditEntry
from opsportal.encryption import decrypt
from tests.aiops.pages import text_of
from tests.helpers import client_for

from .metrics_helpers import PrometheusServer
from .prom_api import PrometheusAPI

pytestmark = pytest.mark.django_db

SECRET = "prom-t0ken-value"
CLOSED = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def _loopback_allowed(allow_loopback):
    """Sources in these tests are local servers on 127.0.0.1 (or unused ports there)."""


@pytest.fixture(autouse=True)
def _fresh_caches():
    store.CACHE.clear()
    partitions.forget_known()
    yield
    store.CACHE.clear()
    partitions.forget_known()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """Debian's Prometheus, scraping nothing: `vector(...)` and parse errors are all these tests ask of it."""
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), [])
    yield server
    server.close()


@pytest.fixture
def fake_api():
    """A local server speaking the query_range API; with `token` set, 401 without it."""
    server = PrometheusAPI()
    yield server
    server.close()


def source(name: str = "prom", base_url: str = CLOSED, **kwargs) -> PromSource:
    return services.save_prom_source(actor=None, name=name, base_url=base_url, **kwargs)


def watched(on: PromSource, name: str = "app:up", query: str = "vector(1)", **kwargs) -> WatchedQuery:
    return services.save_watched_query(actor=None, source=on, name=name, query=query, **kwargs)


def source_form(**values) -> dict:
    data = {"name": "prom", "base_url": "", "timeout_seconds": "5", "auth": "none", "username": "", "secret": "",
            "enabled": "on"}  # fmt: skip
    data.update(values)
    return {k: v for k, v in data.items() if v is not None}


def query_form(**values) -> dict:
    data = {"name": "app:up", "query": "vector(1)", "interval_seconds": "30", "step_seconds": "15", "service": "",
            "labels": "", "enabled": "on"}  # fmt: skip
    data.update(values)
    return {k: v for k, v in data.items() if v is not None}


def row_of(html: str, element_id: str) -> str:
    match = re.search(rf'<tr id="{element_id}">(.*?)</tr>', html, re.S)
    assert match, f"no row #{element_id}"
    return match.group(1)


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def feedback_of(html: str, field: str) -> str:
    match = re.search(rf'id="id_{field}".*?<div class="invalid-feedback d-block">([^<]*)</div>', html, re.S)
    assert match, f"no error under {field}"
    return match.group(1)


# --- The source list -------------------------------------------------------------------------------------


def test_the_source_list_shows_url_auth_last_test_and_how_many_queries_fail(viewer, operator, prometheus):
    good = source("prom", base_url=prometheus.url)
    bad = source("thanos", base_url=CLOSED, auth="bearer", secret=SECRET)
    source("idle", base_url="http://127.0.0.1:19090", enabled=False)
    watched(good, "a:ok")
    failing = watched(good, "b:failing")
    WatchedQuery.objects.filter(pk=failing.pk).update(last_ok=False, last_error="HTTP 400: bad_data")
    operator_client = client_for(operator)
    operator_client.post(f"/aiops/metrics/sources/{good.pk}/test/")
    operator_client.post(f"/aiops/metrics/sources/{bad.pk}/test/")

    response = client_for(viewer).get("/aiops/metrics/sources/")

    html = response.content.decode()
    assert response.status_code == 200
    row = row_of(html, f"source-{good.pk}")
    assert prometheus.url in row and '<td class="small">None</td>' in row
    assert ">Ok<" in row and re.search(r"ok in \d+ ms", row) and "ago" in row
    assert '<span class="query-count">2</span>' in row and "(1 failing)" in row
    row = row_of(html, f"source-{bad.pk}")
    assert "Bearer token" in row and "secret set" in row and SECRET not in html
    assert ">Failed<" in row and "All connection attempts failed" in row
    assert '<span class="query-count">0</span>' in row and "failing" not in row
    assert "never tested" in html and "New source" not in html
    assert "New source" in operator_client.get("/aiops/metrics/sources/").content.decode()
    names = re.findall(r'href="/aiops/metrics/sources/\d+/" title="([^"]+)"',
                       client_for(viewer).get("/aiops/metrics/sources/?q=19090").content.decode())  # fmt: skip
    assert names == ["idle"]


def test_the_lists_read_in_a_fixed_number_of_queries(viewer):
    client = client_for(viewer)
    first = source("s0")
    watched(first, "q0")
    record_prom_source_test(source=first, actor=None)
    few_sources = count_queries(client, "/aiops/metrics/sources/")
    few_queries = count_queries(client, f"/aiops/metrics/sources/{first.pk}/")
    for i in range(1, 12):
        more = source(f"s{i}", auth="bearer", secret=SECRET)
        record_prom_source_test(source=more, actor=None)
        watched(more, f"q{i}")
        watched(first, f"first:q{i}", labels={"n": str(i)})
    assert count_queries(client, "/aiops/metrics/sources/") == few_sources
    assert count_queries(client, f"/aiops/metrics/sources/{first.pk}/") == few_queries


# --- The source form: Test and save -----------------------------------------------------------------------


def test_test_asks_the_real_prometheus_with_the_unsaved_values(operator, prometheus):
    client = client_for(operator)

    response = client.post("/aiops/metrics/sources/new/", source_form(base_url=prometheus.url, _test="1"),
                           HTTP_HX_REQUEST="true")  # fmt: skip

    assert response.status_code == 200
    text = text_of(response)
    assert 'id="test-outcome"' in response.content.decode()
    assert "Answers the Prometheus API" in text and re.search(r"\d+ ms", text) and "Nothing was saved" in text
    assert PromSource.objects.count() == 0

    down = text_of(client.post("/aiops/metrics/sources/new/", source_form(base_url=CLOSED, _test="1"),
                               HTTP_HX_REQUEST="true"))  # fmt: skip
    assert "Failed" in down and "All connection attempts failed" in down and "Answers" not in down

    refused = client.post("/aiops/metrics/sources/new/", source_form(base_url="ftp://nowhere", _test="1"),
                          HTTP_HX_REQUEST="true")  # fmt: skip
    assert refused.status_code == 400 and "Not run: URL:" in text_of(refused)
    # Without htmx the whole form comes back with the outcome under the Test button.
    page = client.post("/aiops/metrics/sources/new/", source_form(name="", base_url=prometheus.url, _test="1"))
    assert page.status_code == 200 and "Answers the Prometheus API" in text_of(page)
    assert 'id="source-form"' in page.content.decode() and PromSource.objects.count() == 0


def test_a_source_is_created_and_edited_with_the_secret_write_only(operator, fake_api):
    client = client_for(operator)
    fake_api.token = SECRET
    base_url = f"http://127.0.0.1:{fake_api.port}"
    response = client.post(
        "/aiops/metrics/sources/new/", source_form(name="mimir", base_url=base_url + "/", auth="bearer", secret=SECRET)
    )
    saved = PromSource.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/aiops/metrics/sources/{saved.pk}/"
    assert saved.base_url == base_url and saved.timeout_seconds == 5.0 and decrypt(saved.secret_encrypted) == SECRET
    assert AuditEntry.objects.filter(model="promsource", object_id=str(saved.pk), action="create").exists()

    html = client.get(f"/aiops/metrics/sources/{saved.pk}/edit/").content.decode()
    assert SECRET not in html and saved.secret_encrypted not in html
    assert "secret set" in html and "leave blank to keep" in html
    # Test with the secret left blank uses the stored one; a wrong one typed is refused by the server.
    tested = client.post(f"/aiops/metrics/sources/{saved.pk}/edit/",
                         source_form(name="mimir", base_url=base_url, auth="bearer", _test="1"),
                         HTTP_HX_REQUEST="true")  # fmt: skip
    assert "Answers the Prometheus API" in text_of(tested)
    assert fake_api.requests[-1]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert (
        fake_api.requests[-1]["path"] == "/api/v1/query_range"
        and fake_api.requests[-1]["params"]["query"] == "vector(1)"
    )
    wrong = client.post(f"/aiops/metrics/sources/{saved.pk}/edit/",
                        source_form(name="mimir", base_url=base_url, auth="bearer", secret="nope", _test="1"),
                        HTTP_HX_REQUEST="true")  # fmt: skip
    assert "Failed" in text_of(wrong) and "401" in text_of(wrong)
    saved.refresh_from_db()
    assert decrypt(saved.secret_encrypted) == SECRET  # a test saves nothing

    client.post(f"/aiops/metrics/sources/{saved.pk}/edit/",
                source_form(name="mimir", base_url=base_url, timeout_seconds="12.5", auth="bearer"))  # fmt: skip
    saved.refresh_from_db()
    assert saved.timeout_seconds == 12.5 and decrypt(saved.secret_encrypted) == SECRET
    client.post(f"/aiops/metrics/sources/{saved.pk}/edit/", source_form(name="mimir", base_url=base_url))
    saved.refresh_from_db()
    assert saved.auth == "none" and saved.secret_encrypted == ""
    for url in ("/aiops/metrics/sources/", f"/aiops/metrics/sources/{saved.pk}/"):
        assert SECRET not in client.get(url).content.decode()


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"name": ""}, "name", "required"),
        ({"name": "Taken"}, "name", "is taken"),
        ({"base_url": "ftp://nowhere"}, "base_url", "http"),
        ({"base_url": ""}, "base_url", "required"),
        ({"timeout_seconds": "0"}, "timeout_seconds", "between 0.1 and 300"),
        ({"timeout_seconds": "soon"}, "timeout_seconds", "number"),
        ({"auth": "bearer"}, "secret", "required for bearer auth"),
        ({"auth": "basic"}, "username", "required for basic auth"),
        ({"auth": "kerberos"}, "auth", "valid choice"),
    ],
)
def test_bad_source_input_is_shown_under_its_field_and_nothing_is_saved(operator, values, field, words):
    source("taken")
    response = client_for(operator).post("/aiops/metrics/sources/new/", source_form(**{"base_url": CLOSED, **values}))
    assert response.status_code == 400
    assert words in feedback_of(response.content.decode(), field)
    assert PromSource.objects.count() == 1


# --- The source page and its actions ---------------------------------------------------------------------


def test_the_source_page_lists_its_queries_with_their_last_pull(viewer, prometheus):
    prom = source("prom", base_url=prometheus.url)
    ok = watched(prom, "app:ok", labels={"service": "api"})
    bad = watched(prom, "app:bad", query="sum(")
    pending = watched(prom, "app:new")
    WatchedQuery.objects.filter(pk=ok.pk).update(
        last_ok=True, last_run_at=timezone.now(), last_duration_seconds=0.0042, last_sample_count=61
    )
    WatchedQuery.objects.filter(pk=bad.pk).update(
        last_ok=False, last_run_at=timezone.now(), last_error="HTTP 400: bad_data: 1:5: parse error"
    )
    other = watched(source("other"), "other:q")
    client = client_for(viewer)

    html = client.get(f"/aiops/metrics/sources/{prom.pk}/").content.decode()

    row = row_of(html, f"query-{ok.pk}")
    assert ">Ok<" in row and "4 ms" in row and ">61<" in row and "service=api" in row and "vector(1)" in row
    assert 'href="/aiops/metrics/?q=app%3Aok%7Bservice%3D%22api%22%7D"' in row
    assert ">Failing<" in row_of(html, f"query-{bad.pk}") and "parse error" in row_of(html, f"query-{bad.pk}")
    assert ">Not pulled yet<" in row_of(html, f"query-{pending.pk}")
    assert f"query-{other.pk}" not in html and "Pull now" not in html and "New watched query" not in html
    assert ">3</span>" in html and "1 failing" in html
    failing = client.get(f"/aiops/metrics/sources/{prom.pk}/?state=down").content.decode()
    assert f"query-{bad.pk}" in failing and f"query-{ok.pk}" not in failing
    assert "state: “sideways” is not one of" in text_of(client.get(f"/aiops/metrics/sources/{prom.pk}/?state=sideways"))


def test_test_on_the_source_page_records_the_last_test(operator, prometheus):
    prom = source("prom", base_url=prometheus.url)
    client = client_for(operator)

    response = client.post(f"/aiops/metrics/sources/{prom.pk}/test/")

    assert response.status_code == 302 and response["Location"] == f"/aiops/metrics/sources/{prom.pk}/"
    text = text_of(client.get(response["Location"]))
    assert re.search(r"prom answers: the API query took \d+ ms", text)
    assert re.search(r"Last test: Ok .* ago ok in \d+ ms", text)
    PromSource.objects.filter(pk=prom.pk).update(base_url=CLOSED)
    client.post(f"/aiops/metrics/sources/{prom.pk}/test/")
    text = text_of(client.get(f"/aiops/metrics/sources/{prom.pk}/"))
    assert "prom failed the test:" in text and "Last test: Failed" in text
    assert AuditEntry.objects.filter(object_id=str(prom.pk), message__startswith="Tested: ").count() == 2


def test_disable_enable_and_delete_a_source_with_its_queries(operator):
    prom = source("prom")
    watched(prom, "a:one")
    watched(prom, "a:two")
    client = client_for(operator)
    client.post(f"/aiops/metrics/sources/{prom.pk}/disable/")
    prom.refresh_from_db()
    assert prom.enabled is False
    page = client.get(f"/aiops/metrics/sources/{prom.pk}/").content.decode()
    assert ">Enable</button>" in page and "none of its queries is pulled on schedule" in page
    client.post(f"/aiops/metrics/sources/{prom.pk}/enable/")
    prom.refresh_from_db()
    assert prom.enabled is True
    page = client.get(f"/aiops/metrics/sources/{prom.pk}/").content.decode()
    assert 'data-confirm="Delete the source prom and its 2 watched queries?' in page
    response = client.post(f"/aiops/metrics/sources/{prom.pk}/delete/")
    assert response["Location"] == "/aiops/metrics/sources/"
    assert not PromSource.objects.exists() and not WatchedQuery.objects.exists()
    assert AuditEntry.objects.filter(model="promsource", object_id=str(prom.pk), action="delete").exists()


# --- Watched queries ----------------------------------------------------------------------------------------


def test_a_watched_query_is_created_pulled_now_and_its_series_reach_the_explorer(operator, prometheus):
    prom = source("prom", base_url=prometheus.url)
    client = client_for(operator)

    response = client.post(
        f"/aiops/metrics/sources/{prom.pk}/queries/new/",
        query_form(name="answer:value", query="vector(42)", service="checkout", labels="env=test", step_seconds="60"),
    )

    saved = WatchedQuery.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/aiops/metrics/queries/{saved.pk}/"
    assert saved.source == prom and saved.labels == {"env": "test", "service": "checkout"}
    assert saved.interval_seconds == 30 and saved.step_seconds == 60
    page = text_of(client.get(response["Location"]))
    assert "Not pulled yet" in page and "0 series stored" in page and "Service checkout" in page

    pulled = client.post(f"/aiops/metrics/queries/{saved.pk}/pull/", {"next": f"/aiops/metrics/sources/{prom.pk}/"})

    assert pulled["Location"] == f"/aiops/metrics/sources/{prom.pk}/"
    saved.refresh_from_db()
    assert saved.last_ok is True and saved.last_sample_count == 61  # the first pull reaches back an hour
    series = Series.objects.get(name="answer:value")
    assert series.labels == {"env": "test", "service": "checkout"}
    assert set(Sample.objects.filter(series_id=series.id).values_list("value", flat=True)) == {42.0}
    text = text_of(client.get(pulled["Location"]))
    assert re.search(r"Pulled answer:value: 61 samples in \d+ ms", text)
    assert ">Ok<" in row_of(client.get(pulled["Location"]).content.decode(), f"query-{saved.pk}")
    html = client.get(f"/aiops/metrics/queries/{saved.pk}/").content.decode()
    selector = 'answer:value{env="test",service="checkout"}'
    shown = selector.replace('"', "&quot;")
    assert f"1 series stored with <code>{shown}</code>" in html
    assert f'href="/aiops/metrics/?{urllib.parse.urlencode({"q": selector})}"' in html
    assert f'href="/aiops/metrics/?series={series.pk}"' in html
    explorer = client.get(f"/aiops/metrics/?{urllib.parse.urlencode({'q': selector})}")
    assert explorer.status_code == 200 and f'<tr id="series-{series.pk}">' in explorer.content.decode()

    # Right away there is no new step to pull: said so, nothing changes.
    again = client.post(f"/aiops/metrics/queries/{saved.pk}/pull/")
    assert "Nothing new to pull for answer:value" in text_of(client.get(again["Location"]))
    assert AuditEntry.objects.filter(object_id=str(saved.pk), message__startswith="Pulled now: ok").count() == 2


def test_a_failing_pull_shows_the_sources_words(operator, prometheus):
    prom = source("prom", base_url=prometheus.url)
    broken = watched(prom, "broken", query="sum(")
    client = client_for(operator)
    response = client.post(f"/aiops/metrics/queries/{broken.pk}/pull/")
    page = client.get(response["Location"])
    text = text_of(page)
    assert "Pulling broken failed: HTTP 400: bad_data: 1:5: parse error: unclosed left parenthesis" in text
    assert "Failing" in text and 'id="query-last-error"' in page.content.decode()
    assert not Series.objects.filter(name="broken").exists()


def test_a_watched_query_is_edited_disabled_and_deleted(operator):
    prom = source("prom")
    saved = watched(prom, "app:rps", query="sum(rate(x[5m]))", labels={"service": "api", "env": "prod"})
    client = client_for(operator)
    form = client.get(f"/aiops/metrics/queries/{saved.pk}/edit/").content.decode()
    assert 'value="api"' in form and "env=prod" in form and "service=api" not in form
    response = client.post(f"/aiops/metrics/queries/{saved.pk}/edit/",
                           query_form(name="app:rps", query="sum(rate(y[1m]))", interval_seconds="120",
                                      step_seconds="30", service="", labels="env=staging"))  # fmt: skip
    assert response.status_code == 302
    saved.refresh_from_db()
    assert saved.query == "sum(rate(y[1m]))" and saved.interval_seconds == 120 and saved.labels == {"env": "staging"}
    client.post(f"/aiops/metrics/queries/{saved.pk}/disable/")
    saved.refresh_from_db()
    assert saved.enabled is False
    page = client.get(f"/aiops/metrics/queries/{saved.pk}/").content.decode()
    assert ">Disabled<" in page and ">Enable</button>" in page
    assert 'data-confirm="Delete the watched query app:rps?' in page
    response = client.post(f"/aiops/metrics/queries/{saved.pk}/delete/")
    assert response["Location"] == f"/aiops/metrics/sources/{prom.pk}/" and not WatchedQuery.objects.exists()


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"name": ""}, "name", "required"),
        ({"name": "9lives"}, "name", "must be a metric name"),
        ({"name": "Taken:q"}, "name", "is taken"),
        ({"query": "  "}, "query", "required"),
        ({"interval_seconds": "0"}, "interval_seconds", "between 1 and 86400"),
        ({"step_seconds": "1.5"}, "step_seconds", "whole number"),
        ({"labels": "oops"}, "labels", "is not name=value"),
        ({"labels": "service=x"}, "labels", "in its own field"),
        ({"labels": "__x=1"}, "labels", "is not a label name"),
    ],
)
def test_bad_query_input_is_shown_under_its_field_and_nothing_is_saved(operator, values, field, words):
    prom = source("prom")
    watched(prom, "taken:q")
    response = client_for(operator).post(f"/aiops/metrics/sources/{prom.pk}/queries/new/", query_form(**values))
    assert response.status_code == 400
    assert words in feedback_of(response.content.decode(), field)
    assert WatchedQuery.objects.count() == 1


# --- Roles and login ---------------------------------------------------------------------------------------


def test_viewers_read_sources_and_queries_but_their_posts_are_refused(viewer, fake_api):
    prom = source("prom", base_url=f"http://127.0.0.1:{fake_api.port}")
    saved = watched(prom, "app:up")
    client = client_for(viewer)
    for url in (f"/aiops/metrics/sources/{prom.pk}/", f"/aiops/metrics/queries/{saved.pk}/"):
        page = client.get(url).content.decode()
        assert "Pull now" not in page and ">Delete<" not in page and ">Edit<" not in page and ">Test<" not in page
    for url in (f"/aiops/metrics/sources/{prom.pk}/test/", f"/aiops/metrics/sources/{prom.pk}/delete/",
                f"/aiops/metrics/queries/{saved.pk}/pull/", f"/aiops/metrics/queries/{saved.pk}/delete/",
                "/aiops/metrics/sources/new/", f"/aiops/metrics/sources/{prom.pk}/queries/new/",
                f"/aiops/metrics/queries/{saved.pk}/edit/"):  # fmt: skip
        assert client.post(url, source_form(base_url=f"http://127.0.0.1:{fake_api.port}")).status_code == 403
    assert client.get("/aiops/metrics/sources/new/").status_code == 403
    assert PromSource.objects.count() == 1 and WatchedQuery.objects.count() == 1 and fake_api.requests == []


def test_the_source_pages_need_login(client):
    prom = source("prom")
    saved = watched(prom)
    for url in ("/aiops/metrics/sources/", f"/aiops/metrics/sources/{prom.pk}/", "/aiops/metrics/sources/new/",
                f"/aiops/metrics/queries/{saved.pk}/", f"/aiops/metrics/queries/{saved.pk}/edit/"):  # fmt: skip
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_test_through_the_api_is_the_last_test_the_pages_show(operator, prometheus):
    from rest_framework.test import APIClient

    prom = source("prom", base_url=prometheus.url)
    api = APIClient()
    api.force_authenticate(operator)

    answer = api.post(f"/api/v1/aiops/metrics/sources/{prom.pk}/test/").json()

    assert answer["ok"] is True
    text = text_of(client_for(operator).get("/aiops/metrics/sources/"))
    assert re.search(r"Ok .* ago", text) and "never tested" not in text
