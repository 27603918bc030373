"""The step kinds and their validation: what a runbook's `steps` may hold, normalised, or a message naming the
step and field at fault.

- http: `method`, `url`, `headers` (object), `body` (a string, or JSON whose strings are templates),
  `expect_status` (a status or a list; default any 2xx), `extract` ({variable: JSON path into the answer}),
  `timeout_seconds` (1-60, default 10).
- wait: `seconds` (a pause), or `until` "check_up" with `check` (a check's name or id), or `until`
  "series_in_range" with `query` (PromQL) and `min` and/or `max`; `timeout_seconds` (default 600) and
  `interval_seconds` (default 10) for the conditions.
- approval: `message` (optional): the run pauses until an operator approves or rejects.
- notify: `channel` (a notification channel's name): the incident is sent to it.
"""

from __future__ import annotations

import re
from typing import Any

from jsonpath import JSONPathSyntaxError
from jsonpath import compile as compile_path

from opsportal.errors import InvalidInput

from .rendering import syntax_error

KINDS = ("http", "wait", "approval", "notify")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
WAIT_CONDITIONS = ("check_up", "series_in_range")
MAX_STEPS = 50
MAX_WAIT_SECONDS = 24 * 3600
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

KNOWN_FIELDS = {
    "http": {"kind", "name", "method", "url", "headers", "body", "expect_status", "extract", "timeout_seconds"},
    "wait": {"kind", "name", "seconds", "until", "check", "query", "min", "max", "timeout_seconds", "interval_seconds"},
    "approval": {"kind", "name", "message"},
    "notify": {"kind", "name", "channel", "message"},
}


def _fail(where: str, message: str) -> InvalidInput:
    return InvalidInput(f"{where}: {message}", field="steps")


def _template(where: str, field: str, value: Any) -> None:
    """Every string in `value` must parse as a template."""
    if isinstance(value, str):
        error = syntax_error(value)
        if error:
            raise _fail(where, f"{field}: {error}")
    elif isinstance(value, list):
        for item in value:
            _template(where, field, item)
    elif isinstance(value, dict):
        for item in value.values():
            _template(where, field, item)


