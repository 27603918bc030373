"""Retraining hooks: their set-up, a test call, the call a breach makes, and the version a retraining registers.

Sending is `mlops.retraining`'s outbox. A breach of a check that names a hook queues one call (in the
breach's transaction). The body carries the breach id; a version registered with the tag
`opsportal.breach=<id>` (at creation or later) is linked back to that breach (`Breach.retrained_version`),
and the link shows on the model's history and the incident's timeline.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlparse

from django.db import transaction

from opsportal.audit import services as audit
from opsportal.encryption import encrypt
from opsportal.errors import InvalidInput
from opsportal.outbound import OutboundRefused, check_outbound_url

from .. import retraining as calls
from ..aiops_bridge import note_on_alert_incident
from ..models import Breach, ModelVersion, RegisteredModel, RetrainingCall, RetrainingHook, VersionEvent
from .history import Actor, record_event

BREACH_TAG = "opsportal.breach"
HOOK_FIELDS = ("name", "kind", "url", "options", "enabled")


class RetrainingHookInvalid(InvalidInput):
    """A retraining hook's URL, kind or options are refused (400, on that field)."""


def _clean_options(kind: str, url: str, options: object) -> dict:
    """The kind's options, checked: GitHub {"ref", "inputs"}, Airflow {"conf", "auth"}, generic {}."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise RetrainingHookInvalid("must be an object.", field="options")
    path = urlparse(url).path.rstrip("/")
    if kind == RetrainingHook.Kind.GITHUB:
        if not path.endswith("/dispatches") or "/actions/workflows/" not in path:
            raise RetrainingHookInvalid(
                "a GitHub hook calls https://api.github.com/repos/OWNER/REPO/actions/workflows/WORKFLOW/dispatches.",
                field="url",
            )
        unknown = set(options) - {"ref", "inputs"}
        inputs = options.get("inputs") or {}
        if not isinstance(inputs, dict) or not all(isinstance(v, str) for v in inputs.values()):
            raise RetrainingHookInvalid("inputs must be an object of strings.", field="options")
        if "ref" in options and not (isinstance(options["ref"], str) and options["ref"]):
            raise RetrainingHookInvalid("ref must be a branch or tag name.", field="options")
    elif kind == RetrainingHook.Kind.AIRFLOW:
        if not path.endswith("/dagRuns") or "/api/v1/dags/" not in path:
            raise RetrainingHookInvalid(
                "an Airflow hook calls https://AIRFLOW/api/v1/dags/DAG_ID/dagRuns.", field="url"
            )
        unknown = set(options) - {"conf", "auth"}
        if not isinstance(options.get("conf") or {}, dict):
            raise RetrainingHookInvalid("conf must be an object.", field="options")
        if options.get("auth", "bearer") not in ("bearer", "basic"):
            raise RetrainingHookInvalid("auth is bearer (the token) or basic (a token user:password).", field="options")
    else:
        unknown = set(options)
    if unknown:
        raise RetrainingHookInvalid(
            f"unknown option(s) {', '.join(sorted(unknown))} for a {kind} hook.", field="options"
        )
    return options


@transaction.atomic
def save_retraining_hook(
    *, model: RegisteredModel, actor: Actor, name: str, kind: str, url: str, secret: str = "", token: str = "",
    options: dict | None = None, enabled: bool = True, hook: RetrainingHook | None = None,
) -> RetrainingHook:  # fmt: skip
    """Create a retraining hook (`hook` None) or change `hook`. Secret and token are write-only: empty keeps
    the stored ones. A new hook without a secret gets one generated, readable once as `hook.new_secret`."""
    if kind not in RetrainingHook.Kind.values:
        raise RetrainingHookInvalid(f"choose from {', '.join(RetrainingHook.Kind.values)}.", field="kind")
    name = (name or "").strip()
    if not name:
        raise RetrainingHookInvalid("required.", field="name")
    try:
        check_outbound_url(url)
    except OutboundRefused as exc:
        raise RetrainingHookInvalid(str(exc), field="url") from None
    options = _clean_options(kind, url, options)
    taken = RetrainingHook.objects.filter(model=model, name=name).exclude(pk=hook.pk if hook else None)
    if taken.exists():
        raise RetrainingHookInvalid(f"{model.name} already has a retraining hook named {name!r}.", field="name")
    fields = {"name": name, "kind": kind, "url": url, "options": options, "enabled": bool(enabled)}
    creating = hook is None
    new_secret = ""
    if creating:
        new_secret = "" if secret else secrets.token_urlsafe(32)
        hook = RetrainingHook(model=model)
    before = {} if creating else audit.snapshot(hook, fields)
    for key, value in fields.items():
        setattr(hook, key, value)
    if secret or new_secret:
        hook.secret_encrypted = encrypt(secret or new_secret)
    if token:
        hook.token_encrypted = encrypt(token)
    hook.save()
    changes = audit.diff(before, audit.snapshot(hook, fields))
    if secret and not creating:
        changes["secret"] = ["***", "***"]
    if token and not creating:
        changes["token"] = ["***", "***"]
    audit.record(
        action="create" if creating else "update", actor=actor, obj=hook, changes=changes,
        message=f"Retraining hook {name} ({hook.get_kind_display()}) of {model.name} -> {url}",
    )  # fmt: skip
    hook.new_secret = new_secret
    return hook


@transaction.atomic
def delete_retraining_hook(*, hook: RetrainingHook, actor: Actor) -> None:
    """Delete the hook (checks naming it then trigger nothing; their breaches still open incidents)."""
    audit.record(action="delete", actor=actor, obj=hook, message=f"Retraining hook {hook.name} of {hook.model.name}")
    hook.delete()


def test_retraining_hook(*, hook: RetrainingHook, actor: Actor) -> RetrainingCall:
    """Send one test call now (a body of the hook's kind for the model's newest version, no breach) and return
    it with its answer; a test is not retried. The outcome lands on the model's history."""
    version = ModelVersion.objects.filter(model_id=hook.model_id).order_by("-version").first()
    with transaction.atomic():
        call = calls.queue(hook=hook, version=version, breach=None, reason="Test call from OpsPortal")
        audit.record(action="test", actor=actor, obj=hook, message=f"Test call of retraining hook {hook.name}")
    calls.send(call_id=call.pk)
    # A test answers now or not at all: a retry would call a receiver later, when nobody is watching.
    RetrainingCall.objects.filter(pk=call.pk, status=RetrainingCall.Status.PENDING).update(
        status=RetrainingCall.Status.FAILED, next_attempt_at=None
    )
    call.refresh_from_db()
    return call


