"""Demo runbooks for `seed_demo`: a Kubernetes rollout restart of checkout that waits for its check, with a
history of past runs on resolved checkout incidents (most remediated, one failed with the API's own words),
and a dry-run runbook that records what it would send."""

from __future__ import annotations

import datetime
import json

from django.contrib.auth.models import User
from django.db import transaction

from .models import Incident, IncidentEvent, Runbook, RunbookRun, RunbookStepRun
from .runbooks.step_templates import BY_KEY
from .services import runbooks as services

NAME = "Restart checkout (demo)"
FORBIDDEN = 'HTTP 403 Forbidden: deployments.apps "checkout" is forbidden'


def _steps() -> list[dict]:
    restart = json.loads(json.dumps(BY_KEY["kubernetes_rollout_restart"].step))
    restart["url"] = restart["url"].replace("KUBERNETES_API", "kubernetes.demo.invalid")
    return [
        {"kind": "approval", "name": "confirm", "message": "Restart {{ incident.service }} in production?"},
        restart,
        {"kind": "wait", "name": "settle", "seconds": 60},
    ]


@transaction.atomic
def seed_runbooks(*, actor: User | None) -> bool:
    """Create the demo runbooks once (with past runs); returns False when they are already there."""
    if Runbook.objects.filter(name=NAME).exists():
        return False
    runbook = services.create_runbook(
        actor=actor, name=NAME, steps=_steps(), trigger_mode="approval", match={"service": "checkout"},
        window_minutes=30, description="Rolls the checkout deployment when its error rate alerts; an operator "
        "approves first.", secrets={"K8S_TOKEN": "demo-service-account-token"},
    )  # fmt: skip
    services.create_runbook(
        actor=actor, name="Scale search (demo, dry run)", trigger_mode="dry-run", match={"service": "search"},
        steps=[{**BY_KEY["awx_job_template_launch"].step, "url": "https://awx.demo.invalid/api/v2/job_templates/7/launch/"}],
    )  # fmt: skip
    incidents = list(Incident.objects.filter(service="checkout", status="resolved").order_by("-created_at")[:8])
    for number, incident in enumerate(incidents):
        _past_run(runbook, incident, failed=number == 3, actor=actor)
    return True


def _past_run(runbook: Runbook, incident: Incident, *, failed: bool, actor: User | None) -> None:
    """A finished run recorded as the engine would have: its steps, timeline lines and verdict."""
    started = incident.acknowledged_at or incident.created_at + datetime.timedelta(minutes=2)
    finished = started + datetime.timedelta(seconds=75)
    remediated = (
        not failed
        and incident.resolved_at is not None
        and incident.resolved_at <= finished + datetime.timedelta(minutes=runbook.window_minutes)
    )
    run = RunbookRun.objects.create(
        runbook=runbook, incident=incident, mode="approval", trigger="automatic", steps=runbook.steps,
        status="failed" if failed else "succeeded", current_step=1 if failed else 3, created_at=started,
        started_at=started, finished_at=finished, decided_by=actor, remediated=False if failed else remediated,
        error=f"step 2 (rollout_restart): {FORBIDDEN}" if failed else "",
    )  # fmt: skip
    url = "https://kubernetes.demo.invalid:6443/apis/apps/v1/namespaces/default/deployments/checkout"
    request = {"method": "PATCH", "url": url, "headers": {"Authorization": "••••••"}, "body": None}
    rows = [
        RunbookStepRun(run=run, position=0, name="confirm", kind="approval", status="succeeded", started_at=started,
                       finished_at=started + datetime.timedelta(seconds=10), duration_ms=10_000,
                       detail=f"approved by {actor.get_username() if actor else 'an operator'}"),
        RunbookStepRun(run=run, position=1, name="rollout_restart", kind="http", attempts=1, request=request,
                       status="failed" if failed else "succeeded", duration_ms=180,
                       started_at=started + datetime.timedelta(seconds=10),
                       finished_at=started + datetime.timedelta(seconds=11),
                       response={"status": 403 if failed else 200, "reason": "Forbidden" if failed else "OK",
                                 "body": '{"kind": "Status", "reason": "Forbidden"}' if failed
                                 else '{"metadata": {"generation": 42}}'},
                       extracted={} if failed else {"generation": 42}, error=FORBIDDEN if failed else ""),
        RunbookStepRun(run=run, position=2, name="settle", kind="wait", status="skipped" if failed else "succeeded",
                       duration_ms=None if failed else 60_000, detail="" if failed else "paused 60 s"),
    ]  # fmt: skip
    RunbookStepRun.objects.bulk_create(rows)
    verdict = (
        "failed: " + run.error if failed else ("succeeded; remediated the incident" if remediated else "succeeded")
    )
    IncidentEvent.objects.create(
        incident=incident, kind=IncidentEvent.Kind.RUNBOOK, at=finished, actor_name="system",
        message=f"Runbook {runbook.name}: run #{run.pk} {verdict}.", data={"run": run.pk, "runbook": runbook.pk},
    )  # fmt: skip
