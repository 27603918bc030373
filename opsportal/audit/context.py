"""Who is acting and from where, for the audit entries written during a request."""

from __future__ import annotations

from contextvars import ContextVar

from django.conf import settings
from django.http import HttpRequest

# The client IP of the request being served; None in tasks and commands.
current_ip: ContextVar[str | None] = ContextVar("audit_current_ip", default=None)


def client_ip(request: HttpRequest) -> str | None:
    """The client address, trusting OPSPORTAL_TRUSTED_PROXIES hops of X-Forwarded-For."""
    hops = settings.OPSPORTAL_TRUSTED_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if hops and forwarded:
        chain = [part.strip() for part in forwarded.split(",") if part.strip()]
        if len(chain) >= hops:
            return chain[-hops]
    return request.META.get("REMOTE_ADDR") or None
