"""A product engineer evaluates a prompt in the browser: starts a run against a local OpenAI-compatible
server, watches its progress bar fill, and finds the regression against the previous run."""

from __future__ import annotations

import re
import threading

import pytest
from django.db import connection
from playwright.sync_api import expect

from llmops import engine, services
from llmops.models import EvalRun
from opsportal.accounts.roles import Role
from tests.e2e.helpers import log_in
from tests.llmops.fake_openai import FakeOpenAI
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

CAPITALS = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"), ("Peru", "Lima"),
            ("Chile", "Santiago"), ("Kenya", "Nairobi"), ("Egypt", "Cairo")]  # fmt: skip
# Passes when the answer names the expected city: "The capital is Paris." against "Paris" scores 0.4.
NAMES_THE_CITY = [{"type": "rouge-l", "threshold": 0.3}]


@pytest.fixture(autouse=True)
def _own_broker(isolated_broker):
    """The test executes the run itself; what the form enqueues goes to a broker folder no developer's worker reads."""


@pytest.fixture(autouse=True)
def _quick_retries(settings):
    settings.LLMOPS_RETRY_BASE_SECONDS = 0.05


@pytest.fixture
def fake_llm():
    server = FakeOpenAI()
    for country, city in CAPITALS:
        server.answers[f"capital of {country}"] = f"The capital is {city}."
    yield server
    server.close()


def execute_in_background(run_id: int) -> threading.Thread:
    """What a worker does, in a thread: the live server's database is transactional, so the thread sees the run."""

    def work() -> None:
        try:
            engine.execute(run_id)
        finally:
            connection.close()

    thread = threading.Thread(target=work, name=f"run-{run_id}", daemon=True)
    thread.start()
    return thread


