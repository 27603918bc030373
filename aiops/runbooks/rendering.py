"""Sandboxed templates over the incident and its alerts (Jinja's SandboxedEnvironment, strict undefined).

A template sees `incident`, `alerts`, `labels` (the first alert's labels, service and severity included),
`steps` (values extracted by earlier steps, by step name), `secrets` (the runbook's, decrypted only here),
`run` and `now` (UTC, ISO 8601). Nothing else: no attribute starting with an underscore, no Python calls
outside what the sandbox allows. What is recorded of a rendered request has every secret masked.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

from django.conf import settings
from django.utils import timezone
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

MASK = "••••••"


class RenderError(ValueError):
    """A template could not be rendered; the message says which field and why, as Jinja put it."""


def _b64encode(value: object) -> str:
    return base64.b64encode(str(value).encode()).decode()


@functools.cache
def environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["b64encode"] = _b64encode
    env.filters["tojson"] = lambda value: json.dumps(value)
    return env


def syntax_error(text: str) -> str:
    """'' when `text` parses as a template, else Jinja's message."""
    try:
        environment().parse(text)
    except TemplateError as exc:
        return f"template error: {exc}"
    return ""


def render(text: str, context: dict[str, Any], *, field: str) -> str:
    try:
        return environment().from_string(text).render(context)
    except TemplateError as exc:
        raise RenderError(f"{field}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise RenderError(f"{field}: {type(exc).__name__}: {exc}") from None


def render_value(value: Any, context: dict[str, Any], *, field: str) -> Any:
    """Every string in `value` (a string, list or object, nested) rendered; other values as they are."""
    if isinstance(value, str):
        return render(value, context, field=field)
    if isinstance(value, list):
        return [render_value(item, context, field=f"{field}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: render_value(item, context, field=f"{field}.{key}") for key, item in value.items()}
    return value


def incident_context(incident, alerts: list) -> dict[str, Any]:
    """The `incident`, `alerts` and `labels` a template sees."""
    alert_docs = [
        {
            "title": alert.title,
            "status": alert.status,
            "severity": alert.severity,
            "service": alert.service,
            "fingerprint": alert.fingerprint,
            "source": alert.source,
            "labels": dict(alert.labels),
            "annotations": dict(alert.annotations or {}),
            "starts_at": alert.starts_at.isoformat() if alert.starts_at else None,
        }
        for alert in alerts
    ]
    labels: dict[str, Any] = {}
    if alert_docs:
        labels = {"service": alert_docs[0]["service"], "severity": alert_docs[0]["severity"]}
        labels = {k: v for k, v in labels.items() if v} | alert_docs[0]["labels"]
    return {
        "incident": {
            "id": incident.pk,
            "title": incident.title,
            "summary": incident.summary,
            "status": incident.status,
            "severity": incident.effective_severity,
            "service": incident.service,
            "labels": dict(incident.group_labels or {}),
            "created_at": incident.created_at.isoformat(),
            "url": f"{settings.OPSPORTAL_BASE_URL}{incident.get_absolute_url()}",
        },
        "alerts": alert_docs,
        "labels": labels,
    }


def run_context(run, alerts: list, secrets: dict[str, str]) -> dict[str, Any]:
    return {
        **incident_context(run.incident, alerts),
        "steps": dict(run.values),
        "secrets": secrets,
        "run": {"id": run.pk, "mode": run.mode, "runbook": run.runbook.name},
        "now": timezone.now().replace(microsecond=0).isoformat(),
    }


SENSITIVE_HEADER_WORDS = ("authorization", "token", "key", "cookie", "secret", "password")


def mask_headers(headers: dict[str, str], secrets: dict[str, str]) -> dict[str, str]:
    """Rendered headers as stored and shown: credentials-looking headers masked whole (a basic-auth value
    encodes its secret), the others with each secret masked."""
    return {
        name: MASK if any(word in name.lower() for word in SENSITIVE_HEADER_WORDS) else mask(value, secrets)
        for name, value in headers.items()
    }


def mask(value: Any, secrets: dict[str, str]) -> Any:
    """`value` (as rendered) with each secret's text replaced by a mask, for what is stored and shown."""
    hidden = sorted((s for s in secrets.values() if s), key=len, reverse=True)
    if isinstance(value, str):
        for secret in hidden:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, list):
        return [mask(item, secrets) for item in value]
    if isinstance(value, dict):
        return {key: mask(item, secrets) for key, item in value.items()}
    return value
