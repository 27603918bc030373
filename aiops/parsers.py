"""Turn alert senders' native webhook payloads into normalised alerts.

Supported kinds (see :func:`parse`):

* ``alertmanager`` -- Prometheus Alertmanager webhook, payload version "4".
* ``grafana`` -- Grafana (unified) alerting webhook, payload version "1".
* ``pagerduty`` -- PagerDuty Events API v2 event (trigger / acknowledge / resolve).
* ``generic`` -- OpsPortal's own JSON schema, documented in :data:`GENERIC_SCHEMA_DOC`.

The input is the already decoded JSON body (``json.loads`` output). Parsing is pure: no Django models, no database,
the standard library and the portal's error protocol only. Unknown keys are ignored everywhere because newer sender
versions add fields. Oversized labels and annotations are cut to :class:`AlertLimits` with a visible mark instead of
refusing the alert (the raw payload is kept whole). Anything wrong with the payload raises :class:`PayloadError` (an
``opsportal.errors.InvalidInput``), whose ``field`` names the offending value by a dotted path such as
``alerts[2].startsAt``.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from opsportal.errors import InvalidInput

__all__ = [
    "DEFAULT_LIMITS",
    "FINGERPRINT_MAX_LENGTH",
    "GENERIC_SCHEMA_DOC",
    "KINDS",
    "SEVERITIES",
    "TITLE_MAX_LENGTH",
    "TRUNCATED_NOTE",
    "AlertLimits",
    "ParsedAlert",
    "ParsedPayload",
    "PayloadError",
    "compute_fingerprint",
    "cut_key",
    "cut_text",
    "normalise_severity",
    "parse",
]

SEVERITIES = ("critical", "error", "warning", "info")  # highest first
KINDS = ("alertmanager", "grafana", "pagerduty", "generic")
TITLE_MAX_LENGTH = 300
# What the alert row holds (Alert.fingerprint, .service, .source); longer sender values are hashed or cut here.
FINGERPRINT_MAX_LENGTH = 128
SERVICE_MAX_LENGTH = 200
SOURCE_MAX_LENGTH = 500
LINK_TEXT_MAX_LENGTH = 200
# The annotation that says what the limits cut from an alert (only present when something was cut).
TRUNCATED_NOTE = "opsportal.truncated"

BODY = "(body)"
FIRING = "firing"
RESOLVED = "resolved"
STATUSES = (FIRING, RESOLVED)
PAGERDUTY_ACTIONS = ("trigger", "acknowledge", "resolve")
PAGERDUTY_SUMMARY_MAX_LENGTH = 1024

_SEVERITY_SYNONYMS: dict[str, str] = {}
for _severity, _words in {
    "critical": ("critical", "crit", "page", "p1", "sev1", "fatal", "emergency", "alert", "high"),
    "error": ("error", "err", "major", "p2", "sev2"),
    "warning": ("warning", "warn", "minor", "p3", "sev3", "medium"),
    "info": ("info", "informational", "low", "none", "ok", "p4", "p5", "sev4", "sev5", "debug"),
}.items():
    for _word in _words:
        _SEVERITY_SYNONYMS[_word] = _severity
del _severity, _words, _word

# hh:mm:ss followed by a fraction; only the first six digits fit in a datetime.
_FRACTION_RE = re.compile(r"(\d{2}:\d{2}:\d{2})[.,](\d+)")


class PayloadError(InvalidInput):
    """Bad payload (a 400 naming the field, like every InvalidInput).

    ``field`` is a dotted path like ``alerts[3].labels`` or ``payload.severity`` (``(body)`` for the body itself);
    ``str(exc)`` is ``"field: message"``.
    """

    def __init__(self, field: str, message: str) -> None:
        """Remember which field is wrong and why."""
        super().__init__(message, field=field)

    def __reduce__(self) -> tuple[type[PayloadError], tuple[str, str]]:
        """Keep the exception picklable (e.g. across Celery) despite the two-argument constructor."""
        return (type(self), (self.field, self.message))


@dataclass(frozen=True)
class AlertLimits:
    """How big an alert's labels and annotations may be once normalised (docs/aiops.md, "Limits").

    A longer key or value is cut with a visible mark, keys beyond the count are dropped, and the alert is kept;
    its ``raw`` payload stays whole. Tunable with ``settings.AIOPS_ALERT_LIMITS`` (same names).
    """

    label_key_length: int = 128
    label_value_length: int = 1024
    labels: int = 64
    annotation_key_length: int = 128
    annotation_value_length: int = 16384
    annotations: int = 64

    @classmethod
    def from_settings(cls) -> AlertLimits:
        """The limits in force: ``settings.AIOPS_ALERT_LIMITS`` over the defaults (re-read when settings change)."""
        configured = getattr(settings, "AIOPS_ALERT_LIMITS", None)
        if not configured:
            return DEFAULT_LIMITS
        cached = _limits_cache.get(id(configured))
        if cached is None or cached[0] is not configured:
            _limits_cache.clear()
            cached = _limits_cache[id(configured)] = (configured, cls(**configured))
        return cached[1]


DEFAULT_LIMITS = AlertLimits()
_limits_cache: dict[int, tuple[object, AlertLimits]] = {}


@dataclass
class ParsedAlert:
    """One alert, normalised from whatever the sender sent."""

    fingerprint: str  # the sender's, or computed; never empty
    status: str  # "firing" | "resolved"
    action: str  # "trigger" | "acknowledge" | "resolve"
    severity: str  # one of SEVERITIES
    title: str  # at most TITLE_MAX_LENGTH characters
    description: str
    service: str  # may be ""
    source: str  # where it came from (instance, external URL, PagerDuty source, ...); may be ""
    labels: dict[str, str]  # within AlertLimits (cut with a mark)
    annotations: dict[str, str]  # within AlertLimits, plus TRUNCATED_NOTE when something was cut
    starts_at: datetime | None  # timezone-aware UTC
    ends_at: datetime | None  # None while firing
    generator_url: str
    links: list[dict[str, str]]  # [{"href": ..., "text": ...}]
    raw: dict[str, Any]  # the alert's own JSON object as received, whole


@dataclass
class ParsedPayload:
    """Everything parsed out of one webhook body: its alerts plus payload-level metadata."""

    alerts: list[ParsedAlert]
    meta: dict[str, Any]


GENERIC_SCHEMA_DOC = """\
### Generic JSON alerts

