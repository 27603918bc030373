"""Alerts raised by other apps: the one way mlops, llmops and checks open incidents.

`raise_alert` turns the call into what a sender's delivery would be (a generic alert,
parsed and validated by the same parser) and hands it to ingest, through an internal
integration per calling app. Deduplication, silences, correlation rules and
notifications then apply exactly as to alerts from Alertmanager or Grafana.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from opsportal.accounts.models import hash_token, new_raw_token
from opsportal.audit import services as audit
from opsportal.errors import Conflict, InvalidInput, NotAllowed

from ..models import SEVERITY_RANK, Alert, Integration
from ..parsers import parse
from .ingest import delivery_digest, ingest_delivery

SOURCE_PATTERN = re.compile(r"[a-z][a-z0-9_.-]{0,49}")
DEDUP_KEY_MAX_LENGTH = 128  # Alert.fingerprint


@dataclass(frozen=True)
class RaisedAlert:
    """What `raise_alert` did.

    `alert` is the alert with this key: the one firing, or the one this call resolved
    (None when a resolve found nothing firing). `created` says the call opened a new alert
    (first firing, or firing again after it resolved); `resolved` that it resolved one.
    """

    alert: Alert | None
    created: bool = False
    resolved: bool = False


def raise_alert(
    *,
    source: str,
    dedup_key: str,
    title: str | None = None,
    severity: str | None = None,
    service: str = "",
    description: str = "",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    links: list[dict[str, str]] | None = None,
    resolve: bool = False,
) -> RaisedAlert:
    """Fire (or, with `resolve=True`, resolve) the alert `dedup_key` of app `source`.

    - `source`: the calling app's label, e.g. "mlops" (lower case, at most 50 characters).
    - `dedup_key`: stable for one condition; the same key again updates the same alert (no second
      incident), a new key is a new alert.
    - `title` (required to fire), `severity` (critical, error, warning (default), info), `service`
      (default: label `service`), `description`, `labels` and `annotations` (str to str),
      `links` ([{"href": ..., "text": ...}], web links only).
    - `resolve=True` resolves the firing alert with this key (omitted fields keep their values); its
      incident then auto-resolves as with senders' alerts. Nothing firing: nothing happens.

    Idempotent: repeating a call changes nothing but the alert's last-seen time and count. Each call is
    recorded as a delivery of the app's integration ("<source> (internal)"); correlation into incidents
    runs in the worker as for every alert. Raises InvalidInput naming the field for bad input, storing
    nothing; NotAllowed when an admin disabled the app's integration.
    """
    if not isinstance(source, str) or not SOURCE_PATTERN.fullmatch(source):
        raise InvalidInput("lower-case letters, digits, '_', '.' or '-', at most 50, e.g. 'mlops'.", field="source")
    if not isinstance(dedup_key, str) or not dedup_key.strip():
        raise InvalidInput("required.", field="dedup_key")
    dedup_key = dedup_key.strip()
    if len(dedup_key) > DEDUP_KEY_MAX_LENGTH:
        raise InvalidInput(f"at most {DEDUP_KEY_MAX_LENGTH} characters.", field="dedup_key")
    if severity is not None and severity not in SEVERITY_RANK:
        raise InvalidInput(f"must be one of {', '.join(SEVERITY_RANK)}.", field="severity")
    _check_strings(labels, "labels")
    _check_strings(annotations, "annotations")

    with transaction.atomic():
        integration = Integration.objects.filter(internal_source=source).first()
        if resolve:
            firing = (
                Alert.objects.filter(integration=integration, fingerprint=dedup_key, status=Alert.Status.FIRING).first()
                if integration is not None
                else None
            )
            if firing is None:
                return RaisedAlert(alert=None)
            # A resolve repeats what it does not say, so the alert keeps its title, severity and labels.
            title = title or firing.title
            severity = severity or firing.severity
            service = service or firing.service
            labels = firing.labels if labels is None else labels
            annotations = firing.annotations if annotations is None else annotations
        body = {
            "title": title,
            "severity": severity or "warning",
            "status": "resolved" if resolve else "firing",
            "fingerprint": dedup_key,
            "source": source,
            "service": service,
            "description": description,
            "labels": labels,
            "annotations": annotations,
            "links": links,
        }
        payload = parse(Integration.Kind.GENERIC, body)  # a PayloadError is an InvalidInput naming the field
        payload.meta = {"raised_by": source}
        if integration is None:
            integration = _internal_integration(source)
        if not integration.enabled:
            raise NotAllowed(f"the integration {integration.name!r} is disabled.", field="source")
        # Every call is a delivery of its own: a repeat is deduplicated by its key, not dropped as a retry.
        result = ingest_delivery(
            integration=integration, payload=payload, digest=delivery_digest(b"", f"raise_alert:{uuid.uuid4()}")
        )
        occurrences = Alert.objects.filter(integration=integration, fingerprint=dedup_key)
        alert = occurrences.order_by("-first_seen_at", "-id").first()
    return RaisedAlert(alert=alert, created=result.created > 0, resolved=result.resolved > 0)


def _check_strings(mapping: object, field: str) -> None:
    """Labels and annotations are str to str (a sender's numbers would be coerced; an app's are a mistake)."""
    if mapping is None:
        return
    if not isinstance(mapping, dict):
        raise InvalidInput("must be a dict of strings.", field=field)
    for key, value in mapping.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidInput("must be a string.", field=f"{field}.{key}")


def _internal_integration(source: str) -> Integration:
    """The integration of app `source`, created on its first alert (concurrent first alerts create one)."""
    name = f"{source} (internal)"
    try:
        with transaction.atomic():
            integration = Integration.objects.create(
                name=name,
                kind=Integration.Kind.GENERIC,
                internal_source=source,
                # Never shown and never accepted (token_matches refuses internal integrations).
                token_hash=hash_token(new_raw_token()),
                token_prefix="internal",
            )
            audit.record(
                action=audit.Action.CREATE, actor=None, obj=integration,
                changes={"name": [None, name], "kind": [None, Integration.Kind.GENERIC]},
                message=f"Created for the alerts the {source} app raises.",
            )  # fmt: skip
    except IntegrityError:
        integration = Integration.objects.filter(internal_source=source).first()
        if integration is None:
            raise Conflict(
                f"an integration named {name!r} already exists; rename it so {source} can raise alerts.",
                field="source",
            ) from None
    return integration
