"""Retraining webhooks: an outbox (`opsportal.outbox`) of calls written with the breach that asks for them.

Each call is a POST of a body ready for its receiver, signed like every OpsPortal webhook
(`X-OpsPortal-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<unix>." + body>` with the hook's secret, plus
`X-OpsPortal-Timestamp`, `X-OpsPortal-Event` and `X-OpsPortal-Delivery`, the same on every retry):

- generic: `{"event", "timestamp", "model", "version", "reason", "report_url", "breach", "monitor"}`;
- GitHub Actions `workflow_dispatch` (the hook's URL is
  `https://api.github.com/repos/OWNER/REPO/actions/workflows/WORKFLOW/dispatches`): `{"ref", "inputs"}` with the
  inputs `model`, `version`, `reason`, `report_url` and `breach_id` (strings) next to the hook's own, the token as
  `Authorization: Bearer`, `Accept: application/vnd.github+json`;
- Airflow 2 DAG run (the URL is `https://AIRFLOW/api/v1/dags/DAG_ID/dagRuns`): `{"dag_run_id", "conf"}` with the
  same values in `conf`, the token as `Authorization: Bearer` or, with option `auth: basic` and a token
  `user:password`, as basic auth. The run id is made from the delivery id, so a retry after a lost answer gets
  409 "already exists", which counts as sent.

Each attempt's answer (status and the start of the body) is kept on the row; the final outcome is a line on
the model's history and on the timeline of the breach's incident.
"""

from __future__ import annotations

import base64
import datetime
import json
from urllib.parse import urlparse

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from opsportal import outbox
from opsportal.audit import services as audit
from opsportal.encryption import decrypt
from opsportal.enqueue import enqueue_on_commit
from opsportal.outbound import MAX_RESPONSE_BYTES, HTTPStatusError, connection_to, signed_headers, vet

from .aiops_bridge import note_on_alert_incident
from .models import Breach, ModelVersion, RegisteredModel, RetrainingCall, RetrainingHook, VersionEvent

MAX_ATTEMPTS = outbox.MAX_ATTEMPTS
EVENT = "retraining.requested"
TEST_EVENT = "retraining.test"
# The part of a receiver's answer kept on the call, the history and the timeline.
ANSWER_EXCERPT = 2000
TIMELINE_EXCERPT = 300


def absolute(path: str) -> str:
    return f"{settings.OPSPORTAL_BASE_URL}{path}"


def report_url(breach: Breach | None, model: RegisteredModel) -> str:
    """The page that shows why: the batch report of a per-batch breach, else the monitor's page."""
    if breach is None:
        return absolute(model.get_absolute_url())
    if breach.batch_id is not None:
        return absolute(breach.batch.get_absolute_url())
    return absolute(breach.monitor.get_absolute_url())


def facts(*, hook: RetrainingHook, version: ModelVersion | None, breach: Breach | None, reason: str) -> dict:
    """What every kind of body says: the model, version, reason, report link and breach id."""
    model = hook.model
    return {
        "model": model.name,
        "version": str(version.version) if version is not None else "",
        "reason": reason,
        "report_url": report_url(breach, model),
        "breach_id": str(breach.pk) if breach is not None else "",
    }


def body_for(
    *, hook: RetrainingHook, version: ModelVersion | None, breach: Breach | None, reason: str, delivery_id: str
) -> dict:
    """The JSON document this hook's receiver expects (see the module docstring)."""
    values = facts(hook=hook, version=version, breach=breach, reason=reason)
    options = hook.options or {}
    if hook.kind == RetrainingHook.Kind.GITHUB:
        # workflow_dispatch inputs are strings; a reason longer than GitHub's input limit is cut.
        inputs = {str(k): str(v) for k, v in (options.get("inputs") or {}).items()}
        inputs.update({**values, "reason": values["reason"][:1000]})
        return {"ref": options.get("ref") or "main", "inputs": inputs}
    if hook.kind == RetrainingHook.Kind.AIRFLOW:
        prefix = f"opsportal-breach-{breach.pk}" if breach is not None else "opsportal-test"
        return {"dag_run_id": f"{prefix}-{delivery_id[:8]}", "conf": {**(options.get("conf") or {}), **values}}
    document = {
        "event": EVENT if breach is not None else TEST_EVENT,
        "timestamp": timezone.now().isoformat(),
        "model": {"name": hook.model.name, "url": absolute(hook.model.get_absolute_url())},
        "version": None,
        "reason": reason,
        "report_url": values["report_url"],
        "breach": None,
        "monitor": None,
    }
    if version is not None:
        document["version"] = {
            "version": str(version.version),
            "stage": version.stage,
            "run_id": version.run_id,
            "url": absolute(version.get_absolute_url()),
        }
    if breach is not None:
        document["breach"] = {
            "id": breach.pk,
            "check": breach.monitor_check.name,
            "kind": breach.monitor_check.kind,
            "value": breach.value,
            "message": breach.message,
            "opened_at": breach.opened_at.isoformat(),
        }
        document["monitor"] = {"id": breach.monitor_id, "name": breach.monitor.name}
    return document


