"""Prompts, their immutable versions, labels, and the release gate that guards `production`."""

from __future__ import annotations

import re

from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from opsportal.accounts.roles import Role, has_role
from opsportal.audit import services as audit

from .. import templating
from ..models import EvalRun, LabelMove, Prompt, PromptLabel, PromptVersion, RunColumn
from .base import Actor, GateRefused, InvalidInput, NotAllowed, NotFound, clean_name, user_of

LABEL_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,99}$")
PRODUCTION = "production"
PARAMETER_KEYS = {
    "temperature", "max_tokens", "top_p", "response_format", "stop", "presence_penalty", "frequency_penalty", "seed",
}  # fmt: skip


def get_prompt(*, name: str) -> Prompt:
    prompt = Prompt.objects.filter(name=name).first()
    if prompt is None:
        raise NotFound(f"No prompt named {name!r}.")
    return prompt


def get_version(*, prompt: Prompt, number: object) -> PromptVersion:
    try:
        number = int(number)
    except (TypeError, ValueError):
        raise InvalidInput(f"{number!r} is not a version number", field="version") from None
    version = PromptVersion.objects.filter(prompt=prompt, version=number).select_related("prompt").first()
    if version is None:
        raise NotFound(f"{prompt.name} has no version {number}.")
    return version


def resolve(*, name: str, label: str = PRODUCTION) -> PromptVersion:
    """The version an application should use at run time: the one `label` points at."""
    row = (
        PromptLabel.objects.filter(prompt__name=name, name=label)
        .select_related("version__prompt", "version__author")
        .first()
    )
    if row is None:
        get_prompt(name=name)
        raise NotFound(f"Prompt {name!r} has no label {label!r}.")
    return row.version


