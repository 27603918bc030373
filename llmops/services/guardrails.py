"""Guardrails: guard policies (create, change, delete, the default), guard calls (check a text and record the
call), and the violation figures the pages chart.

Every guard call is recorded as a `GuardCall` with the policy, direction, verdict, violations and latency;
the text only as the policy's `record_text` says (by default the redacted text). When the caller names a
trace, the call is also recorded as a span of that trace.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum, Value
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from opsportal.audit import services as audit

from .. import guardrails
from ..models import GuardCall, GuardPolicy, LLMModel
from ..traces.decode import decode_json
from .base import Actor, InvalidInput, NotFound, clean_name, user_of
from .traces import ingest_traces

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 100_000
RECORDED_TEXT_CHARS = 10_000
BUILT_IN_DEFAULT = "default"
# The policy applied when no policy is marked default: the rule-based checks, masking what can be masked.
DEFAULT_CHECKS: list[dict] = [
    {"check": "pii"},
    {"check": "secrets"},
    {"check": "injection", "directions": ["input"]},
    {"check": "unicode"},
    {"check": "toxicity"},
]
POLICY_FIELDS = ("name", "description", "direction", "action", "checks", "record_text", "is_default", "judge_model")
_HEX = re.compile(r"^[0-9a-f]*$")


def max_text_chars() -> int:
    return int(getattr(settings, "LLMOPS_GUARD_MAX_CHARS", MAX_TEXT_CHARS))


def built_in_default() -> GuardPolicy:
    """The unsaved policy used while no stored policy is the default."""
    return GuardPolicy(
        name=BUILT_IN_DEFAULT,
        description="Built in: personal data and secrets masked; injection, hidden characters and toxicity blocked.",
        direction=GuardPolicy.Direction.BOTH,
        action=GuardPolicy.Action.REDACT,
        checks=guardrails.clean_checks(DEFAULT_CHECKS),
    )


def _choice(value: object, choices: type, field: str) -> str:
    if value not in choices.values:
        raise InvalidInput(f"{value!r} is not one of {', '.join(choices.values)}", field=field)
    return str(value)


def _clean_fields(fields: dict, policy: GuardPolicy | None) -> dict:
    unknown = set(fields) - set(POLICY_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    cleaned = dict(fields)
    if "name" in cleaned:
        cleaned["name"] = clean_name(cleaned["name"])
        others = GuardPolicy.objects.filter(name=cleaned["name"])
        if policy is not None:
            others = others.exclude(pk=policy.pk)
        if others.exists():
            raise InvalidInput(f"a policy named {cleaned['name']!r} exists already", field="name")
    if "description" in cleaned:
        cleaned["description"] = str(cleaned["description"] or "")
    if "direction" in cleaned:
        cleaned["direction"] = _choice(cleaned["direction"], GuardPolicy.Direction, "direction")
    if "action" in cleaned:
        cleaned["action"] = _choice(cleaned["action"], GuardPolicy.Action, "action")
    if "record_text" in cleaned:
        cleaned["record_text"] = _choice(cleaned["record_text"], GuardPolicy.RecordText, "record_text")
    if "checks" in cleaned:
        cleaned["checks"] = guardrails.clean_checks(cleaned["checks"])
    if "is_default" in cleaned:
        cleaned["is_default"] = bool(cleaned["is_default"])
    if cleaned.get("judge_model") is not None and not isinstance(cleaned["judge_model"], LLMModel):
        raise InvalidInput("must be a model", field="judge_model")
    checks = cleaned.get("checks", policy.checks if policy else [])
    judge = cleaned.get("judge_model", policy.judge_model if policy else None)
    if judge is None and any(guardrails.CHECKS[check["check"]].is_llm for check in checks):
        raise InvalidInput("llm-rubric checks need the policy's judge model", field="judge_model")
    return cleaned


def _take_default(policy: GuardPolicy) -> None:
    """Make `policy` the only default (the constraint allows one)."""
    GuardPolicy.objects.filter(is_default=True).exclude(pk=policy.pk).update(is_default=False)


@transaction.atomic
def create_policy(*, name: object, actor: Actor, checks: object, **fields: object) -> GuardPolicy:
    """A new policy; `fields` are the other POLICY_FIELDS (direction, action, record_text, is_default ...)."""
    cleaned = _clean_fields({"name": name, "checks": checks, **fields}, None)
    policy = GuardPolicy(created_by=user_of(actor), **cleaned)
    if policy.is_default:
        _take_default(policy)
    policy.save()
    forget_policies()
    transaction.on_commit(forget_policies)
    checks_named = ", ".join(check["name"] for check in policy.checks) or "no checks"
    audit.record(action="create", actor=actor, obj=policy, message=f"Guard policy {policy.name}: {checks_named}")
    return policy


@transaction.atomic
def update_policy(*, policy: GuardPolicy, actor: Actor, **fields: object) -> GuardPolicy:
    """Change a policy's fields (POLICY_FIELDS); calls already recorded keep their verdicts."""
    cleaned = _clean_fields(fields, policy)
    before = audit.snapshot(policy, cleaned)
    for key, value in cleaned.items():
        setattr(policy, key, value)
    if policy.is_default:
        _take_default(policy)
    policy.updated_at = timezone.now()
    policy.save()
    forget_policies()
    transaction.on_commit(forget_policies)
    changes = audit.diff(before, audit.snapshot(policy, cleaned))
    if changes:
        audit.record(action="update", actor=actor, obj=policy, changes=changes)
    return policy