def queue(*, hook: RetrainingHook, version: ModelVersion | None, breach: Breach | None, reason: str) -> RetrainingCall:
    """Write the call (in the caller's transaction) and send it after commit."""
    call = RetrainingCall(hook=hook, breach=breach, target=hook.url, event=EVENT if breach else TEST_EVENT)
    call.payload = body_for(hook=hook, version=version, breach=breach, reason=reason, delivery_id=str(call.delivery_id))
    call.save()
    enqueue_on_commit(CALLS.task, call.pk)
    return call


def _headers(hook: RetrainingHook, body: bytes, message: RetrainingCall) -> dict[str, str]:
    try:
        secret = decrypt(hook.secret_encrypted) if hook.secret_encrypted else ""
        token = decrypt(hook.token_encrypted) if hook.token_encrypted else ""
    except ValueError as exc:
        raise outbox.PermanentFailure(f"{exc}; set the hook's secret and token again") from None
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "OpsPortal",
        **signed_headers(secret=secret, body=body, event=message.event, delivery_id=str(message.delivery_id)),
    }
    if hook.kind == RetrainingHook.Kind.GITHUB:
        headers["Accept"] = "application/vnd.github+json"
        headers["X-GitHub-Api-Version"] = "2022-11-28"
    if token:
        if hook.kind == RetrainingHook.Kind.AIRFLOW and (hook.options or {}).get("auth") == "basic":
            headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        else:
            headers["Authorization"] = f"Bearer {token}"
    return headers


class RetrainingCalls(outbox.Outbox[RetrainingCall]):
    """The retraining webhook outbox: the body is the one made when the breach asked; the answer is kept."""

    model = RetrainingCall
    task = "mlops.tasks.send_retraining_call"
    select_related = ("hook", "hook__model", "breach", "breach__monitor_check")
    target_label = "the retraining hook's URL"

    def prepare(self, message: RetrainingCall) -> str:
        if not message.hook.enabled and message.event != TEST_EVENT:
            return "not sent: the retraining hook was disabled"
        message.target = message.hook.url  # an admin may have fixed the URL while a retry waited
        return ""

    def deliver(self, message: RetrainingCall) -> int | None:
        body = json.dumps(message.payload).encode()
        headers = _headers(message.hook, body, message)
        addresses = vet(message.target)
        parsed = urlparse(message.target)
        path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
        connection = connection_to(message.target, addresses)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read(MAX_RESPONSE_BYTES)
        finally:
            connection.close()
        message.response_code = response.status
        message.response_body = answer.decode("utf-8", errors="replace")[:ANSWER_EXCERPT]
        if 200 <= response.status < 300:
            return response.status
        if response.status == 409 and message.hook.kind == RetrainingHook.Kind.AIRFLOW:
            # The DAG run with this delivery's id exists: an earlier attempt started it.
            return response.status
        raise HTTPStatusError(response.status)

    def recorded(self, message: RetrainingCall) -> None:
        """The final outcome on the model's history and the incident's timeline (retries stay on the row)."""
        if message.status == RetrainingCall.Status.PENDING:
            return
        hook = message.hook
        answer = " ".join(message.response_body.split())[:TIMELINE_EXCERPT]
        if message.status == RetrainingCall.Status.SENT:
            text = f"Retraining webhook {hook.name} answered HTTP {message.response_code}"
        else:
            text = f"Retraining webhook {hook.name} failed after {message.attempts} attempt(s): {message.last_error}"
        if answer:
            text += f": {answer}"
        breach = message.breach
        version = breach.version if breach is not None else None
        # The history line and audit entry that `services.history.record_event` writes (services import this
        # module, so it cannot import them back).
        VersionEvent.objects.create(
            model=hook.model, version=version, kind=VersionEvent.Kind.RETRAINING, message=text[:500],
            actor_name="system", data={
                "hook": hook.pk, "call": message.pk, "breach": breach.pk if breach else None,
                "status": message.status, "response_code": message.response_code, "test": message.event == TEST_EVENT,
            },
        )  # fmt: skip
        audit.record(action="retraining", actor=None, obj=version or hook.model, message=text)
        if breach is not None:
            dedup_key, source = breach.dedup_key, "mlops"
            transaction.on_commit(
                lambda: note_on_alert_incident(
                    source=source,
                    dedup_key=dedup_key,
                    message=text,
                    kind="retraining",
                    call=message.pk,
                    response_code=message.response_code,
                )
            )


CALLS = RetrainingCalls()


def send(*, call_id: int) -> str:
    """Attempt one call. Returns 'sent', 'failed', 'retry' or 'gone'."""
    return CALLS.send(call_id)


def requeue_pending(older_than: datetime.timedelta = datetime.timedelta(minutes=2)) -> int:
    """Re-enqueue calls left pending (broker down at commit, or a worker died)."""
    return CALLS.requeue_pending(older_than=older_than)
