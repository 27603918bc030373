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

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework import throttling

# KEYS[1]: the client's key; ARGV: now, duration (s), allowed requests, a unique member.
# Returns {allowed (0/1), requests in the window, oldest request time (string) when refused}.
WINDOW_SCRIPT = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local duration = tonumber(ARGV[2])
local kind = redis.call('TYPE', key)['ok']
if kind ~= 'zset' and kind ~= 'none' then
  redis.call('DEL', key)
end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - duration)
local count = redis.call('ZCARD', key)
if count >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return {0, count, oldest[2]}
end
redis.call('ZADD', key, now, ARGV[4])
redis.call('PEXPIRE', key, math.ceil(duration * 1000))
return {1, count + 1, ''}
"""

_scripts: dict[int, object] = {}


def _window_script(backend: RedisCache):
    """The registered script on a long-lived client of the cache's connection pool (one per process)."""
    script = _scripts.get(id(backend))
    if script is None:
        client = backend._cache.get_client(write=True)
        script = _scripts[id(backend)] = client.register_script(WINDOW_SCRIPT)
    return script


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
        self.now = self.timer()
        member = f"{self.now!r}:{secrets.token_hex(4)}"
        allowed, count, oldest = _window_script(backend)(
            keys=[backend.make_and_validate_key(self.key)], args=[self.now, self.duration, self.num_requests, member]
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
