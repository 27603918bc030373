"""API token authentication, shared by DRF views and plain Django views.

Accepted headers: `Authorization: Bearer <token>` and `Authorization: Token <token>`.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import User
from django.db import DatabaseError, connection
from django.db.models.base import ModelState
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import authentication, exceptions

from opsportal import prepared

from . import throttling, token_cache
from .models import ApiToken, hash_token
from .roles import Role

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


_LOOKUP_SQL: str | None = None


def _lookup_sql() -> str:
    """One statement for the token, its user and the user's role (built once from the models' columns)."""
    global _LOOKUP_SQL
    if _LOOKUP_SQL is None:
        quote = connection.ops.quote_name
        token_columns = ", ".join(f"t.{quote(f.column)}" for f in ApiToken._meta.concrete_fields)
        user_columns = ", ".join(f"u.{quote(f.column)}" for f in User._meta.concrete_fields)
        groups = User._meta.get_field("groups")
        through = groups.remote_field.through._meta
        group_table = groups.related_model._meta.db_table
        ranks = " ".join(f"WHEN '{role.group_name}' THEN {role.value}" for role in Role)
        # Identifiers from the models, quoted; the values are parameters.
        _LOOKUP_SQL = (
            f"SELECT {token_columns}, {user_columns}, "  # noqa: S608
            f"(SELECT MAX(CASE g.name {ranks} END) FROM {quote(through.db_table)} ug "
            f"JOIN {quote(group_table)} g ON g.id = ug.group_id WHERE ug.user_id = u.id) "
            f"FROM {quote(ApiToken._meta.db_table)} t JOIN {quote(User._meta.db_table)} u ON u.id = t.user_id "
            "WHERE t.token_hash = %s AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > %s)"
        )
    return _LOOKUP_SQL


def _run_lookup(params: list) -> tuple | None:
    # A prepared statement (opsportal.prepared): PostgreSQL plans its joins and sub-select once per
    # connection instead of on every look-up (planning was ~0.25 ms of a ~0.3 ms statement).
    with connection.cursor() as cursor:
        prepared.execute(cursor, [(_lookup_sql(), params)])
        return cursor.fetchone()


def _fetch_lookup(params: list) -> tuple | None:
    """Run the look-up; on a reused connection it is also the request's connection health check.

    With CONN_HEALTH_CHECKS Django sends `SELECT 1` before a request's first query on a reused
    connection. The token look-up is that first query: when the connection turns out dead it is
    closed and the look-up made once more on a new one, as the health check would have done, so an
    authenticated request costs one round trip instead of two.
    """
    folds_check = (
        connection.connection is not None
        and connection.health_check_enabled
        and not connection.health_check_done
        and not connection.in_atomic_block
    )
    if not folds_check:
        connection.close_if_health_check_failed()
        return _run_lookup(params)
    connection.health_check_done = True
    try:
        return _run_lookup(params)
    except DatabaseError:
        if connection.is_usable():
            raise
        connection.close()
        return _run_lookup(params)


def _find_token(token_hash: str) -> ApiToken | None:
    """The active token with this hash, its user loaded and the user's role cached on it.

    On PostgreSQL one plain statement (no ORM query compilation: this runs on every API request);
    elsewhere the ORM, whose converters know each backend's column types.
    """
    if connection.vendor != "postgresql":
        return ApiToken.objects.active().select_related("user").filter(token_hash=token_hash).first()
    row = _fetch_lookup([token_hash, timezone.now()])
    if row is None:
        return None
    token_fields = [f.attname for f in ApiToken._meta.concrete_fields]
    user_fields = [f.attname for f in User._meta.concrete_fields]
    token = ApiToken.from_db(connection.alias, token_fields, row[: len(token_fields)])
    user = User.from_db(connection.alias, user_fields, row[len(token_fields) : len(token_fields) + len(user_fields)])
    rank = row[-1]
    # What roles.role_of would compute with one more query (superusers are admins).
    user._opsportal_role = Role.ADMIN if user.is_superuser else (Role(rank) if rank else None)
    token.user = user
    return token


def _checked_cached_token(token_hash: str, request: HttpRequest | None) -> tuple[ApiToken | None, str | None]:
    """This worker's cached token if the auth generation has not moved since it was looked up.

    Returns (token, None) for a valid cached token, (None, generation) when it must be looked up
    (stamped with the generation read before the look-up), (None, None) when nothing can be
    trusted (no Redis). The generation comes from this process's watch (token_cache.GenerationWatch,
    no round trip while it is unchanged); while the watch is down, from a script that also counts the
    request against the user's rate limit when the view will check it (throttling.CountedWindow,
    consumed by the throttle), so that path stays at one round trip.
    """
    backend = token_cache.redis_backend()
    if backend is None:
        return None, None
    entry = token_cache.get(token_hash)
    generation = token_cache.watched_generation(backend)
    if generation is None:
        generation = _generation_and_window(backend, entry, request)
        if generation is None:
            return None, None
    if entry is None or entry.generation != generation:
        return None, generation
    token = entry.token
    if token.expires_at is not None and token.expires_at <= timezone.now():
        token_cache.forget(token_hash)
        return None, generation
    return _request_copy(token), None


def _generation_and_window(backend, entry: token_cache.Entry | None, request: HttpRequest | None) -> str | None:
    """The generation read by a round trip (None when Redis cannot be reached), the request counted with it."""
    keys = [token_cache.generation_key(backend)]
    args: list = [token_cache.new_generation()]
    throttle = getattr(request, "_opsportal_user_throttle", None) if entry is not None else None
    if throttle is not None:
        window_key = throttling.user_window_key(throttle, backend, entry.token.user_id)
        now = throttle.timer()
        keys.append(window_key)
        args += [now, throttle.duration, throttle.num_requests, throttling.new_member(now)]
    try:
        result = throttling.registered_script(backend, throttling.AUTH_WINDOW_SCRIPT)(keys=keys, args=args)
    except Exception:
        token_cache.clear()
        return None
    if throttle is not None:
        request._opsportal_window = throttling.CountedWindow(
            key=window_key,
            duration=throttle.duration,
            num_requests=throttle.num_requests,
            now=now,
            allowed=bool(result[1]),
            count=int(result[2]),
            oldest=float(result[3]) if result[3] else None,
        )
    return result[0].decode() if isinstance(result[0], bytes) else str(result[0])


def _request_copy(token: ApiToken) -> ApiToken:
    """Each request gets its own copies: whatever a view caches on its user stays with that request."""
    user = _model_copy(token.user)
    token = _model_copy(token)
    token.user = user
    return token


def _model_copy(instance):
    """A shallow copy of a model instance (what copy.copy makes, without the pickling protocol)."""
    clone = instance.__class__.__new__(instance.__class__)
    clone.__dict__ = instance.__dict__.copy()
    clone._state = state = ModelState()
    state.db, state.adding = instance._state.db, instance._state.adding
    return clone


def authenticate_raw_token(raw: str, request: HttpRequest | None = None) -> tuple[User, ApiToken]:
    """The active user and token for a raw token; raises InvalidToken otherwise."""
    token_hash = hash_token(raw)
    token, generation = _checked_cached_token(token_hash, request)
    if token is None:
        token = _find_token(token_hash)
        if token is None:
            raise InvalidToken("Invalid, revoked or expired API token.")
        if generation is not None:
            token_cache.put(token_hash, token, generation)
            token = _request_copy(token)
    if not token.user.is_active:
        raise InvalidToken("The token's user is deactivated.")
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
        cached = token_cache.get(token_hash)
        if cached is not None:
            cached.token.last_used_at = now
    return token.user, token


def authenticate_request(request: HttpRequest) -> tuple[User, ApiToken] | None:
    """Authenticate a request's token once; the result is cached on the request."""
    if hasattr(request, "_opsportal_token_auth"):
        return request._opsportal_token_auth
    raw = token_from_header(request)
    result = authenticate_raw_token(raw, request) if raw else None
    request._opsportal_token_auth = result
    return result


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """DRF authentication with personal API tokens."""

    def authenticate(self, request) -> tuple[User, ApiToken] | None:
        django_request = request._request
        if not hasattr(django_request, "_opsportal_user_throttle"):
            view = (request.parser_context or {}).get("view")
            django_request._opsportal_user_throttle = throttling.user_throttle_for(view) if view else None
        try:
            return authenticate_request(django_request)
        except InvalidToken as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to requests without credentials.
        return 'Bearer realm="api"'
