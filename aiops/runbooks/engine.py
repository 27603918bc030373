"""The runbook engine: runs steps one at a time, each step's state persisted before and after it.

A run advances in `advance(run_id)` (the task `aiops.tasks.advance_runbook_run`): under the run's row lock
it looks at the step it is on and does what that step needs, then moves on while steps finish at once.

- http: the request is rendered (sandboxed templates, secrets decrypted only here), recorded with secrets
  masked, and written as a `RunbookCall` outbox row whose task sends it: timeouts, retries with the outbox's
  backoff for network errors and 5xx/408/429, the outbound allow-list. Its result (`RunbookCalls.recorded`)
  completes or fails the step and advances the run. A dry run records the request and sends nothing.
- wait: a pause, or until a check is up or a PromQL series is back in range; never blocks a worker: the
  run is looked at again with a countdown (`due_at` keeps a duplicate task from starting a second chain).
- approval: the run pauses (`awaiting_approval`) with the rendered requests of the steps after it shown,
  until an operator approves or rejects (`aiops.services.runbooks`).
- notify: a `Notification` outbox row for the channel.

A worker killed mid-step leaves the step `running` and its call pending: the redelivered task (acks_late)
or the sweeper runs `advance` again, which re-sends the call of that step; completed steps are never run
again. Cancelling takes effect between steps; the kill switch stops every step from starting, and its
calls from being sent. After the last step the run watches its incident (`verify_runs`).
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import time
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from jsonpath import findall

from opsportal import outbox
from opsportal.audit import services as audit
from opsportal.encryption import decrypt, encrypt
from opsportal.enqueue import enqueue_on_commit
from opsportal.outbound import HTTPStatusError

from ..models import (
    Check,
    IncidentEvent,
    Notification,
    NotificationChannel,
    RunbookCall,
    RunbookRun,
    RunbookStepRun,
    RunbookSwitch,
)
from . import http
from .rendering import RenderError, mask, mask_headers, render, render_value, run_context

logger = logging.getLogger(__name__)

ADVANCE_TASK = "aiops.tasks.advance_runbook_run"
SLOT_RETRY_SECONDS = 15  # a run waiting for a free slot (max_concurrent_runs) looks again this often
EXCERPT = 2000  # characters of an answer kept on the step
ALERTS_IN_CONTEXT = 50
Status = RunbookRun.Status
StepStatus = RunbookStepRun.Status


def kill_switch_on() -> bool:
    return RunbookSwitch.objects.filter(killed=True).exists()


# --- Timeline and audit ---------------------------------------------------------------------------------------


def record(run: RunbookRun, message: str, *, actor=None, **data: Any) -> None:
    """One line on the incident's timeline and the same in the audit log."""
    user = actor if actor is not None and actor.is_authenticated else None
    text = f"Runbook {run.runbook.name}: {message}"
    IncidentEvent.objects.create(
        incident_id=run.incident_id, kind=IncidentEvent.Kind.RUNBOOK, message=text[:4000], actor=user,
        actor_name=user.get_username() if user else "system", data={"run": run.pk, "runbook": run.runbook_id, **data},
    )  # fmt: skip
    audit.record(action=audit.Action.UPDATE, actor=actor, obj=run, message=text, changes=_audit_changes(data))


def _audit_changes(data: dict[str, Any]) -> dict[str, list[Any]]:
    return {key: [None, value] for key, value in data.items() if key in ("status", "step", "step_status")}


def _step_label(step: RunbookStepRun) -> str:
    return f"step {step.position + 1} ({step.name})"


# --- Rendering ---------------------------------------------------------------------------------------------------


def secrets_of(run: RunbookRun) -> dict[str, str]:
    """The runbook's secrets in plain text (only for rendering); RenderError when one cannot be decrypted."""
    plain = {}
    for name, ciphertext in run.runbook.secrets_encrypted.items():
        try:
            plain[name] = decrypt(ciphertext)
        except ValueError as exc:
            raise RenderError(f"secret {name}: {exc}; an admin must enter it again") from None
    return plain


