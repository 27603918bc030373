"""API token authentication, shared by DRF views and plain Django views.

Accepted headers: `Authorization: Bearer <token>` and `Authorization: Token <token>`.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import User
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import ApiToken, hash_token

KEYWORDS = ("bearer", "token")
# last_used_at is written at most this often per token, so a busy client costs no writes.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class InvalidToken(Exception):
    """The request carried an Authorization header whose token is unknown, revoked or expired."""


def token_from_header(request: HttpRequest) -> str | None:
    """The raw token of an `Authorization: Bearer|Token <token>` header, or None if absent."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None
    parts = header.split()
    if len(parts) == 0 or parts[0].lower() not in KEYWORDS:
        return None
    if len(parts) != 2:
        raise InvalidToken("Malformed Authorization header: expected 'Bearer <token>'.")
    return parts[1]


def authenticate_raw_token(raw: str) -> tuple[User, ApiToken]:
    """The active user and token for a raw token; raises InvalidToken otherwise."""
    token = ApiToken.objects.active().select_related("user").filter(token_hash=hash_token(raw)).first()
    if token is None:
        raise InvalidToken("Invalid, revoked or expired API token.")
    if not token.user.is_active:
        raise InvalidToken("The token's user is deactivated.")
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token.user, token


def authenticate_request(request: HttpRequest) -> tuple[User, ApiToken] | None:
    """Authenticate a request's token once; the result is cached on the request."""
    if hasattr(request, "_opsportal_token_auth"):
        return request._opsportal_token_auth
    raw = token_from_header(request)
    result = authenticate_raw_token(raw) if raw else None
    request._opsportal_token_auth = result
    return result


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """DRF authentication with personal API tokens."""

    def authenticate(self, request) -> tuple[User, ApiToken] | None:
        try:
            return authenticate_request(request._request)
        except InvalidToken as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to requests without credentials.
        return 'Bearer realm="api"'
