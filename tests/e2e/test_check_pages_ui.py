"""Check pages in Chromium: the list with states and uptime, the latency chart, Test now, a heartbeat's ping URL."""

from __future__ import annotations

import datetime
import re
import subprocess

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from aiops import services
from aiops.models import Check, CheckHourlyStat, CheckOutage, CheckResult
from opsportal.accounts.roles import Role
from tests.aiops.check_targets import Target
from tests.e2e.helpers import log_in
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture(autouse=True)
def _own_broker(isolated_broker):
    """Whatever the pages enqueue goes to a broker folder no developer's worker reads."""


@pytest.fixture
def target():
    server = Target()
    yield server
    server.close()


def with_runs(check: Check, latencies: list[float], failed: set[int] = frozenset()) -> None:
    now = timezone.now()
    CheckResult.objects.bulk_create(
        CheckResult(
            check_obj=check,
            at=now - datetime.timedelta(minutes=5 * (len(latencies) - i)),
            up=i not in failed,
            latency_ms=latency,
            status_code=200 if i not in failed else 503,
            error="" if i not in failed else "expected status 200-299, got 503",
        )
        for i, latency in enumerate(latencies)
    )
    hour = now.replace(minute=0, second=0, microsecond=0)
    CheckHourlyStat.objects.create(check_obj=check, hour=hour, total=len(latencies), up=len(latencies) - len(failed))


def test_the_list_shows_checks_with_their_state_and_uptime(page):
    UserFactory(username="vera", role=Role.VIEWER)
    api = services.create_check(actor=None, name="Checkout API", kind="http", config={"url": "https://co.example/"})
    with_runs(api, [20, 25, 30, 22], failed={1})
    Check.objects.filter(pk=api.pk).update(status=Check.Status.UP, last_latency_ms=22)
    down = services.create_check(
        actor=None, name="Search", kind="tcp", config={"host": "search.internal", "port": 9200}
    )
    Check.objects.filter(pk=down.pk).update(status=Check.Status.DOWN)

    log_in(page, "vera")
    page.goto("/aiops/")
    page.get_by_role("list", name="AIOps sections").get_by_role("link", name="Checks").click()
    table = page.locator("#checks")
    row = page.locator(f"#check-{api.pk}")
    expect(row.get_by_role("link", name="Checkout API")).to_be_visible()
    expect(row.locator(".check-state")).to_have_text("Up")
    expect(row.locator(".uptime-24h")).to_have_text("75%")
    expect(
        row.get_by_role("img", name=re.compile(r"Latency of the last 4 runs: 20 to 30 ms, 1 failed"))
    ).to_be_visible()
    expect(page.locator(f"#check-{down.pk} .check-state")).to_have_text("Down")
    expect(table.get_by_text("search.internal:9200")).to_be_visible()

    page.get_by_label("Down", exact=True).check()
    expect(row).to_have_count(0)
    expect(page).to_have_url(re.compile(r"status=down"))
    expect(page.locator(f"#check-{down.pk}")).to_be_visible()
    assert page.console_errors == []
    assert page.outside_requests == []


def test_the_check_page_draws_the_latency_chart_with_the_outage_shaded(page):
    UserFactory(username="vera", role=Role.VIEWER)
    check = services.create_check(actor=None, name="Checkout API", kind="http", config={"url": "https://co.example/"})
    with_runs(check, [20, 25, 30, 22, 24, 26], failed={2})
    start = timezone.now() - datetime.timedelta(minutes=20)
    CheckOutage.objects.create(check_obj=check, started_at=start, ended_at=start + datetime.timedelta(minutes=5))

    log_in(page, "vera")
    page.goto(f"/aiops/checks/{check.pk}/")
    expect(page.get_by_role("heading", name="Checkout API")).to_be_visible()
    chart = page.locator("[data-chart='check-latency']")
    expect(chart).to_have_attribute("data-rendered", "true")
    expect(chart.locator(".scatterlayer .trace")).to_have_count(2)
    expect(chart.locator(".shapelayer path")).to_have_count(1)
    expect(chart.locator(".rangeselector .button")).to_have_count(5)
    expect(page.locator("#results-table tbody tr")).to_have_count(6)
    expect(page.locator("#results-table")).to_contain_text("expected status 200-299, got 503")
    page.get_by_role("link", name="7d").click()
    expect(page).to_have_url(re.compile(r"window=7d"))
    expect(chart).to_have_attribute("data-rendered", "true")
    assert page.console_errors == []
    assert page.outside_requests == []


