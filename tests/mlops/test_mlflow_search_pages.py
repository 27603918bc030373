"""Search pages built by PostgreSQL in one statement say what the Python-built pages say.

On PostgreSQL `registered-models/search` and `model-versions/search` answer with JSON that one
statement builds from the search's ids; other databases build it in Python (serialize.py).
"""

from __future__ import annotations

import json

import pytest
from django.db import connection

from mlops import services
from mlops.mlflow_api.serialize import (
    model_rows,
    model_versions_json,
    model_versions_page_json,
    registered_models_json,
    registered_models_page_json,
    version_rows,
)
from mlops.models import ModelVersion, RegisteredModel

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the SQL-built pages are PostgreSQL's"),
]


@pytest.fixture
def catalogue(make_model, operator):
    for name in ("alpha", "beta", "gamma"):
        model = make_model(name=name, versions=3, tags={"team": name, "tier": "1"})
        two, three = model.versions.get(version=2), model.versions.get(version=3)
        services.transition_stage(version=two, stage="Production", actor=operator)
        services.set_alias(model=model, alias="champion", version=two, actor=operator)
        services.set_alias(model=model, alias="a-first", version=two, actor=operator)
        services.set_version_tag(version=three, key="note", value="new", actor=operator)
        services.set_version_tag(version=three, key="B", value="upper", actor=operator)
    make_model(name="empty", versions=0)


@pytest.mark.parametrize("size", [1, 4, 5, 20])
def test_a_page_of_versions_is_the_python_page(catalogue, size):
    ordered = ModelVersion.objects.order_by("-model__name", "version")
    for offset in (0, size):
        sql, more = model_versions_page_json(ordered.values_list("id", flat=True)[offset : offset + size + 1], size)
        rows = list(version_rows(ordered)[offset : offset + size + 1])
        assert json.loads(sql) == model_versions_json(rows[:size])
        assert more == (len(rows) > size)
    champion = next(v for v in json.loads(model_versions_page_json(ordered.values_list("id", flat=True)[:20], 20)[0])
                    if v["version"] == "2")  # fmt: skip
    assert champion["aliases"] == ["a-first", "champion"] and champion["current_stage"] == "Production"


@pytest.mark.parametrize("size", [1, 3, 4, 10])
def test_a_page_of_models_is_the_python_page(catalogue, size):
    ordered = RegisteredModel.objects.order_by("-name")
    for offset in (0, size):
        sql, more = registered_models_page_json(ordered.values_list("id", flat=True)[offset : offset + size + 1], size)
        rows = list(model_rows(ordered)[offset : offset + size + 1])
        assert json.loads(sql) == registered_models_json(rows[:size])
        assert more == (len(rows) > size)


def test_an_empty_search_is_an_empty_page(catalogue):
    nothing = ModelVersion.objects.filter(source="nowhere").values_list("id", flat=True)
    assert model_versions_page_json(nothing[:11], 10) == ("[]", False)
    assert registered_models_page_json(RegisteredModel.objects.none().values_list("id", flat=True), 10) == (
        "[]",
        False,
    )


def test_one_model_or_version_by_name_number_or_alias_is_the_python_answer(catalogue):
    from mlops.mlflow_api.serialize import (
        model_version_by_alias_json_text,
        model_version_json_text,
        registered_model_json_text,
    )

    for name in ("alpha", "empty"):
        python = registered_models_json(list(model_rows(RegisteredModel.objects.filter(name=name))))[0]
        assert json.loads(registered_model_json_text(name)) == python
    two = ModelVersion.objects.filter(model__name="beta", version=2)
    python = model_versions_json(list(version_rows(two)))[0]
    assert json.loads(model_version_json_text("beta", 2)) == python
    assert json.loads(model_version_by_alias_json_text("beta", "champion")) == python
    assert python["aliases"] == ["a-first", "champion"]
    three = model_versions_json(list(version_rows(ModelVersion.objects.filter(model__name="beta", version=3))))[0]
    assert json.loads(model_version_json_text("beta", 3)) == three
    assert [t["key"] for t in three["tags"]] == ["B", "note"]
    assert registered_model_json_text("nope") is None
    assert model_version_json_text("beta", 9) is None and model_version_json_text("nope", 1) is None
    assert model_version_by_alias_json_text("beta", "nope") is None
