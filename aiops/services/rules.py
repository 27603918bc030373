"""Silences (alerts stored but opening nothing) and correlation rules (how alerts group)."""

from __future__ import annotations

import datetime
import re

from django.db import transaction
from django.utils import timezone

from opsportal.audit import services as audit
from opsportal.errors import InvalidInput

from ..models import CorrelationRule, Matcher, Silence
from .actor import Actor, user_of


def validate_matchers(matchers: object, field_name: str = "matchers") -> list[dict]:
    """Check a matcher list; raises InvalidInput naming the bad element (e.g. `matchers[2].op`)."""
    if not isinstance(matchers, list) or not matchers:
        raise InvalidInput("a non-empty list of matchers is required.", field=field_name)
    cleaned = []
    for i, m in enumerate(matchers):
        where = f"{field_name}[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("label"), str) or not m.get("label"):
            raise InvalidInput("needs a 'label'.", field=where)
        op = m.get("op", "=")
        if op not in Matcher.OPS:
            raise InvalidInput(f"must be one of {', '.join(Matcher.OPS)}.", field=f"{where}.op")
        value = m.get("value")
        if not isinstance(value, str):
            raise InvalidInput("must be a string.", field=f"{where}.value")
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise InvalidInput(f"not a valid regular expression ({exc}).", field=f"{where}.value") from None
        cleaned.append({"label": m["label"], "op": op, "value": value})
    return cleaned


@transaction.atomic
def create_silence(
    *,
    matchers: list[dict],
    ends_at: datetime.datetime,
    comment: str,
    actor: Actor,
    starts_at: datetime.datetime | None = None,
) -> Silence:
    """Silence alerts matching all `matchers` from `starts_at` (now) to `ends_at`; `comment` says why."""
    matchers = validate_matchers(matchers)
    starts_at = starts_at or timezone.now()
    if ends_at <= starts_at:
        raise InvalidInput("must be after starts_at.", field="ends_at")
    if not comment.strip():
        raise InvalidInput("say why (e.g. 'maintenance of db-3').", field="comment")
    silence = Silence.objects.create(
        matchers=matchers,
        starts_at=starts_at,
        ends_at=ends_at,
        comment=comment.strip(),
        created_by=user_of(actor),
    )
    audit.record(
        action=audit.Action.CREATE, actor=actor, obj=silence,
        changes={"matchers": [None, matchers], "ends_at": [None, ends_at.isoformat()]},
    )  # fmt: skip
    return silence


@transaction.atomic
def expire_silence(*, silence: Silence, actor: Actor) -> Silence:
    """End an active silence now; an expired one stays as it is."""
    if silence.expired_early_at is None and silence.ends_at > timezone.now():
        silence.expired_early_at = timezone.now()
        silence.save(update_fields=["expired_early_at"])
        audit.record(action=audit.Action.STATE, actor=actor, obj=silence, changes={"status": ["active", "expired"]})
    return silence


RULE_FIELDS = (
    "name",
    "kind",
    "position",
    "enabled",
    "matchers",
    "group_by",
    "window_minutes",
    "auto_resolve",
    "reopen_cooldown_minutes",
)


def _clean_rule(data: dict, kind: str, group_by_before: list) -> dict:
    """`kind` is the rule's kind after the change: a labels rule needs group_by, a learned rule does not."""
    if kind not in CorrelationRule.Kind.values:
        raise InvalidInput(f"must be one of {', '.join(CorrelationRule.Kind.values)}.", field="kind")
    if "matchers" in data:
        data["matchers"] = validate_matchers(data["matchers"]) if data["matchers"] else []
    group_by = data.get("group_by", group_by_before)
    if kind == CorrelationRule.Kind.LEARNED and not group_by:
        data["group_by"] = []
    elif not isinstance(group_by, list) or not group_by or not all(isinstance(k, str) and k for k in group_by):
        raise InvalidInput("a non-empty list of label keys is required.", field="group_by")
    if "name" in data and not str(data["name"]).strip():
        raise InvalidInput("required.", field="name")
    return data


@transaction.atomic
def save_rule(*, actor: Actor, rule: CorrelationRule | None = None, **data: object) -> CorrelationRule:
    """Create a correlation rule, or update `rule` with the given fields."""
    kind = str(data.get("kind") or (rule.kind if rule else CorrelationRule.Kind.LABELS))
    data = _clean_rule({k: v for k, v in data.items() if k in RULE_FIELDS}, kind, rule.group_by if rule else [])
    created = rule is None
    rule = rule or CorrelationRule()
    before = {} if created else audit.snapshot(rule, RULE_FIELDS)
    for key, value in data.items():
        setattr(rule, key, value)
    if CorrelationRule.objects.filter(name__iexact=rule.name).exclude(pk=rule.pk).exists():
        raise InvalidInput(f"a rule named {rule.name!r} already exists.", field="name")
    rule.save()
    changes = audit.diff(before, audit.snapshot(rule, RULE_FIELDS))
    audit.record(action=audit.Action.CREATE if created else audit.Action.UPDATE, actor=actor, obj=rule, changes=changes)
    return rule


@transaction.atomic
def delete_rule(*, rule: CorrelationRule, actor: Actor) -> None:
    audit.record(action=audit.Action.DELETE, actor=actor, obj=rule, changes={"name": [rule.name, None]})
    rule.delete()
