"""What a run's badge and bar say: a run whose results errored is never shown as a plain green "Completed"."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from llmops.models import EvalRun
from tests.helpers import client_for

from . import factories
from .pages import text_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def errored_run(operator, admin_user, version, capitals_dataset):
    """A finished run whose every call failed: nothing listens on the provider's port."""
    dead = factories.provider(base_url="http://127.0.0.1:9/v1", actor=admin_user, name="dead", max_retries=0)
    model = factories.model(provider=dead, actor=admin_user, name="test-model")
    run = factories.finished_run(version=version, model=model, dataset=capitals_dataset, actor=operator)
    assert run.status == EvalRun.Status.COMPLETED and run.errors == run.total == 4
    return run


def _badges(body: str) -> list[tuple[str, str]]:
    """(classes, text) of each run badge on a page."""
    return re.findall(r'<span class="badge ([^"]+)"(?: id="run-status")? data-status="\w+">([^<]+)</span>', body)


def test_a_run_whose_results_all_errored_is_red_with_its_errors(viewer, errored_run):
    body = client_for(viewer).get(errored_run.get_absolute_url()).content.decode()
    badge = re.search(r'<span class="badge fs-6 ([^"]+)" id="run-status" data-status="completed">([^<]+)<', body)
    assert badge and badge.group(2) == "Completed with 4 errors: nothing scored"
    assert "text-bg-danger" in badge.group(1) and "success" not in badge.group(1)
    bar = body[body.index('id="run-progress-bar"') : body.index('id="run-figures"')]
    assert "bg-success" not in bar
    assert re.search(r'class="progress-bar bg-warning text-dark" style="width: 100\.0%" data-segment="errored"', bar)
    assert "no result was scored" in text_of(client_for(viewer).get(errored_run.get_absolute_url()))


def test_every_list_of_runs_shows_the_errors(viewer, errored_run, version):
    client = client_for(viewer)
    pages = [
        reverse("llmops:runs"),
        reverse("llmops:index"),
        version.prompt.get_absolute_url(),
        version.get_absolute_url(),
    ]
    for url in pages:
        body = client.get(url).content.decode()
        badges = [b for b in _badges(body) if "errors" in b[1]]
        assert badges, f"{url} shows the run's errors in its badge"
        assert all("text-bg-danger" in classes for classes, _ in badges), url
        assert "Completed</span>" not in body, url
    compare = client.get(reverse("llmops:compare")).content.decode()
    assert f'<option value="{errored_run.pk}">#{errored_run.pk} {errored_run.name} (Completed with 4 errors' in compare
    runs = client.get(reverse("llmops:runs")).content.decode()
    assert 'data-segment="errored"' in runs and 'data-segment="passed"' not in runs


def test_a_partly_errored_run_is_amber_and_its_bar_is_split(viewer, operator, version, llm, capitals_dataset, fake_llm):
    fake_llm.fail(1, status=400, message="context length exceeded")  # a 400 is not retried
    run = factories.finished_run(version=version, model=llm, dataset=capitals_dataset, actor=operator,
                                 scorers=factories.names_the_city())  # fmt: skip
    assert run.errors == 1 and run.passed >= 1
    body = client_for(viewer).get(reverse("llmops:runs")).content.decode()
    assert ("text-bg-warning", "Completed with 1 error") in _badges(body)
    assert re.search(rf'data-segment="passed" title="{run.passed} passed"', body)
    assert re.search(r'data-segment="errored" title="1 errored"', body)


@pytest.mark.parametrize(
    ("status", "total", "done", "errors", "passed", "label", "tone"),
    [
        ("completed", 4, 4, 0, 3, "Completed", "success"),
        ("completed", 4, 4, 1, 3, "Completed with 1 error", "warning"),
        ("completed", 4, 4, 4, 0, "Completed with 4 errors: nothing scored", "danger"),
        ("completed", 0, 0, 0, 0, "Completed: nothing scored", "secondary"),
        ("running", 4, 2, 2, 0, "Running, 2 errors so far", "warning"),
        ("running", 4, 2, 0, 2, "Running", "primary"),
        ("failed", 4, 1, 1, 0, "Failed, 1 error", "danger"),
        ("cancelled", 4, 0, 0, 0, "Cancelled", "secondary"),
    ],
)
def test_run_state(status, total, done, errors, passed, label, tone):
    run = EvalRun(status=status, total=total, done=done, errors=errors, passed=passed)
    assert run.state == (label, tone)
    assert sum(part["percent"] for part in run.bar_segments) == pytest.approx(100 * done / total if total else 0)