def context_of(run: RunbookRun) -> tuple[dict[str, Any], dict[str, str]]:
    alerts = list(run.incident.alerts.order_by("first_seen_at", "id").defer("raw")[:ALERTS_IN_CONTEXT])
    secrets = secrets_of(run)
    return run_context(run, alerts, secrets), secrets


def render_request(spec: dict, context: dict[str, Any]) -> dict[str, Any]:
    """The request of an http step: method, url, headers and body (text) rendered."""
    url = render(spec["url"], context, field="url").strip()
    headers = {name: render(value, context, field=f"headers.{name}") for name, value in spec["headers"].items()}
    body = spec.get("body")
    text = None
    if isinstance(body, str):
        text = render(body, context, field="body")
    elif body is not None:
        text = json.dumps(render_value(body, context, field="body"))
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
    return {"method": spec["method"], "url": url, "headers": headers, "body": text}


def shown_request(request: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
    """The request as stored on the step and shown: secrets masked."""
    return {
        "method": request["method"],
        "url": mask(request["url"], secrets),
        "headers": mask_headers(request["headers"], secrets),
        "body": mask(request["body"], secrets) if request["body"] is not None else None,
    }


def preview(run: RunbookRun, *, start: int = 0) -> list[dict[str, Any]]:
    """The http requests of the steps from `start` on as they would be sent now, for an approver to read.

    A request that needs values a step before it has not extracted yet says so instead.
    """
    try:
        context, secrets = context_of(run)
    except RenderError as exc:
        return [{"step": "", "error": str(exc)}]
    shown = []
    for position, spec in enumerate(run.steps[start:], start=start):
        if spec["kind"] != "http":
            continue
        entry: dict[str, Any] = {"step": spec["name"], "position": position}
        try:
            entry["request"] = shown_request(render_request(spec, context), secrets)
        except RenderError as exc:
            entry["error"] = f"rendered when the step runs ({exc})"
        shown.append(entry)
    return shown


# --- Advancing ---------------------------------------------------------------------------------------------------


def advance(run_id: int) -> str:
    """Run the run's steps from where it is until one has to wait; returns what stopped it."""
    for _ in range(200):  # a runbook has at most 50 steps; the bound only guards against a bug looping
        outcome = _step_once(run_id)
        if outcome != "next":
            return outcome
    return "next"


@transaction.atomic
def _step_once(run_id: int) -> str:
    run = (
        RunbookRun.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("runbook", "incident")
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        return "gone"  # deleted, or another worker is on it right now
    if run.is_finished or run.status == Status.AWAITING_APPROVAL:
        return "idle"
    if run.cancel_requested:
        finish(run, Status.CANCELLED, "Cancelled before its next step.")
        return "cancelled"
    if kill_switch_on():
        return "held"
    now = timezone.now()
    if run.status == Status.PENDING:
        busy = (
            RunbookRun.objects.filter(runbook=run.runbook_id, started_at__isnull=False)
            .filter(Q(status=Status.RUNNING) | Q(status=Status.AWAITING_APPROVAL))
            .exclude(pk=run.pk)
            .count()
        )
        if busy >= run.runbook.max_concurrent_runs:
            enqueue_on_commit(ADVANCE_TASK, run.pk, countdown=SLOT_RETRY_SECONDS)
            return "queued"
        run.status = Status.RUNNING
        first = run.started_at is None
        run.started_at = run.started_at or now
        run.save(update_fields=["status", "started_at"])
        if first:
            mode = {"run": "run", "approval": "run (approved)", "dry-run": "dry run"}.get(run.mode, run.mode)
            record(run, f"{mode} #{run.pk} started ({len(run.steps)} steps).", status="running")
    if run.current_step >= len(run.steps):
        finish(run, Status.SUCCEEDED, "")
        return "done"
    step = RunbookStepRun.objects.select_for_update().get(run=run, position=run.current_step)
    spec = run.steps[run.current_step]
    handler = {"http": _http, "wait": _wait, "approval": _approval, "notify": _notify}[spec["kind"]]
    return handler(run, step, spec, now)


def complete_step(run: RunbookRun, step: RunbookStepRun, status: str, detail: str, **extracted: Any) -> None:
    """The step is done (succeeded, skipped or dry run): record it and move the run to the next step."""
    now = timezone.now()
    step.status, step.detail, step.finished_at = status, detail[:300], now
    step.started_at = step.started_at or now
    if step.duration_ms is None:
        step.duration_ms = int((now - step.started_at).total_seconds() * 1000)
    step.extracted = extracted
    step.error = ""
    step.save()
    run.current_step = step.position + 1
    if extracted:
        run.values = {**run.values, step.name: extracted}
    run.save(update_fields=["current_step", "values"])
    values = "; extracted " + ", ".join(f"{k}={v!r}" for k, v in extracted.items()) if extracted else ""
    word = {"succeeded": "succeeded", "skipped": "skipped", "dry_run": "recorded (dry run, not sent)"}[status]
    record(
        run, f"{_step_label(step)} {word} in {step.duration_ms} ms: {detail}{values}", step=step.name,
        step_status=status, duration_ms=step.duration_ms, extracted=extracted,
    )  # fmt: skip


def fail_step(run: RunbookRun, step: RunbookStepRun, error: str) -> None:
    now = timezone.now()
    step.status, step.error, step.finished_at = StepStatus.FAILED, error, now
    step.started_at = step.started_at or now
    if step.duration_ms is None:
        step.duration_ms = int((now - step.started_at).total_seconds() * 1000)
    step.save()
    record(
        run, f"{_step_label(step)} failed after {step.duration_ms} ms: {error}", step=step.name,
        step_status="failed", duration_ms=step.duration_ms, error=error,
    )  # fmt: skip
    finish(run, Status.FAILED, f"{_step_label(step)}: {error}")


def finish(run: RunbookRun, status: str, error: str, *, actor=None) -> None:
    """End the run. A succeeded run starts watching its incident; a dry run never counts as a remediation."""
    run.status, run.error, run.finished_at = status, error, timezone.now()
    if run.is_dry_run or status != Status.SUCCEEDED:
        run.remediated = False
    run.save(update_fields=["status", "error", "finished_at", "remediated"])
    RunbookStepRun.objects.filter(run=run, status__in=[StepStatus.PENDING, StepStatus.AWAITING_APPROVAL]).update(
        status=StepStatus.SKIPPED
    )
    if status == Status.SUCCEEDED:
        watch = "" if run.is_dry_run else f"; watching the incident for {run.runbook.window_minutes} min"
        record(run, f"run #{run.pk} succeeded{watch}.", status=status)
        if not run.is_dry_run:
            verify(run)
    elif status == Status.CANCELLED:
        record(run, f"run #{run.pk} cancelled. {error}".strip(), actor=actor, status=status)
    else:
        record(run, f"run #{run.pk} failed: {error}", status=status)


# --- Step kinds --------------------------------------------------------------------------------------------------


def _http(run: RunbookRun, step: RunbookStepRun, spec: dict, now: datetime.datetime) -> str:
    if step.status == StepStatus.RUNNING:
        # Resumed (a worker died, or the sweeper came by): the step's call is in the outbox; send it if due.
        call = RunbookCall.objects.filter(step=step).only("status", "next_attempt_at").first()
        due = call is not None and (call.next_attempt_at is None or call.next_attempt_at <= now)
        if due and call.status == RunbookCall.Status.PENDING:
            enqueue_on_commit(CALLS.task, call.pk)
        return "wait"
    try:
        context, secrets = context_of(run)
        request = render_request(spec, context)
    except RenderError as exc:
        fail_step(run, step, f"cannot render the request: {exc}")
        return "failed"
    step.request = shown_request(request, secrets)
    step.started_at = now
    if run.is_dry_run:
        step.duration_ms = 0
        complete_step(run, step, StepStatus.DRY_RUN, f"would send {request['method']} {step.request['url']}")
        return "next"
    step.status = StepStatus.RUNNING
    step.save(update_fields=["request", "started_at", "status"])
    call = RunbookCall.objects.create(
        step=step, target=request["url"], event="runbook.step", method=request["method"],
        headers_encrypted=encrypt(json.dumps(request["headers"])), body_encrypted=encrypt(request["body"] or ""),
        expect_status=spec["expect_status"], timeout_seconds=math.ceil(spec["timeout_seconds"]),
        payload={"run": run.pk, "step": step.name},
    )  # fmt: skip
    enqueue_on_commit(CALLS.task, call.pk)
    return "wait"


def _condition(spec: dict) -> tuple[bool, str]:
    """Whether a wait's condition holds now, and what was seen."""
    if spec["until"] == "check_up":
        check = spec["check"]
        found = Check.objects.filter(pk=check) if isinstance(check, int) else Check.objects.filter(name=check)
        found = found.only("name", "status").first()
        if found is None:
            return False, f"check {check!r} no longer exists"
        return found.status == Check.Status.UP, f"check {found.name} is {found.status}"
    from aiops.metrics.query import query_instant

    result = query_instant(spec["query"], at=time.time())
    values = [s.points[-1][1] for s in result.series if s.points]
    if result.result_type == "scalar" and result.scalar:
        values = [result.scalar[1]]
    if not values:
        return False, f"{spec['query']} has no value"
    low, high = spec.get("min"), spec.get("max")
    outside = [v for v in values if (low is not None and v < low) or (high is not None and v > high) or v != v]
    shown = ", ".join(f"{v:g}" for v in values[:5])
    return not outside, f"{spec['query']} = {shown}"


def _wait(run: RunbookRun, step: RunbookStepRun, spec: dict, now: datetime.datetime) -> str:
    if "seconds" in spec:
        what = f"pause {spec['seconds']:g} s"
    elif spec["until"] == "check_up":
        what = f"until check {spec['check']} is up (at most {spec['timeout_seconds']:g} s)"
    else:
        bounds = " and ".join(
            f"{word} {spec[key]:g}" for key, word in (("min", "≥"), ("max", "≤")) if spec.get(key) is not None
        )
        what = f"until {spec['query']} is {bounds} (at most {spec['timeout_seconds']:g} s)"
    if run.is_dry_run:
        step.duration_ms = 0
        complete_step(run, step, StepStatus.DRY_RUN, f"would wait {what}")
        return "next"
    if step.status == StepStatus.PENDING:
        step.status, step.started_at, step.detail, step.due_at = StepStatus.RUNNING, now, f"waiting {what}", now
        step.save(update_fields=["status", "started_at", "detail", "due_at"])
    if step.due_at and now < step.due_at - datetime.timedelta(seconds=1):
        return "wait"  # a duplicate task: the scheduled look comes later
    elapsed = (now - step.started_at).total_seconds()
    if "seconds" in spec:
        if elapsed >= spec["seconds"]:
            complete_step(run, step, StepStatus.SUCCEEDED, f"paused {elapsed:.0f} s")
            return "next"
        delay = spec["seconds"] - elapsed
    else:
        try:
            ok, seen = _condition(spec)
        except Exception as exc:  # a query the store cannot evaluate now: say so and fail the step
            fail_step(run, step, f"cannot evaluate the condition: {exc}")
            return "failed"
        if ok:
            complete_step(run, step, StepStatus.SUCCEEDED, f"{seen} after {elapsed:.0f} s")
            return "next"
        if elapsed >= spec["timeout_seconds"]:
            fail_step(run, step, f"timed out after {spec['timeout_seconds']:g} s: {seen}")
            return "failed"
        delay = min(spec["interval_seconds"], spec["timeout_seconds"] - elapsed)
        step.detail = f"waiting {what}: {seen}"[:300]
    step.due_at = now + datetime.timedelta(seconds=delay)
    step.save(update_fields=["due_at", "detail"])
    enqueue_on_commit(ADVANCE_TASK, run.pk, countdown=max(delay, 0.5))
    return "wait"


def _approval(run: RunbookRun, step: RunbookStepRun, spec: dict, now: datetime.datetime) -> str:
    if run.is_dry_run:
        step.duration_ms = 0
        complete_step(run, step, StepStatus.SKIPPED, "dry run: no approval asked")
        return "next"
    if step.status == StepStatus.PENDING:
        message = ""
        if spec.get("message"):
            try:
                message = render(spec["message"], context_of(run)[0], field="message")
            except RenderError as exc:
                message = str(exc)
        step.status, step.started_at, step.detail = StepStatus.AWAITING_APPROVAL, now, message[:300]
        step.request = {"preview": preview(run, start=step.position + 1)}
        step.save(update_fields=["status", "started_at", "detail", "request"])
        run.status = Status.AWAITING_APPROVAL
        run.save(update_fields=["status"])
        record(run, f"{_step_label(step)} awaits an operator's approval.", step=step.name, status=run.status)
    return "wait"


def _notify(run: RunbookRun, step: RunbookStepRun, spec: dict, now: datetime.datetime) -> str:
    step.started_at = now
    channel = NotificationChannel.objects.filter(name=spec["channel"]).first()
    if channel is None or not channel.enabled:
        fail_step(run, step, f"notification channel {spec['channel']!r} is {'disabled' if channel else 'gone'}")
        return "failed"
    message = ""
    if spec.get("message"):
        try:
            message = render(spec["message"], context_of(run)[0], field="message")
        except RenderError as exc:
            fail_step(run, step, f"cannot render the message: {exc}")
            return "failed"
    step.request = {"channel": channel.name, "message": message}
    if run.is_dry_run:
        step.duration_ms = 0
        complete_step(run, step, StepStatus.DRY_RUN, f"would notify {channel.name}")
        return "next"
    from ..notifications import NOTIFICATIONS

    notification = Notification.objects.create(
        incident_id=run.incident_id, channel=channel, event="runbook", target=channel.target
    )
    enqueue_on_commit(NOTIFICATIONS.task, notification.pk)
    complete_step(
        run, step, StepStatus.SUCCEEDED, f"notification to {channel.name} queued" + (f": {message}" if message else "")
    )
    return "next"


# --- HTTP calls (an outbox) --------------------------------------------------------------------------------------


def extract(paths: dict[str, str], body: str) -> dict[str, Any]:
    """{variable: the first value the JSON path finds in the answer}; ValueError naming what is missing."""
    if not paths:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise ValueError(f"the answer is not JSON, so {', '.join(paths)} cannot be extracted") from None
    values = {}
    for variable, path in paths.items():
        found = findall(path, data)
        if not found:
            raise ValueError(f"extract {variable}: {path} matched nothing in the answer")
        values[variable] = found[0]
    return values


def _wording(message: RunbookCall) -> str:
    """The error as the target worded it: its status line and the start of its answer."""
    reason = getattr(message, "reason", "")
    if message.response_code and message.last_error.startswith("HTTP "):
        text = f"HTTP {message.response_code}{' ' + reason if reason else ''}"
        if 300 <= message.response_code < 400:
            text += " (redirects are not followed: set the step's url to the final URL)"
        body = " ".join(message.response_body.split())[:300]
        return f"{text}: {body}" if body else text
    return message.last_error


class RunbookCalls(outbox.Outbox[RunbookCall]):
    """The HTTP requests of runbook steps: any method, the step's headers and body, the answer kept."""

    model = RunbookCall
    task = "aiops.tasks.send_runbook_call"
    select_related = ("step", "step__run", "step__run__runbook")
    target_label = "the step's url"

    def prepare(self, message: RunbookCall) -> str:
        if kill_switch_on():
            return "not sent: the runbook kill switch is on"
        run = message.step.run
        if run.cancel_requested or run.is_finished:
            return "not sent: the run was cancelled"
        return ""

    def deliver(self, message: RunbookCall) -> int | None:
        try:
            headers = json.loads(decrypt(message.headers_encrypted) or "{}")
            body = decrypt(message.body_encrypted)
        except ValueError as exc:
            raise outbox.PermanentFailure(str(exc)) from None
        started = time.monotonic()
        try:
            answer = http.request(
                message.method, message.target, headers, body.encode() if body else None,
                timeout=message.timeout_seconds,
            )  # fmt: skip
        finally:
            message.duration_ms = int((time.monotonic() - started) * 1000)
        message.response_code, message.response_body, message.reason = answer.status, answer.body, answer.reason
        expected = message.expect_status
        if (answer.status in expected) if expected else 200 <= answer.status < 300:
            return answer.status
        if 200 <= answer.status < 300:
            wanted = " or ".join(str(code) for code in expected)
            excerpt = " ".join(answer.body.split())[:300]
            raise outbox.PermanentFailure(
                f"HTTP {answer.status} {answer.reason}, expected {wanted}" + (f": {excerpt}" if excerpt else "")
            )
        raise HTTPStatusError(answer.status)

    def recorded(self, message: RunbookCall) -> None:
        """The attempt's result on its step: done (values extracted, the run advances), retrying, or failed."""
        step = RunbookStepRun.objects.select_for_update().get(pk=message.step_id)
        run = RunbookRun.objects.select_for_update().select_related("runbook", "incident").get(pk=step.run_id)
        step.attempts = message.attempts
        step.duration_ms = getattr(message, "duration_ms", None)
        if message.response_code:
            step.response = {
                "status": message.response_code,
                "reason": getattr(message, "reason", ""),
                "body": message.response_body[:EXCERPT],
            }
        error = _wording(message)
        if message.status == RunbookCall.Status.SENT:
            spec = run.steps[step.position]
            try:
                values = extract(spec.get("extract") or {}, message.response_body)
            except ValueError as exc:
                fail_step(run, step, str(exc))
                return
            detail = f"{message.method} {step.request.get('url', '')} answered HTTP {message.response_code}"
            complete_step(run, step, StepStatus.SUCCEEDED, detail, **values)
            enqueue_on_commit(ADVANCE_TASK, run.pk)
        elif message.status == RunbookCall.Status.PENDING:
            delay = message.retry_delay().total_seconds()
            step.error = f"attempt {message.attempts} failed: {error}; retrying in {delay:.0f} s"
            step.save(update_fields=["attempts", "duration_ms", "response", "error"])
            record(
                run, f"{_step_label(step)} attempt {message.attempts} failed, retrying in {delay:.0f} s: {error}",
                step=step.name, step_status="retrying", attempt=message.attempts, error=error,
            )  # fmt: skip
        elif run.cancel_requested and error == "not sent: the run was cancelled":
            step.status, step.error = StepStatus.SKIPPED, error
            step.save()
            finish(run, Status.CANCELLED, "Cancelled before its request was sent.")
        else:
            attempts = f" after {message.attempts} attempt(s)" if message.attempts > 1 else ""
            fail_step(run, step, f"{error}{attempts}")


CALLS = RunbookCalls()


def send_call(call_id: int) -> str:
    return CALLS.send(call_id)


# --- Verification and sweeping -----------------------------------------------------------------------------------


def verify(run: RunbookRun, now: datetime.datetime | None = None) -> bool | None:
    """Store the run's remediation verdict once it is known (see RunbookRun.remediation) and say it."""
    verdict = run.remediation(now)
    if verdict is None or run.remediated is not None:
        return verdict
    run.remediated = verdict
    run.save(update_fields=["remediated"])
    if verdict:
        after = run.incident.resolved_at - run.finished_at
        minutes = max(after.total_seconds(), 0) / 60
        record(run, f"run #{run.pk} remediated the incident (resolved {minutes:.1f} min after its last step).",
               remediated=True)  # fmt: skip
    else:
        record(run, f"run #{run.pk} did not remediate: the incident was not resolved within "
               f"{run.runbook.window_minutes} min of its last step.", remediated=False)  # fmt: skip
    return verdict


def verify_runs(now: datetime.datetime | None = None, limit: int = 500) -> int:
    """Store the verdict of succeeded runs whose incident resolved or whose window is over; returns how many."""
    runs = (
        RunbookRun.objects.filter(status=Status.SUCCEEDED, remediated__isnull=True)
        .select_related("runbook", "incident")
        .order_by("finished_at")[:limit]
    )
    decided = 0
    for run in runs:
        with transaction.atomic():
            if verify(run, now) is not None:
                decided += 1
    return decided


def sweep(older_than: datetime.timedelta = datetime.timedelta(minutes=1)) -> int:
    """Re-enqueue runs in progress that no task may be carrying (a broker outage, a dead worker), and calls."""
    due = RunbookRun.objects.filter(
        status__in=[Status.PENDING, Status.RUNNING], created_at__lt=timezone.now() - older_than
    )
    return len(outbox.sweep(ADVANCE_TASK, due)) + CALLS.requeue_pending()