@transaction.atomic
def delete_policy(*, policy: GuardPolicy, actor: Actor) -> None:
    """Delete a policy; its recorded calls stay (with the policy's name)."""
    audit.record(action="delete", actor=actor, obj=policy)
    policy.delete()
    forget_policies()
    transaction.on_commit(forget_policies)


def get_policy(*, name: str | None) -> GuardPolicy:
    """The policy named, or the default one (a stored default, else the built-in default) for no name."""
    queryset = GuardPolicy.objects.select_related("judge_model__provider")
    if not name:
        return queryset.filter(is_default=True).first() or built_in_default()
    policy = queryset.filter(name=name).first()
    if policy is None:
        if name == BUILT_IN_DEFAULT:
            return queryset.filter(is_default=True).first() or built_in_default()
        raise NotFound(f"no guard policy named {name!r}", field="policy")
    return policy


# Guard calls read their policy from this process's memory for up to POLICY_CACHE_SECONDS: a database round
# trip is most of a rule-based guard call. A change reaches every web process within that time.
POLICY_CACHE_SECONDS = 2.0
_policies: dict[str, tuple[float, GuardPolicy]] = {}


def policy_for_call(name: str | None) -> GuardPolicy:
    """`get_policy`, remembered for POLICY_CACHE_SECONDS (a missing name is looked up every time)."""
    seconds = float(getattr(settings, "LLMOPS_GUARD_POLICY_CACHE_SECONDS", POLICY_CACHE_SECONDS))
    key = name or ""
    now = time.monotonic()
    cached = _policies.get(key)
    if cached is not None and now - cached[0] < seconds:
        return cached[1]
    policy = get_policy(name=name)
    _policies[key] = (now, policy)
    return policy


def forget_policies() -> None:
    """Drop this process's remembered policies (a policy written here applies at once here)."""
    _policies.clear()


@dataclass(frozen=True)
class GuardResult:
    """A guard call's verdict with its record (None for a preview)."""

    verdict: guardrails.Verdict
    latency_ms: float
    call: GuardCall | None

    def as_dict(self) -> dict:
        return self.verdict.as_dict()


def _clean_hex(value: str, length: int, field: str) -> str:
    value = (value or "").strip().lower()
    if value and (len(value) != length or not _HEX.match(value)):
        raise InvalidInput(f"{length} hexadecimal characters", field=field)
    return value


