"""Heartbeat pings, Healthchecks-style: `/ping/<uuid>`, `/start`, `/fail`, `/<exit status>`.

No login and no token: the check's UUID is the secret (docs/aiops.md, "Ping protocol"). GET, POST
and HEAD; the first 10 KB of the body are kept with the ping. Answers are plain text: "OK" (200),
"not found" (404, an unknown UUID), "rate limited" (429, with Retry-After, over
AIOPS_PING_RATE_PER_MINUTE pings of one UUID in a minute), or a 400 for an exit status over 255.
"""

from __future__ import annotations

import logging
import time
import uuid

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from opsportal.audit.context import client_ip
from opsportal.errors import NotFound

from .. import services
from ..models.checks import PING_BODY_MAX_BYTES

logger = logging.getLogger(__name__)


def text(body: str, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")


def seconds_over_limit(ping_uuid: uuid.UUID) -> int:
    """Seconds to wait when this UUID is over its per-minute limit, else 0 (a cache outage limits nothing)."""
    window = int(time.time() // 60)
    key = f"aiops:ping-rate:{ping_uuid}:{window}"
    try:
        if cache.add(key, 1, timeout=90):
            return 0
        count = cache.incr(key)
    except Exception:
        logger.warning("Rate-limit cache unavailable; accepting the ping", exc_info=True)
        return 0
    return max(1, 60 - int(time.time() % 60)) if count > settings.AIOPS_PING_RATE_PER_MINUTE else 0


@csrf_exempt
@login_not_required
@never_cache
@require_http_methods(["GET", "POST", "HEAD"])
def ping(request: HttpRequest, ping_uuid: uuid.UUID, kind: str = "success", exit_status: int | None = None):
    if exit_status is not None and not 0 <= exit_status <= 255:
        return text("exit status must be 0-255", status=400)
    wait = seconds_over_limit(ping_uuid)
    if wait:
        response = text("rate limited", status=429)
        response["Retry-After"] = str(wait)
        return response
    body = request.read(PING_BODY_MAX_BYTES) if request.method == "POST" else b""
    try:
        services.record_ping(
            ping_uuid=str(ping_uuid),
            kind=kind,
            exit_status=exit_status,
            body=body,
            remote_addr=client_ip(request),
            user_agent=request.headers.get("User-Agent", ""),
            method=request.method,
        )
    except NotFound:
        return text("not found", status=404)
    return text("OK")
