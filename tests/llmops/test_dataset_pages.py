"""Dataset pages: items (add, edit, delete, search, tags), import with a preview (all rows or none), export,
deleting."""

from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from llmops import services
from llmops.models import Dataset, DatasetItem
from tests.helpers import client_for

from .pages import text_of

pytestmark = pytest.mark.django_db


def test_operator_creates_a_dataset_and_adds_edits_and_deletes_items(operator):
    client = client_for(operator)
    response = client.post(reverse("llmops:datasets"), {"new-name": "qa/smoke", "new-description": "Smoke tests"})
    dataset = Dataset.objects.get(name="qa/smoke")
    assert response["Location"] == dataset.get_absolute_url()
    url = dataset.get_absolute_url()
    bad = client.post(url, {"item-input": '{"q": ', "item-expected_output": "x"})
    assert bad.status_code == 400 and "Input is not valid JSON" in text_of(bad)
    client.post(url, {"item-input": '{"q": "2+2"}', "item-expected_output": "4", "item-tags": "math, easy",
                      "item-metadata": '{"source": "manual"}'})  # fmt: skip
    item = dataset.items.get()
    assert item.input == {"q": "2+2"} and item.tags == ["math", "easy"] and item.metadata == {"source": "manual"}
    edit_url = reverse("llmops:dataset-item", args=[dataset.pk, item.pk])
    inline = client.get(edit_url, HTTP_HX_REQUEST="true").content.decode()
    assert inline.strip().startswith(f'<tr id="item-{item.pk}"') and 'name="edit-' in inline
    client.post(edit_url, {f"edit-{item.pk}-input": '{"q": "3+3"}', f"edit-{item.pk}-expected_output": "6"})
    item.refresh_from_db()
    assert item.input == {"q": "3+3"} and item.expected_output == "6"
    client.post(reverse("llmops:dataset-item-delete", args=[dataset.pk, item.pk]))
    assert not dataset.items.exists()


def test_dataset_items_are_paginated_with_constant_queries(viewer, operator):
    dataset = services.create_dataset(name="big", actor=operator)
    client = client_for(viewer)

    def measure() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(dataset.get_absolute_url()).status_code == 200
        return len(queries)

    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, input={"n": i}, tags=["t"]) for i in range(3)])
    few = measure()
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, input={"n": i}, tags=["t"]) for i in range(120)])
    assert measure() == few
    page = text_of(client.get(dataset.get_absolute_url()))
    assert "123 items" in page and "Page 1 of 3" in page


def test_dataset_list_uses_constant_queries(viewer, operator):
    client = client_for(viewer)

    def measure() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("llmops:datasets")).status_code == 200
        return len(queries)

    for i in range(2):
        services.add_item(dataset=services.create_dataset(name=f"d{i}", actor=operator), actor=operator, input={"a": 1})
    few = measure()
    for i in range(2, 8):
        services.add_item(dataset=services.create_dataset(name=f"d{i}", actor=operator), actor=operator, input={"a": 1})
    assert measure() == few


def test_export_downloads_csv_and_jsonl(viewer, capitals_dataset):
    client = client_for(viewer)
    url = reverse("llmops:dataset-export", args=[capitals_dataset.pk])
    csv_response = client.get(url, {"format": "csv"})
    assert csv_response["Content-Type"].startswith("text/csv")
    assert csv_response["Content-Disposition"] == 'attachment; filename="capitals.csv"'
    assert '"{""country"": ""France""}",Paris' in csv_response.content.decode()
    lines = client.get(url, {"format": "jsonl"}).content.decode().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["input"] == {"country": "France"}


def test_import_previews_then_imports_every_row(operator, capitals_dataset):
    client = client_for(operator)
    url = reverse("llmops:dataset-import", args=[capitals_dataset.pk])
    data = b'country,expected_output,tags\nPeru,Lima,americas\nChile,Santiago,"americas,south"\n'
    preview = client.post(url, {"file": SimpleUploadedFile("more.csv", data, "text/csv")})
    assert preview.status_code == 200
    text = text_of(preview)
    assert "2 valid rows" in text and "Peru" in text and "Santiago" in text and "Import 2 items" in text
    assert capitals_dataset.items.count() == 4, "a preview stores nothing"
    token = re.search(r'name="confirm" value="([^"]+)"', preview.content.decode()).group(1)
    done = client.post(url, {"confirm": token})
    assert done.status_code == 302
    assert capitals_dataset.items.count() == 6
    assert capitals_dataset.items.get(input={"country": "Chile"}).tags == ["americas", "south"]
    # The preview is used once.
    assert client.post(url, {"confirm": token}).status_code == 302
    assert capitals_dataset.items.count() == 6


def test_a_file_with_a_bad_row_imports_nothing_and_names_the_row(operator, capitals_dataset):
    client = client_for(operator)
    url = reverse("llmops:dataset-import", args=[capitals_dataset.pk])
    lines = [
        json.dumps({"input": {"country": "Peru"}, "expected_output": "Lima"}),
        json.dumps({"input": {"country": "Chile"}, "metadata": "not an object"}),
        "{broken",
    ]
    response = client.post(url, {"file": SimpleUploadedFile("rows.jsonl", "\n".join(lines).encode())})
    assert response.status_code == 400
    text = text_of(response)
    assert "Nothing will be imported: 2 rows have problems" in text
    assert "Row 2: metadata is not valid JSON" in text
    assert "Row 3: not valid JSON" in text
    assert 'name="confirm"' not in response.content.decode()
    assert capitals_dataset.items.count() == 4


def test_items_filter_by_tag_and_text(viewer, operator, capitals_dataset):
    services.add_item(dataset=capitals_dataset, actor=operator, input={"country": "Peru"}, expected_output="Lima",
                      tags=["americas"])  # fmt: skip
    client = client_for(viewer)
    tagged = client.get(capitals_dataset.get_absolute_url(), {"tag": "americas"}).content.decode()
    assert len(re.findall(r'<tr id="item-\d+"', tagged)) == 1 and "Lima" in tagged
    searched = client.get(capitals_dataset.get_absolute_url(), {"q": "rom"}).content.decode()
    assert len(re.findall(r'<tr id="item-\d+"', searched)) == 1 and "Rome" in searched


def test_only_admins_delete_a_dataset_and_they_type_its_name(operator, admin_user, capitals_dataset):
    url = reverse("llmops:dataset-delete", args=[capitals_dataset.pk])
    assert client_for(operator).post(url, {"delete-confirm": "capitals"}).status_code == 403
    client = client_for(admin_user)
    wrong = client.post(url, {"delete-confirm": "capital"})
    assert wrong.status_code == 400 and "Type capitals exactly" in text_of(wrong)
    assert client.post(url, {"delete-confirm": "capitals"})["Location"] == reverse("llmops:datasets")
    assert not Dataset.objects.filter(pk=capitals_dataset.pk).exists()


def test_a_dataset_that_gates_a_prompt_is_not_deleted_and_the_page_says_why(admin_user, capitals_prompt,
                                                                             capitals_dataset):  # fmt: skip
    services.update_prompt(prompt=capitals_prompt, actor=admin_user, gate_dataset=capitals_dataset,
                           gate_min_pass_rate=0.9)  # fmt: skip
    url = reverse("llmops:dataset-delete", args=[capitals_dataset.pk])
    refused = client_for(admin_user).post(url, {"delete-confirm": "capitals"})
    assert refused.status_code == 400
    assert "it is the release gate of capitals; change their gate first" in text_of(refused)
    assert Dataset.objects.filter(pk=capitals_dataset.pk).exists()
