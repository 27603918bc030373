"""Retraining hooks: a breach's call as each receiver expects it (generic signed JSON, GitHub Actions
workflow_dispatch, Airflow DAG run), its answer on the model's history and the incident's timeline, the test
call and the hooks API, and the version a retraining registers linked back to its breach."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from aiops.models import IncidentEvent
from mlops import retraining as outbox
from mlops import services as mlops_services
from mlops.models import Breach, RetrainingCall, VersionEvent
from mlops.services import monitor_checks, retraining
from opsportal.errors import InvalidInput

from . import factories
from .test_monitor_checks import batch_of, check, incident_of, monitor_for, production_model, rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def model(operator, admin_user):
    return production_model(operator, admin_user)


@pytest.fixture
def monitor(model):
    return monitor_for(model)


def hook_for(model, admin_user, url: str, **fields):
    return retraining.save_retraining_hook(
        model=model, actor=admin_user, **{"name": "retrain", "kind": "generic", "url": url, **fields}
    )


def breach_with(monitor, admin_user, hook, django_capture_on_commit_callbacks) -> tuple[Breach, RetrainingCall]:
    """A dataset-drift breach of a check naming `hook` (the send task's enqueue left out), and its call."""
    check(monitor, admin_user, name="Dataset drift", kind="dataset_drift", retraining=hook)
    with django_capture_on_commit_callbacks():
        [breach] = monitor_checks.evaluate_batch(batch=batch_of(monitor, rows(800, seed=31, shift=2)))
    return breach, RetrainingCall.objects.get(breach=breach)


def send(call: RetrainingCall, django_capture_on_commit_callbacks) -> str:
    with django_capture_on_commit_callbacks(execute=True):
        return outbox.send(call_id=call.pk)


def test_a_breach_calls_its_generic_hook_signed_and_the_answer_lands_on_history_and_timeline(
    monitor, model, admin_user, receiver, allow_loopback, django_capture_on_commit_callbacks
):
    hook = hook_for(model, admin_user, receiver.url, secret="s3cret", token="t0ken")
    breach, call = breach_with(monitor, admin_user, hook, django_capture_on_commit_callbacks)
    requested = VersionEvent.objects.get(model=model, kind="retraining")
    assert requested.message.startswith(
        f"Retraining requested through retrain (Generic webhook) for breach #{breach.pk}"
    )
    incident = incident_of(breach)

    assert send(call, django_capture_on_commit_callbacks) == "sent"
    [request] = receiver.requests
    headers, body = request["headers"], request["body"]
    timestamp = headers["X-OpsPortal-Timestamp"]
    digest = hmac.new(b"s3cret", f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-OpsPortal-Signature"] == f"t={timestamp},v1={digest}"
    assert headers["X-OpsPortal-Event"] == "retraining.requested"
    assert headers["X-OpsPortal-Delivery"] == str(call.delivery_id)
    assert headers["Authorization"] == "Bearer t0ken"
    document = json.loads(body)
    assert document["model"]["name"] == "churn" and document["version"]["version"] == "1"
    assert document["breach"]["id"] == breach.pk and document["breach"]["check"] == "Dataset drift"
    assert document["reason"].startswith("Dataset drift: 2 of 3 columns drifted")
    assert document["report_url"].endswith(f"/monitoring/batches/{breach.batch_id}/")

    answered = VersionEvent.objects.filter(model=model, kind="retraining").first()
    assert answered.message == "Retraining webhook retrain answered HTTP 200"
    assert answered.data["breach"] == breach.pk and answered.version.version == 1
    note = IncidentEvent.objects.get(incident=incident, kind="comment", data__source="mlops")
    assert note.message == "Retraining webhook retrain answered HTTP 200" and note.actor_name == "mlops"


def test_github_actions_gets_a_workflow_dispatch(
    monitor, model, admin_user, receiver, allow_loopback, django_capture_on_commit_callbacks
):
    base = receiver.url.rsplit("/hooks/", 1)[0]
    url = f"{base}/repos/acme/churn/actions/workflows/retrain.yml/dispatches"
    hook = hook_for(
        model, admin_user, url, kind="github", token="ghp_x", options={"ref": "release", "inputs": {"env": "prod"}}
    )
    breach, call = breach_with(monitor, admin_user, hook, django_capture_on_commit_callbacks)
    receiver.status = 204
    assert send(call, django_capture_on_commit_callbacks) == "sent"
    [request] = receiver.requests
    assert request["path"] == "/repos/acme/churn/actions/workflows/retrain.yml/dispatches"
    assert request["headers"]["Authorization"] == "Bearer ghp_x"
    assert request["headers"]["Accept"] == "application/vnd.github+json"
    document = json.loads(request["body"])
    assert document["ref"] == "release"
    inputs = document["inputs"]
    assert inputs["env"] == "prod" and inputs["model"] == "churn" and inputs["version"] == "1"
    assert inputs["breach_id"] == str(breach.pk) and inputs["report_url"].endswith(f"/batches/{breach.batch_id}/")
    assert all(isinstance(value, str) for value in inputs.values())


def test_airflow_gets_a_dag_run_with_basic_auth_and_a_repeat_counts_as_started(
    monitor, model, admin_user, receiver, allow_loopback, django_capture_on_commit_callbacks
):
    base = receiver.url.rsplit("/hooks/", 1)[0]
    hook = hook_for(model, admin_user, f"{base}/api/v1/dags/retrain_churn/dagRuns", kind="airflow",
                    token="airflow:pw", options={"auth": "basic", "conf": {"pool": "gpu"}})  # fmt: skip
    breach, call = breach_with(monitor, admin_user, hook, django_capture_on_commit_callbacks)
    receiver.status = 409  # an earlier attempt started the run and its answer was lost
    assert send(call, django_capture_on_commit_callbacks) == "sent"
    [request] = receiver.requests
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"airflow:pw").decode()
    document = json.loads(request["body"])
    assert document["dag_run_id"] == f"opsportal-breach-{breach.pk}-{str(call.delivery_id)[:8]}"
    assert document["conf"]["pool"] == "gpu" and document["conf"]["model"] == "churn"
    assert document["conf"]["breach_id"] == str(breach.pk)


def test_a_refusing_receiver_fails_the_call_for_good_and_says_so(
    monitor, model, admin_user, receiver, allow_loopback, django_capture_on_commit_callbacks
):
    hook = hook_for(model, admin_user, receiver.url)
    _breach, call = breach_with(monitor, admin_user, hook, django_capture_on_commit_callbacks)
    receiver.status = 422
    assert send(call, django_capture_on_commit_callbacks) == "failed"
    call.refresh_from_db()
    assert call.status == "failed" and call.response_code == 422
    line = VersionEvent.objects.filter(model=model, kind="retraining").first()
    assert line.message == "Retraining webhook retrain failed after 1 attempt(s): HTTP 422"


def test_a_server_error_is_retried(
    monitor, model, admin_user, receiver, allow_loopback, django_capture_on_commit_callbacks
):
    hook = hook_for(model, admin_user, receiver.url)
    _, call = breach_with(monitor, admin_user, hook, django_capture_on_commit_callbacks)
    receiver.status = 503
    assert send(call, django_capture_on_commit_callbacks) == "retry"
    call.refresh_from_db()
    assert call.status == "pending" and call.next_attempt_at is not None
    receiver.status = 200
    assert send(call, django_capture_on_commit_callbacks) == "sent"
    assert len(receiver.requests) == 2
    assert (
        receiver.requests[0]["headers"]["X-OpsPortal-Delivery"]
        == receiver.requests[1]["headers"]["X-OpsPortal-Delivery"]
    )


def test_a_disabled_hook_is_not_called(
    monitor, model, admin_user, receiver, allow_loopback, django_capture_on_commit_callbacks
):
    hook = hook_for(model, admin_user, receiver.url, enabled=False)
    check(monitor, admin_user, kind="dataset_drift", retraining=hook)
    [breach] = monitor_checks.evaluate_batch(batch=batch_of(monitor, rows(800, seed=32, shift=2)))
    assert not RetrainingCall.objects.exists()
    assert breach.is_open


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "github", "url": "https://hooks.example.com/repos/o/r/issues"}, "url"),
        ({"kind": "airflow", "url": "https://hooks.example.com/api/v1/dags"}, "url"),
        ({"kind": "airflow", "url": "https://hooks.example.com/api/v1/dags/d/dagRuns", "options": {"auth": "x"}},
         "options"),
        ({"options": {"ref": "main"}}, "options"),
        ({"kind": "gitlab"}, "kind"),
        ({"url": "http://10.0.0.5/hook"}, "url"),
    ],
)  # fmt: skip
def test_a_hook_that_cannot_be_called_is_refused_naming_the_field(model, admin_user, hooks_allowed, fields, field):
    with pytest.raises(InvalidInput) as refused:
        hook_for(model, admin_user, **{"url": "https://hooks.example.com/retrain", **fields})
    assert refused.value.field == field