`POST` either **one alert object** or **`{"alerts": [ ... ]}`** (a list of alert objects). A body that has an
`alerts` key is always treated as a list of alerts. Unknown keys are ignored.

| Field | Type | Required | Meaning |
|---|---|---|---|
| `title` | string | **yes** | Short summary (cut to 300 characters). |
| `severity` | string | no | `critical`, `error`, `warning` (default) or `info`; see synonyms below. |
| `status` | string | no | `firing` (default) or `resolved`. |
| `source` | string | no | Where the alert comes from, e.g. a host name or tool. |
| `service` | string | no | Affected service. Default: label `service`, else label `job`, else `source`. |
| `description` | string | no | Longer text. Default: `annotations.description`. |
| `labels` | object | no | Flat key/value pairs; numbers and booleans become strings. |
| `annotations` | object | no | Extra key/value information; nested values are kept as JSON text. |
| `fingerprint` | string | no | Identity of the alert; repeats and the resolve must match it. |
| `occurred_at` | string | no | ISO 8601 start time, e.g. `2024-05-01T12:00:00Z`. |
| `resolved_at` | string | no | ISO 8601 end time; only used when `status` is `resolved`. |
| `links` | list | no | URL strings or objects `{"href": "...", "text": "..."}`. |

* **Severity synonyms** (any case): `crit`, `page`, `p1`, `sev1`, `fatal`, `emergency`, `alert`, `high` mean
  critical; `err`, `major`, `p2`, `sev2` mean error; `warn`, `minor`, `medium`, `p3`, `sev3` mean warning;
  `informational`, `low`, `none`, `ok`, `debug`, `p4`, `p5`, `sev4`, `sev5` mean info. Anything else is rejected.
* **Labels** must be flat: a nested object or list as a label value is rejected.
* **Fingerprint**: when missing it is a hash of `labels`, `title` and `source`, so the same alert sent again (and
  its resolve) gets the same fingerprint. Send your own if the title changes between sends.