def _clean_parameters(parameters: object) -> dict:
    if parameters in (None, ""):
        return {}
    if not isinstance(parameters, dict):
        raise InvalidInput("must be an object", field="parameters")
    unknown = set(parameters) - PARAMETER_KEYS
    if unknown:
        raise InvalidInput(
            f"unknown {', '.join(sorted(unknown))}; use {', '.join(sorted(PARAMETER_KEYS))}", field="parameters"
        )
    checks = {"temperature": (0, 2), "top_p": (0, 1), "max_tokens": (1, 1_000_000)}
    for key, (low, high) in checks.items():
        if key in parameters and parameters[key] is not None:
            value = parameters[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise InvalidInput(f"must be a number from {low} to {high}", field=f"parameters.{key}")
    response_format = parameters.get("response_format")
    if response_format is not None and not (
        isinstance(response_format, dict) and response_format.get("type") in ("text", "json_object", "json_schema")
    ):
        raise InvalidInput('{"type": "text" | "json_object" | "json_schema", ...}', field="parameters.response_format")
    return parameters


@transaction.atomic
def create_prompt(
    *, name: object, actor: Actor, description: str = "", messages: list | None = None, model: str = "",
    parameters: dict | None = None, commit_message: str = "",
) -> Prompt:  # fmt: skip
    name = clean_name(name)
    if Prompt.objects.filter(name=name).exists():
        raise InvalidInput(f"a prompt named {name!r} exists already", field="name")
    prompt = Prompt.objects.create(name=name, description=description or "", created_by=user_of(actor))
    audit.record(action="create", actor=actor, obj=prompt)
    if messages:
        create_version(prompt=prompt, actor=actor, messages=messages, model=model, parameters=parameters,
                       commit_message=commit_message or "First version")  # fmt: skip
    return prompt


@transaction.atomic
def create_version(
    *, prompt: Prompt, actor: Actor, messages: object, model: str = "", parameters: dict | None = None,
    commit_message: str = "",
) -> PromptVersion:  # fmt: skip
    """A new immutable version, numbered after the prompt's highest (the prompt row lock serialises numbering)."""
    try:
        cleaned = templating.validate_messages(messages)
    except templating.TemplateError as exc:
        raise InvalidInput(str(exc), field=exc.field) from None
    parameters = _clean_parameters(parameters)
    prompt = Prompt.objects.select_for_update().get(pk=prompt.pk)
    number = (prompt.versions.aggregate(top=Max("version"))["top"] or 0) + 1
    version = PromptVersion.objects.create(
        prompt=prompt,
        version=number,
        messages=cleaned,
        model=(model or "").strip(),
        parameters=parameters,
        variables=templating.variables_of(cleaned),
        commit_message=(commit_message or "")[:500],
        author=user_of(actor),
    )
    Prompt.objects.filter(pk=prompt.pk).update(updated_at=timezone.now())
    audit.record(action="create", actor=actor, obj=version, message=commit_message or f"Version {number}")
    return version


@transaction.atomic
def update_prompt(*, prompt: Prompt, actor: Actor, **fields: object) -> Prompt:
    """Description and release gate (`gate_dataset`, `gate_min_pass_rate`)."""
    unknown = set(fields) - {"description", "gate_dataset", "gate_min_pass_rate"}
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    rate = fields.get("gate_min_pass_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1):
        raise InvalidInput("a number from 0 to 1", field="gate_min_pass_rate")
    before = audit.snapshot(prompt, fields)
    for key, value in fields.items():
        setattr(prompt, key, value)
    if (prompt.gate_dataset_id is None) != (prompt.gate_min_pass_rate is None):
        raise InvalidInput("gate: give both a gate dataset and a minimum pass rate, or neither", field="gate_dataset")
    prompt.updated_at = timezone.now()
    prompt.save()
    audit.record(action="update", actor=actor, obj=prompt, changes=audit.diff(before, audit.snapshot(prompt, fields)))
    return prompt


def gate_check(*, prompt: Prompt, version: PromptVersion) -> tuple[bool, str, EvalRun | None]:
    """Whether `version` may become production: (allowed, reason, the best qualifying run)."""
    if not prompt.has_gate:
        return True, "no release gate", None
    threshold = prompt.gate_min_pass_rate
    columns = list(
        RunColumn.objects.filter(
            prompt_version=version, run__dataset_id=prompt.gate_dataset_id, run__status=EvalRun.Status.COMPLETED
        )
        .select_related("run")
        .order_by(F("pass_rate").desc(nulls_last=True), "-run__finished_at")
    )
    dataset = prompt.gate_dataset.name
    if not columns:
        return (
            False,
            (
                f"No finished run of {prompt.name} v{version.version} on the gate dataset {dataset!r}: "
                f"run one and reach a pass rate of at least {threshold:.0%}."
            ),
            None,
        )
    best = columns[0]
    rate = best.pass_rate or 0.0
    if rate >= threshold:
        return True, f"run #{best.run_id} passed {rate:.1%} on {dataset!r} (gate {threshold:.0%})", best.run
    return (
        False,
        (
            f"The best finished run of v{version.version} on {dataset!r} (#{best.run_id}) passed {rate:.1%}, "
            f"below the gate of {threshold:.0%}."
        ),
        best.run,
    )


@transaction.atomic
def move_label(
    *, prompt: Prompt, label: object, version: PromptVersion, actor: Actor, override: bool = False, reason: str = ""
) -> PromptLabel:
    """Point a label at a version. `production` passes the release gate unless an admin overrides it (audited)."""
    if not isinstance(label, str) or not LABEL_RE.match(label):
        raise InvalidInput("lower-case letters, digits, '_', '-', '.', at most 100 characters", field="label")
    if version.prompt_id != prompt.pk:
        raise InvalidInput("that version belongs to another prompt", field="version")
    prompt = Prompt.objects.select_for_update(of=("self",)).select_related("gate_dataset").get(pk=prompt.pk)
    current = PromptLabel.objects.filter(prompt=prompt, name=label).select_related("version").first()
    if current is not None and current.version_id == version.pk:
        return current
    overridden = False
    if label == PRODUCTION:
        allowed, why, _run = gate_check(prompt=prompt, version=version)
        if not allowed:
            if not override:
                raise GateRefused(f"Release gate: {why}")
            if not has_role(actor, Role.ADMIN):
                raise NotAllowed(f"Release gate: {why} Only an admin may override the gate.")
            if not (reason or "").strip():
                raise InvalidInput("say why the gate is overridden", field="reason")
            overridden = True
    previous = current.version.version if current else None
    row, _ = PromptLabel.objects.update_or_create(
        prompt=prompt, name=label, defaults={"version": version, "updated_at": timezone.now()}
    )
    LabelMove.objects.create(
        prompt=prompt, label=label, from_version=previous, to_version=version.version, gate_overridden=overridden,
        reason=(reason or "")[:500], actor=user_of(actor),
    )  # fmt: skip
    audit.record(
        action="override_gate" if overridden else "move_label",
        actor=actor,
        obj=prompt,
        changes={f"label:{label}": [previous, version.version]},
        message=(f"Gate overridden: {reason}" if overridden else f"@{label} -> v{version.version}"),
    )
    Prompt.objects.filter(pk=prompt.pk).update(updated_at=timezone.now())
    return row


@transaction.atomic
def delete_label(*, prompt: Prompt, label: str, actor: Actor) -> None:
    row = PromptLabel.objects.filter(prompt=prompt, name=label).select_related("version").first()
    if row is None:
        raise NotFound(f"{prompt.name} has no label {label!r}.")
    LabelMove.objects.create(prompt=prompt, label=label, from_version=row.version.version, to_version=None,
                             actor=user_of(actor))  # fmt: skip
    audit.record(action="move_label", actor=actor, obj=prompt, changes={f"label:{label}": [row.version.version, None]})
    row.delete()
