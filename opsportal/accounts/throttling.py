"""API rate limits with DRF's semantics at one cache round trip per request.

DRF's SimpleRateThrottle keeps each client's request times as a pickled list in the cache: a
read and a write per request, and at the default 6,000/minute a list of up to 6,000 floats
unpickled, edited and pickled again every time. With Redis as the cache, these classes keep the
same sliding window (the request times of the last `duration` seconds; a request is refused
when `num_requests` of them remain, refused requests are not counted, Retry-After is when the
oldest leaves the window) in a sorted set, checked and updated by one Lua script: one round
trip, atomic across workers. Without Redis they behave exactly as DRF's own classes. The cache
key and the rates (`DEFAULT_THROTTLE_RATES`, `THROTTLE_RATES`) are DRF's, so settings and
tools that clear a client's history keep working.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import lru_cache

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework import throttling

_WINDOW_FUNCTION = """
local function window(key, now, duration, limit, member)
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'zset' and kind ~= 'none' then
    redis.call('DEL', key)
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - duration)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return {0, count, oldest[2]}
  end
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, math.ceil(duration * 1000))
  return {1, count + 1, ''}
end
"""

# KEYS[1]: the client's key; ARGV: now, duration (s), allowed requests, a unique member.
# Returns {allowed (0/1), requests in the window, oldest request time (string) when refused}.
WINDOW_SCRIPT = (
    _WINDOW_FUNCTION
    + """
return window(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
"""
)

# The token check's script (token_cache): KEYS[1] the auth generation, KEYS[2] (optional) the user's
# window; ARGV: a fresh generation (set when Redis has none), then the window's arguments.
# Returns {generation, allowed, requests in the window, oldest} (the last three only with KEYS[2]).
AUTH_WINDOW_SCRIPT = (
    _WINDOW_FUNCTION
    + """
local generation = redis.call('GET', KEYS[1])
if not generation then
  generation = ARGV[1]
  redis.call('SET', KEYS[1], generation)
end
if #KEYS < 2 then
  return {generation}
end
local result = window(KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5])
return {generation, result[1], result[2], result[3]}
"""
)

_scripts: dict[tuple[int, str], object] = {}


def registered_script(backend: RedisCache, source: str):
    """The registered script on a long-lived client of the cache's connection pool (one per process)."""
    script = _scripts.get((id(backend), source))
    if script is None:
        client = backend._cache.get_client(write=True)
        script = _scripts[(id(backend), source)] = client.register_script(source)
    return script


def _window_script(backend: RedisCache):
    return registered_script(backend, WINDOW_SCRIPT)


@dataclass
class CountedWindow:
    """A request already counted against a user's window by the token check (one round trip for both)."""

    key: str
    duration: int
    num_requests: int
    now: float
    allowed: bool
    count: int
    oldest: float | None


def new_member(now: float) -> str:
    return f"{now!r}:{secrets.token_hex(4)}"


def user_throttle_for(view) -> UserRateThrottle | None:
    """The per-user rate a DRF view (instance, or the function as_view made) will check, if it is this
    module's, so the token check can count the request in its own round trip."""
    throttle_classes = getattr(view, "throttle_classes", None)
    if throttle_classes is None:
        view_class = getattr(view, "cls", None)  # as_view()'s function
        throttle_classes = getattr(view_class, "throttle_classes", None) if view_class is not None else None
    throttle_class = _user_throttle_class(tuple(throttle_classes)) if throttle_classes else None
    if throttle_class is None:
        return None
    throttle = throttle_class()  # reads the rate now: settings and tests may change it
    return throttle if throttle.rate is not None else None


@lru_cache(maxsize=1024)
def _user_throttle_class(throttle_classes: tuple) -> type[UserRateThrottle] | None:
    for throttle_class in throttle_classes:
        if isinstance(throttle_class, type) and issubclass(throttle_class, UserRateThrottle):
            return throttle_class
    return None


def user_window_key(throttle: UserRateThrottle, backend: RedisCache, user_pk) -> str:
    """The cache key UserRateThrottle.get_cache_key gives an authenticated user."""
    return backend.make_and_validate_key(throttle.cache_format % {"scope": throttle.scope, "ident": user_pk})


class WindowThrottleMixin:
    def allow_request(self, request, view) -> bool:
        backend = caches["default"]
        if not isinstance(backend, RedisCache):
            return super().allow_request(request, view)
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        full_key = backend.make_and_validate_key(self.key)
        counted = getattr(getattr(request, "_request", request), "_opsportal_window", None)
        if (
            counted is not None
            and counted.key == full_key
            and (counted.duration, counted.num_requests) == (self.duration, self.num_requests)
        ):
            # The token check counted this request already, in its own round trip.
            request._request._opsportal_window = None
            self.now, self._window_count, self._window_oldest = counted.now, counted.count, counted.oldest
            return counted.allowed
        self.now = self.timer()
        allowed, count, oldest = _window_script(backend)(
            keys=[full_key], args=[self.now, self.duration, self.num_requests, new_member(self.now)]
        )
        self._window_count = int(count)
        self._window_oldest = float(oldest) if oldest else None
        return bool(allowed)

    def wait(self) -> float | None:
        if not hasattr(self, "_window_count"):
            return super().wait()
        remaining = self.duration - (self.now - self._window_oldest) if self._window_oldest else self.duration
        available = self.num_requests - self._window_count + 1
        if available <= 0:
            return None
        return remaining / float(available)


class AnonRateThrottle(WindowThrottleMixin, throttling.AnonRateThrottle):
    """DRF's anonymous rate (per client IP), one round trip."""


class UserRateThrottle(WindowThrottleMixin, throttling.UserRateThrottle):
    """DRF's per-user rate, one round trip."""