def test_run_an_evaluation_watch_it_finish_and_find_the_regression(page, fake_llm):
    admin = UserFactory(username="ada", role=Role.ADMIN)
    UserFactory(username="otto", role=Role.OPERATOR)
    provider = services.create_provider(name="local", base_url=fake_llm.base_url, actor=admin, max_concurrency=2)
    model = services.add_model(provider=provider, name="test-model", actor=admin, input_per_million="1",
                               output_per_million="2")  # fmt: skip
    prompt = services.create_prompt(
        name="geo/capitals",
        actor=admin,
        messages=[{"role": "system", "content": "Answer in one sentence."},
                  {"role": "user", "content": "What is the capital of {{ country }}?"}],
        model="test-model",
    )  # fmt: skip
    version = prompt.versions.get()
    dataset = services.create_dataset(name="capitals", actor=admin)
    for country, city in CAPITALS:
        services.add_item(dataset=dataset, actor=admin, input={"country": country}, expected_output=city)
    services.create_prompt(name="support/triage", actor=admin, messages=[{"role": "user", "content": "{{ ticket }}"}])
    baseline = services.create_run(dataset=dataset, prompt_versions=[version], models=[model],
                                   scorers=NAMES_THE_CITY, actor=admin, name="baseline")  # fmt: skip
    assert engine.execute(baseline.pk) == "completed"
    # Today the model gets Japan wrong, and answers slowly enough to watch.
    fake_llm.answers["capital of Japan"] = "The capital is Kyoto."
    fake_llm.delay = 0.5

    log_in(page, "otto")
    page.get_by_role("navigation", name="Main navigation").get_by_role("link", name="LLMOps", exact=True).click()
    page.get_by_role("navigation", name="LLMOps sections").get_by_role("link", name="Runs").click()
    expect(page.locator("#runs").get_by_role("link", name="baseline")).to_be_visible()
    page.get_by_role("link", name="New run").click()
    expect(page.get_by_role("heading", name="New evaluation run")).to_be_visible()
    page.wait_for_load_state("load")  # htmx drives the scorer editor

    page.get_by_label("Name", exact=True).fill("after the model update")
    page.get_by_label("Dataset").select_option(label="capitals")
    # Versions and models are checkbox lists; the filter box narrows them as one types.
    versions = page.locator("#id_prompt_versions")
    expect(versions.get_by_label("support/triage v1")).to_be_visible()
    page.get_by_label("Filter prompt versions").fill("geo cap")
    expect(versions.get_by_label("support/triage v1")).to_be_hidden()
    expect(versions.get_by_label("geo/capitals v1")).to_be_visible()
    versions.get_by_label("geo/capitals v1").check()
    expect(versions).to_contain_text("(1 chosen)")
    page.get_by_label("Filter prompt versions").fill("no such prompt")
    expect(versions.get_by_text("No match.")).to_be_visible()
    page.get_by_label("Filter prompt versions").fill("")
    expect(versions.get_by_label("support/triage v1")).to_be_visible()
    page.locator("#id_models").get_by_label("local/test-model").check()
    page.get_by_label("Concurrency").fill("1")
    # Choosing the scorer type redraws its row (htmx) with that scorer's options and default threshold.
    page.get_by_label("Scorer 1 type").select_option("rouge-l")
    expect(page.get_by_text("Threshold (0.75)")).to_be_visible()
    page.get_by_label("Threshold (0.75)").fill("0.3")
    # A second scorer's options are fields generated from what the scorer declares.
    page.get_by_role("button", name="Add scorer").click()
    expect(page.get_by_label("Scorer 2 type")).to_be_visible()
    # The added row must have settled before its change event can redraw it (htmx drops a request from a
    # swapped-out element); on a busy machine that takes a moment.
    page.wait_for_function("!document.querySelector('.htmx-request, .htmx-settling, .htmx-swapping')")
    page.get_by_label("Scorer 2 type").select_option("regex")
    pattern = page.locator("#id_scorers-1-option-pattern")
    expect(pattern).to_be_visible(timeout=15_000)
    expect(page.locator("#id_scorers-1-option-flags")).to_be_visible()
    expect(page.locator("#scorer-1")).to_contain_text("The regular expression, Python syntax.")
    pattern.fill("capital")
    expect(page.locator("#id_prompt_versions").get_by_label("geo/capitals v1")).to_be_checked()
    page.get_by_role("button", name="Start run").click()

    expect(page).to_have_url(re.compile(r"/llmops/runs/\d+/$"))
    run = EvalRun.objects.get(name="after the model update")
    assert page.url.endswith(run.get_absolute_url())
    assert run.scorers[1] == {"type": "regex", "config": {"pattern": "capital"}, "weight": 1.0}
    # The page polls while the run works; the bar starts before the first result is in.
    bar = page.locator("#run-progress-bar")
    expect(bar).to_be_visible()
    assert int(bar.get_attribute("aria-valuenow")) < 100
    worker = execute_in_background(run.pk)
    # About 4 s of work at one request at a time: the bar is seen part-way before it fills.
    expect(page.locator("#run-status")).to_have_text("Running", timeout=15_000)
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-9]\d?$"), timeout=15_000)
    expect(bar).to_have_attribute("aria-valuenow", "100", timeout=30_000)
    # The bar is split into what passed and what failed (nothing errored: no amber part).
    expect(bar.locator('[data-segment="passed"]')).to_have_text("7 passed")
    expect(bar.locator('[data-segment="failed"]')).to_have_text("1 failed")
    expect(bar.locator('[data-segment="errored"]')).to_have_count(0)
    expect(page.locator("#run-status")).to_have_text("Completed")
    worker.join(10)
    expect(page.locator("#run-counts")).to_have_text("8 of 8 results")
    expect(page.locator("[data-stat=failed]")).to_have_text("1")
    # When the run finished, the report below reloaded with the results and charts.
    expect(page.locator("#run-summary")).to_contain_text("87.5%")
    expect(page.locator("#results")).to_contain_text("The capital is Kyoto.")
    expect(page.locator('[data-chart="run-chart-scores"][data-rendered="true"]')).to_be_visible()
    page.get_by_role("link", name="Failed only").click()
    expect(page.locator("#results tbody tr")).to_have_count(1)
    expect(page.locator("#results")).to_contain_text("Japan")

    page.get_by_role("link", name=re.compile(r"Compare with previous run")).click()
    expect(page.get_by_role("heading", name="Compare runs")).to_be_visible()
    expect(page.locator('[data-count="regressions"]')).to_have_text("1")
    regression = page.locator("#compare-items tr.change-regression")
    expect(regression).to_have_count(1)
    expect(regression).to_contain_text("Japan")
    expect(regression.locator(".badge", has_text="regression")).to_be_visible()
    expect(regression.locator("ins")).to_have_text("Kyoto")
    expect(page.locator("#compare-summary")).to_contain_text("same dataset snapshot")
    expect(page.locator('[data-chart="compare-chart-scores"][data-rendered="true"]')).to_be_visible()
    page.get_by_role("link", name="Changed only").click()
    expect(page.locator("#compare-items tbody tr")).to_have_count(1)

    assert page.console_errors == []
    assert page.outside_requests == []


