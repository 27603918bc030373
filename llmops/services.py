"""LLMOps's facade: providers and prices, prompts and labels (with the release gate), datasets,
and evaluation runs. Every write goes through here, in one transaction with its audit entry.

Errors are `LLMOpsError(message, field)`; `NotFound` and `GateRefused` are subclasses the API
and pages translate (404, and 409 with the gate's reason).
"""

from __future__ import annotations

import datetime
import re
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, Q, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

from opsportal.accounts.roles import Role, has_role
from opsportal.audit import services as audit
from opsportal.encryption import encrypt
from opsportal.portal.summary import AppSummary, activity_stats
from opsportal.enqueue import enqueue_on_commit

from . import importers, templating
from .models import (
    Dataset,
    DatasetItem,
    EvalRun,
    LabelMove,
    LLMModel,
    PriceEntry,
    Prompt,
    PromptLabel,
    PromptVersion,
    Provider,
    RunColumn,
    RunItem,
    RunResult,
)

Actor = User | AnonymousUser | None

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,199}$")
LABEL_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,99}$")
PRODUCTION = "production"
PARAMETER_KEYS = {
    "temperature", "max_tokens", "top_p", "response_format", "stop", "presence_penalty", "frequency_penalty", "seed",
}  # fmt: skip
MAX_RUN_CELLS = 200_000


class LLMOpsError(ValueError):
    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(LLMOpsError):
    pass


class GateRefused(LLMOpsError):
    """Moving `production` is refused by the prompt's release gate."""


def _user(actor: Actor) -> User | None:
    return actor if actor is not None and actor.is_authenticated else None


def _name(value: object, field: str = "name") -> str:
    if not isinstance(value, str) or not value.strip():
        raise LLMOpsError(f"{field}: required", field)
    value = value.strip()
    if not NAME_RE.match(value):
        raise LLMOpsError(
            f"{field}: {value!r} must start with a letter or digit and use letters, digits, '_', '-', '.', '/'", field
        )
    return value