* **Times** follow RFC 3339 / ISO 8601; a time without an offset is taken as UTC.
* **Limits** (an alert over them is kept, never refused): at most 64 labels and 64 annotations (the first ones
  sent are kept), keys of at most 128 characters, label values of at most 1,024 and annotation values (and
  `description`) of at most 16,384 characters. A longer value is cut and ends with a mark such as
  `… [cut 99,012 characters]`; a longer key keeps its start plus `…` and a short hash; the annotation
  `opsportal.truncated` then says what was cut. The request as sent is stored whole (the alert's raw payload), and
  the fingerprint is computed from the labels as sent, so a repeat still deduplicates. A `fingerprint` longer
  than 128 characters is replaced by its hash.

Example:

```json
{
  "alerts": [
    {
      "title": "Disk almost full on db-1",
      "severity": "critical",
      "source": "db-1.example.com",
      "service": "postgres",
      "description": "/var/lib/postgresql is 97% full.",
      "labels": {"env": "prod", "mount": "/var/lib/postgresql"},
      "fingerprint": "db-1-disk-pg",
      "occurred_at": "2024-05-01T12:00:00Z",
      "links": [{"href": "https://grafana.example.com/d/disk", "text": "Dashboard"}]
    },
    {
      "title": "Backup job finished late",
      "severity": "warning",
      "status": "resolved",
      "occurred_at": "2024-05-01T03:00:00Z",
      "resolved_at": "2024-05-01T03:40:00+00:00"
    }
  ]
}
```

A bad alert rejects the whole request with an error that names the field, e.g.
`alerts[1].severity: unknown severity 'urgent'`.
"""


# --------------------------------------------------------------------------------------------------------------------
# Public helpers
# --------------------------------------------------------------------------------------------------------------------


def normalise_severity(value: object, default: str = "warning") -> str:
    """Map a sender's severity/priority (any case, common synonyms) to one of :data:`SEVERITIES`.

    ``None``, empty or unrecognised values give ``default``.
    """
    if default not in SEVERITIES:
        raise ValueError(f"default must be one of {', '.join(SEVERITIES)}, not {default!r}")
    found = _lookup_severity(value)
    return found if found is not None else default


def compute_fingerprint(labels: Mapping[str, str], extra: str = "") -> str:
    """Return a stable fingerprint for ``labels`` (order does not matter) plus ``extra``.

    It is the first 32 hex characters of the SHA-256 of a canonical JSON encoding, so the same labels always give
    the same fingerprint and it is never empty.
    """
    canonical = json.dumps(
        {"labels": sorted((str(k), str(v)) for k, v in labels.items()), "extra": extra},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def parse(kind: str, payload: object) -> ParsedPayload:
    """Parse ``payload`` (decoded JSON) sent by a ``kind`` sender into a :class:`ParsedPayload`.

    ``kind`` is ``'alertmanager'``, ``'grafana'``, ``'pagerduty'`` or ``'generic'``. Raises :class:`PayloadError`
    naming the offending field when the payload is invalid (and with field ``kind`` for an unknown kind).
    """
    if kind == "alertmanager":
        parsed = _parse_alertmanager_like(payload, version="4", grafana=False)
    elif kind == "grafana":
        parsed = _parse_alertmanager_like(payload, version="1", grafana=True)
    elif kind == "pagerduty":
        parsed = _parse_pagerduty(payload)
    elif kind == "generic":
        parsed = _parse_generic(payload)
    else:
        raise PayloadError("kind", f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    limits = AlertLimits.from_settings()
    for key, kind in (("groupLabels", "label"), ("commonLabels", "label"), ("commonAnnotations", "annotation")):
        if key in parsed.meta:
            sizes = (getattr(limits, f"{kind}_key_length"), getattr(limits, f"{kind}_value_length"))
            parsed.meta[key] = _limit_map(parsed.meta[key], *sizes, getattr(limits, f"{kind}s"), key, [])
    for alert in parsed.alerts:
        _apply_limits(alert, limits)
        # Only web links are kept: a 'javascript:' or 'data:' URL from a sender must never become clickable.
        alert.links = [link for link in alert.links if is_web_url(link["href"])]
        if not is_web_url(alert.generator_url):
            alert.generator_url = ""
    return parsed


def cut_text(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its start plus a mark saying how much was cut.

    The result is never longer than ``limit``, so cutting it again changes nothing.
    """
    if len(text) <= limit:
        return text
    keep = max(limit - len(_cut_mark(len(text))), 0)
    return text[:keep] + _cut_mark(len(text) - keep)


def cut_key(key: str, limit: int) -> str:
    """A key that fits in ``limit``: its start, an ellipsis and a short hash of the whole key (distinct keys stay
    distinct, the same key is always cut the same way)."""
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return key[: max(limit - 9, 0)] + "\u2026" + digest


def _cut_mark(cut: int) -> str:
    return f"\u2026 [cut {cut:,} characters]"


def _limit_map(
    mapping: dict[str, str], key_limit: int, value_limit: int, count: int, field: str, notes: list[str]
) -> dict[str, str]:
    """``mapping`` within the limits (the same dict when it already is: one length check per key and value)."""
    if len(mapping) <= count and all(len(k) <= key_limit and len(v) <= value_limit for k, v in mapping.items()):
        return mapping
    if len(mapping) > count:
        notes.append(f"{field}: {len(mapping) - count:,} of {len(mapping):,} dropped (at most {count:,})")
    limited: dict[str, str] = {}
    for key, value in list(mapping.items())[:count]:
        if len(key) > key_limit:
            notes.append(f"{field}: a key of {len(key):,} characters shortened (at most {key_limit:,})")
            key = cut_key(key, key_limit)
        if len(value) > value_limit:
            notes.append(f"{field}.{key}: {len(value):,} characters, cut (at most {value_limit:,})")
            value = cut_text(value, value_limit)
        limited[key] = value
    return limited


def _apply_limits(alert: ParsedAlert, limits: AlertLimits) -> None:
    """Cut what an alert's row and pages cannot hold whole; the fingerprint was computed from the full values."""
    notes: list[str] = []
    alert.labels = _limit_map(
        alert.labels, limits.label_key_length, limits.label_value_length, limits.labels, "labels", notes
    )
    annotations = _limit_map(
        alert.annotations,
        limits.annotation_key_length,
        limits.annotation_value_length,
        limits.annotations,
        "annotations",
        notes,
    )
    if len(alert.description) > limits.annotation_value_length:
        notes.append(
            f"description: {len(alert.description):,} characters, cut (at most {limits.annotation_value_length:,})"
        )
        alert.description = cut_text(alert.description, limits.annotation_value_length)
    if len(alert.fingerprint) > FINGERPRINT_MAX_LENGTH:
        alert.fingerprint = compute_fingerprint({}, extra=alert.fingerprint)
    if len(alert.service) > SERVICE_MAX_LENGTH:
        alert.service = cut_text(alert.service, SERVICE_MAX_LENGTH)
    if len(alert.source) > SOURCE_MAX_LENGTH:
        alert.source = cut_text(alert.source, SOURCE_MAX_LENGTH)
    for link in alert.links:
        if len(link["text"]) > LINK_TEXT_MAX_LENGTH:
            link["text"] = cut_text(link["text"], LINK_TEXT_MAX_LENGTH)
    if notes:
        if annotations is alert.annotations:
            annotations = dict(annotations)
        annotations[TRUNCATED_NOTE] = cut_text("; ".join(notes), limits.annotation_value_length)
    alert.annotations = annotations


def is_web_url(url: object) -> bool:
    """Only http(s) links from senders may become clickable (never javascript: or data: URLs)."""
    return isinstance(url, str) and url.strip().lower().startswith(("http://", "https://"))


# --------------------------------------------------------------------------------------------------------------------
# Small validators
# --------------------------------------------------------------------------------------------------------------------


def _lookup_severity(value: object) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, str | int | float):
        return None
    return _SEVERITY_SYNONYMS.get(str(value).strip().lower())


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _require_object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(field, "must be a JSON object")
    return value


