"""The alert ingest endpoint senders post to: `/api/v1/aiops/ingest/<integration id>/`.

Kept out of DRF's serializers for speed, but with the same error body
(`{"detail", "code"}`). Order of checks: size (413), token (401), rate (429),
JSON and payload (400, naming the field), then the alerts are committed before
the 2xx answer; correlation happens in a worker.
"""

from __future__ import annotations

import json
import logging
import time

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from opsportal.accounts.authentication import InvalidToken, token_from_header
from opsportal.audit.context import client_ip

from .. import services
from ..models import Integration
from ..parsers import PayloadError, parse

logger = logging.getLogger(__name__)


def error(status: int, code: str, detail: str, **extra: object) -> JsonResponse:
    response = JsonResponse({"detail": detail, "code": code, **extra}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="ingest"'
    return response


def over_rate_limit(integration: Integration) -> int:
    """Seconds to wait when the integration is over its per-minute limit, else 0.

    A cache outage must never refuse alerts, so cache errors count as 'not limited'.
    """
    window = int(time.time() // 60)
    key = f"aiops:ingest-rate:{integration.pk}:{window}"
    try:
        if cache.add(key, 1, timeout=90):
            return 0
        count = cache.incr(key)
    except Exception:
        logger.warning("Rate-limit cache unavailable; accepting the delivery", exc_info=True)
        return 0
    return 60 - int(time.time() % 60) if count > integration.rate_limit_per_minute else 0


@csrf_exempt
@login_not_required
def ingest(request: HttpRequest, integration_id: int) -> JsonResponse:
    limit = settings.AIOPS_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return error(413, "payload_too_large", f"(body): {declared} bytes is over the limit of {limit} bytes.")

    try:
        raw_token = token_from_header(request)
    except InvalidToken as exc:
        return error(401, "not_authenticated", str(exc))
    integration = Integration.objects.filter(pk=integration_id).first()
    # PagerDuty senders may put the integration key in the body (routing_key) instead of a header.
    body_may_authenticate = (
        raw_token is None and integration is not None and integration.kind == Integration.Kind.PAGERDUTY
    )
    if raw_token is None and not body_may_authenticate:
        return error(401, "not_authenticated", "Send 'Authorization: Bearer <integration token>'.")

    body = request.body
    if len(body) > limit:
        return error(413, "payload_too_large", f"(body): {len(body)} bytes is over the limit of {limit} bytes.")
    payload = None
    if raw_token is None:
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            payload = None
        key = payload.get("routing_key") if isinstance(payload, dict) else None
        raw_token = key if isinstance(key, str) and key else None
    if not raw_token or not services.token_matches(integration=integration, raw_token=raw_token):
        return error(401, "not_authenticated", "Invalid token for this integration, or the integration is disabled.")

    if request.method != "POST":
        response = error(405, "method_not_allowed", f"Method {request.method} not allowed; senders POST here.")
        response["Allow"] = "POST"
        return response

    wait = over_rate_limit(integration)
    if wait:
        response = error(429, "throttled", f"Over {integration.rate_limit_per_minute} deliveries per minute.")
        response["Retry-After"] = str(wait)
        return response

    if payload is None:
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return error(400, "invalid", f"(body): not valid JSON: {exc}.", field="(body)")
    try:
        parsed = parse(integration.kind, payload)
    except PayloadError as exc:
        return error(400, "invalid", str(exc), field=exc.field)

    digest = services.delivery_digest(body, request.headers.get("Idempotency-Key", ""))
    result = services.ingest_delivery(
        integration=integration, payload=parsed, digest=digest, remote_addr=client_ip(request)
    )

    if integration.kind == Integration.Kind.PAGERDUTY:
        dedup_key = result.fingerprints[0] if result.fingerprints else ""
        return JsonResponse({"status": "success", "message": "Event processed", "dedup_key": dedup_key}, status=202)
    return JsonResponse(
        {
            "status": "accepted",
            "duplicate": result.duplicate,
            "alerts": len(parsed.alerts),
            "created": result.created,
            "updated": result.updated,
            "resolved": result.resolved,
            "suppressed": result.suppressed,
        },
        status=202,
    )