def _decimal(value: object, field: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise LLMOpsError(f"{field}: {value!r} is not a number", field) from None
    if number < 0 or not number.is_finite():
        raise LLMOpsError(f"{field}: must be zero or more", field)
    return number


# --- Providers, models and prices ----------------------------------------------------------------------------------


def _clean_headers(headers: object) -> dict[str, str]:
    if headers in (None, ""):
        return {}
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise LLMOpsError("default_headers: must be an object of header name -> text", "default_headers")
    return headers


@transaction.atomic
def create_provider(
    *, name: str, base_url: str, actor: Actor, api_key: str = "", default_headers: dict | None = None,
    timeout_seconds: float = 60.0, max_concurrency: int = 8, max_retries: int = 4,
) -> Provider:  # fmt: skip
    if Provider.objects.filter(name=name).exists():
        raise LLMOpsError(f"name: a provider named {name!r} exists already", "name")
    if not 1 <= int(max_concurrency) <= 256:
        raise LLMOpsError("max_concurrency: between 1 and 256", "max_concurrency")
    provider = Provider.objects.create(
        name=name,
        base_url=base_url.rstrip("/"),
        api_key=encrypt(api_key) if api_key else "",
        default_headers=_clean_headers(default_headers),
        timeout_seconds=float(timeout_seconds),
        max_concurrency=int(max_concurrency),
        max_retries=int(max_retries),
    )
    audit.record(action="create", actor=actor, obj=provider, message=f"Provider {name} ({provider.base_url})")
    return provider


@transaction.atomic
def update_provider(*, provider: Provider, actor: Actor, api_key: str | None = None, **fields: object) -> Provider:
    """Change fields; `api_key` None keeps the stored key, "" removes it, anything else replaces it."""
    allowed = {"name", "base_url", "default_headers", "timeout_seconds", "max_concurrency", "max_retries", "enabled"}
    unknown = set(fields) - allowed
    if unknown:
        raise LLMOpsError(f"unknown field(s): {', '.join(sorted(unknown))}", sorted(unknown)[0])
    if "default_headers" in fields:
        fields["default_headers"] = _clean_headers(fields["default_headers"])
    if "name" in fields and Provider.objects.filter(name=fields["name"]).exclude(pk=provider.pk).exists():
        raise LLMOpsError(f"name: a provider named {fields['name']!r} exists already", "name")
    if "base_url" in fields:
        fields["base_url"] = str(fields["base_url"]).rstrip("/")
    if "name" in fields and Provider.objects.filter(name=fields["name"]).exclude(pk=provider.pk).exists():
        raise LLMOpsError(f"name: a provider named {fields['name']!r} exists already", "name")
    if "max_concurrency" in fields and not 1 <= int(fields["max_concurrency"]) <= 256:
        raise LLMOpsError("max_concurrency: between 1 and 256", "max_concurrency")
    before = audit.snapshot(provider, fields)
    for key, value in fields.items():
        setattr(provider, key, value)
    changes = audit.diff(before, audit.snapshot(provider, fields))
    if api_key is not None:
        provider.api_key = encrypt(api_key) if api_key else ""
        changes["api_key"] = ["(hidden)", "(replaced)" if api_key else "(removed)"]
    provider.updated_at = timezone.now()
    provider.save()
    if changes:
        audit.record(action="update", actor=actor, obj=provider, changes=changes)
    return provider


@transaction.atomic
def delete_provider(*, provider: Provider, actor: Actor) -> None:
    audit.record(action="delete", actor=actor, obj=provider)
    provider.delete()


def price_for(model_name: str) -> PriceEntry | None:
    """The price table's entry for a model name: an exact match, else the longest matching `prefix*`."""
    exact = PriceEntry.objects.filter(model_name=model_name).first()
    if exact is not None:
        return exact
    best = None
    for entry in PriceEntry.objects.filter(model_name__endswith="*"):
        prefix = entry.model_name[:-1]
        if model_name.startswith(prefix) and (best is None or len(prefix) > len(best.model_name) - 1):
            best = entry
    return best


@transaction.atomic
def add_model(
    *, provider: Provider, name: str, actor: Actor, input_per_million: object = None, output_per_million: object = None
) -> LLMModel:
    """Add a model to a provider; prices default to the price table's entry for its name (else 0)."""
    if not isinstance(name, str) or not name.strip():
        raise LLMOpsError("name: required", "name")
    name = name.strip()
    known = price_for(name)
    model = LLMModel(provider=provider, name=name)
    model.input_per_million = (
        _decimal(input_per_million, "input_per_million")
        if input_per_million not in (None, "")
        else (known.input_per_million if known else Decimal(0))
    )
    model.output_per_million = (
        _decimal(output_per_million, "output_per_million")
        if output_per_million not in (None, "")
        else (known.output_per_million if known else Decimal(0))
    )
    try:
        with transaction.atomic():
            model.save()
    except IntegrityError:
        raise LLMOpsError(f"name: {provider.name} already has a model {name!r}", "name") from None
    audit.record(action="create", actor=actor, obj=model, message=f"Model {model} at {model.input_per_million}/"
                 f"{model.output_per_million} USD per 1M tokens")  # fmt: skip
    return model


@transaction.atomic
def update_model_prices(*, model: LLMModel, actor: Actor, input_per_million: object, output_per_million: object):
    before = audit.snapshot(model, ["input_per_million", "output_per_million"])
    model.input_per_million = _decimal(input_per_million, "input_per_million")
    model.output_per_million = _decimal(output_per_million, "output_per_million")
    model.save(update_fields=["input_per_million", "output_per_million"])
    changes = audit.diff(before, audit.snapshot(model, ["input_per_million", "output_per_million"]))
    audit.record(action="update", actor=actor, obj=model, changes=changes)
    return model


@transaction.atomic
def set_price(*, model_name: str, input_per_million: object, output_per_million: object, actor: Actor) -> PriceEntry:
    """Add or change an entry of the price table (admins)."""
    if not isinstance(model_name, str) or not model_name.strip():
        raise LLMOpsError("model_name: required", "model_name")
    entry, created = PriceEntry.objects.update_or_create(
        model_name=model_name.strip(),
        defaults={
            "input_per_million": _decimal(input_per_million, "input_per_million"),
            "output_per_million": _decimal(output_per_million, "output_per_million"),
            "updated_at": timezone.now(),
        },
    )
    audit.record(
        action="create" if created else "update",
        actor=actor,
        obj=entry,
        message=f"Price of {entry.model_name}: {entry.input_per_million} in / {entry.output_per_million} out per 1M",
    )
    return entry


def resolve_model(reference: str) -> LLMModel:
    """A model by "provider/name", or by name when only one provider offers it."""
    provider_name, sep, name = reference.rpartition("/") if "/" in reference else ("", "", reference)
    queryset = LLMModel.objects.select_related("provider")
    matches = list(queryset.filter(provider__name=provider_name, name=name) if sep else queryset.filter(name=name))
    if not matches and sep:
        matches = list(queryset.filter(name=reference))  # model ids may contain "/" themselves
    if not matches:
        raise NotFound(f"model: no model {reference!r} (use provider/model)", "model")
    if len(matches) > 1:
        raise LLMOpsError(f"model: {reference!r} is offered by several providers; say provider/model", "model")
    return matches[0]


# --- Prompts and labels --------------------------------------------------------------------------------------------


def get_prompt(name: str) -> Prompt:
    prompt = Prompt.objects.filter(name=name).first()
    if prompt is None:
        raise NotFound(f"No prompt named {name!r}.", "name")
    return prompt


def get_version(prompt: Prompt, number: object) -> PromptVersion:
    try:
        number = int(number)
    except (TypeError, ValueError):
        raise LLMOpsError(f"version: {number!r} is not a version number", "version") from None
    version = PromptVersion.objects.filter(prompt=prompt, version=number).select_related("prompt").first()
    if version is None:
        raise NotFound(f"{prompt.name} has no version {number}.", "version")
    return version


def resolve(name: str, label: str = PRODUCTION) -> PromptVersion:
    """The version an application should use at run time: the one `label` points at."""
    row = (
        PromptLabel.objects.filter(prompt__name=name, name=label)
        .select_related("version__prompt", "version__author")
        .first()
    )
    if row is None:
        get_prompt(name)
        raise NotFound(f"Prompt {name!r} has no label {label!r}.", "label")
    return row.version


def _clean_parameters(parameters: object) -> dict:
    if parameters in (None, ""):
        return {}
    if not isinstance(parameters, dict):
        raise LLMOpsError("parameters: must be an object", "parameters")
    unknown = set(parameters) - PARAMETER_KEYS
    if unknown:
        raise LLMOpsError(
            f"parameters: unknown {', '.join(sorted(unknown))}; use {', '.join(sorted(PARAMETER_KEYS))}", "parameters"
        )
    checks = {"temperature": (0, 2), "top_p": (0, 1), "max_tokens": (1, 1_000_000)}
    for key, (low, high) in checks.items():
        if key in parameters and parameters[key] is not None:
            value = parameters[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise LLMOpsError(f"parameters.{key}: must be a number from {low} to {high}", f"parameters.{key}")
    response_format = parameters.get("response_format")
    if response_format is not None and not (
        isinstance(response_format, dict) and response_format.get("type") in ("text", "json_object", "json_schema")
    ):
        raise LLMOpsError(
            'parameters.response_format: {"type": "text" | "json_object" | "json_schema", ...}',
            "parameters.response_format",
        )
    return parameters


@transaction.atomic
def create_prompt(
    *, name: object, actor: Actor, description: str = "", messages: list | None = None, model: str = "",
    parameters: dict | None = None, commit_message: str = "",
) -> Prompt:  # fmt: skip
    name = _name(name)
    if Prompt.objects.filter(name=name).exists():
        raise LLMOpsError(f"name: a prompt named {name!r} exists already", "name")
    prompt = Prompt.objects.create(name=name, description=description or "", created_by=_user(actor))
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
        raise LLMOpsError(str(exc), exc.field) from None
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
        author=_user(actor),
    )
    Prompt.objects.filter(pk=prompt.pk).update(updated_at=timezone.now())
    audit.record(action="create", actor=actor, obj=version, message=commit_message or f"Version {number}")
    return version


@transaction.atomic
def update_prompt(*, prompt: Prompt, actor: Actor, **fields: object) -> Prompt:
    """Description and release gate (`gate_dataset`, `gate_min_pass_rate`)."""
    unknown = set(fields) - {"description", "gate_dataset", "gate_min_pass_rate"}
    if unknown:
        raise LLMOpsError(f"unknown field(s): {', '.join(sorted(unknown))}", sorted(unknown)[0])
    rate = fields.get("gate_min_pass_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1):
        raise LLMOpsError("gate_min_pass_rate: a number from 0 to 1", "gate_min_pass_rate")
    before = audit.snapshot(prompt, fields)
    for key, value in fields.items():
        setattr(prompt, key, value)
    if (prompt.gate_dataset_id is None) != (prompt.gate_min_pass_rate is None):
        raise LLMOpsError("gate: give both a gate dataset and a minimum pass rate, or neither", "gate_dataset")
    prompt.updated_at = timezone.now()
    prompt.save()
    audit.record(action="update", actor=actor, obj=prompt, changes=audit.diff(before, audit.snapshot(prompt, fields)))
    return prompt


def gate_check(prompt: Prompt, version: PromptVersion) -> tuple[bool, str, EvalRun | None]:
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
        raise LLMOpsError("label: lower-case letters, digits, '_', '-', '.', at most 100 characters", "label")
    if version.prompt_id != prompt.pk:
        raise LLMOpsError("version: that version belongs to another prompt", "version")
    prompt = Prompt.objects.select_for_update(of=("self",)).select_related("gate_dataset").get(pk=prompt.pk)
    current = PromptLabel.objects.filter(prompt=prompt, name=label).select_related("version").first()
    if current is not None and current.version_id == version.pk:
        return current
    overridden = False
    if label == PRODUCTION:
        allowed, why, _run = gate_check(prompt, version)
        if not allowed:
            if not override:
                raise GateRefused(f"Release gate: {why}", "version")
            if not has_role(actor, Role.ADMIN):
                raise GateRefused(f"Release gate: {why} Only an admin may override the gate.", "override")
            if not (reason or "").strip():
                raise LLMOpsError("reason: say why the gate is overridden", "reason")
            overridden = True
    previous = current.version.version if current else None
    row, _ = PromptLabel.objects.update_or_create(
        prompt=prompt, name=label, defaults={"version": version, "updated_at": timezone.now()}
    )
    LabelMove.objects.create(
        prompt=prompt, label=label, from_version=previous, to_version=version.version, gate_overridden=overridden,
        reason=(reason or "")[:500], actor=_user(actor),
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
        raise NotFound(f"{prompt.name} has no label {label!r}.", "label")
    LabelMove.objects.create(prompt=prompt, label=label, from_version=row.version.version, to_version=None,
                             actor=_user(actor))  # fmt: skip
    audit.record(action="move_label", actor=actor, obj=prompt, changes={f"label:{label}": [row.version.version, None]})
    row.delete()


# --- Datasets ------------------------------------------------------------------------------------------------------


def get_dataset(reference: object) -> Dataset:
    queryset = Dataset.objects.all()
    dataset = (
        queryset.filter(pk=int(reference)).first()
        if isinstance(reference, int) or (isinstance(reference, str) and reference.isdigit())
        else queryset.filter(name=reference).first()
    )
    if dataset is None:
        raise NotFound(f"No dataset {reference!r}.", "dataset")
    return dataset


@transaction.atomic
def create_dataset(*, name: object, actor: Actor, description: str = "") -> Dataset:
    name = _name(name)
    if Dataset.objects.filter(name=name).exists():
        raise LLMOpsError(f"name: a dataset named {name!r} exists already", "name")
    dataset = Dataset.objects.create(name=name, description=description or "", created_by=_user(actor))
    audit.record(action="create", actor=actor, obj=dataset)
    return dataset


@transaction.atomic
def update_dataset(*, dataset: Dataset, actor: Actor, **fields: object) -> Dataset:
    """Rename a dataset or change its description (runs keep their own snapshot of the items)."""
    unknown = set(fields) - {"name", "description"}
    if unknown:
        raise LLMOpsError(f"unknown field(s): {', '.join(sorted(unknown))}", sorted(unknown)[0])
    if "name" in fields:
        fields["name"] = _name(fields["name"])
        if Dataset.objects.filter(name=fields["name"]).exclude(pk=dataset.pk).exists():
            raise LLMOpsError(f"name: a dataset named {fields['name']!r} exists already", "name")
    if "description" in fields:
        fields["description"] = fields["description"] or ""
    before = audit.snapshot(dataset, fields)
    for key, value in fields.items():
        setattr(dataset, key, value)
    dataset.updated_at = timezone.now()
    dataset.save()
    audit.record(action="update", actor=actor, obj=dataset, changes=audit.diff(before, audit.snapshot(dataset, fields)))
    return dataset


@transaction.atomic
def delete_dataset(*, dataset: Dataset, actor: Actor) -> None:
    gated = list(dataset.gated_prompts.values_list("name", flat=True))
    if gated:
        raise LLMOpsError(
            f"dataset: it is the release gate of {', '.join(sorted(gated))}; change their gate first", "dataset"
        )
    audit.record(action="delete", actor=actor, obj=dataset, message=f"{dataset.items.count()} items")
    dataset.delete()


def _clean_item(data: dict) -> dict:
    cleaned = {}
    if "input" in data:
        if not isinstance(data["input"], dict):
            raise LLMOpsError("input: must be a JSON object of variables", "input")
        cleaned["input"] = data["input"]
    for key in ("expected_output", "context"):
        if key in data:
            cleaned[key] = "" if data[key] is None else str(data[key])
    if "metadata" in data:
        if not isinstance(data["metadata"] or {}, dict):
            raise LLMOpsError("metadata: must be a JSON object", "metadata")
        cleaned["metadata"] = data["metadata"] or {}
    if "tags" in data:
        tags = data["tags"] or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise LLMOpsError("tags: must be a list of text", "tags")
        cleaned["tags"] = tags
    return cleaned


@transaction.atomic
def add_item(*, dataset: Dataset, actor: Actor, **data: object) -> DatasetItem:
    cleaned = _clean_item(data)
    if not cleaned.get("input"):
        raise LLMOpsError("input: give at least one variable", "input")
    item = DatasetItem.objects.create(dataset=dataset, **cleaned)
    Dataset.objects.filter(pk=dataset.pk).update(updated_at=timezone.now())
    audit.record(action="create", actor=actor, obj=item, message=f"Item added to {dataset.name}")
    return item


@transaction.atomic
def update_item(*, item: DatasetItem, actor: Actor, **data: object) -> DatasetItem:
    cleaned = _clean_item(data)
    before = audit.snapshot(item, cleaned)
    for key, value in cleaned.items():
        setattr(item, key, value)
    item.updated_at = timezone.now()
    item.save()
    Dataset.objects.filter(pk=item.dataset_id).update(updated_at=item.updated_at)
    audit.record(action="update", actor=actor, obj=item, changes=audit.diff(before, audit.snapshot(item, cleaned)))
    return item


@transaction.atomic
def delete_item(*, item: DatasetItem, actor: Actor) -> None:
    audit.record(action="delete", actor=actor, obj=item)
    Dataset.objects.filter(pk=item.dataset_id).update(updated_at=timezone.now())
    item.delete()


def preview_import(data: bytes, filename: str = "", *, require_output: bool = False) -> importers.ImportResult:
    return importers.parse(data, filename, require_output=require_output)


@transaction.atomic
def import_items(*, dataset: Dataset, data: bytes, filename: str, actor: Actor) -> importers.ImportResult:
    """Import a CSV or JSONL file whole: on any bad row nothing is stored and the result lists the errors."""
    result = importers.parse(data, filename)
    if not result.ok:
        return result
    DatasetItem.objects.bulk_create(
        [
            DatasetItem(
                dataset=dataset,
                input=row.input,
                expected_output=row.expected_output,
                context=row.context,
                metadata=row.metadata,
                tags=row.tags,
            )
            for row in result.rows
        ],
        batch_size=1000,
    )
    Dataset.objects.filter(pk=dataset.pk).update(updated_at=timezone.now())
    audit.record(action="import", actor=actor, obj=dataset, message=f"{len(result.rows)} items from {filename}")
    return result


# --- Evaluation runs -----------------------------------------------------------------------------------------------


def _clean_scorers(scorers: object) -> list[dict]:
    from . import scorers as scoring

    if not isinstance(scorers, list) or not scorers:
        raise LLMOpsError("scorers: give at least one scorer", "scorers")
    cleaned = []
    for index, data in enumerate(scorers):
        if not isinstance(data, dict):
            raise LLMOpsError(f"scorers[{index}]: must be an object", f"scorers[{index}]")
        try:
            scoring.parse_spec(data, f"scorers[{index}]")
        except scoring.ScorerConfigError as exc:
            raise LLMOpsError(str(exc), getattr(exc, "field", f"scorers[{index}]")) from None
        cleaned.append(data)
    return cleaned


def _uses_judge(scorers: list[dict]) -> bool:
    from . import scorers as scoring

    return any(scoring.SCORERS[scoring.parse_spec(s).type].is_llm for s in scorers)


@transaction.atomic
def create_run(
    *, dataset: Dataset, prompt_versions: Iterable[PromptVersion], models: Iterable[LLMModel], scorers: list[dict],
    actor: Actor, name: str = "", judge_model: LLMModel | None = None, concurrency: int | None = None,
) -> EvalRun:  # fmt: skip
    """A matrix run: every item of `dataset` x every (prompt version, model); executed by a worker."""
    prompt_versions, models = list(prompt_versions), list(models)
    if not prompt_versions:
        raise LLMOpsError("prompt_versions: choose at least one prompt version", "prompt_versions")
    if not models:
        raise LLMOpsError("models: choose at least one model", "models")
    scorers = _clean_scorers(scorers)
    if _uses_judge(scorers) and judge_model is None:
        raise LLMOpsError("judge_model: llm-rubric scorers need a judge model", "judge_model")
    if concurrency is not None and not 1 <= int(concurrency) <= 256:
        raise LLMOpsError("concurrency: between 1 and 256", "concurrency")
    items = list(dataset.items.order_by("id"))
    if not items:
        raise LLMOpsError(f"dataset: {dataset.name!r} has no items", "dataset")
    cells = len(items) * len(prompt_versions) * len(models)
    if cells > MAX_RUN_CELLS:
        raise LLMOpsError(f"the run would have {cells:,} results; at most {MAX_RUN_CELLS:,}", "dataset")
    run = EvalRun.objects.create(
        name=name or f"{', '.join(sorted({str(v) for v in prompt_versions}))} on {dataset.name}",
        kind=EvalRun.Kind.GENERATE,
        dataset=dataset,
        scorers=scorers,
        judge_model=judge_model,
        concurrency=concurrency,
        total=cells,
        created_by=_user(actor),
    )
    RunColumn.objects.bulk_create(
        [
            RunColumn(run=run, position=position, prompt_version=version, model=model,
                      label=f"{version.prompt.name} v{version.version} x {model.name}")
            for position, (version, model) in enumerate((v, m) for v in prompt_versions for m in models)
        ]
    )  # fmt: skip
    _snapshot_items(run, items)
    audit.record(action="create", actor=actor, obj=run, message=f"{cells} results to generate")
    _enqueue(run)
    return run


def _snapshot_items(run: EvalRun, items: list[DatasetItem]) -> None:
    RunItem.objects.bulk_create(
        [
            RunItem(
                run=run,
                position=position,
                source_item=item,
                input=item.input,
                expected_output=item.expected_output,
                context=item.context,
                metadata=item.metadata,
            )
            for position, item in enumerate(items)
        ],
        batch_size=1000,
    )


@transaction.atomic
def create_score_run(
    *, data: bytes, filename: str, scorers: list[dict], actor: Actor, name: str = "",
    dataset: Dataset | None = None, judge_model: LLMModel | None = None,
    prompt_version: PromptVersion | None = None,
) -> tuple[EvalRun | None, importers.ImportResult]:  # fmt: skip
    """Score outputs that were recorded elsewhere (CSV/JSONL with `output` per row); nothing is generated.

    `prompt_version` says which version produced the outputs (e.g. recorded production answers), so
    the run counts for that version's comparisons and release gate like a generated run.
    """
    scorers = _clean_scorers(scorers)
    if _uses_judge(scorers) and judge_model is None:
        raise LLMOpsError("judge_model: llm-rubric scorers need a judge model", "judge_model")
    result = importers.parse(data, filename, require_output=True)
    if not result.ok:
        return None, result
    run = EvalRun.objects.create(
        name=name or f"Imported outputs from {filename}",
        kind=EvalRun.Kind.SCORE,
        dataset=dataset,
        scorers=scorers,
        judge_model=judge_model,
        total=len(result.rows),
        created_by=_user(actor),
    )
    RunColumn.objects.create(
        run=run,
        position=0,
        prompt_version=prompt_version,
        label=f"{prompt_version} (imported outputs)" if prompt_version else (name or "imported outputs"),
    )
    RunItem.objects.bulk_create(
        [
            RunItem(
                run=run,
                position=position,
                input=row.input,
                expected_output=row.expected_output,
                context=row.context,
                metadata=row.metadata,
                imported_output=row.output,
            )
            for position, row in enumerate(result.rows)
        ],
        batch_size=1000,
    )
    audit.record(action="create", actor=actor, obj=run, message=f"{len(result.rows)} imported outputs to score")
    _enqueue(run)
    return run, result


def _enqueue(run: EvalRun) -> None:
    enqueue_on_commit("llmops.tasks.execute_run", run.pk)


@transaction.atomic
def cancel_run(*, run: EvalRun, actor: Actor) -> EvalRun:
    run = EvalRun.objects.select_for_update().get(pk=run.pk)
    if run.finished:
        raise LLMOpsError(f"run #{run.pk} is already {run.status}", "status")
    run.cancel_requested = True
    if run.status == EvalRun.Status.QUEUED:
        run.status = EvalRun.Status.CANCELLED
        run.finished_at = timezone.now()
    run.save(update_fields=["cancel_requested", "status", "finished_at"])
    audit.record(action="cancel", actor=actor, obj=run)
    return run


def rescore_run(*, run: EvalRun, actor: Actor, scorers: list[dict] | None = None) -> int:
    """Score a finished run's stored outputs again, with new scorers or its own (cheap scorers only)."""
    from . import engine

    if not run.finished:
        raise LLMOpsError(f"status: run #{run.pk} is {run.status}; re-score it once it has finished", "status")
    cleaned = _clean_scorers(scorers) if scorers is not None else None
    if _uses_judge(cleaned if cleaned is not None else run.scorers):
        raise LLMOpsError("scorers: llm-rubric asks a model; re-scoring runs cheap scorers only", "scorers")
    previous = run.scorers
    changed = engine.rescore(run, cleaned)
    audit.record(
        action="rescore",
        actor=actor,
        obj=run,
        changes={"scorers": [previous, cleaned]} if cleaned is not None and cleaned != previous else None,
        message=f"{changed} results re-scored",
    )
    return changed


def summarise(run: EvalRun) -> dict:
    """Pass rate and mean score per column and per scorer; stored on the run and its columns."""
    columns = {c.pk: c for c in run.columns.all()}
    per_column: dict[int, dict] = {
        pk: {"results": 0, "errors": 0, "passed": 0, "scorers": defaultdict(lambda: [0, 0, 0.0])} for pk in columns
    }
    latencies: dict[int, list[float]] = defaultdict(list)
    for column_id, passed, error, scores, latency in run.results.values_list(
        "column_id", "passed", "error", "scores", "latency_ms"
    ).iterator(chunk_size=2000):
        stats = per_column[column_id]
        stats["results"] += 1
        if error:
            stats["errors"] += 1
            continue
        stats["passed"] += bool(passed)
        if latency is not None:
            latencies[column_id].append(latency)
        for entry in scores or []:
            scorer = stats["scorers"][entry["name"]]
            scorer[0] += 1
            scorer[1] += bool(entry["passed"])
            scorer[2] += float(entry["score"])
    summary = {"columns": []}
    for pk, column in columns.items():
        stats = per_column[pk]
        scored = stats["results"] - stats["errors"]
        column.pass_rate = stats["passed"] / scored if scored else None
        lat = sorted(latencies[pk])
        column.stats = {
            "results": stats["results"],
            "errors": stats["errors"],
            "passed": stats["passed"],
            "latency_p50_ms": lat[len(lat) // 2] if lat else None,
            "scorers": {
                name: {"count": n, "pass_rate": p / n if n else None, "mean_score": s / n if n else None}
                for name, (n, p, s) in stats["scorers"].items()
            },
        }
        summary["columns"].append({"id": pk, "label": column.label, "pass_rate": column.pass_rate, **column.stats})
    RunColumn.objects.bulk_update(list(columns.values()), ["pass_rate", "stats"])
    return summary


def latest_runs_per_prompt(limit: int = 8) -> list[tuple[str, float | None, EvalRun]]:
    """(prompt name, pass rate, run) of each prompt's latest finished run."""
    latest: dict[str, tuple[str, float | None, EvalRun]] = {}
    columns = (
        RunColumn.objects.filter(run__status=EvalRun.Status.COMPLETED, prompt_version__isnull=False)
        .select_related("run", "prompt_version__prompt")
        .order_by("-run__finished_at", "position")[:200]
    )
    for column in columns:
        name = column.prompt_version.prompt.name
        if name not in latest:
            latest[name] = (name, column.pass_rate, column.run)
    return list(latest.values())[:limit]


def cost_per_day(days: int = 30) -> list[tuple[datetime.date, float]]:
    since = timezone.now() - datetime.timedelta(days=days)
    rows = (
        RunResult.objects.filter(created_at__gte=since, cost__isnull=False)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(total=Sum("cost"))
        .order_by("day")
    )
    return [(row["day"], row["total"]) for row in rows]


def overview(*, with_charts: bool = False) -> AppSummary:
    """LLMOps's card on the overview: pass rate of the latest runs per prompt, and cost per day."""
    counts = EvalRun.objects.aggregate(
        running=Count("id", filter=Q(status__in=[EvalRun.Status.QUEUED, EvalRun.Status.RUNNING])),
        week=Count("id", filter=Q(created_at__gte=timezone.now() - datetime.timedelta(days=7))),
    )
    stats: list[tuple[str, object]] = [
        ("Prompts", Prompt.objects.count()),
        ("Runs in progress", counts["running"]),
        ("Runs in 7 days", counts["week"]),
    ]
    charts = []
    latest = latest_runs_per_prompt(12)
    recent = [
        (f"{name}: {rate:.0%} passed" if rate is not None else f"{name}: no score", run.get_absolute_url(),
         run.finished_at or run.created_at)
        for name, rate, run in latest[:5]
    ]  # fmt: skip
    if with_charts:
        from opsportal.portal.charts import figure_data

        from . import charts as llmops_charts

        # Empty charts say nothing: each appears once there is something to show.
        if latest:
            charts.append(("llmops-pass-rates", "Pass rate of the latest run per prompt",
                           figure_data(llmops_charts.latest_pass_rates(latest))))  # fmt: skip
        costs = cost_per_day(30)
        if costs:
            charts.append(("llmops-cost", "Evaluation cost per day (USD)",
                           figure_data(llmops_charts.cost_per_day(costs))))  # fmt: skip
    return AppSummary(
        label="llmops",
        title="LLMOps",
        description="Prompts with versions and labels, datasets, evaluation runs, comparison and release gates.",
        url=reverse("llmops:index"),
        stats=stats + activity_stats("llmops")[:1],
        charts=charts,
        recent=recent,
        recent_title="Latest runs per prompt",
    )