def check_text(*, policy: GuardPolicy, text: str, direction: str) -> tuple[guardrails.Verdict, int, float]:
    """(verdict, violated check bits, milliseconds) of `policy` on `text`, recording nothing."""
    if direction not in guardrails.DIRECTIONS:
        raise InvalidInput('"input" or "output"', field="direction")
    if not isinstance(text, str):
        raise InvalidInput("must be a text", field="text")
    if len(text) > max_text_chars():
        raise InvalidInput(f"at most {max_text_chars()} characters (this one has {len(text)})", field="text")
    if not policy.applies_to(direction):
        raise InvalidInput(f"the policy {policy.name!r} applies to {policy.direction} texts only", field="direction")
    judge = guardrails.judge_with(policy.judge_model) if policy.judge_model_id else guardrails.no_judge
    started = time.perf_counter()
    verdict, bits = guardrails.evaluate(
        guardrails.compile_checks(policy.checks), text=text, direction=direction, action=policy.action, judge=judge
    )
    return verdict, bits, (time.perf_counter() - started) * 1000


def _recorded_text(policy: GuardPolicy, text: str, verdict: guardrails.Verdict) -> str:
    if policy.record_text == GuardPolicy.RecordText.RAW:
        return text[:RECORDED_TEXT_CHARS]
    if policy.record_text == GuardPolicy.RecordText.REDACTED:
        return verdict.redacted_text[:RECORDED_TEXT_CHARS]
    return ""


def guard(
    *, text: str, direction: str, actor: Actor, policy_name: str | None = None, trace_id: str = "",
    span_id: str = "",
) -> GuardResult:  # fmt: skip
    """Check `text` with the named policy (or the default) and record the call (and its span, given a trace)."""
    trace_id = _clean_hex(trace_id, 32, "trace_id")
    span_id = _clean_hex(span_id, 16, "span_id")
    if span_id and not trace_id:
        raise InvalidInput("a span_id needs its trace_id", field="span_id")
    policy = policy_for_call(policy_name)
    verdict, bits, latency_ms = check_text(policy=policy, text=text, direction=direction)
    try:
        call = _record_call(policy, text, direction, verdict, bits, latency_ms, trace_id, span_id, actor)
    except IntegrityError:
        # The remembered policy was deleted by another process meanwhile: read it again.
        forget_policies()
        return guard(text=text, direction=direction, actor=actor, policy_name=policy_name, trace_id=trace_id,
                     span_id=span_id)  # fmt: skip
    if trace_id:
        record_span(call=call, ended_ns=time.time_ns())
    return GuardResult(verdict, latency_ms, call)


def _record_call(
    policy: GuardPolicy, text: str, direction: str, verdict: guardrails.Verdict, bits: int, latency_ms: float,
    trace_id: str, span_id: str, actor: Actor,
) -> GuardCall:  # fmt: skip
    # One statement in autocommit: a policy deleted meanwhile fails its foreign key here.
    return GuardCall.objects.create(
        policy=policy if policy.pk else None,
        policy_name=policy.name,
        direction=direction,
        allowed=verdict.allowed,
        redacted=verdict.redacted_text != text,
        violations=[violation.as_dict() for violation in verdict.violations],
        violated=bits,
        latency_ms=round(latency_ms, 3),
        text_length=len(text),
        text=_recorded_text(policy, text, verdict),
        trace_id=trace_id,
        span_id=span_id,
        user=user_of(actor),
    )


SPAN_SERVICE = "opsportal-guard"


