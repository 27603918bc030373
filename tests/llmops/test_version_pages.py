"""Version pages: the new-version form and its messages editor, a version with its preview, the diff of two versions."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from llmops import services
from llmops.models import PromptLabel, PromptVersion
from tests.helpers import client_for

from .pages import text_of

pytestmark = pytest.mark.django_db


def test_new_version_form_is_prefilled_and_saves_the_next_version(operator, version):
    prompt = version.prompt
    client = client_for(operator)
    url = reverse("llmops:prompt-new-version", args=[prompt.name])
    page = client.get(url).content.decode()
    assert "What is the capital of {{ country }}?" in html.unescape(page)
    assert 'name="messages-TOTAL_FORMS" value="2"' in page
    assert re.search(r'name="temperature"[^>]*value="0(\.0)?"', page)
    data = {
        "messages-TOTAL_FORMS": "2", "messages-INITIAL_FORMS": "0", "messages-MIN_NUM_FORMS": "1",
        "messages-MAX_NUM_FORMS": "50",
        "messages-0-role": "system", "messages-0-content": "Answer with the city only.",
        "messages-1-role": "user", "messages-1-content": "Capital of {{ country }}?",
        "model": "test-model", "temperature": "0.2", "max_tokens": "20", "response_format": "json_object",
        "other_parameters": '{"seed": 7}', "commit_message": "Shorter answers",
    }  # fmt: skip
    response = client.post(url, data)
    new = PromptVersion.objects.get(prompt=prompt, version=2)
    assert response.status_code == 302 and response["Location"] == new.get_absolute_url()
    assert new.parameters == {"temperature": 0.2, "max_tokens": 20, "response_format": {"type": "json_object"},
                              "seed": 7}  # fmt: skip
    assert new.commit_message == "Shorter answers" and new.author == operator
    assert not PromptLabel.objects.filter(prompt=prompt).exists(), "saving a version moves no label"


def test_messages_editor_adds_and_removes_rows_without_saving(operator, version):
    client = client_for(operator)
    url = reverse("llmops:prompt-new-version", args=[version.prompt.name])
    base = {"messages-TOTAL_FORMS": "1", "messages-INITIAL_FORMS": "0", "messages-0-role": "user",
            "messages-0-content": "Hello {{ name }}", "model": "m", "commit_message": "draft"}  # fmt: skip
    added = client.post(url, {**base, "editor": "add-message"}, HTTP_HX_REQUEST="true")
    assert added.status_code == 200
    body = added.content.decode()
    assert 'name="messages-TOTAL_FORMS" value="2"' in body and "Hello {{ name }}" in html.unescape(body)
    assert 'value="draft"' in body, "the rest of the form is kept"
    two = {**base, "messages-TOTAL_FORMS": "2", "messages-1-role": "assistant", "messages-1-content": "Hi"}
    removed = client.post(url, {**two, "editor": "remove-message-0"}).content.decode()
    assert 'name="messages-TOTAL_FORMS" value="1"' in removed and "Hello {{ name }}" not in html.unescape(removed)
    assert PromptVersion.objects.filter(prompt=version.prompt).count() == 1


def test_a_bad_template_is_reported_next_to_its_message(operator, version):
    client = client_for(operator)
    data = {"messages-TOTAL_FORMS": "2", "messages-INITIAL_FORMS": "0",
            "messages-0-role": "system", "messages-0-content": "Fine.",
            "messages-1-role": "user", "messages-1-content": "Broken {{ country",
            "temperature": "5"}  # fmt: skip
    response = client.post(reverse("llmops:prompt-new-version", args=[version.prompt.name]), data)
    assert response.status_code == 400
    body = html.unescape(response.content.decode())
    assert "Ensure this value is less than or equal to 2" in body
    data["temperature"] = "1"
    response = client.post(reverse("llmops:prompt-new-version", args=[version.prompt.name]), data)
    body = html.unescape(response.content.decode())
    # The error sits in the second message's row.
    row = body[body.index('id="message-1"') :]
    assert "messages[1].content: line 1" in row[: row.index("</textarea>") + 400]


def test_version_page_marks_variables_previews_and_lists_runs(viewer, finished_run, version):
    client = client_for(viewer)
    response = client.get(version.get_absolute_url())
    body = response.content.decode()
    assert '<mark class="tpl-var">{{ country }}</mark>' in body
    assert f"#{finished_run.pk}" in text_of(response)
    preview = client.get(version.get_absolute_url(), {"variables": '{"country": "Peru"}'})
    assert "What is the capital of Peru?" in text_of(preview)
    missing = client.get(version.get_absolute_url(), {"variables": '{"city": "x"}'})
    assert "'country' is undefined" in text_of(missing)


def test_diff_page_shows_changed_lines_side_by_side(viewer, version, operator):
    prompt = version.prompt
    services.create_version(
        prompt=prompt, actor=operator, commit_message="Stricter",
        messages=[{"role": "system", "content": "Answer in one word."},
                  {"role": "user", "content": "What is the capital of {{ country }}?"}],
        parameters={"temperature": 0.5},
    )  # fmt: skip
    response = client_for(viewer).get(reverse("llmops:prompt-diff", args=[prompt.name]))
    body = response.content.decode()
    assert response.status_code == 200
    text = text_of(response)
    assert "capitals: v1 → v2" in text and "2 parts changed" in text
    assert '<td class="removed">Answer in one <del>sentence</del>.</td>' in body
    assert '<td class="added">Answer in one <ins>word</ins>.</td>' in body
    assert "unchanged" in text  # the user message
    history = client_for(viewer).get(prompt.get_absolute_url()).content.decode()
    assert f"{reverse('llmops:prompt-diff', args=[prompt.name])}?a=1&amp;b=2" in history
    assert "diff with previous" in history
