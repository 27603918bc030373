"""Every LLMOps page renders for a viewer, sends anonymous visitors to log in, and refuses writes without the role."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from llmops import services
from llmops.models import Dataset, Prompt, Provider
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def every_page(finished_run, version, capitals_dataset, provider):
    prompt = version.prompt
    services.create_version(
        prompt=prompt, actor=None, messages=[{"role": "user", "content": "Capital of {{ country }}?"}]
    )
    item = capitals_dataset.items.first()
    return [
        reverse("llmops:index"),
        reverse("llmops:providers"),
        reverse("llmops:provider", args=[provider.pk]),
        reverse("llmops:prices"),
        reverse("llmops:prompts"),
        reverse("llmops:prompt", args=[prompt.name]),
        reverse("llmops:prompt-version", args=[prompt.name, 1]),
        reverse("llmops:prompt-diff", args=[prompt.name]),
        reverse("llmops:datasets"),
        reverse("llmops:dataset", args=[capitals_dataset.pk]),
        reverse("llmops:dataset-item", args=[capitals_dataset.pk, item.pk]),
        reverse("llmops:runs"),
        reverse("llmops:run", args=[finished_run.pk]),
        reverse("llmops:compare"),
        f"{reverse('llmops:compare')}?a={finished_run.pk}&b={finished_run.pk}",
    ]


def test_every_page_renders_for_a_viewer(viewer, every_page):
    client = client_for(viewer)
    for url in every_page:
        response = client.get(url)
        assert response.status_code == 200, url
        # The sub-navigation is on every page, with the current section marked.
        assert 'aria-label="LLMOps sections"' in response.content.decode(), url
        assert 'aria-current="page"' in response.content.decode(), url


def test_anonymous_visitors_are_sent_to_log_in(every_page):
    for url in every_page:
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_viewers_cannot_open_forms_that_change_things(viewer, version, capitals_dataset):
    client = client_for(viewer)
    for url in [
        reverse("llmops:run-new"),
        reverse("llmops:run-score"),
        reverse("llmops:prompt-new-version", args=[version.prompt.name]),
        reverse("llmops:dataset-import", args=[capitals_dataset.pk]),
    ]:
        assert client.get(url).status_code == 403, url


@pytest.mark.parametrize(
    ("who", "url_name", "data"),
    [
        ("viewer", "llmops:prompts", {"new-name": "x", "new-user": "Hi"}),
        ("viewer", "llmops:datasets", {"new-name": "x"}),
        ("operator", "llmops:providers", {"new-name": "p", "new-base_url": "http://x/v1"}),
        ("operator", "llmops:prices", {"model_name": "m", "input_per_million": "1", "output_per_million": "1"}),
    ],
)
def test_writes_need_the_role(request, who, url_name, data):
    user = request.getfixturevalue(who)
    response = client_for(user).post(reverse(url_name), data)
    assert response.status_code == 403
    assert not Prompt.objects.filter(name="x").exists() and not Dataset.objects.filter(name="x").exists()
    assert not Provider.objects.filter(name="p").exists()


def test_operators_cannot_change_providers_the_gate_or_test_connections(operator, provider, version):
    client = client_for(operator)
    assert client.post(reverse("llmops:provider-action", args=[provider.pk, "delete"])).status_code == 403
    assert client.post(reverse("llmops:provider-test", args=[provider.pk]), {"model_name": "m"}).status_code == 403
    gate = reverse("llmops:prompt-action", args=[version.prompt.name, "gate"])
    assert client.post(gate, {"gate-gate_min_pass_rate": "50"}).status_code == 403
    page = client.get(reverse("llmops:provider", args=[provider.pk])).content.decode()
    assert "Edit provider" not in page and "Test connection" not in page