def test_hooks_api_keeps_secrets_write_only_and_tests_a_hook(model, admin_api, viewer_api, receiver, allow_loopback):
    created = admin_api.post(
        "/api/v1/mlops/retraining-hooks/",
        {"model": "churn", "name": "ci", "kind": "generic", "url": receiver.url, "token": "tok"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert len(body["secret"]) > 20 and body["has_secret"] and body["has_token"] and "token" not in body
    url = f"/api/v1/mlops/retraining-hooks/{body['id']}/"
    read = viewer_api.get(url).json()
    assert "secret" not in read and "token" not in read and read["kind"] == "generic"
    assert viewer_api.post(f"{url}test/").status_code == 403

    tested = admin_api.post(f"{url}test/")
    assert tested.status_code == 200
    assert tested.json()["status"] == "sent" and tested.json()["response_code"] == 200
    assert receiver.requests[0]["headers"]["X-OpsPortal-Event"] == "retraining.test"
    assert json.loads(receiver.requests[0]["body"])["breach"] is None
    assert VersionEvent.objects.filter(model=model, kind="retraining", data__test=True).exists()
    calls = viewer_api.get(f"{url}calls/").json()
    assert calls["count"] == 1 and calls["results"][0]["event"] == "retraining.test"

    changed = admin_api.patch(url, {"enabled": False}, format="json")
    assert changed.status_code == 200 and changed.json()["enabled"] is False and changed.json()["has_token"]
    refused = admin_api.patch(url, {"kind": "github"}, format="json")
    assert refused.status_code == 400 and "url" in refused.json()["errors"]
    assert admin_api.delete(url).status_code == 204


def test_a_test_call_that_fails_is_not_retried_later(model, admin_user, receiver, allow_loopback):
    hook = hook_for(model, admin_user, receiver.url)
    receiver.status = 500
    call = retraining.test_retraining_hook(hook=hook, actor=admin_user)
    assert call.status == "failed" and call.response_code == 500 and call.next_attempt_at is None


def test_a_version_registered_by_the_retraining_is_linked_to_its_breach(
    monitor, model, operator, admin_user, receiver, allow_loopback, django_capture_on_commit_callbacks
):
    hook = hook_for(model, admin_user, receiver.url)
    breach, _call = breach_with(monitor, admin_user, hook, django_capture_on_commit_callbacks)
    incident = incident_of(breach)
    with django_capture_on_commit_callbacks(execute=True):
        version = factories.model_version(model=model, actor=operator, tags={"opsportal.breach": str(breach.pk)})
    breach.refresh_from_db()
    assert breach.retrained_version == version
    line = VersionEvent.objects.get(version=version, kind="retraining")
    assert line.message.startswith(f"Version 3 was registered by the retraining of breach #{breach.pk}")
    assert IncidentEvent.objects.filter(incident=incident, data__kind="retrained", data__version=3).exists()

    # A tag set later links too, once: the breach keeps its first retrained version.
    later = factories.model_version(model=model, actor=operator)
    mlops_services.set_version_tag(version=later, key="opsportal.breach", value=str(breach.pk), actor=operator)
    breach.refresh_from_db()
    assert breach.retrained_version == version


def test_a_tag_naming_another_models_breach_links_nothing(monitor, model, operator, admin_user):
    check(monitor, admin_user, kind="dataset_drift")
    [breach] = monitor_checks.evaluate_batch(batch=batch_of(monitor, rows(800, seed=33, shift=2)))
    other = factories.registered_model(actor=operator, name="fraud", versions=0)
    factories.model_version(model=other, actor=operator, tags={"opsportal.breach": str(breach.pk)})
    factories.model_version(model=other, actor=operator, tags={"opsportal.breach": "not-a-number"})
    assert Breach.objects.get(pk=breach.pk).retrained_version is None


def test_a_note_on_an_alert_still_waiting_for_correlation_runs_it_first(db):
    from aiops import services as aiops_services

    raised = aiops_services.raise_alert(source="mlops", dedup_key="mlops:check:test", title="Drift on churn")
    assert raised.alert.pending and raised.alert.incident_id is None
    incident = aiops_services.note_on_alert_incident(
        source="mlops", dedup_key="mlops:check:test", message="Retraining webhook ci answered HTTP 204", call=7
    )
    assert incident is not None and incident.title.startswith("Drift on churn")
    note = IncidentEvent.objects.get(incident=incident, kind="comment")
    assert (note.message, note.actor_name, note.data["call"]) == ("Retraining webhook ci answered HTTP 204", "mlops", 7)
    assert aiops_services.note_on_alert_incident(source="mlops", dedup_key="mlops:check:none", message="x") is None
