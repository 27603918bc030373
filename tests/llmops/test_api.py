"""The LLMOps API (/api/v1/llmops/) as applications, CI scripts and admins use it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

from llmops import engine, services
from llmops.models import DatasetItem, EvalRun, LabelMove, Provider
from opsportal.audit.models import AuditEntry
from opsportal.encryption import decrypt

pytestmark = pytest.mark.django_db

API = "/api/v1/llmops"
SECRET = "sk-live-very-secret-123"
CONTAINS_CAPITAL = {"type": "icontains", "config": {"value": "capital"}}


def upload(name: str, content: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content.encode(), content_type="application/octet-stream")


# --- Access ---------------------------------------------------------------------------------------------------------


def test_anonymous_requests_are_refused_and_viewers_only_read(
    client, viewer_api, llm, capitals_prompt, capitals_dataset
):
    assert client.get(f"{API}/prompts/").status_code == 401
    for path in ("providers", "models", "prices", "prompts", "datasets", "runs"):
        response = viewer_api.get(f"{API}/{path}/")
        assert response.status_code == 200, path
        assert set(response.json()) == {"count", "next", "previous", "results"}
    assert viewer_api.get(f"{API}/").json()["runs"].endswith("/api/v1/llmops/runs/")
    refused = viewer_api.post(f"{API}/prompts/", {"name": "x"}, format="json")
    assert refused.status_code == 403 and "operator" in refused.json()["detail"]
    assert viewer_api.post(f"{API}/datasets/", {"name": "x"}, format="json").status_code == 403
    assert viewer_api.post(f"{API}/runs/", {}, format="json").status_code == 403


def test_operators_write_prompts_datasets_and_runs_but_not_providers_or_prices(operator_api, provider):
    assert operator_api.post(f"{API}/prompts/", {"name": "greeting"}, format="json").status_code == 201
    assert operator_api.post(f"{API}/datasets/", {"name": "golden"}, format="json").status_code == 201
    for path, body in (
        ("providers", {"name": "openai", "base_url": "https://api.openai.com/v1"}),
        ("models", {"provider": "local", "name": "gpt-4o"}),
        ("prices", {"model_name": "gpt-4o", "input_per_million": 2.5, "output_per_million": 10}),
    ):
        response = operator_api.post(f"{API}/{path}/", body, format="json")
        assert response.status_code == 403 and "admin" in response.json()["detail"], path
    assert operator_api.patch(f"{API}/providers/{provider.pk}/", {"enabled": False}, format="json").status_code == 403
    assert operator_api.delete(f"{API}/providers/{provider.pk}/").status_code == 403


# --- Providers, models, prices --------------------------------------------------------------------------------------


def test_the_api_key_is_write_only_and_stored_encrypted(admin_api, viewer_api):
    created = admin_api.post(
        f"{API}/providers/",
        {"name": "openai", "base_url": "https://api.openai.com/v1/", "api_key": SECRET, "max_concurrency": 16},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["has_api_key"] is True and "api_key" not in body and body["base_url"] == "https://api.openai.com/v1"
    provider = Provider.objects.get(name="openai")
    assert SECRET not in provider.api_key and decrypt(provider.api_key) == SECRET

    responses = [
        admin_api.get(f"{API}/providers/"),
        viewer_api.get(f"{API}/providers/{provider.pk}/"),
        admin_api.patch(f"{API}/providers/{provider.pk}/", {"max_retries": 2}, format="json"),
    ]
    for response in responses:
        assert response.status_code == 200 and SECRET not in response.content.decode()
    provider.refresh_from_db()
    assert decrypt(provider.api_key) == SECRET and provider.max_retries == 2  # omitted: the key stays

    replaced = admin_api.patch(f"{API}/providers/{provider.pk}/", {"api_key": "sk-new"}, format="json")
    assert replaced.json()["has_api_key"] is True and "sk-new" not in replaced.content.decode()
    provider.refresh_from_db()
    assert decrypt(provider.api_key) == "sk-new"
    removed = admin_api.patch(f"{API}/providers/{provider.pk}/", {"api_key": ""}, format="json")
    assert removed.json()["has_api_key"] is False
    audit = json.dumps(list(AuditEntry.objects.values("message", "changes")))
    assert SECRET not in audit and "sk-new" not in audit


def test_providers_are_validated_with_the_field_named(admin_api, provider):
    duplicate = admin_api.post(f"{API}/providers/", {"name": "local", "base_url": "http://x:1/v1"}, format="json")
    assert duplicate.status_code == 400 and "exists already" in duplicate.json()["errors"]["name"][0]
    other = Provider.objects.create(name="other", base_url="http://other:1/v1")
    renamed = admin_api.patch(f"{API}/providers/{other.pk}/", {"name": "local"}, format="json")
    assert renamed.status_code == 400 and "exists already" in renamed.json()["errors"]["name"][0]
    bad_url = admin_api.post(f"{API}/providers/", {"name": "vllm", "base_url": "vllm:8000"}, format="json")
    assert bad_url.status_code == 400 and "base_url" in bad_url.json()["errors"]
    # A service name without a dot is a fine host inside a cluster.
    assert (
        admin_api.post(
            f"{API}/providers/", {"name": "vllm", "base_url": "http://vllm:8000/v1"}, format="json"
        ).status_code
        == 201
    )


def test_test_connection_reports_the_answer_or_the_exact_error(admin_api, operator_api, fake_llm, provider):
    url = f"{API}/providers/{provider.pk}/test-connection/"
    fake_llm.answers["Say OK"] = "OK"
    assert operator_api.get(f"{API}/providers/{provider.pk}/").json()["last_test"] is None

    good = admin_api.post(url, {"model": "gpt-4o-mini"}, format="json")

    assert good.status_code == 200 and good.json()["ok"] is True and good.json()["answer"].startswith("'OK' in ")
    assert fake_llm.chat_requests[-1]["body"]["model"] == "gpt-4o-mini"
    passed = operator_api.get(f"{API}/providers/{provider.pk}/").json()["last_test"]
    assert passed["ok"] is True and passed["model"] == "gpt-4o-mini" and passed["message"] == good.json()["answer"]
    fake_llm.fail(1, status=401, message="Incorrect API key provided: sk-test***123.")
    bad = admin_api.post(url, {"model": "gpt-4o-mini"}, format="json")
    assert bad.json() == {"ok": False, "error": "HTTP 401: Incorrect API key provided: sk-test***123."}
    listed = operator_api.get(f"{API}/providers/").json()["results"][0]
    assert listed["has_api_key"] is True and "sk-test-123" not in json.dumps(listed)
    failed = listed["last_test"]
    assert failed["ok"] is False and failed["message"] == "HTTP 401: Incorrect API key provided: sk-test***123."
    assert parse_datetime(failed["at"]) >= parse_datetime(passed["at"]) > timezone.now() - timedelta(minutes=1)
    assert len(fake_llm.chat_requests) == 2  # no retry of a test
    assert operator_api.post(url, {"model": "gpt-4o-mini"}, format="json").status_code == 403
    assert admin_api.post(url, {}, format="json").json()["errors"] == {"model": ["This field is required."]}


def test_models_take_prices_from_the_table_and_admins_change_them(admin_api, viewer_api, provider):
    assert (
        admin_api.post(
            f"{API}/prices/",
            {"model_name": "acme-1*", "input_per_million": "2.5", "output_per_million": "10"},
            format="json",
        ).status_code
        == 201
    )
    again = admin_api.post(
        f"{API}/prices/", {"model_name": "acme-1*", "input_per_million": "2", "output_per_million": "8"}, format="json"
    )
    assert again.status_code == 200 and again.json()["input_per_million"] == 2.0
    created = admin_api.post(f"{API}/models/", {"provider": "local", "name": "acme-1-mini"}, format="json")
    assert created.status_code == 201, created.content
    model = created.json()
    assert model["reference"] == "local/acme-1-mini"
    assert (model["input_per_million"], model["output_per_million"]) == (2.0, 8.0)

    changed = admin_api.patch(f"{API}/models/{model['id']}/", {"output_per_million": "6"}, format="json")

    assert changed.status_code == 200 and (
        changed.json()["input_per_million"],
        changed.json()["output_per_million"],
    ) == (2.0, 6.0)
    assert viewer_api.get(f"{API}/models/", {"provider": "local"}).json()["count"] == 1
    negative = admin_api.patch(f"{API}/models/{model['id']}/", {"input_per_million": "-1"}, format="json")
    assert negative.status_code == 400 and "input_per_million" in negative.json()["errors"]
    unknown = admin_api.post(f"{API}/models/", {"provider": "nope", "name": "x"}, format="json")
    assert unknown.status_code == 400 and "provider" in unknown.json()["errors"]


# --- Prompts --------------------------------------------------------------------------------------------------------


def test_the_contract_url_returns_the_version_a_label_points_at(operator_api, viewer_api, capitals_prompt, operator):
    url = f"{API}/prompts/capitals/"
    missing = viewer_api.get(url, {"label": "production"})
    assert missing.status_code == 404 and "no label 'production'" in missing.json()["detail"]
    second = services.create_version(
        prompt=capitals_prompt,
        actor=operator,
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Capital of {{ country }}, {{ style }}?"}],
        parameters={"temperature": 0.2, "max_tokens": 20},
    )
    services.move_label(prompt=capitals_prompt, label="production", version=second, actor=operator)
    services.move_label(
        prompt=capitals_prompt, label="staging", version=capitals_prompt.versions.get(version=1), actor=operator
    )

    production = viewer_api.get(url, {"label": "production"})

    assert production.status_code == 200
    assert production.json() | {"created_at": None} == {
        "name": "capitals",
        "label": "production",
        "version": 2,
        "messages": [{"role": "user", "content": "Capital of {{ country }}, {{ style }}?"}],
        "model": "gpt-4o-mini",
        "parameters": {"temperature": 0.2, "max_tokens": 20},
        "variables": ["country", "style"],
        "commit_message": "",
        "created_at": None,
    }
    assert viewer_api.get(url).json()["version"] == 2  # production is the default label
    assert viewer_api.get(url, {"label": "staging"}).json()["version"] == 1
    assert viewer_api.get(url, {"version": 1}).json() | {"created_at": None} == {
        **viewer_api.get(url, {"label": "staging"}).json(),
        "label": None,
        "created_at": None,
    }
    missing_prompt = viewer_api.get(f"{API}/prompts/nope/")
    assert missing_prompt.status_code == 404
    assert missing_prompt.json() == {"detail": "No prompt named 'nope'.", "code": "not_found"}
    listed = viewer_api.get(f"{API}/prompts/").json()["results"][0]
    assert listed["labels"] == {"production": 2, "staging": 1} and listed["latest_version"] == 2


def test_prompts_get_versions_diffs_and_names_with_slashes(operator_api, viewer_api):
    created = operator_api.post(
        f"{API}/prompts/",
        {
            "name": "support/triage",
            "description": "Routes tickets",
            "messages": [
                {"role": "system", "content": "You route tickets."},
                {"role": "user", "content": "Ticket: {{ ticket }}"},
            ],
            "model": "gpt-4o-mini",
            "parameters": {"temperature": 0},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["latest_version"] == 1
    versions = f"{API}/prompts/support/triage/versions/"
    second = operator_api.post(
        versions,
        {
            "messages": [
                {"role": "system", "content": "You route support tickets to a team."},
                {"role": "user", "content": "Ticket: {{ ticket }}\nCustomer tier: {{ tier }}"},
            ],
            "model": "gpt-4o",
            "parameters": {"temperature": 0.3},
            "commit_message": "Use the customer tier",
        },
        format="json",
    )
    assert second.status_code == 201 and second.json()["version"] == 2
    assert second.json()["variables"] == ["ticket", "tier"] and second.json()["author"] == "otto"

    listed = viewer_api.get(versions).json()
    assert [v["version"] for v in listed["results"]] == [2, 1]
    assert viewer_api.get(f"{versions}1/").json()["messages"][0]["content"] == "You route tickets."
    assert viewer_api.get(f"{versions}9/").status_code == 404
    diff = viewer_api.get(f"{versions}2/diff/").json()
    assert diff["against"] == 1 and diff["changed"] is True
    assert "-system: You route tickets." in diff["messages_diff"]
    assert "+system: You route support tickets to a team." in diff["messages_diff"]
    assert "+Customer tier: {{ tier }}" in diff["messages_diff"]
    assert diff["model"] == ["gpt-4o-mini", "gpt-4o"] and diff["parameters"] == {"temperature": [0, 0.3]}
    assert diff["variables_added"] == ["tier"] and diff["variables_removed"] == []
    assert viewer_api.get(f"{versions}2/diff/", {"against": 2}).json()["changed"] is False

    bad = operator_api.post(versions, {"messages": [{"role": "robot", "content": "x"}]}, format="json")
    assert bad.status_code == 400 and "messages[0].role" in bad.json()["errors"]
    broken = operator_api.post(versions, {"messages": [{"role": "user", "content": "{{ x"}]}, format="json")
    assert broken.status_code == 400 and "messages[0].content" in broken.json()["detail"]
    params = operator_api.post(
        versions, {"messages": [{"role": "user", "content": "x"}], "parameters": {"temperature": 5}}, format="json"
    )
    assert params.status_code == 400 and "parameters.temperature" in params.json()["errors"]


def test_labels_move_and_the_gate_answers_409_with_its_reason(
    operator_api, admin_api, viewer_api, capitals_prompt, capitals_dataset
):
    labels = f"{API}/prompts/capitals/labels/"
    gate = {"gate_dataset": "capitals", "gate_min_pass_rate": 0.9}
    assert operator_api.patch(f"{API}/prompts/capitals/", gate, format="json").status_code == 403
    configured = admin_api.patch(f"{API}/prompts/capitals/", gate, format="json")
    assert configured.status_code == 200
    assert (configured.json()["gate_dataset"], configured.json()["gate_min_pass_rate"]) == ("capitals", 0.9)
    assert operator_api.patch(f"{API}/prompts/capitals/", {"description": "Capitals"}, format="json").status_code == 200
    assert admin_api.patch(f"{API}/prompts/capitals/", {"gate_dataset": "nope"}, format="json").json()["errors"] == {
        "gate_dataset": ["No dataset 'nope'."]
    }

    staging = operator_api.post(labels, {"label": "staging", "version": 1}, format="json")
    assert staging.status_code == 200 and staging.json()["label"] == "staging"
    refused = operator_api.post(labels, {"label": "production", "version": 1}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "gate_refused"
    assert refused.json()["detail"].startswith("Release gate: No finished run of capitals v1 on the gate dataset")
    check = viewer_api.get(f"{API}/prompts/capitals/versions/1/gate/").json()
    assert check["allowed"] is False and check["run"] is None
    not_admin = operator_api.post(
        labels, {"label": "production", "version": 1, "override": True, "reason": "x"}, format="json"
    )
    assert not_admin.status_code == 403 and "Only an admin may override" in not_admin.json()["detail"]
    assert not_admin.json()["code"] == "permission_denied"
    no_reason = admin_api.post(labels, {"label": "production", "version": 1, "override": True}, format="json")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["errors"]

    overridden = admin_api.post(
        labels,
        {"label": "production", "version": 1, "override": True, "reason": "Launch day, eval pending"},
        format="json",
    )

    assert overridden.status_code == 200
    assert viewer_api.get(f"{API}/prompts/capitals/").json()["version"] == 1
    moves = viewer_api.get(f"{API}/prompts/capitals/label-moves/").json()["results"]
    assert moves[0] | {"id": 0, "at": 0} == {
        "id": 0,
        "label": "production",
        "from_version": None,
        "to_version": 1,
        "gate_overridden": True,
        "reason": "Launch day, eval pending",
        "actor": "ada",
        "at": 0,
    }
    assert operator_api.post(labels, {"label": "production", "version": 7}, format="json").json()["errors"] == {
        "version": ["capitals has no version 7."]
    }
    assert operator_api.delete(f"{labels}staging/").status_code == 204
    assert [row["label"] for row in viewer_api.get(labels).json()["results"]] == ["production"]
    assert operator_api.delete(f"{labels}staging/").status_code == 404
    assert LabelMove.objects.filter(label="staging", to_version=None).exists()


# --- Datasets -------------------------------------------------------------------------------------------------------


def test_dataset_items_crud(operator_api, viewer_api):
    dataset = operator_api.post(f"{API}/datasets/", {"name": "golden", "description": "Hand-checked"}, format="json")
    assert dataset.status_code == 201 and dataset.json()["item_count"] == 0
    items = f"{API}/datasets/golden/items/"
    created = operator_api.post(
        items, {"input": {"question": "2+2?"}, "expected_output": "4", "tags": ["math"]}, format="json"
    )
    assert created.status_code == 201, created.content
    item = created.json()["id"]
    operator_api.post(items, {"input": {"question": "Capital of France?"}, "expected_output": "Paris"}, format="json")
    assert viewer_api.get(f"{API}/datasets/{dataset.json()['id']}/").json()["item_count"] == 2
    assert viewer_api.get(items, {"tag": "math"}).json()["count"] == 1

    changed = operator_api.patch(f"{items}{item}/", {"expected_output": "four"}, format="json")

    assert changed.status_code == 200 and changed.json()["expected_output"] == "four"
    assert changed.json()["input"] == {"question": "2+2?"}
    empty = operator_api.post(items, {"input": {}}, format="json")
    assert empty.status_code == 400 and "input" in empty.json()["errors"]
    assert operator_api.delete(f"{items}{item}/").status_code == 204
    assert viewer_api.get(items).json()["count"] == 1
    renamed = operator_api.patch(f"{API}/datasets/golden/", {"name": "golden-v2"}, format="json")
    assert renamed.status_code == 200 and viewer_api.get(f"{API}/datasets/golden-v2/items/").json()["count"] == 1
    assert operator_api.delete(f"{API}/datasets/golden-v2/").status_code == 204
    assert viewer_api.get(f"{API}/datasets/golden-v2/").status_code == 404


def test_an_import_with_a_bad_row_is_refused_whole_naming_the_row(operator_api, capitals_dataset):
    url = f"{API}/datasets/capitals/import/"
    bad = "\n".join(
        [
            json.dumps({"input": {"country": "Peru"}, "expected_output": "Lima"}),
            json.dumps({"input": {"country": "Chile"}, "expected_output": "Santiago"}),
            '{"input": {"country": "Cuba"}, "expected_output": "Havana"',
            json.dumps({"input": ["not", "an", "object"]}),
        ]
    )

    response = operator_api.post(url, {"file": upload("more.jsonl", bad)}, format="multipart")

    assert response.status_code == 400
    body = response.json()
    assert [error["row"] for error in body["errors"]] == [3, 4]
    assert body["errors"][1]["message"] == "input must be a JSON object"
    assert body["detail"].startswith("Row 3: not valid JSON") and "nothing was imported" in body["detail"]
    assert body["imported"] == 0 and DatasetItem.objects.filter(dataset=capitals_dataset).count() == 4

    preview = operator_api.post(url, {"file": upload("bad.jsonl", bad), "preview": "true"}, format="multipart")
    assert preview.status_code == 400 and preview.json()["preview"] is True and preview.json()["count"] == 2


def test_preview_then_import_then_export_round_trips(operator_api, viewer_api):
    operator_api.post(f"{API}/datasets/", {"name": "golden"}, format="json")
    url = f"{API}/datasets/golden/import/"
    csv_text = 'question,expected_output,tags\n"2+2?",4,math\n"Capital of France?",Paris,"geo, easy"\n'

    preview = operator_api.post(url, {"file": upload("golden.csv", csv_text), "preview": "true"}, format="multipart")

    assert preview.status_code == 200
    assert preview.json() | {"rows": None} == {
        "ok": True,
        "preview": True,
        "format": "csv",
        "count": 2,
        "imported": 0,
        "rows": None,
        "errors": [],
    }
    assert preview.json()["rows"][1]["tags"] == ["geo", "easy"]
    assert DatasetItem.objects.count() == 0
    imported = operator_api.post(url, {"file": upload("golden.csv", csv_text)}, format="multipart")
    assert imported.status_code == 201 and imported.json()["imported"] == 2
    assert DatasetItem.objects.count() == 2

    jsonl = viewer_api.get(f"{API}/datasets/golden/export/")
    assert jsonl.status_code == 200 and jsonl["Content-Type"] == "application/x-ndjson"
    assert 'filename="golden.jsonl"' in jsonl["Content-Disposition"]
    rows = [json.loads(line) for line in jsonl.content.decode().splitlines()]
    assert rows[0] == {
        "input": {"question": "2+2?"},
        "expected_output": "4",
        "context": "",
        "metadata": {},
        "tags": ["math"],
    }
    csv_export = viewer_api.get(f"{API}/datasets/golden/export/", {"format": "csv"})
    assert csv_export.status_code == 200 and csv_export["Content-Type"].startswith("text/csv")
    assert csv_export.content.decode().splitlines()[0] == "input,expected_output,context,metadata,tags"
    # What export writes, import takes back.
    operator_api.post(f"{API}/datasets/", {"name": "copy"}, format="json")
    again = operator_api.post(
        f"{API}/datasets/copy/import/", {"file": upload("copy.csv", csv_export.content.decode())}, format="multipart"
    )
    assert again.status_code == 201 and again.json()["rows"][1]["input"] == {"question": "Capital of France?"}
    wrong = viewer_api.get(f"{API}/datasets/golden/export/", {"format": "xml"})
    assert wrong.status_code == 400 and "format" in wrong.json()["errors"]


# --- Runs -----------------------------------------------------------------------------------------------------------


def test_start_a_run_then_poll_it_to_completion(
    operator_api, viewer_api, fake_llm, llm, capitals_prompt, capitals_dataset, operator
):
    fake_llm.answers["capital of Italy"] = "I don't know."
    services.move_label(prompt=capitals_prompt, label="staging", version=capitals_prompt.versions.get(), actor=operator)
    started = operator_api.post(
        f"{API}/runs/",
        {
            "dataset": "capitals",
            "prompt_versions": ["capitals@staging"],
            "models": ["local/test-model"],
            "scorers": [CONTAINS_CAPITAL],
            "name": "nightly",
        },
        format="json",
    )
    assert started.status_code == 201, started.content
    run = started.json()
    assert started["Location"].endswith(f"/api/v1/llmops/runs/{run['id']}/")
    assert (run["status"], run["progress"], run["name"]) == (
        "queued",
        {"done": 0, "total": 4, "fraction": 0.0},
        "nightly",
    )
    assert run["columns"][0] | {"id": 0} == {
        "id": 0,
        "position": 0,
        "label": "capitals v1 x test-model",
        "prompt": "capitals",
        "version": 1,
        "model": "local/test-model",
        "pass_rate": None,
        "stats": {},
    }

    engine.execute(run["id"])  # what the worker does with the queued task

    finished = viewer_api.get(f"{API}/runs/{run['id']}/").json()
    assert finished["status"] == "completed" and finished["progress"] == {"done": 4, "total": 4, "fraction": 1.0}
    assert (finished["errors"], finished["passed"], finished["pass_rate"]) == (0, 3, 0.75)
    assert finished["cost"] > 0 and finished["created_by"] == "otto"
    column = finished["columns"][0]
    assert column["pass_rate"] == 0.75 and column["stats"]["scorers"]["icontains"]["pass_rate"] == 0.75
    assert finished["summary"]["columns"][0]["label"] == "capitals v1 x test-model"

    results = f"{API}/runs/{run['id']}/results/"
    page = viewer_api.get(results, {"page_size": 2}).json()
    assert page["count"] == 4 and len(page["results"]) == 2 and page["next"]
    failed = viewer_api.get(results, {"passed": "false"}).json()["results"]
    assert [(r["item"]["input"], r["output"]) for r in failed] == [({"country": "Italy"}, "I don't know.")]
    assert failed[0]["scores"][0]["passed"] is False and failed[0]["column_label"] == "capitals v1 x test-model"
    assert viewer_api.get(results, {"error": "true"}).json()["count"] == 0
    assert viewer_api.get(results, {"column": column["id"]}).json()["count"] == 4
    assert viewer_api.get(f"{API}/runs/", {"status": "completed", "prompt": "capitals"}).json()["count"] == 1
    assert viewer_api.get(f"{API}/runs/999/results/").status_code == 404

    rescored = operator_api.post(
        f"{API}/runs/{run['id']}/rescore/",
        {"scorers": [{"type": "not-contains", "config": {"value": "know"}}]},
        format="json",
    )
    assert rescored.status_code == 200, rescored.content
    assert rescored.json()["passed"] == 3 and rescored.json()["scorers"][0]["type"] == "not-contains"
    assert AuditEntry.objects.filter(action="rescore").exists()
    judged = operator_api.post(
        f"{API}/runs/{run['id']}/rescore/",
        {"scorers": [{"type": "llm-rubric", "config": {"rubric": "ok"}}]},
        format="json",
    )
    assert judged.status_code == 400 and "llm-rubric" in judged.json()["detail"]
    late = operator_api.post(f"{API}/runs/{run['id']}/cancel/")
    assert late.status_code == 400 and "already completed" in late.json()["detail"]


def test_runs_accept_every_form_of_reference_and_name_what_is_wrong(
    operator_api, llm, capitals_prompt, capitals_dataset, operator
):
    services.create_version(
        prompt=capitals_prompt,
        actor=operator,
        model="test-model",
        messages=[{"role": "user", "content": "Capital of {{ country }}?"}],
    )
    services.move_label(
        prompt=capitals_prompt, label="staging", version=capitals_prompt.versions.get(version=2), actor=operator
    )
    body = {
        "dataset": capitals_dataset.pk,
        "scorers": [CONTAINS_CAPITAL],
        "prompt_versions": [
            "capitals@1",
            {"prompt": "capitals", "version": 2},
            {"prompt": "capitals", "label": "staging"},
        ],
    }

    created = operator_api.post(f"{API}/runs/", body, format="json")  # models: the versions' own (test-model)

    assert created.status_code == 201, created.content
    assert [c["label"] for c in created.json()["columns"]] == [
        "capitals v1 x test-model",
        "capitals v2 x test-model",
        "capitals v2 x test-model",
    ]
    assert created.json()["total"] == 12

    def error(**change) -> dict:
        response = operator_api.post(f"{API}/runs/", {**body, **change}, format="json")
        assert response.status_code == 400, response.content
        return response.json()["errors"]

    assert error(prompt_versions=["capitals"]) == {
        "prompt_versions[0]": ['\'capitals\': use "name@version" or "name@label"']
    }
    assert error(prompt_versions=["capitals@9"]) == {"prompt_versions[0]": ["capitals has no version 9."]}
    assert error(prompt_versions=["capitals@canary"]) == {
        "prompt_versions[0]": ["Prompt 'capitals' has no label 'canary'."]
    }
    assert error(models=["local/nope"]) == {"models[0]": ["no model 'local/nope' (use provider/model)"]}
    assert error(dataset="nope") == {"dataset": ["No dataset 'nope'."]}
    bogus = operator_api.post(f"{API}/runs/", {**body, "scorers": [{"type": "bogus"}]}, format="json").json()
    assert bogus["detail"].startswith("scorers[0].type: unknown scorer 'bogus'") and bogus["code"] == "invalid"
    assert list(bogus["errors"]) == ["scorers[0].type"]
    assert error(scorers=[{"type": "llm-rubric", "config": {"rubric": "x"}}]) == {
        "judge_model": ["llm-rubric scorers need a judge model"]
    }
    assert EvalRun.objects.count() == 1


def test_cancel_a_queued_run(operator_api, viewer_api, llm, capitals_prompt, capitals_dataset, fake_llm):
    run = operator_api.post(
        f"{API}/runs/",
        {"dataset": "capitals", "prompt_versions": ["capitals@1"], "scorers": [CONTAINS_CAPITAL]},
        format="json",
    ).json()
    assert viewer_api.post(f"{API}/runs/{run['id']}/cancel/").status_code == 403

    cancelled = operator_api.post(f"{API}/runs/{run['id']}/cancel/")

    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert engine.execute(run["id"]) == "busy" and fake_llm.chat_requests == []


def test_score_imported_outputs_from_an_uploaded_file(
    operator_api, viewer_api, fake_llm, capitals_prompt, capitals_dataset
):
    outputs = "country,expected_output,output\nFrance,Paris,Paris\nItaly,Rome,Milan\n"
    scorers = json.dumps([{"type": "equals"}])

    created = operator_api.post(
        f"{API}/runs/score/",
        {"file": upload("answers.csv", outputs), "scorers": scorers, "name": "prod sample"},
        format="multipart",
    )

    assert created.status_code == 201, created.content
    run = created.json()
    assert (run["kind"], run["total"], run["columns"][0]["label"]) == ("score", 2, "prod sample")
    engine.execute(run["id"])
    finished = viewer_api.get(f"{API}/runs/{run['id']}/").json()
    assert (finished["status"], finished["pass_rate"], finished["cost"]) == ("completed", 0.5, 0.0)
    assert fake_llm.chat_requests == []

    gated = operator_api.post(
        f"{API}/runs/score/",
        {
            "file": upload("answers.csv", outputs),
            "scorers": scorers,
            "prompt_version": "capitals@1",
            "dataset": "capitals",
        },
        format="multipart",
    )
    assert gated.status_code == 201, gated.content
    assert gated.json()["columns"][0]["prompt"] == "capitals" and gated.json()["columns"][0]["version"] == 1
    unknown = operator_api.post(
        f"{API}/runs/score/",
        {"file": upload("answers.csv", outputs), "scorers": scorers, "prompt_version": "capitals@9"},
        format="multipart",
    )
    assert unknown.json()["errors"] == {"prompt_version": ["capitals has no version 9."]}
    no_output = operator_api.post(
        f"{API}/runs/score/", {"file": upload("a.csv", "country\nFrance\n"), "scorers": scorers}, format="multipart"
    )
    assert no_output.status_code == 400 and no_output.json()["errors"] == [
        {"row": 1, "message": "the header has no `output` column"}
    ]
    bad_json = operator_api.post(
        f"{API}/runs/score/", {"file": upload("a.csv", outputs), "scorers": "[{"}, format="multipart"
    )
    assert bad_json.status_code == 400 and "scorers" in bad_json.json()["errors"]
    assert EvalRun.objects.count() == 2


# --- OpenAPI --------------------------------------------------------------------------------------------------------


def test_the_openapi_schema_describes_the_llmops_api_without_warnings(viewer_api):
    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    problems = [
        message
        for message in [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
        if "llmops" in message.lower() or "Role" in message
    ]
    assert problems == []
    paths = schema["paths"]
    for path in (
        "/api/v1/llmops/prompts/{name}/",
        "/api/v1/llmops/prompts/{prompt_name}/versions/{version}/diff/",
        "/api/v1/llmops/prompts/{prompt_name}/labels/",
        "/api/v1/llmops/datasets/{id}/import/",
        "/api/v1/llmops/datasets/{id}/export/",
        "/api/v1/llmops/runs/",
        "/api/v1/llmops/runs/{id}/",
        "/api/v1/llmops/runs/{run_pk}/results/",
        "/api/v1/llmops/providers/{id}/test-connection/",
    ):
        assert path in paths, path
    provider = schema["components"]["schemas"]["Provider"]["properties"]
    assert provider["api_key"].get("writeOnly") is True and provider["has_api_key"]["readOnly"] is True
    assert provider["last_test"]["readOnly"] is True and provider["last_test"]["nullable"] is True
    last_test = schema["components"]["schemas"]["LastTest"]["properties"]
    assert sorted(last_test) == ["at", "message", "model", "ok"] and last_test["at"]["format"] == "date-time"
    served = viewer_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert served.status_code == 200 and "/api/v1/llmops/runs/{id}/cancel/" in served.content.decode()