def test_edit_a_prompt_and_meet_the_release_gate(page):
    admin = UserFactory(username="ada", role=Role.ADMIN)
    UserFactory(username="otto", role=Role.OPERATOR)
    dataset = services.create_dataset(name="gate-set", actor=admin)
    services.add_item(dataset=dataset, actor=admin, input={"ticket": "Refund please"}, expected_output="billing")
    prompt = services.create_prompt(name="support/triage", actor=admin,
                                    messages=[{"role": "user", "content": "Route: {{ ticket }}"}])  # fmt: skip
    services.update_prompt(prompt=prompt, actor=admin, gate_dataset=dataset, gate_min_pass_rate=0.9)

    log_in(page, "otto")
    page.goto(prompt.get_absolute_url())
    page.get_by_role("link", name="New version").click()
    page.wait_for_load_state("load")
    # The editor starts from the latest version; a message row is added without leaving the page.
    expect(page.get_by_label("Content of message 1")).to_have_value("Route: {{ ticket }}")
    page.evaluate("window.__samePage = true")
    page.get_by_role("button", name="Add message").click()
    expect(page.get_by_label("Content of message 2")).to_be_visible()
    assert page.evaluate("window.__samePage") is True
    page.get_by_label("Role of message 1").select_option("system")
    page.get_by_label("Content of message 1").fill("You route support tickets to a team.")
    page.get_by_label("Role of message 2").select_option("user")
    page.get_by_label("Content of message 2").fill("Ticket: {{ ticket }}\nTeam:")
    page.get_by_label("Commit message").fill("System prompt and a clearer ask")
    page.get_by_role("button", name="Save new version").click()
    expect(page.get_by_role("heading", name=re.compile(r"support\/triage\s+v2"))).to_be_visible()
    expect(page.locator("mark.tpl-var").first).to_have_text("{{ ticket }}")

    page.get_by_role("link", name="Diff with v1").click()
    expect(page.locator("#diff-summary")).to_contain_text("changed")
    expect(page.locator("td.added").first).to_be_visible()

    page.goto(prompt.get_absolute_url())
    page.get_by_role("combobox", name="Label").fill("production")
    page.get_by_role("combobox", name="Version").select_option("2")
    page.get_by_role("button", name="Move label").click()
    refusal = page.locator("#gate-refusal")
    expect(refusal).to_contain_text("Refused by the release gate.")
    expect(refusal).to_contain_text("No finished run of support/triage v2 on the gate dataset 'gate-set'")
    page.get_by_role("combobox", name="Label").fill("staging")
    page.get_by_role("button", name="Move label").click()
    expect(page.locator("#labels")).to_contain_text("staging")

    # The refused move answers 409 (as the API does); Chromium logs that status, which is no script error.
    assert [e for e in page.console_errors if "status of 409 (Conflict)" not in e] == []
    assert page.outside_requests == []


def test_admin_connects_a_provider_and_operator_edits_an_item_in_place(page, fake_llm):
    admin = UserFactory(username="ada", role=Role.ADMIN)
    dataset = services.create_dataset(name="capitals", actor=admin)
    item = services.add_item(dataset=dataset, actor=admin, input={"country": "France"}, expected_output="Pariss")
    # Transactional tests empty the tables, the price table's migrated rows too: the test sets its own price.
    services.set_price(model_name="acme-*", input_per_million="0.15", output_per_million="0.6", actor=admin)
    fake_llm.default_answer = "OK"

    log_in(page, "ada")
    page.goto("/llmops/providers/")
    page.get_by_label("Name").fill("local")
    page.get_by_label("Base URL").fill(fake_llm.base_url)
    page.get_by_label("API key").fill("sk-local-secret")
    page.get_by_role("button", name="Add provider").click()
    expect(page.locator("#provider-key")).to_contain_text("set (stored encrypted, never shown)")
    assert "sk-local-secret" not in page.content()

    # Typing a model id the price table knows fills in its prices (once htmx has set the page up).
    page.wait_for_load_state("load")
    add_model = page.get_by_role("region", name="Add a model")
    add_model.get_by_label("Model id").fill("acme-mini")
    expect(add_model.get_by_label("Input USD / 1M tokens")).to_have_value("0.1500")
    expect(page.locator("#price-source")).to_contain_text("From the price table entry acme-*")
    add_model.get_by_role("button", name="Add model").click()
    expect(page.locator("#models")).to_contain_text("acme-mini")

    page.get_by_role("button", name="Test connection with acme-mini").click()
    expect(page.locator("#test-result")).to_contain_text("answered 'OK'")
    fake_llm.fail(1, status=401, message="Incorrect API key provided")
    page.get_by_role("button", name="Test connection with acme-mini").click()
    expect(page.locator("#test-result")).to_contain_text("HTTP 401: Incorrect API key provided")

    page.goto(dataset.get_absolute_url())
    page.evaluate("window.__samePage = true")
    page.get_by_role("link", name=f"Edit item {item.pk}").click()
    row = page.locator(f"#item-{item.pk}")
    expect(row.get_by_label("Expected output")).to_have_value("Pariss")
    row.get_by_label("Expected output").fill("Paris")
    assert page.evaluate("window.__samePage") is True, "the row became a form without leaving the page"
    row.get_by_role("button", name="Save item").click()
    expect(page.locator(f"#item-{item.pk}")).to_contain_text("Paris")
    item.refresh_from_db()
    assert item.expected_output == "Paris"

    assert page.console_errors == []
    assert page.outside_requests == []