def request_retraining(*, breach: Breach, hook: RetrainingHook) -> RetrainingCall | None:
    """Queue the call a breach asks for (in the breach's transaction); a disabled hook calls nothing."""
    if not hook.enabled:
        return None
    check = breach.monitor_check
    reason = f"{check.name}: {breach.message}"
    call = calls.queue(hook=hook, version=breach.version, breach=breach, reason=reason)
    record_event(
        hook.model, VersionEvent.Kind.RETRAINING,
        f"Retraining requested through {hook.name} ({hook.get_kind_display()}) for breach #{breach.pk}: {reason}",
        None, version=breach.version, audit_action="retraining", hook=hook.pk, call=call.pk, breach=breach.pk,
    )  # fmt: skip
    return call


@transaction.atomic
def link_retrained_version(*, version: ModelVersion, tags: dict[str, str] | None = None) -> Breach | None:
    """Link a new version to the breach whose retraining registered it (tag `opsportal.breach=<id>`).

    Called by version creation and by tag writes, in their transaction; a tag naming no breach of this model
    is left as it is. Returns the breach linked now (None when there is nothing to link).
    """
    value = (tags or {}).get(BREACH_TAG)
    if value is None:
        return None
    try:
        breach_id = int(str(value).strip())
    except ValueError:
        return None
    breach = (
        Breach.objects.select_for_update(of=("self",))
        .select_related("monitor_check", "version")
        .filter(pk=breach_id, monitor__model_id=version.model_id, retrained_version__isnull=True)
        .first()
    )
    if breach is None:
        return None
    breach.retrained_version = version
    breach.save(update_fields=["retrained_version"])
    text = f"Version {version.version} was registered by the retraining of breach #{breach.pk} ({breach.message})"
    record_event(
        version.model, VersionEvent.Kind.RETRAINING, text, None, version=version, audit_action="retraining",
        breach=breach.pk, retrained_version=version.version,
    )  # fmt: skip
    dedup_key = breach.dedup_key
    transaction.on_commit(
        lambda: note_on_alert_incident(
            source="mlops", dedup_key=dedup_key, message=text, kind="retrained", version=version.version
        )
    )
    return breach
