"""API rate limits with DRF's semantics, counted in Redis without making the request wait.

DRF's SimpleRateThrottle keeps each client's request times as a pickled list in the cache: a
read and a write per request, and at the default 6,000/minute a list of up to 6,000 floats
unpickled, edited and pickled again every time. With Redis as the cache, these classes keep the
same sliding window (the request times of the last `duration` seconds; a request is refused
when `num_requests` of them remain, refused requests are not counted, Retry-After is when the
oldest leaves the window) in a sorted set, checked and updated by one Lua script: one round
trip, atomic across workers. Without Redis they behave exactly as DRF's own classes. The cache
key and the rates (`DEFAULT_THROTTLE_RATES`, `THROTTLE_RATES`) are DRF's, so settings and
tools that clear a client's history keep working.

Each worker process sends the script on a connection of its own (`WindowCounter`) and, while the
client is far from its limit, does not wait for the reply: the next request on that process reads
it (by then it has long arrived) and so learns the client's count. Within `sync_margin(limit)` of
the limit, and whenever the count is unknown or was heard more than `FRESH_SECONDS` ago, the
request waits for its reply, so limits up to `SYNC_MARGIN` are exact and larger ones are exact too
unless other workers served more than the margin of the client's requests within `FRESH_SECONDS`
(then at most one request per worker beyond the limit). A reply that never comes (the connection broke) is counted again
through the cache's pool. When Redis cannot be reached at all, requests are let through and a
warning logged: rate limits protect capacity, and a cache outage should not become an API outage.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from functools import lru_cache
from hashlib import sha1

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.signals import request_finished
from redis.connection import Connection
from redis.exceptions import NoScriptError
from rest_framework import throttling

from .process_connection import ProcessConnection

log = logging.getLogger(__name__)

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


# Within this many requests of the limit (or a tenth of it, if more) a request waits for its count.
SYNC_MARGIN = 100
# Clients whose last count each process remembers.
KNOWN_COUNTS = 10_000
# A count this process heard longer ago than this is not relied on: the client's requests that other
# workers served since are unknown here, so the request waits for its count.
FRESH_SECONDS = 0.25
_WINDOW_SHA = sha1(WINDOW_SCRIPT.encode()).hexdigest()  # noqa: S324 (Redis names scripts by SHA-1)


def sync_margin(limit: int) -> int:
    return max(SYNC_MARGIN, limit // 10)


@dataclass
class _Known:
    count: int
    at: float  # the request time the count was taken at (the window's clock)
    heard: float  # when Redis last told this process the count (monotonic)


class WindowCounter(ProcessConnection):
    """This process's connection for the window script: far from the limit, a request's count is sent
    without waiting and its reply read by the next request."""

    purpose = "rate limit counter"

    def __init__(self) -> None:
        super().__init__()
        self._unsent: list[tuple[str, list]] = []  # (key, script arguments) of answered requests, not yet sent
        self._pending: deque[tuple[str, list]] = deque()  # sent, reply unread
        self._known: OrderedDict[str, _Known] = OrderedDict()

    def prepared(self, connection: Connection) -> None:
        connection.send_command("SCRIPT", "LOAD", WINDOW_SCRIPT)
        connection.read_response()

    def forgotten(self) -> None:
        # Replies that will never be read: count those requests again through the pool (at worst twice);
        # a forked child's were the parent's to count.
        pending, self._pending = [*self._pending, *self._unsent], deque()
        self._unsent = []
        if not self.forked():
            self._count_through_pool(pending)

    def _count_through_pool(self, counts: list[tuple[str, list]]) -> None:
        backend = caches["default"]
        for key, args in counts:
            try:
                _window_script(backend)(keys=[key], args=args)
            except Exception:
                log.warning("%d rate-limit counts lost: Redis cannot be reached", len(counts), exc_info=True)
                return

    def count(self, backend: RedisCache, key: str, args: list) -> tuple[int, int, str | bytes] | None:
        """The script's answer for this request ({allowed, count, oldest}; an estimate when not waited for),
        or None when this connection cannot be used now (count through the pool)."""
        if not self.lock.acquire(timeout=0.01):
            return None
        try:
            connection = self.connection(backend)
            if connection is None:
                unsent, self._unsent = self._unsent, []
                self._count_through_pool(unsent)
                return None
            try:
                self._send_unsent(connection)
                while self._pending:
                    self._learn(*self._pending[0], self._reply(connection, *self._pending[0]))
                    self._pending.popleft()
                now, limit = args[0], args[2]
                known = self._known.get(key)
                if (
                    known is not None
                    and now >= known.at
                    and known.count < limit - sync_margin(limit)
                    and time.monotonic() - known.heard < FRESH_SECONDS
                ):
                    self._unsent.append((key, args))
                    known.count, known.at = known.count + 1, now
                    return 1, known.count, ""
                connection.send_packed_command(connection.pack_command("EVALSHA", _WINDOW_SHA, 1, key, *args))
                result = self._reply(connection, key, args)
            except Exception:
                log.warning("rate limit counter connection failed", exc_info=True)
                self.drop()
                return None
            self._learn(key, args, result)
            return result
        finally:
            self.lock.release()

    def send_unsent(self) -> None:
        """Send the counts of the requests just answered (after the response went out: request_finished)."""
        if not self._unsent or not self.lock.acquire(timeout=0.01):
            return
        try:
            connection = self.connection(caches["default"])
            if connection is None:
                unsent, self._unsent = self._unsent, []
                self._count_through_pool(unsent)
                return
            try:
                self._send_unsent(connection)
            except Exception:
                log.warning("rate limit counter connection failed", exc_info=True)
                self.drop()
        finally:
            self.lock.release()

    def _send_unsent(self, connection: Connection) -> None:
        if not self._unsent:
            return
        unsent, self._unsent = self._unsent, []
        self._pending.extend(unsent)
        connection.send_packed_command(
            connection.pack_commands([("EVALSHA", _WINDOW_SHA, 1, key, *args) for key, args in unsent])
        )

    def _reply(self, connection: Connection, key: str, args: list) -> list:
        try:
            return connection.read_response()
        except NoScriptError:
            # The script cache was flushed: this request is counted now, and the script loaded again.
            connection.send_command("EVAL", WINDOW_SCRIPT, 1, key, *args)
            result = connection.read_response()
            self.prepared(connection)
            return result

    def _learn(self, key: str, args: list, result: list) -> None:
        self._known[key] = _Known(count=int(result[1]), at=args[0], heard=time.monotonic())
        self._known.move_to_end(key)
        if len(self._known) > KNOWN_COUNTS:
            self._known.popitem(last=False)


_counter = WindowCounter()


def _send_unsent_counts(**kwargs) -> None:
    _counter.send_unsent()


# gunicorn has written the whole response before it closes it (which sends request_finished), so the
# count is sent while the client already reads its answer.
request_finished.connect(_send_unsent_counts, dispatch_uid="opsportal-throttle-send-counts")
_warned_at = 0.0


def _count(backend: RedisCache, key: str, args: list) -> tuple | None:
    """The window script's answer for this request; None when Redis cannot be reached (let it through)."""
    result = _counter.count(backend, key, args)
    if result is not None:
        return result
    try:
        return _window_script(backend)(keys=[key], args=args)
    except Exception:
        global _warned_at
        if time.monotonic() - _warned_at > 60:
            _warned_at = time.monotonic()
            log.warning("rate limits are not enforced: Redis cannot be reached", exc_info=True)
        return None


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
        result = _count(backend, full_key, [self.now, self.duration, self.num_requests, new_member(self.now)])
        if result is None:
            return True
        allowed, count, oldest = result
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
