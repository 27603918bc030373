"""Runbooks through the API and the engine: steps rendered in the sandbox and sent to a local service, values
extracted for later steps, secrets masked, errors as the target worded them, dry runs, approvals, limits, the
kill switch, cancelling, automatic triggers and remediation verdicts.

The engine is driven in-process (each task's work called in turn); tests/aiops/test_runbooks_loop.py runs
the whole loop with a real worker.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aiops import services
from aiops.models import IncidentEvent, Runbook, RunbookCall, RunbookRun, RunbookStepRun
from aiops.runbooks import engine
from aiops.services import runbooks as runbook_services
from opsportal.audit.models import AuditEntry

from . import factories

pytestmark = pytest.mark.django_db


class Service:
    """A local service the test controls: /health answers 200 while healthy (503 once failing), POST /restart
    makes it healthy again; any other path answers `answers[path]` (status, body). Every request is kept."""

    def __init__(self) -> None:
        self.healthy = True
        self.answers: dict[str, tuple[int, str]] = {}
        self.delays: dict[str, float] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                with service.lock:
                    service.requests.append(
                        {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                    )
                if service.delays.get(path):
                    time.sleep(service.delays[path])
                if path == "/health":
                    status, text = (200, '{"status": "ok"}') if service.healthy else (503, "database unreachable")
                elif path == "/restart" and path not in service.answers:
                    service.healthy = True
                    status, text = 200, json.dumps({"restarted": True, "id": len(service.paths("/restart"))})
                else:
                    status, text = service.answers.get(path, (200, '{"ok": true}'))
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if text.startswith("{") else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, format, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def paths(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"].split("?")[0] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target():
    service = Service()
    yield service
    service.close()


@pytest.fixture
def incident(alertmanager):
    integration, token = alertmanager
    return factories.incident(integration, token, "checkout", severity="critical", namespace="shop")


def drive(run: RunbookRun, rounds: int = 30) -> RunbookRun:
    """What the worker does, in this process: advance the run and send its step calls until it has to wait."""
    for _ in range(rounds):
        engine.advance(run.pk)
        calls = list(RunbookCall.objects.filter(step__run=run, status="pending").values_list("pk", flat=True))
        if not calls:
            break
        for pk in calls:
            engine.CALLS.send(pk)
    run.refresh_from_db()
    return run


def restart_steps(target: Service) -> list[dict]:
    return [
        {
            "kind": "http", "name": "restart", "method": "POST",
            "url": target.base + "/restart?service={{ incident.service }}",
            "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}", "X-Namespace": "{{ labels.namespace }}"},
            "body": {"incident": "{{ incident.id }}", "reason": "{{ alerts[0].labels.alertname }}"},
            "expect_status": 200, "extract": {"restart_id": "$.id"},
        },
        {"kind": "http", "name": "confirm", "method": "GET",
         "url": target.base + "/jobs/{{ steps.restart.restart_id }}"},
    ]  # fmt: skip


def new_runbook(*, actor, **values) -> Runbook:
    """A runbook made through the service, with the secret the restart steps read."""
    values.setdefault("secrets", {"API_TOKEN": "tok-123456"})
    return runbook_services.create_runbook(actor=actor, **values)


def make_runbook(admin_api, **body) -> dict:
    response = admin_api.post("/api/v1/aiops/runbooks/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_run_renders_its_steps_sends_them_and_passes_values_on(
    admin_api, operator_api, incident, target, allow_loopback
):
    created = make_runbook(
        admin_api, name="Restart checkout", steps=restart_steps(target), trigger={"mode": "manual"},
        window_minutes=10, secrets={"API_TOKEN": "s3cr3t-token-value"},
    )  # fmt: skip
    assert created["secrets"] == {"API_TOKEN": "set"} and "s3cr3t" not in json.dumps(created)
    stored = Runbook.objects.get(pk=created["id"])
    assert "s3cr3t" not in json.dumps(stored.secrets_encrypted)

    response = operator_api.post(
        f"/api/v1/aiops/runbooks/{created['id']}/runs/", {"incident": incident.pk, "mode": "run"}, format="json"
    )
    assert response.status_code == 201, response.content
    run = drive(RunbookRun.objects.get(pk=response.json()["id"]))
    assert run.status == "succeeded", run.error

    # The service got the rendered request, the secret included ...
    (restart,) = target.paths("/restart")
    assert restart["method"] == "POST" and restart["path"] == "/restart?service=checkout"
    assert restart["headers"]["Authorization"] == "Bearer s3cr3t-token-value"
    assert restart["headers"]["X-Namespace"] == "shop"
    assert json.loads(restart["body"]) == {"incident": str(incident.pk), "reason": "HighErrorRate"}
    # ... and the second step used the value the first one extracted.
    assert [r["path"] for r in target.paths("/jobs/1")] == ["/jobs/1"]

    # What is stored and shown never holds the secret.
    runs = operator_api.get(f"/api/v1/aiops/runbooks/{created['id']}/runs/").json()["results"]
    assert runs[0]["status"] == "succeeded" and runs[0]["remediated"] is None  # the incident is still open
    first = runs[0]["steps"][0]
    assert first["status"] == "succeeded" and first["extracted"] == {"restart_id": 1}
    assert first["request"]["headers"]["Authorization"] == "••••••"
    assert first["response"]["status"] == 200 and first["duration_ms"] is not None
    assert "s3cr3t" not in json.dumps(runs)
    assert not IncidentEvent.objects.filter(message__contains="s3cr3t").exists()

    # Every step is on the incident's timeline and in the audit log.
    timeline = list(IncidentEvent.objects.filter(incident=incident, kind="runbook").values_list("message", flat=True))
    assert any("step 1 (restart) succeeded" in m and "restart_id=1" in m for m in timeline)
    assert any("step 2 (confirm) succeeded" in m for m in timeline)
    assert any(f"run #{run.pk} succeeded" in m for m in timeline)
    assert AuditEntry.objects.filter(model="runbookrun", object_id=str(run.pk), message__contains="step 2").exists()


def test_a_failing_step_fails_the_run_with_the_targets_words(admin_api, incident, target, allow_loopback, admin_user):
    target.answers["/restart"] = (404, "deployment checkout not found in namespace shop")
    runbook = new_runbook(actor=admin_user, name="r", steps=restart_steps(target))
    run = drive(runbook_services.start_run(runbook=runbook, incident=incident, mode="run", actor=admin_user))
    assert run.status == "failed"
    assert run.error == "step 1 (restart): HTTP 404 Not Found: deployment checkout not found in namespace shop"
    assert RunbookStepRun.objects.get(run=run, position=1).status == "skipped"
    assert not target.paths("/jobs/1")
    assert run.remediation() is False


def test_server_errors_are_retried_with_backoff(admin_api, incident, target, allow_loopback, admin_user):
    target.answers["/restart"] = (503, "upstream busy")
    runbook = new_runbook(actor=admin_user, name="r", steps=restart_steps(target)[:1])
    run = runbook_services.start_run(runbook=runbook, incident=incident, mode="run", actor=admin_user)
    engine.advance(run.pk)
    call = RunbookCall.objects.get(step__run=run)
    assert engine.CALLS.send(call.pk) == "retry"
    call.refresh_from_db()
    assert call.next_attempt_at > timezone.now() + datetime.timedelta(seconds=5)  # 8 s after the first failure
    step = RunbookStepRun.objects.get(run=run, position=0)
    assert step.status == "running" and "attempt 1 failed: HTTP 503 Service Unavailable: upstream busy" in step.error
    del target.answers["/restart"]
    assert engine.CALLS.send(call.pk) == "sent"
    run = drive(run)
    assert run.status == "succeeded" and len(target.paths("/restart")) == 2


def test_a_target_outside_the_allow_list_is_refused(incident, target, admin_user, settings):
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = []
    runbook = new_runbook(actor=admin_user, name="r", steps=restart_steps(target)[:1])
    run = drive(runbook_services.start_run(runbook=runbook, incident=incident, mode="run", actor=admin_user))
    assert run.status == "failed" and "not a public address" in run.error and not target.requests


def test_a_dry_run_records_every_request_and_sends_nothing(incident, target, allow_loopback, admin_user):
    steps = [restart_steps(target)[0], {"kind": "wait", "seconds": 300}, {"kind": "approval"}]
    runbook = new_runbook(actor=admin_user, name="r", steps=steps, secrets={"API_TOKEN": "tok-123456"})
    run = drive(runbook_services.start_run(runbook=runbook, incident=incident, mode="dry-run", actor=admin_user))
    assert run.status == "succeeded" and not target.requests and run.remediated is False
    step = RunbookStepRun.objects.get(run=run, position=0)
    assert step.status == "dry_run" and step.request["url"].endswith("/restart?service=checkout")
    assert json.loads(step.request["body"])["incident"] == str(incident.pk)
    assert [s.status for s in run.step_runs.order_by("position")] == ["dry_run", "dry_run", "skipped"]


def test_approval_mode_sends_nothing_until_approved(admin_api, operator_api, viewer_api, incident, target,
                                                    allow_loopback, admin_user):  # fmt: skip
    runbook = new_runbook(actor=admin_user, name="r", steps=restart_steps(target))
    response = operator_api.post(
        f"/api/v1/aiops/runbooks/{runbook.pk}/runs/", {"incident": incident.pk, "mode": "approval"}, format="json"
    )
    run = drive(RunbookRun.objects.get(pk=response.json()["id"]))
    assert run.status == "awaiting_approval" and not target.requests
    preview = RunbookStepRun.objects.get(run=run, position=0).request["preview"]
    assert preview[0]["request"]["url"] == f"{target.base}/restart?service=checkout"
    assert "rendered when the step runs" in preview[1]["error"]  # it needs the first step's answer

    url = f"/api/v1/aiops/runbooks/{runbook.pk}/runs/{run.pk}"
    assert viewer_api.post(f"{url}/approve/").status_code == 403
    response = operator_api.post(f"{url}/approve/")
    assert response.status_code == 200, response.content
    run = drive(run)
    assert run.status == "succeeded" and len(target.paths("/restart")) == 1
    assert operator_api.post(f"{url}/approve/").json()["detail"].startswith(f"run #{run.pk} is not awaiting")


def test_an_approval_step_pauses_and_a_rejection_stops_the_run(operator_api, incident, target, allow_loopback,
                                                                admin_user):  # fmt: skip
    steps = [{"kind": "approval", "message": "Restart {{ incident.service }}?"}, restart_steps(target)[0]]
    runbook = new_runbook(actor=admin_user, name="r", steps=steps)
    run = drive(runbook_services.start_run(runbook=runbook, incident=incident, mode="run", actor=admin_user))
    assert run.status == "awaiting_approval"
    step = RunbookStepRun.objects.get(run=run, position=0)
    assert step.detail == "Restart checkout?" and step.request["preview"][0]["request"]["method"] == "POST"
    response = operator_api.post(f"/api/v1/aiops/runbooks/{runbook.pk}/runs/{run.pk}/reject/", {"reason": "not now"})
    assert response.json()["status"] == "cancelled"
    run = drive(run)
    assert run.status == "cancelled" and not target.requests and "not now" in run.error


def test_bad_steps_are_refused_naming_the_step_and_nothing_is_stored(admin_api, operator_api):
    cases = [
        ([{"kind": "http", "name": "restart"}], "step 1 (restart): url is required"),
        ([{"kind": "shell"}], "step 1: kind must be one of http, wait, approval, notify"),
        ([{"kind": "http", "url": "http://x/{{ incident.id "}], "step 1 (http_1): url: template error"),
        ([{"kind": "wait"}], "step 1 (wait_1): a wait needs seconds"),
        ([{"kind": "wait", "until": "check_up", "check": "nope"}], "there is no check 'nope'"),
        ([{"kind": "notify", "channel": "pager"}], "there is no notification channel 'pager'"),
        ([{"kind": "http", "url": "http://x", "extract": {"id": "$[?"}}], "step 1 (http_1): extract.id"),
        ([], "a runbook needs at least one step"),
    ]
    for steps, message in cases:
        response = admin_api.post("/api/v1/aiops/runbooks/", {"name": "bad", "steps": steps}, format="json")
        assert response.status_code == 400 and message in response.json()["detail"], (steps, response.json())
    response = admin_api.post(
        "/api/v1/aiops/runbooks/",
        {"name": "all", "steps": [{"kind": "approval"}], "trigger": {"mode": "run"}},
        format="json",
    )
    assert response.status_code == 400 and "trigger.match" in response.json()["detail"]
    assert operator_api.post("/api/v1/aiops/runbooks/", {"name": "x", "steps": []}, format="json").status_code == 403
    assert not Runbook.objects.exists()


def test_templates_are_sandboxed(incident, target, allow_loopback, admin_user):
    steps = [{"kind": "http", "url": target.base + "/x?{{ incident.__class__.__mro__ }}"}]
    runbook = new_runbook(actor=admin_user, name="r", steps=steps)
    run = drive(runbook_services.start_run(runbook=runbook, incident=incident, mode="run", actor=admin_user))
    assert run.status == "failed" and "cannot render the request: url:" in run.error and not target.requests


def test_limits_and_the_kill_switch(admin_api, operator_api, incident, target, allow_loopback, admin_user):
    runbook = new_runbook(actor=admin_user, name="r", steps=restart_steps(target)[:1], max_runs_per_hour=1)
    url = f"/api/v1/aiops/runbooks/{runbook.pk}/runs/"
    assert operator_api.post(url, {"incident": incident.pk}, format="json").status_code == 201
    refused = operator_api.post(url, {"incident": incident.pk}, format="json")
    assert refused.status_code == 409 and "1 time(s) in the last hour" in refused.json()["detail"]

    other = new_runbook(actor=admin_user, name="other", steps=restart_steps(target)[:1])
    assert operator_api.post("/api/v1/aiops/runbooks/kill-switch/", {"killed": True}).status_code == 403
    assert admin_api.post("/api/v1/aiops/runbooks/kill-switch/", {"killed": True}).json()["killed"] is True
    refused = operator_api.post(f"/api/v1/aiops/runbooks/{other.pk}/runs/", {"incident": incident.pk}, format="json")
    assert refused.status_code == 409 and "kill switch" in refused.json()["detail"]
    # The run started before the switch went on does not take its next step.
    held = RunbookRun.objects.get(runbook=runbook)
    assert engine.advance(held.pk) == "held" and not target.requests
    admin_api.post("/api/v1/aiops/runbooks/kill-switch/", {"killed": False})
    assert drive(held).status == "succeeded" and len(target.paths("/restart")) == 1


def test_concurrent_runs_wait_for_a_free_slot(incident, target, allow_loopback, admin_user):
    steps = [{"kind": "wait", "seconds": 120}]
    runbook = new_runbook(actor=admin_user, name="r", steps=steps, max_concurrent_runs=1)
    first = runbook_services.start_run(runbook=runbook, incident=incident, mode="run", actor=admin_user)
    second = runbook_services.start_run(runbook=runbook, incident=incident, mode="run", actor=admin_user)
    assert engine.advance(first.pk) == "wait"
    assert engine.advance(second.pk) == "queued"
    assert RunbookRun.objects.get(pk=second.pk).status == "pending"


def test_a_run_is_cancelled_between_steps(operator_api, incident, target, allow_loopback, admin_user):
    steps = [{"kind": "wait", "seconds": 600}, restart_steps(target)[0]]
    runbook = new_runbook(actor=admin_user, name="r", steps=steps)
    run = drive(runbook_services.start_run(runbook=runbook, incident=incident, mode="run", actor=admin_user))
    step = RunbookStepRun.objects.get(run=run, position=0)
    assert run.status == "running" and step.status == "running" and step.due_at > timezone.now()
    response = operator_api.post(f"/api/v1/aiops/runbooks/{runbook.pk}/runs/{run.pk}/cancel/")
    assert response.json()["status"] == "cancelled"
    run = drive(run)
    assert run.status == "cancelled" and not target.requests


def test_wait_until_a_check_is_up(incident, admin_user, operator):
    check = services.create_check(actor=operator, name="Checkout health", kind="http",
                                  config={"url": "https://checkout.example.com/health"})  # fmt: skip
    steps = [{"kind": "wait", "until": "check_up", "check": "Checkout health", "timeout_seconds": 60}]
    runbook = new_runbook(actor=admin_user, name="r", steps=steps)
    run = drive(runbook_services.start_run(runbook=runbook, incident=incident, mode="run", actor=admin_user))
    step = RunbookStepRun.objects.get(run=run, position=0)
    assert run.status == "running" and "check Checkout health is new" in step.detail
    type(check).objects.filter(pk=check.pk).update(status="up")
    RunbookStepRun.objects.filter(pk=step.pk).update(due_at=timezone.now())  # the scheduled look is due
    assert drive(run).status == "succeeded"
    # A condition that never comes true fails the step when its timeout is over.
    type(check).objects.filter(pk=check.pk).update(status="down")
    run = drive(runbook_services.start_run(runbook=runbook, incident=incident, mode="run", actor=admin_user))
    RunbookStepRun.objects.filter(run=run).update(started_at=timezone.now() - datetime.timedelta(seconds=61),
                                                  due_at=timezone.now())  # fmt: skip
    run = drive(run)
    assert (
        run.status == "failed" and run.error == "step 1 (wait_1): timed out after 60 s: check Checkout health is down"
    )


def test_remediation_is_counted_when_the_incident_resolves_within_the_window(incident, target, allow_loopback,
                                                                              admin_user):  # fmt: skip
    runbook = new_runbook(actor=admin_user, name="r", steps=restart_steps(target)[:1],
                                              window_minutes=5)  # fmt: skip
    run = drive(runbook_services.start_run(runbook=runbook, incident=incident, mode="run", actor=admin_user))
    assert run.remediation() is None and engine.verify_runs() == 0
    services.resolve_incident(incident=incident, actor=admin_user)
    assert engine.verify_runs() == 1
    run.refresh_from_db()
    assert run.remediated is True
    assert IncidentEvent.objects.filter(incident=incident, message__contains="remediated the incident").exists()
    # A run whose incident stayed open past the window is not a remediation.
    services.reopen_incident(incident=incident, actor=admin_user)
    late = drive(runbook_services.start_run(runbook=runbook, incident=incident, mode="run", actor=admin_user))
    assert engine.verify_runs(now=timezone.now() + datetime.timedelta(minutes=6)) == 1
    late.refresh_from_db()
    assert late.remediated is False
    figures = runbook_services.runbook_figures(runbook)
    assert figures.runs == 2 and figures.success_rate == 100.0 and figures.remediation_rate == 50.0


def test_automatic_runbooks_start_for_matching_new_incidents(alertmanager, target, allow_loopback, admin_user):
    integration, token = alertmanager
    # Without automatic runbooks a batch costs one query on the runbook table.
    with CaptureQueriesContext(connection) as queries:
        factories.fire(integration, token, factories.am_alert(service="search", alertname="Slow"))
    assert sum('"aiops_runbook"' in q["sql"] for q in queries.captured_queries) == 1

    runbook = new_runbook(
        actor=admin_user, name="auto", steps=restart_steps(target)[:1], trigger_mode="run",
        match={"service": "checkout", "severity": ["critical", "error"]},
    )  # fmt: skip
    factories.fire(integration, token, factories.am_alert(service="checkout", severity="critical", namespace="shop"))
    factories.fire(integration, token, factories.am_alert(service="payments", alertname="Other"))
    (run,) = RunbookRun.objects.all()
    assert run.trigger == "automatic" and run.incident.service == "checkout" and run.runbook == runbook
    assert drive(run).status == "succeeded" and len(target.paths("/restart")) == 1


def test_step_templates_are_listed_and_valid(viewer_api, admin_api):
    templates = viewer_api.get("/api/v1/aiops/runbooks/step-templates/").json()
    assert {t["key"] for t in templates} == {
        "kubernetes_rollout_restart", "awx_job_template_launch", "rundeck_job_run", "github_workflow_dispatch",
        "jenkins_build",
    }  # fmt: skip
    body = {"name": "all targets", "steps": [t["step"] for t in templates]}
    assert admin_api.post("/api/v1/aiops/runbooks/", body, format="json").status_code == 201


def test_editing_a_runbook_keeps_what_the_request_does_not_name(admin_api, admin_user):
    trigger = {"mode": "approval", "match": {"service": "api"}}
    created = make_runbook(
        admin_api, name="auto", steps=[{"kind": "approval"}], trigger=trigger, secrets={"A": "x1", "B": "y2"}
    )
    url = f"/api/v1/aiops/runbooks/{created['id']}/"
    changed = admin_api.patch(url, {"trigger": {"match": {"service": "web"}}, "secrets": {"B": ""}}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["trigger"] == {"mode": "approval", "match": {"service": "web"}}
    assert changed.json()["secrets"] == {"A": "set"} and changed.json()["steps"][0]["kind"] == "approval"
    refused = admin_api.patch(url, {"trigger": {"mode": "run", "match": {}}}, format="json")
    assert refused.status_code == 400 and "trigger.match" in refused.json()["detail"]
    assert Runbook.objects.get().match == {"service": "web"}


def test_wait_until_a_series_is_back_in_range(incident, admin_user):
    from aiops.metrics import partitions, store

    store.CACHE.clear()
    partitions.forget_known()
    key = store.series_key("http_error_ratio", {"service": "checkout"})
    now = time.time()
    store.write_samples([(key, now - 30, 0.4), (key, now - 15, 0.3)])
    steps = [{"kind": "wait", "until": "series_in_range", "query": 'http_error_ratio{service="checkout"}',
              "max": 0.05, "timeout_seconds": 120, "interval_seconds": 5}]  # fmt: skip
    runbook = new_runbook(actor=admin_user, name="r", steps=steps)
    run = drive(runbook_services.start_run(runbook=runbook, incident=incident, mode="run", actor=admin_user))
    step = RunbookStepRun.objects.get(run=run, position=0)
    assert run.status == "running" and step.detail.endswith('http_error_ratio{service="checkout"} = 0.3')
    store.write_samples([(key, time.time(), 0.01)])
    RunbookStepRun.objects.filter(pk=step.pk).update(due_at=timezone.now())
    assert drive(run).status == "succeeded"
    assert "= 0.01 after" in RunbookStepRun.objects.get(pk=step.pk).detail