def record_span(*, call: GuardCall, ended_ns: int) -> str:
    """The guard call as a span of its trace (under `span_id` when given), through the trace store's own ingest;
    the span's id is returned. Its attributes carry the policy, direction, verdict and violations, not the text."""
    span_id = secrets.token_hex(8)
    started_ns = ended_ns - int(call.latency_ms * 1_000_000)
    attributes = {
        "opsportal.guard.policy": call.policy_name,
        "opsportal.guard.direction": call.direction,
        "opsportal.guard.allowed": call.allowed,
        "opsportal.guard.redacted": call.redacted,
        "opsportal.guard.violations": json.dumps(call.violations),
        "opsportal.guard.checks": ",".join(v["check"] for v in call.violations),
        "opsportal.guard.call_id": call.pk,
    }
    value_key = {bool: "boolValue", int: "intValue", str: "stringValue"}
    export = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": SPAN_SERVICE}}]},
        "scopeSpans": [{"scope": {"name": "opsportal.guardrails"}, "spans": [{
            "traceId": call.trace_id, "spanId": span_id, "parentSpanId": call.span_id,
            "name": f"guard {call.direction} ({call.policy_name})", "kind": 1,
            "startTimeUnixNano": str(started_ns), "endTimeUnixNano": str(ended_ns),
            "attributes": [{"key": key, "value": {value_key[type(value)]: str(value) if type(value) is int else value}}
                           for key, value in attributes.items()],
            "status": {"code": 1 if call.allowed else 2, "message": "" if call.allowed else "blocked by the guard"},
        }]}],
    }]}  # fmt: skip
    ingest_traces(batch=decode_json(json.dumps(export).encode()))
    return span_id


def preview(*, policy: GuardPolicy, text: str, direction: str) -> GuardResult:
    """The verdict of `policy` on `text` without recording a call (the policy page's "try it" box)."""
    verdict, _bits, latency_ms = check_text(policy=policy, text=text, direction=direction)
    return GuardResult(verdict, latency_ms, None)


# --- Figures -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViolationBucket:
    """Guard calls in one time bucket: how many, how many violated anything, and per check type."""

    start: datetime.datetime
    calls: int
    violating: int
    blocked: int
    by_check: dict[str, int]

    @property
    def rate(self) -> float:
        return self.violating / self.calls if self.calls else 0.0


def violation_series(*, policy: GuardPolicy | None = None, days: int = 7) -> list[ViolationBucket]:
    """Calls per hour (up to 7 days) or per day (longer), counted in the database, per check type by its bit."""
    start = timezone.now() - datetime.timedelta(days=days)
    calls = GuardCall.objects.filter(at__gte=start)
    if policy is not None:
        calls = calls.filter(policy=policy)
    trunc = TruncHour("at") if days <= 7 else TruncDay("at")
    per_check = {name: Sum(F("violated").bitand(bit) / Value(bit)) for name, bit in guardrails.CHECK_BITS.items()}
    rows = (
        calls.order_by()
        .annotate(bucket=trunc)
        .values("bucket")
        .annotate(
            calls=Count("id"),
            violating=Count("id", filter=Q(violated__gt=0)),
            blocked=Count("id", filter=Q(allowed=False)),
            **{f"check_{name.replace('-', '_')}": total for name, total in per_check.items()},
        )
        .order_by("bucket")
    )
    return [
        ViolationBucket(
            start=row["bucket"], calls=row["calls"], violating=row["violating"], blocked=row["blocked"],
            by_check={name: row[f"check_{name.replace('-', '_')}"] or 0 for name in guardrails.CHECK_BITS},
        )
        for row in rows
    ]  # fmt: skip


def policy_figures(*, since: datetime.datetime) -> dict[int, dict]:
    """Per stored policy (by id) since `since`: its calls, those with a violation and those refused."""
    rows = (
        GuardCall.objects.filter(at__gte=since, policy__isnull=False)
        .order_by()
        .values("policy")
        .annotate(calls=Count("id"), violating=Count("id", filter=Q(violated__gt=0)),
                  blocked=Count("id", filter=Q(allowed=False)))
    )  # fmt: skip
    return {row["policy"]: row for row in rows}