def _optional_object(obj: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(_join(path, key), "must be an object")
    return value


def _optional_str(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(_join(path, key), "must be a string")
    return value


def _required_str(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = _optional_str(obj, key, path)
    if not value.strip():
        raise PayloadError(_join(path, key), "required")
    return value


def _choice(obj: Mapping[str, Any], key: str, path: str, choices: tuple[str, ...], default: str | None = None) -> str:
    value = obj.get(key)
    if value is None or value == "":
        if default is not None:
            return default
        raise PayloadError(_join(path, key), "required")
    if value not in choices:
        raise PayloadError(_join(path, key), f"must be one of {', '.join(choices)}")
    return value


def _scalar_to_str(value: object) -> str | None:
    """JSON scalar -> str (booleans/null as JSON spells them); None for objects and lists."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return None


def _string_map(value: object, field: str, *, strict: bool) -> dict[str, str]:
    """Coerce a JSON object's values to str. ``strict``: nested values are an error, else they become JSON text."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(field, "must be an object")
    result: dict[str, str] = {}
    for key, item in value.items():
        text = _scalar_to_str(item)
        if text is None:
            if strict:
                raise PayloadError(f"{field}.{key}", "must be a string")
            text = json.dumps(item, ensure_ascii=False, sort_keys=True)
        result[str(key)] = text
    return result


def _parse_timestamp(value: object, field: str) -> datetime | None:
    """RFC 3339 / ISO 8601 string -> aware UTC datetime; Go's zero time ("0001-01-01T00:00:00Z") -> None.

    A trailing ``Z`` is accepted, fractions beyond microseconds are truncated and a missing offset means UTC.
    """
    if not isinstance(value, str):
        raise PayloadError(field, f"not a valid timestamp: {value!r}")
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    text = _FRACTION_RE.sub(lambda m: f"{m.group(1)}.{m.group(2)[:6]}", text, count=1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(field, f"not a valid timestamp: {value!r}") from None
    if parsed.year == 1:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise PayloadError(field, f"not a valid timestamp: {value!r}") from None


def _optional_timestamp(obj: Mapping[str, Any], key: str, path: str) -> datetime | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    return _parse_timestamp(value, _join(path, key))


def _title(text: str) -> str:
    """Collapse whitespace and cut to TITLE_MAX_LENGTH characters (with an ellipsis when cut)."""
    text = " ".join(text.split())
    if len(text) > TITLE_MAX_LENGTH:
        text = text[: TITLE_MAX_LENGTH - 1].rstrip() + "\u2026"
    return text


def _link(href: str, text: str) -> dict[str, str]:
    return {"href": href, "text": text or href}


def _links_list(value: object, field: str, *, allow_strings: bool) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(field, "must be a list")
    links: list[dict[str, str]] = []
    for index, item in enumerate(value):
        item_field = f"{field}[{index}]"
        if allow_strings and isinstance(item, str):
            if not item.strip():
                raise PayloadError(item_field, "must not be empty")
            links.append(_link(item, item))
            continue
        if not isinstance(item, dict):
            expected = "a string or an object with href" if allow_strings else "an object with href"
            raise PayloadError(item_field, f"must be {expected}")
        href = _required_str(item, "href", item_field)
        links.append(_link(href, _optional_str(item, "text", item_field)))
    return links


# --------------------------------------------------------------------------------------------------------------------
# Alertmanager and Grafana
# --------------------------------------------------------------------------------------------------------------------

_GRAFANA_LINKS = (("dashboardURL", "Dashboard"), ("panelURL", "Panel"), ("silenceURL", "Silence"))


def _parse_alertmanager_like(payload: object, *, version: str, grafana: bool) -> ParsedPayload:
    body = _require_object(payload, BODY)
    sent_version = body.get("version")
    if sent_version is not None and str(sent_version) != version:
        raise PayloadError("version", f"unsupported version {sent_version!r}; expected {version!r}")

    external_url = _optional_str(body, "externalURL", "")
    meta: dict[str, Any] = {
        "receiver": _optional_str(body, "receiver", ""),
        "status": _optional_str(body, "status", ""),
        "groupKey": _optional_str(body, "groupKey", ""),
        "groupLabels": _string_map(body.get("groupLabels"), "groupLabels", strict=False),
        "commonLabels": _string_map(body.get("commonLabels"), "commonLabels", strict=False),
        "commonAnnotations": _string_map(body.get("commonAnnotations"), "commonAnnotations", strict=False),
        "externalURL": external_url,
        "truncatedAlerts": _optional_count(body, "truncatedAlerts"),
    }
    if grafana:
        meta["orgId"] = body.get("orgId")
        meta["title"] = _optional_str(body, "title", "")
        meta["state"] = _optional_str(body, "state", "")
        meta["message"] = _optional_str(body, "message", "")

    if "alerts" not in body or body["alerts"] is None:
        raise PayloadError("alerts", "required")
    if not isinstance(body["alerts"], list):
        raise PayloadError("alerts", "must be a list")

    alerts = [
        _parse_alertmanager_alert(item, f"alerts[{index}]", external_url=external_url, grafana=grafana)
        for index, item in enumerate(body["alerts"])
    ]
    return ParsedPayload(alerts=alerts, meta=meta)


def _optional_count(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(key, "must be an integer")
    return value


def _parse_alertmanager_alert(item: object, path: str, *, external_url: str, grafana: bool) -> ParsedAlert:
    alert = _require_object(item, path)

    if alert.get("labels") is None:
        raise PayloadError(f"{path}.labels", "required")
    labels = _string_map(alert["labels"], f"{path}.labels", strict=True)
    if not labels:
        raise PayloadError(f"{path}.labels", "must contain at least one label")
    annotations = _string_map(alert.get("annotations"), f"{path}.annotations", strict=False)

    status = _choice(alert, "status", path, STATUSES)
    if alert.get("startsAt") in (None, ""):
        raise PayloadError(f"{path}.startsAt", "required")
    starts_at = _parse_timestamp(alert["startsAt"], f"{path}.startsAt")
    ends_at = _optional_timestamp(alert, "endsAt", path)
    if status == FIRING:
        ends_at = None

    generator_url = _optional_str(alert, "generatorURL", path)
    links: list[dict[str, str]] = []
    if generator_url:
        links.append(_link(generator_url, "Alert rule" if grafana else "Source"))
    if grafana:
        for key, text in _GRAFANA_LINKS:
            url = _optional_str(alert, key, path)
            if url:
                links.append(_link(url, text))

    fingerprint = _optional_str(alert, "fingerprint", path).strip() or compute_fingerprint(labels)
    severity_value = labels.get("severity") or labels.get("priority")
    return ParsedAlert(
        fingerprint=fingerprint,
        status=status,
        action="trigger" if status == FIRING else "resolve",
        severity=normalise_severity(severity_value),
        title=_title(annotations.get("summary") or labels.get("alertname") or "") or "Alert",
        description=annotations.get("description") or annotations.get("message") or "",
        service=labels.get("service") or labels.get("job") or "",
        source=labels.get("instance") or external_url,
        labels=labels,
        annotations=annotations,
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url=generator_url,
        links=links,
        raw=alert,
    )


# --------------------------------------------------------------------------------------------------------------------
# PagerDuty Events API v2
# --------------------------------------------------------------------------------------------------------------------


def _parse_pagerduty(payload: object) -> ParsedPayload:
    event = _require_object(payload, BODY)
    _optional_str(event, "routing_key", "")  # checked by auth, but it must at least be a string
    action = _choice(event, "event_action", "", PAGERDUTY_ACTIONS)
    dedup_key = _optional_str(event, "dedup_key", "").strip()

    if action == "trigger":
        if event.get("payload") is None:
            raise PayloadError("payload", "required")
        details = _require_object(event["payload"], "payload")
        summary = _required_str(details, "summary", "payload")
        if len(summary) > PAGERDUTY_SUMMARY_MAX_LENGTH:
            raise PayloadError("payload.summary", f"must be at most {PAGERDUTY_SUMMARY_MAX_LENGTH} characters")
        source = _required_str(details, "source", "payload")
        severity = details.get("severity")
        if severity is None or severity == "":
            raise PayloadError("payload.severity", "required")
        if severity not in SEVERITIES:
            raise PayloadError("payload.severity", f"must be one of {', '.join(SEVERITIES)}")
        timestamp = _optional_timestamp(details, "timestamp", "payload")
        component = _optional_str(details, "component", "payload")
        group = _optional_str(details, "group", "payload")
        class_ = _optional_str(details, "class", "payload")
        if not dedup_key:
            dedup_key = uuid.uuid4().hex
    else:
        if not dedup_key:
            raise PayloadError("dedup_key", "required")
        # PagerDuty ignores the payload of acknowledge/resolve events; use whatever valid bits are there.
        raw_details = event.get("payload")
        details = raw_details if isinstance(raw_details, dict) else {}
        summary = _lenient_str(details, "summary")
        source = _lenient_str(details, "source")
        component = _lenient_str(details, "component")
        group = _lenient_str(details, "group")
        class_ = _lenient_str(details, "class")
        severity = normalise_severity(details.get("severity"))
        try:
            timestamp = _optional_timestamp(details, "timestamp", "payload")
        except PayloadError:
            timestamp = None

    labels = {
        key: value
        for key, value in (("source", source), ("component", component), ("group", group), ("class", class_))
        if value
    }
    annotations = _custom_details(details.get("custom_details"))
    if summary:
        annotations["summary"] = summary

    client = _optional_str(event, "client", "")
    client_url = _optional_str(event, "client_url", "")
    links = _links_list(event.get("links"), "links", allow_strings=False)
    if client_url:
        links.append(_link(client_url, client or "Client"))

    title = _title(summary)
    truncated = len(" ".join(summary.split())) > TITLE_MAX_LENGTH
    alert = ParsedAlert(
        fingerprint=dedup_key,
        status=RESOLVED if action == "resolve" else FIRING,
        action=action,
        severity=severity,
        title=title or _title(dedup_key),
        description=summary if truncated else "",  # the full text when the title had to be cut
        service=component or source,
        source=source,
        labels=labels,
        annotations=annotations,
        starts_at=timestamp,
        ends_at=None,
        generator_url=client_url,
        links=links,
        raw=event,
    )
    return ParsedPayload(alerts=[alert], meta={"dedup_key": dedup_key, "event_action": action})


def _lenient_str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _custom_details(value: object) -> dict[str, str]:
    """PagerDuty custom_details (any JSON) -> flat str annotations."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {
            str(key): item if isinstance(item, str) else json.dumps(item, ensure_ascii=False, sort_keys=True)
            for key, item in value.items()
        }
    if isinstance(value, str):
        return {"custom_details": value}
    return {"custom_details": json.dumps(value, ensure_ascii=False, sort_keys=True)}


# --------------------------------------------------------------------------------------------------------------------
# Generic JSON
# --------------------------------------------------------------------------------------------------------------------


def _parse_generic(payload: object) -> ParsedPayload:
    body = _require_object(payload, BODY)
    if "alerts" not in body:
        return ParsedPayload(alerts=[_parse_generic_alert(body, "")], meta={})
    items = body["alerts"]
    if not isinstance(items, list):
        raise PayloadError("alerts", "must be a list")
    alerts = [
        _parse_generic_alert(_require_object(item, f"alerts[{index}]"), f"alerts[{index}]")
        for index, item in enumerate(items)
    ]
    return ParsedPayload(alerts=alerts, meta={})


def _parse_generic_alert(alert: dict[str, Any], path: str) -> ParsedAlert:
    title = _required_str(alert, "title", path)

    severity_value = alert.get("severity")
    if severity_value is None or severity_value == "":
        severity = "warning"
    else:
        found = _lookup_severity(severity_value) if isinstance(severity_value, str) else None
        if found is None:
            raise PayloadError(
                _join(path, "severity"),
                f"unknown severity {severity_value!r}; expected one of {', '.join(SEVERITIES)} (or a common synonym)",
            )
        severity = found

    source = _optional_str(alert, "source", path)
    service = _optional_str(alert, "service", path)
    description = _optional_str(alert, "description", path)
    labels = _string_map(alert.get("labels"), _join(path, "labels"), strict=True)
    annotations = _string_map(alert.get("annotations"), _join(path, "annotations"), strict=False)
    status = _choice(alert, "status", path, STATUSES, default=FIRING)
    starts_at = _optional_timestamp(alert, "occurred_at", path)
    ends_at = _optional_timestamp(alert, "resolved_at", path)
    if status == FIRING:
        ends_at = None
    links = _links_list(alert.get("links"), _join(path, "links"), allow_strings=True)
    fingerprint = _optional_str(alert, "fingerprint", path).strip() or compute_fingerprint(
        labels, extra=f"{title}|{source}"
    )

    return ParsedAlert(
        fingerprint=fingerprint,
        status=status,
        action="trigger" if status == FIRING else "resolve",
        severity=severity,
        title=_title(title),
        description=description or annotations.get("description", ""),
        service=service or labels.get("service") or labels.get("job") or source,
        source=source,
        labels=labels,
        annotations=annotations,
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url="",
        links=links,
        raw=alert,
    )
