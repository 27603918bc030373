"""What the metric collection services share: field validation, auth headers and audit of edits.

The writes of scrape targets, Prometheus-compatible sources, watched queries and threshold rules
validate their fields here, so each names the field a bad value came in (InvalidInput).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from opsportal.audit import services as audit
from opsportal.encryption import decrypt
from opsportal.errors import InvalidInput
from opsportal.outbound import OutboundRefused, check_outbound_url

from ..metrics import http as metrics_http
from ..metrics import promql
from ..models import PromSource, ScrapeTarget
from .actor import Actor

MAX_INTERVAL_SECONDS = 86400
MAX_TIMEOUT_SECONDS = 300
MAX_ERROR_CHARS = 2000
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def valid_name(value: object, field: str = "name", *, metric: bool = False) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("required.", field=field)
    value = value.strip()
    limit = 200 if metric else 100
    if len(value) > limit:
        raise InvalidInput(f"at most {limit} characters.", field=field)
    if metric and not promql.METRIC_NAME.fullmatch(value):
        raise InvalidInput(
            "must be a metric name: letters, digits, '_' and ':', not starting with a digit.", field=field
        )
    return value


def valid_url(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("required.", field=field)
    value = value.strip()
    if len(value) > 2000:
        raise InvalidInput("at most 2000 characters.", field=field)
    try:
        check_outbound_url(value)
    except OutboundRefused as exc:
        raise InvalidInput(f"{exc}.", field=field) from None
    return value


def valid_seconds(value: object, field: str, *, minimum: float, maximum: float, integer: bool = True) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput("must be a number of seconds.", field=field)
    if integer and int(value) != value:
        raise InvalidInput("must be a whole number of seconds.", field=field)
    if not minimum <= value <= maximum:
        raise InvalidInput(f"must be between {minimum:g} and {maximum:g} seconds.", field=field)
    return int(value) if integer else float(value)


def valid_labels(value: object, field: str = "labels") -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("must be an object of label names to strings.", field=field)
    for key, item in value.items():
        if not isinstance(key, str) or not LABEL_NAME.fullmatch(key) or key.startswith("__"):
            raise InvalidInput(f"{key!r} is not a label name (letters, digits, '_'; not '__...').", field=field)
        if not isinstance(item, str):
            raise InvalidInput(f"the value of {key!r} must be a string.", field=field)
    return dict(value)


def check_auth(obj: ScrapeTarget | PromSource, secret: str | None) -> None:
    if obj.auth not in ScrapeTarget.Auth.values:
        raise InvalidInput(f"must be one of {', '.join(ScrapeTarget.Auth.values)}.", field="auth")
    if obj.auth == ScrapeTarget.Auth.BASIC and not obj.username:
        raise InvalidInput("required for basic auth.", field="username")
    has_secret = bool(secret) if secret is not None else bool(obj.secret_encrypted)
    if obj.auth == ScrapeTarget.Auth.BEARER and not has_secret:
        raise InvalidInput("required for bearer auth (the token).", field="secret")
    if obj.auth == ScrapeTarget.Auth.NONE:
        obj.username = ""
        obj.secret_encrypted = ""


def auth_headers(obj: ScrapeTarget | PromSource) -> dict[str, str]:
    """The Authorization header; ValueError when the secret cannot be decrypted (SECRET_KEY changed)."""
    secret = decrypt(obj.secret_encrypted) if obj.auth != ScrapeTarget.Auth.NONE else ""
    return metrics_http.auth_header(obj.auth, obj.username, secret)


def apply_values(obj: Any, values: dict[str, Any]) -> None:
    for key, value in values.items():
        if value is not None:
            setattr(obj, key, value.strip() if isinstance(value, str) and key != "query" else value)


def ensure_unique(model: type, name: str, pk: int | None, field: str = "name") -> None:
    if model.objects.filter(**{f"{field}__iexact": name}).exclude(pk=pk).exists():
        raise InvalidInput(f"{name!r} is taken.", field=field)


def record_change(
    obj: Any, actor: Actor, created: bool, before: dict, fields: Iterable[str], secret: str | None
) -> None:
    """The audit entry of a create or update: the changed fields, a changed secret only as such."""
    changes = audit.diff(before, audit.snapshot(obj, fields))
    if secret is not None:
        changes["secret"] = ["***", "*** (changed)"]
    audit.record(action=audit.Action.CREATE if created else audit.Action.UPDATE, actor=actor, obj=obj, changes=changes)
