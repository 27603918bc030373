"""Runbooks: creating and editing them (admins), starting, approving, rejecting and cancelling runs (operators),
the global kill switch, automatic triggers for new incidents, and the figures of a runbook's page.

The engine that runs the steps is `aiops.runbooks.engine`; this module writes what people decide.
"""

from __future__ import annotations

import datetime
import statistics
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.encryption import encrypt
from opsportal.enqueue import enqueue_on_commit
from opsportal.errors import Conflict, InvalidInput

from ..models import Alert, Incident, IncidentEvent, Runbook, RunbookRun, RunbookStepRun, RunbookSwitch
from ..runbooks import engine
from ..runbooks.steps import NAME, alert_labels, matches, validate_match, validate_steps
from .actor import Actor, actor_name, user_of

MODES = [choice for choice, _ in Runbook.Mode.choices]
RUN_MODES = ("run", "approval", "dry-run")
EDITABLE = ("name", "description", "enabled", "steps", "trigger_mode", "match", "window_minutes",
            "max_concurrent_runs", "max_runs_per_hour")  # fmt: skip
MAX_SECRET_LENGTH = 8192


def _clean(values: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """The runbook fields of `values` validated; InvalidInput names the first problem."""
    clean: dict[str, Any] = {}
    if "name" in values or not partial:
        name = str(values.get("name") or "").strip()
        if not name:
            raise InvalidInput("a runbook needs a name", field="name")
        if len(name) > 100:
            raise InvalidInput("at most 100 characters", field="name")
        clean["name"] = name
    if "steps" in values or not partial:
        clean["steps"] = validate_steps(values.get("steps"))
    if "trigger_mode" in values:
        if values["trigger_mode"] not in MODES:
            raise InvalidInput(f"must be one of {', '.join(MODES)}", field="trigger.mode")
        clean["trigger_mode"] = values["trigger_mode"]
    if "match" in values:
        clean["match"] = validate_match(values["match"])
    for key, low, high in (("window_minutes", 1, 7 * 24 * 60), ("max_concurrent_runs", 1, 100),
                           ("max_runs_per_hour", 1, 1000)):  # fmt: skip
        if key in values:
            value = values[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidInput(f"must be a whole number from {low} to {high}", field=key)
            clean[key] = value
    if "description" in values:
        clean["description"] = str(values["description"] or "")
    if "enabled" in values:
        clean["enabled"] = bool(values["enabled"])
    return clean


def _secrets(current: dict[str, str], secrets: dict[str, str] | None) -> dict[str, str]:
    """Stored ciphertexts with `secrets` applied: a value sets (encrypted), "" or None removes."""
    if secrets is None:
        return current
    if not isinstance(secrets, dict):
        raise InvalidInput('must be an object: {"NAME": "value"}', field="secrets")
    result = dict(current)
    for name, value in secrets.items():
        if not isinstance(name, str) or not NAME.match(name):
            raise InvalidInput(f"{name!r} is not a secret name (letters, digits, _)", field="secrets")
        if value in (None, ""):
            result.pop(name, None)
        elif not isinstance(value, str) or len(value) > MAX_SECRET_LENGTH:
            raise InvalidInput(f"{name}: a secret is a string of at most {MAX_SECRET_LENGTH} characters",
                               field="secrets")  # fmt: skip
        else:
            result[name] = encrypt(value)
    return result


def _check_trigger(runbook: Runbook) -> None:
    if runbook.is_automatic and not runbook.match:
        raise InvalidInput(
            "an automatic trigger needs labels to match (a runbook for every incident is not allowed)",
            field="trigger.match",
        )


@transaction.atomic
def create_runbook(*, actor: Actor, secrets: dict[str, str] | None = None, **values: Any) -> Runbook:
    """A new runbook; `secrets` ({NAME: value}) are stored encrypted and readable only by its templates."""
    clean = _clean(values, partial=False)
    runbook = Runbook(**clean, created_by=user_of(actor))
    runbook.secrets_encrypted = _secrets({}, secrets)
    _check_trigger(runbook)
    if Runbook.objects.filter(name=runbook.name).exists():
        raise Conflict(f"a runbook named {runbook.name!r} exists", field="name")
    try:
        with transaction.atomic():
            runbook.save()
    except IntegrityError:
        raise Conflict(f"a runbook named {runbook.name!r} exists", field="name") from None
    audit.record(
        action=audit.Action.CREATE, actor=actor, obj=runbook,
        changes={**audit.diff({}, audit.snapshot(runbook, EDITABLE)), "secrets": [None, runbook.secret_names]},
    )  # fmt: skip
    return runbook


@transaction.atomic
def update_runbook(*, runbook: Runbook, actor: Actor, secrets: dict[str, str] | None = None, **values: Any) -> Runbook:
    """Change what `values` holds (and set or remove secrets); runs underway keep the steps they started with."""
    runbook = Runbook.objects.select_for_update().get(pk=runbook.pk)
    before = audit.snapshot(runbook, EDITABLE)
    names_before = runbook.secret_names
    for key, value in _clean(values, partial=True).items():
        setattr(runbook, key, value)
    runbook.secrets_encrypted = _secrets(runbook.secrets_encrypted, secrets)
    _check_trigger(runbook)
    if Runbook.objects.filter(name=runbook.name).exclude(pk=runbook.pk).exists():
        raise Conflict(f"a runbook named {runbook.name!r} exists", field="name")
    runbook.updated_at = timezone.now()
    runbook.save()
    changes = audit.diff(before, audit.snapshot(runbook, EDITABLE))
    if secrets:  # which secrets were set or removed, never their values
        changes["secrets"] = [names_before, runbook.secret_names]
    audit.record(action=audit.Action.UPDATE, actor=actor, obj=runbook, changes=changes)
    return runbook


@transaction.atomic
def delete_runbook(*, runbook: Runbook, actor: Actor) -> None:
    if runbook.runs.in_progress().exists():
        raise Conflict("the runbook has runs in progress; cancel them first")
    audit.record(action=audit.Action.DELETE, actor=actor, obj=runbook)
    runbook.delete()


# --- Runs -----------------------------------------------------------------------------------------------------


def _runs_last_hour(runbook: Runbook, now: datetime.datetime) -> int:
    return RunbookRun.objects.filter(runbook=runbook, created_at__gte=now - datetime.timedelta(hours=1)).count()


def _new_run(*, runbook: Runbook, incident: Incident, mode: str, trigger: str, actor: Actor) -> RunbookRun:
    run = RunbookRun.objects.create(
        runbook=runbook, incident=incident, mode=mode, trigger=trigger, steps=runbook.steps,
        status=RunbookRun.Status.AWAITING_APPROVAL if mode == "approval" else RunbookRun.Status.PENDING,
        started_by=user_of(actor),
    )  # fmt: skip
    RunbookStepRun.objects.bulk_create(
        RunbookStepRun(run=run, position=i, name=s["name"], kind=s["kind"]) for i, s in enumerate(runbook.steps)
    )
    how = "by hand" if trigger == RunbookRun.Trigger.MANUAL else f"automatically (it matches {runbook.match})"
    if mode == "approval":
        run.runbook = runbook
        first = RunbookStepRun.objects.get(run=run, position=0)
        first.request = {"preview": engine.preview(run)}
        first.save(update_fields=["request"])
        engine.record(run, f"run #{run.pk} started {how}; it waits for an operator's approval before any step.",
                      actor=actor, status=run.status, mode=mode)  # fmt: skip
    else:
        engine.record(run, f"run #{run.pk} queued {how} ({mode}).", actor=actor, status=run.status, mode=mode)
        enqueue_on_commit(engine.ADVANCE_TASK, run.pk)
    return run


@transaction.atomic
def start_run(*, runbook: Runbook, incident: Incident, mode: str, actor: Actor) -> RunbookRun:
    """Run `runbook` on `incident` by hand in `mode` (run, approval or dry-run).

    Refused while the kill switch is on, for a disabled runbook, and past the runbook's runs per hour; past its
    concurrent runs the run waits for a free slot.
    """
    if mode not in RUN_MODES:
        raise InvalidInput(f"must be one of {', '.join(RUN_MODES)}", field="mode")
    runbook = Runbook.objects.select_for_update().get(pk=runbook.pk)
    if not runbook.enabled:
        raise Conflict(f"runbook {runbook.name} is disabled")
    if mode != "dry-run" and engine.kill_switch_on():
        raise Conflict("the runbook kill switch is on: no runbook runs until an admin turns it off")
    if mode != "dry-run" and _runs_last_hour(runbook, timezone.now()) >= runbook.max_runs_per_hour:
        raise Conflict(f"runbook {runbook.name} already ran {runbook.max_runs_per_hour} time(s) in the last hour "
                       "(its limit)")  # fmt: skip
    return _new_run(runbook=runbook, incident=incident, mode=mode, trigger=RunbookRun.Trigger.MANUAL, actor=actor)


def _locked_run(run: RunbookRun) -> RunbookRun:
    return RunbookRun.objects.select_for_update(of=("self",)).select_related("runbook", "incident").get(pk=run.pk)


@transaction.atomic
def approve_run(*, run: RunbookRun, actor: Actor) -> RunbookRun:
    """Let a run awaiting approval go on: its first step (approval mode) or the step after its approval step."""
    run = _locked_run(run)
    if run.status != RunbookRun.Status.AWAITING_APPROVAL:
        raise Conflict(f"run #{run.pk} is not awaiting approval (it is {run.get_status_display().lower()})")
    step = RunbookStepRun.objects.select_for_update().filter(run=run, position=run.current_step).first()
    if step is not None and step.status == RunbookStepRun.Status.AWAITING_APPROVAL:
        step.detail = f"approved by {actor_name(actor)}"
        step.save(update_fields=["detail"])
        engine.complete_step(run, step, RunbookStepRun.Status.SUCCEEDED, f"approved by {actor_name(actor)}")
        run.status = RunbookRun.Status.RUNNING
    else:
        run.status = RunbookRun.Status.PENDING
        engine.record(run, f"run #{run.pk} approved by {actor_name(actor)}.", actor=actor, status="approved")
    run.decided_by = user_of(actor)
    run.save(update_fields=["status", "decided_by"])
    audit.record(action=audit.Action.APPROVE, actor=actor, obj=run, message=f"Approved run #{run.pk}.")
    enqueue_on_commit(engine.ADVANCE_TASK, run.pk)
    return run


@transaction.atomic
def reject_run(*, run: RunbookRun, actor: Actor, reason: str = "") -> RunbookRun:
    """Stop a run awaiting approval: nothing more is sent; the run ends cancelled."""
    run = _locked_run(run)
    if run.status != RunbookRun.Status.AWAITING_APPROVAL:
        raise Conflict(f"run #{run.pk} is not awaiting approval (it is {run.get_status_display().lower()})")
    run.decided_by = user_of(actor)
    run.save(update_fields=["decided_by"])
    note = f"Rejected by {actor_name(actor)}" + (f": {reason}" if reason else ".")
    audit.record(action=audit.Action.REJECT, actor=actor, obj=run, message=note)
    engine.finish(run, RunbookRun.Status.CANCELLED, note, actor=actor)
    return run


@transaction.atomic
def cancel_run(*, run: RunbookRun, actor: Actor) -> RunbookRun:
    """Cancel between steps: at once when no step is underway (or a wait is), else when the current one ends."""
    run = _locked_run(run)
    if run.is_finished:
        raise Conflict(f"run #{run.pk} has already {run.get_status_display().lower()}")
    audit.record(action=audit.Action.CANCEL, actor=actor, obj=run, message=f"Cancel run #{run.pk}.")
    step = RunbookStepRun.objects.filter(run=run, position=run.current_step).first()
    underway = step is not None and step.status == RunbookStepRun.Status.RUNNING and step.kind == "http"
    if underway:
        run.cancel_requested = True
        run.save(update_fields=["cancel_requested"])
        engine.record(run, f"cancel of run #{run.pk} requested by {actor_name(actor)}: it stops after "
                      f"{step.name} ends.", actor=actor)  # fmt: skip
        return run
    if step is not None and step.status == RunbookStepRun.Status.RUNNING:
        step.status, step.error = RunbookStepRun.Status.SKIPPED, f"cancelled by {actor_name(actor)}"
        step.save(update_fields=["status", "error"])
    run.cancel_requested = True
    run.save(update_fields=["cancel_requested"])
    engine.finish(run, RunbookRun.Status.CANCELLED, f"Cancelled by {actor_name(actor)}.", actor=actor)
    return run


# --- Kill switch ----------------------------------------------------------------------------------------------


def kill_switch() -> RunbookSwitch:
    return RunbookSwitch.objects.order_by("pk").first() or RunbookSwitch()


@transaction.atomic
def set_kill_switch(*, killed: bool, actor: Actor, reason: str = "") -> RunbookSwitch:
    """Stop (or allow again) every runbook step everywhere. Allowing again resumes the runs it held."""
    switch = RunbookSwitch.objects.select_for_update().order_by("pk").first() or RunbookSwitch()
    before = switch.killed
    switch.killed, switch.changed_by, switch.changed_at = killed, user_of(actor), timezone.now()
    switch.reason = reason[:300]
    switch.save()
    if before != killed:
        audit.record(
            action=audit.Action.STATE, actor=actor, obj=switch, changes={"killed": [before, killed]},
            message="Runbook kill switch " + ("on: no runbook step starts" if killed else "off") +
            (f" ({reason})" if reason else ""),
        )  # fmt: skip
    if not killed:
        for run_id in RunbookRun.objects.filter(
            status__in=[RunbookRun.Status.PENDING, RunbookRun.Status.RUNNING]
        ).values_list("pk", flat=True):
            enqueue_on_commit(engine.ADVANCE_TASK, run_id)
    return switch


# --- Automatic triggers ---------------------------------------------------------------------------------------


def trigger_for_new_incidents(incidents: list[Incident], alerts: list[Alert]) -> list[RunbookRun]:
    """Start the automatic runbooks whose `match` an alert of a new incident satisfies (inside the batch's
    transaction, so the runs are committed with the incidents). One query when no runbook is automatic."""
    runbooks = list(Runbook.objects.filter(enabled=True).exclude(trigger_mode=Runbook.Mode.MANUAL))
    if not runbooks or not incidents:
        return []
    labels_by_incident: dict[int, list[dict[str, str]]] = {}
    for alert in alerts:
        if alert.incident is not None:
            labels_by_incident.setdefault(alert.incident.pk, []).append(alert_labels(alert))
    killed = engine.kill_switch_on()
    now = timezone.now()
    runs = []
    for incident in incidents:
        for runbook in runbooks:
            if not any(matches(runbook.match, labels) for labels in labels_by_incident.get(incident.pk, [])):
                continue
            if killed and runbook.trigger_mode != Runbook.Mode.DRY_RUN:
                _not_started(incident, runbook, "the runbook kill switch is on")
            elif _runs_last_hour(runbook, now) >= runbook.max_runs_per_hour:
                _not_started(incident, runbook, f"its limit of {runbook.max_runs_per_hour} run(s) per hour is reached")
            else:
                runs.append(_new_run(runbook=runbook, incident=incident, mode=runbook.trigger_mode,
                                     trigger=RunbookRun.Trigger.AUTOMATIC, actor=None))  # fmt: skip
    return runs


def _not_started(incident: Incident, runbook: Runbook, why: str) -> None:
    IncidentEvent.objects.create(
        incident=incident, kind=IncidentEvent.Kind.RUNBOOK, actor_name="system",
        message=f"Runbook {runbook.name} matches but was not started: {why}.", data={"runbook": runbook.pk},
    )  # fmt: skip


# --- Figures --------------------------------------------------------------------------------------------------


@dataclass
class RunbookFigures:
    """What a runbook's page shows: runs by status, success and remediation rates, MTTR with and without it."""

    runs: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    success_rate: float | None = None
    remediation_rate: float | None = None
    mttr_with: float | None = None  # minutes, median over resolved incidents it ran on
    mttr_without: float | None = None  # minutes, median over resolved incidents of the same services without it
    with_count: int = 0
    without_count: int = 0


MTTR_SAMPLE = 2000


def _minutes(rows: list[tuple[datetime.datetime, datetime.datetime]]) -> float | None:
    values = [(resolved - created).total_seconds() / 60 for created, resolved in rows if resolved and created]
    return round(statistics.median(values), 1) if values else None


def runbook_figures(runbook: Runbook) -> RunbookFigures:
    figures = RunbookFigures()
    counts = dict(runbook.runs.values_list("status").annotate(n=Count("id")).order_by())
    figures.by_status = counts
    figures.runs = sum(counts.values())
    finished = sum(counts.get(s, 0) for s in RunbookRun.FINISHED)
    if finished:
        figures.success_rate = round(100 * counts.get("succeeded", 0) / finished, 1)
    verdicts = dict(
        runbook.runs.filter(status="succeeded", remediated__isnull=False)
        .exclude(mode="dry-run")
        .values_list("remediated")
        .annotate(n=Count("id"))
        .order_by()
    )
    if verdicts:
        figures.remediation_rate = round(100 * verdicts.get(True, 0) / sum(verdicts.values()), 1)
    ran_on = runbook.runs.exclude(mode="dry-run").values("incident")
    resolved = Incident.objects.filter(status=Incident.Status.RESOLVED, resolved_at__isnull=False)
    with_rows = list(resolved.filter(pk__in=ran_on).values_list("created_at", "resolved_at")[:MTTR_SAMPLE])
    services = list(
        Incident.objects.filter(pk__in=ran_on).exclude(service="").values_list("service", flat=True).distinct()[:50]
    )
    without_rows = []
    if services:
        without_rows = list(
            resolved.filter(service__in=services)
            .exclude(pk__in=ran_on)
            .order_by("-created_at")
            .values_list("created_at", "resolved_at")[:MTTR_SAMPLE]
        )
    figures.mttr_with, figures.with_count = _minutes(with_rows), len(with_rows)
    figures.mttr_without, figures.without_count = _minutes(without_rows), len(without_rows)
    return figures


def runs_for_incident(incident: Incident) -> list[RunbookRun]:
    return list(incident.runbook_runs.select_related("runbook", "started_by").order_by("-created_at")[:50])


def runnable_runbooks() -> list[Runbook]:
    return list(Runbook.objects.filter(enabled=True).only("id", "name", "trigger_mode"))


def automatic_runbooks_exist() -> bool:
    return Runbook.objects.filter(enabled=True).filter(~Q(trigger_mode=Runbook.Mode.MANUAL)).exists()
