"""The run list's filters: `all` means no filter, an unknown value is named with its allowed values, never hidden."""

from __future__ import annotations

import pytest

from tests.helpers import client_for

pytestmark = pytest.mark.django_db


def test_an_unknown_status_is_named_with_the_allowed_values(viewer):
    page = client_for(viewer).get("/llmops/runs/?status=sleeping").content.decode()
    assert "Filter status: “sleeping” — not a value it knows; the allowed values are" in page
    assert "(or all)" in page


def test_an_unknown_dataset_is_named(viewer):
    page = client_for(viewer).get("/llmops/runs/?dataset=999999").content.decode()
    assert "Filter dataset: “999999”" in page


def test_all_means_no_filter(viewer):
    page = client_for(viewer).get("/llmops/runs/?status=all&dataset=all").content.decode()
    assert "filter-problem" not in page