def test_test_now_shows_the_result_from_a_local_server_before_saving(page, target, allow_loopback):
    UserFactory(username="otto", role=Role.OPERATOR)
    log_in(page, "otto")
    page.goto("/aiops/checks/")
    page.get_by_role("link", name="New check").click()
    expect(page.get_by_role("heading", name="New check")).to_be_visible()

    # Only the chosen kind's options show.
    page.get_by_label("Kind").select_option("tcp")
    expect(page.get_by_role("textbox", name="Host")).to_have_attribute("name", "tcp_host")
    expect(page.locator("#id_tls_host")).to_be_hidden()
    expect(page.get_by_label("URL")).to_be_hidden()
    page.get_by_label("Kind").select_option("http")
    expect(page.get_by_role("textbox", name="URL")).to_be_visible()

    page.get_by_role("textbox", name="Name", exact=True).fill("Local API")
    page.get_by_role("textbox", name="URL").fill(target.url("/health"))
    page.evaluate("window.__samePage = true")
    page.get_by_role("button", name="Test now").click()
    outcome = page.locator("#test-outcome")
    expect(outcome).to_contain_text("Up")
    expect(outcome).to_contain_text("status code 200")
    expect(outcome).to_contain_text(re.compile(r"latency \d+(\.\d)? ms"))
    assert target.hits == 1

    target.answer(500, body=b"boom")
    page.get_by_role("button", name="Test now").click()
    expect(outcome).to_contain_text("Down")
    expect(outcome).to_contain_text("status code 500")

    page.get_by_role("textbox", name="URL").fill("ftp://nowhere")
    page.get_by_role("button", name="Test now").click()
    expect(outcome).to_contain_text("Not run: URL:")
    assert page.evaluate("window.__samePage") is True
    assert Check.objects.count() == 0

    target.answer(200)
    page.get_by_role("textbox", name="URL").fill(target.url("/health"))
    page.get_by_role("button", name="Save check").click()
    expect(page.get_by_role("heading", name="Local API")).to_be_visible()
    assert Check.objects.get().config["url"] == target.url("/health")
    assert page.outside_requests == []


def test_a_heartbeat_page_shows_the_ping_url_examples_and_pings(page):
    UserFactory(username="otto", role=Role.OPERATOR)
    check = services.create_check(actor=None, name="Nightly backup", kind="heartbeat", period_seconds=86400)
    services.record_ping(ping_uuid=str(check.ping_uuid), kind="success", body=b"backup done: 42 GB", method="POST")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])

    log_in(page, "otto")
    page.goto(f"/aiops/checks/{check.pk}/")
    url = page.evaluate("location.origin") + f"/ping/{check.ping_uuid}"
    expect(page.get_by_role("textbox", name="Ping URL")).to_have_value(url)
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == url
    examples = page.locator(".heartbeat-example")
    expect(examples.first).to_contain_text(f"curl -fsS -m 10 --retry 5 -o /dev/null {url}")
    expect(examples.filter(has_text="/start")).to_have_count(1)
    expect(examples.filter(has_text=f"{url}/$?")).to_have_count(2)
    expect(page.locator("#check-pings")).to_contain_text("backup done: 42 GB")
    expect(page.locator("#check-status .check-state")).to_have_text("Up")
    expect(page.get_by_role("button", name="Run now")).to_have_count(0)

    # The examples work as printed (with a job that fails, then one that succeeds, in place of backup.sh).
    def run_example(title: str, job: str) -> None:
        command = page.locator(".heartbeat-example").nth(titles.index(title)).inner_text()
        subprocess.run(["bash", "-c", command.replace("/usr/local/bin/backup.sh", job)], check=True, timeout=30)

    titles = page.locator("#heartbeat h3").all_inner_texts()
    run_example("With the job's exit status (0 is up, anything else is down)", "(echo no space left; exit 3)")
    page.reload()
    expect(page.locator("#check-status .check-state")).to_have_text("Down")
    expect(page.locator("#check-pings tbody tr").first).to_contain_text("Fail (exit 3)")
    run_example("Sending the job's output (the first 10 KB are kept)", "echo backup done: 43 GB")
    page.reload()
    expect(page.locator("#check-status .check-state")).to_have_text("Up")
    expect(page.locator("#check-pings tbody tr").first).to_contain_text("backup done: 43 GB")
    assert page.console_errors == []