def _number(where: str, step: dict, field: str, *, low: float, high: float, default: float | None) -> float | None:
    value = step.get(field, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(where, f"{field} must be a number")
    if not low <= value <= high:
        raise _fail(where, f"{field} must be between {low:g} and {high:g}")
    return value


def _http(where: str, step: dict) -> dict:
    method = str(step.get("method", "POST")).upper()
    if method not in METHODS:
        raise _fail(where, f"method must be one of {', '.join(METHODS)}")
    url = step.get("url")
    if not isinstance(url, str) or not url.strip():
        raise _fail(where, "url is required")
    _template(where, "url", url)
    headers = step.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise _fail(where, "headers must be an object of strings")
    _template(where, "headers", headers)
    body = step.get("body")
    _template(where, "body", body)
    expect = step.get("expect_status", [])
    expect = [expect] if isinstance(expect, int) and not isinstance(expect, bool) else expect
    if not isinstance(expect, list) or not all(isinstance(c, int) and 100 <= c <= 599 for c in expect):
        raise _fail(where, "expect_status must be an HTTP status (100-599) or a list of them")
    extract = step.get("extract") or {}
    if not isinstance(extract, dict):
        raise _fail(where, 'extract must be an object: {"variable": "$.json.path"}')
    for variable, path in extract.items():
        if not NAME.match(variable):
            raise _fail(where, f"extract: {variable!r} is not a variable name (letters, digits, _)")
        try:
            compile_path(str(path))
        except JSONPathSyntaxError as exc:
            raise _fail(where, f"extract.{variable}: {exc}") from None
    timeout = _number(where, step, "timeout_seconds", low=1, high=60, default=10)
    return {
        "method": method, "url": url.strip(), "headers": headers, "body": body, "expect_status": expect,
        "extract": extract, "timeout_seconds": timeout,
    }  # fmt: skip


def _wait(where: str, step: dict) -> dict:
    until = step.get("until")
    if until is None:
        seconds = _number(where, step, "seconds", low=1, high=MAX_WAIT_SECONDS, default=None)
        if seconds is None:
            raise _fail(where, 'a wait needs seconds, or until ("check_up" or "series_in_range")')
        return {"seconds": seconds}
    if until not in WAIT_CONDITIONS:
        raise _fail(where, f"until must be one of {', '.join(WAIT_CONDITIONS)}")
    result: dict[str, Any] = {
        "until": until,
        "timeout_seconds": _number(where, step, "timeout_seconds", low=1, high=MAX_WAIT_SECONDS, default=600),
        "interval_seconds": _number(where, step, "interval_seconds", low=1, high=3600, default=10),
    }
    if until == "check_up":
        check = step.get("check")
        if check in (None, "") or isinstance(check, bool):
            raise _fail(where, "check is required (a check's name or id)")
        from aiops.models import Check

        found = Check.objects.filter(pk=check) if isinstance(check, int) else Check.objects.filter(name=check)
        if not found.exists():
            raise _fail(where, f"check: there is no check {check!r}")
        result["check"] = check
    else:
        query = step.get("query")
        if not isinstance(query, str) or not query.strip():
            raise _fail(where, "query is required (PromQL)")
        from aiops.metrics.promql import parse

        try:
            parse(query)
        except InvalidInput as exc:
            raise _fail(where, f"query: {exc.message}") from None
        low = _number(where, step, "min", low=-1e300, high=1e300, default=None)
        high = _number(where, step, "max", low=-1e300, high=1e300, default=None)
        if low is None and high is None:
            raise _fail(where, "give min, max or both")
        if low is not None and high is not None and low > high:
            raise _fail(where, "min is above max")
        result |= {"query": query, "min": low, "max": high}
    return result


def _notify(where: str, step: dict) -> dict:
    channel = step.get("channel")
    if not isinstance(channel, str) or not channel:
        raise _fail(where, "channel is required (a notification channel's name)")
    from aiops.models import NotificationChannel

    if not NotificationChannel.objects.filter(name=channel).exists():
        raise _fail(where, f"channel: there is no notification channel {channel!r}")
    message = step.get("message", "")
    _template(where, "message", message)
    return {"channel": channel, "message": message}


def validate_steps(steps: Any) -> list[dict]:
    """The steps normalised (defaults filled in, names unique), or InvalidInput naming the step and field."""
    if not isinstance(steps, list) or not steps:
        raise InvalidInput("a runbook needs at least one step (a list of objects)", field="steps")
    if len(steps) > MAX_STEPS:
        raise InvalidInput(f"at most {MAX_STEPS} steps", field="steps")
    result, names = [], set()
    for index, step in enumerate(steps):
        where = f"step {index + 1}"
        if not isinstance(step, dict):
            raise _fail(where, "must be an object")
        kind = step.get("kind")
        if kind not in KINDS:
            raise _fail(where, f"kind must be one of {', '.join(KINDS)}")
        name = step.get("name") or f"{kind}_{index + 1}"
        if not isinstance(name, str) or not NAME.match(name):
            raise _fail(where, "name must start with a letter and hold only letters, digits and _ (later steps "
                        "read its values as steps.<name>.<variable>)")  # fmt: skip
        if name in names:
            raise _fail(where, f"name {name!r} is used by an earlier step")
        names.add(name)
        where = f"step {index + 1} ({name})"
        unknown = sorted(set(step) - KNOWN_FIELDS[kind])
        if unknown:
            raise _fail(where, f"unknown field(s) for a {kind} step: {', '.join(unknown)}")
        if kind == "http":
            fields = _http(where, step)
        elif kind == "wait":
            fields = _wait(where, step)
        elif kind == "notify":
            fields = _notify(where, step)
        else:
            message = step.get("message", "")
            _template(where, "message", message)
            fields = {"message": message}
        result.append({"kind": kind, "name": name, **fields})
    return result


def validate_match(match: Any) -> dict[str, Any]:
    """{label: value or [values]}: an alert of the incident must carry every label with one of the values."""
    if match in (None, ""):
        return {}
    if not isinstance(match, dict):
        raise InvalidInput('must be an object of labels, e.g. {"service": "api"}', field="trigger.match")
    for label, value in match.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) for v in values):
            raise InvalidInput(f"{label}: a value must be a string or a list of strings", field="trigger.match")
    return dict(match)


def matches(match: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether `labels` (an alert's, with its service and severity) satisfy `match`."""
    for label, value in match.items():
        allowed = value if isinstance(value, list) else [value]
        if labels.get(label) not in allowed:
            return False
    return bool(match)


def alert_labels(alert) -> dict[str, str]:
    """What a trigger's `match` is compared with: the alert's labels, plus its service and severity."""
    labels = {"severity": alert.severity}
    if alert.service:
        labels["service"] = alert.service
    return labels | {str(k): str(v) for k, v in (alert.labels or {}).items()}
