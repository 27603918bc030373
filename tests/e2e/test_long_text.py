"""An alert with a 100 KB label, a long title and many labels, sent to the real ingest endpoint, breaks no page.

Before the limits and the table rules, the incident page was 74,744 px tall and the incident list 5,090 px wide,
with the status columns off screen.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from aiops import services
from aiops.models import Alert, Incident
from llmops import services as llmops_services
from mlops import services as mlops_services
from opsportal.accounts.roles import Role
from tests.aiops.conftest import am_alert, am_payload
from tests.e2e.helpers import log_in
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

HUGE = "v" * 100_000  # one word: nothing to break it at
LONG_TITLE = "Disk-latency-on-" + "x" * 2_000
MAX_HEIGHT = 6_000  # px at 1280 x 900: a few screens, not seventy


@pytest.fixture(autouse=True)
def _own_broker(isolated_broker):
    """The test correlates alerts itself; what it enqueues goes to a broker folder no developer's worker reads."""


def fits(page) -> dict:
    """The page's and each table's widths, and where the Status column ends."""
    return page.evaluate(
        """() => ({
            scrollWidth: document.documentElement.scrollWidth,
            innerWidth: window.innerWidth,
            height: document.documentElement.scrollHeight,
            tables: [...document.querySelectorAll('table')].map(t => ({
                id: t.id, width: t.scrollWidth, room: t.parentElement.clientWidth,
            })),
            // What sticks out, to name it when the test fails.
            wide: [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
                    || (e.scrollWidth > window.innerWidth && getComputedStyle(e).overflowX === 'visible'))
                .slice(0, 14)
                .map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().width)}px`),
            statusRight: Math.max(0, ...[...document.querySelectorAll('th')]
                .filter(th => th.textContent.trim() === 'Status')
                .map(th => th.getBoundingClientRect().right)),
        })"""
    )


def assert_fits(page, what: str) -> None:
    sizes = fits(page)
    assert sizes["scrollWidth"] <= sizes["innerWidth"], " / ".join([what, *sizes["wide"]])
    assert sizes["height"] <= MAX_HEIGHT, (what, sizes)
    assert sizes["statusRight"] <= sizes["innerWidth"], (what, sizes)
    for table in sizes["tables"]:
        assert table["width"] <= table["room"] + 1, (what, table)  # no column scrolled out of sight


def test_a_100kb_label_keeps_every_page_within_the_window(page):
    admin = UserFactory(username="ada", role=Role.ADMIN)
    integration, token = services.create_integration(name="prod", kind="alertmanager", actor=admin)
    sent = am_alert(
        alertname="DiskLatency", service=HUGE, blob=HUGE, **{f"label{i:02}": f"value-{i}" for i in range(90)}
    )
    sent["annotations"]["summary"] = LONG_TITLE
    body = json.dumps(am_payload(sent, group_key="huge"))
    # Through the live server's real ingest endpoint, as Alertmanager sends it.
    response = page.request.post(
        integration.ingest_path(),
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status == 202, response.text()
    services.process_pending_alerts()
    incident, alert = Incident.objects.get(), Alert.objects.get()
    assert alert.raw["labels"]["blob"] == HUGE  # the payload as sent is kept whole

    log_in(page, "ada")
    page.goto("/aiops/")
    row = page.locator(f"#incident-{incident.pk}")
    expect(row).to_be_visible()
    assert_fits(page, "incident list")
    # The cut title and service show their whole stored text on hover.
    title_link = row.get_by_role("link", name="Disk-latency-on-")
    assert title_link.get_attribute("title") == incident.title
    assert row.locator(f'[title="{incident.service}"]').count() == 1
    expect(row.get_by_text("Triggered")).to_be_in_viewport()

    page.goto(incident.get_absolute_url())
    expect(page.get_by_role("heading", name="Disk-latency-on-")).to_be_visible()
    assert_fits(page, "incident page")
    chip = page.locator("#incident-alerts .label-chip", has_text="blob=")
    stored = alert.labels["blob"]
    assert stored.endswith("characters]") and len(stored) <= 1024
    assert chip.get_attribute("title") == f"blob={stored}"
    chip.hover()  # the chip is one line on the page; the title carries the rest
    assert chip.bounding_box()["height"] < 40
    grouped = page.locator("dd code.label-chip", has_text="service=")
    assert grouped.get_attribute("title") == f"service={incident.group_labels['service']}"

    page.goto("/aiops/alerts/")
    assert_fits(page, "alert list")
    page.goto(alert.get_absolute_url())
    assert_fits(page, "alert page")
    expect(page.get_by_text("opsportal.truncated")).to_be_visible()
    assert page.locator(".raw-payload").inner_text().count(HUGE) == 2  # service and blob, whole in the raw payload
    assert not page.console_errors


def test_long_names_in_mlops_and_llmops_tables_are_cut_and_whole_on_hover(page):
    """A 256-character model name and a 200-character prompt name (one word each) take at most three lines."""
    admin = UserFactory(username="ada", role=Role.ADMIN)
    model_name, prompt_name = "m" * 255 + "z", "p" * 199 + "z"
    mlops_services.create_model(name=model_name, owner_team="t" * 100, tags={"blob": HUGE[:5000]}, actor=admin)
    llmops_services.create_prompt(
        name=prompt_name, description="Asks for the capital. " * 40, actor=admin,
        messages=[{"role": "user", "content": "Capital of {{ country }}?"}],
    )  # fmt: skip

    log_in(page, "ada")
    for url, table, name in [
        ("/mlops/", "models", model_name),
        ("/llmops/prompts/", "prompts", prompt_name),
        ("/llmops/", "overview-prompts", prompt_name),
    ]:
        page.goto(url)
        assert_fits(page, url)
        cell = page.locator(f'#{table} .cell-text[title="{name}"]')
        expect(cell).to_be_visible()
        box = cell.bounding_box()
        assert box["height"] < 4 * 24, (url, box)  # three lines at most: the title carries the rest
        assert cell.inner_text() == name  # cut on screen only: the page holds the whole name
    page.goto("/mlops/")
    chip = page.locator("#models .label-chip", has_text="blob=")
    assert chip.get_attribute("title") == f"blob={HUGE[:5000]}" and chip.bounding_box()["height"] < 40
    assert not page.console_errors
