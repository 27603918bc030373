"""Each worker remembers the tokens it has checked; one Redis value says when to forget them.

Finding a token costs a PostgreSQL round trip on every API request. A worker process instead
keeps the tokens it found (with their user and role) in memory, stamped with the **auth
generation** it read from Redis before the look-up. Every change that can make a token invalid or
change what it may do (a token revoked, deleted or edited; a user deactivated, edited or deleted;
a role granted or taken) sets a new random generation once its transaction commits, so every
worker's next request sees a different generation and looks the token up again: a revoked token
is refused on the next request, on every worker, as without the cache.

Reading the generation costs no round trip either: each worker process holds one RESP3
connection with client-side tracking (`CLIENT TRACKING ON`, `GenerationWatch`). It reads the
generation once; when anyone changes it, Redis pushes an invalidation to every connection that
read it, and each request first looks, without waiting, whether such a push has arrived (then it
reads the new value: one round trip after a change). `bump` waits for one more round trip after
setting the generation, so by the time the change's own request answers, Redis has written the
push to every worker's socket: the next request anywhere sees it. When the watch connection is
down (Redis unreachable, tracking refused, a thread holding it too long), the generation is read
by the same Lua script that counts the request against the user's rate limit
(throttling.AUTH_WINDOW_SCRIPT), one round trip as before; when Redis cannot be reached at all,
every request looks its token up in the database. Nothing is ever trusted on a generation that
could have changed unseen.

Expiry is checked against the clock on every request. Safety nets: an entry is used for at most
`TOKEN_CACHE_SECONDS` (a change made behind the portal's back, in raw SQL, takes effect within
that time) and the cache holds at most `TOKEN_CACHE_SIZE` tokens.

Without Redis as the cache (the embedded SQLite set-up) nothing is cached.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import transaction
from redis.connection import Connection

from .process_connection import ProcessConnection

log = logging.getLogger(__name__)

GENERATION_KEY = "opsportal:auth:generation"


@dataclass
class Entry:
    token: object  # ApiToken with .user loaded and the user's role cached on it
    generation: str
    stored_at: float


_entries: OrderedDict[str, Entry] = OrderedDict()
_lock = threading.Lock()  # threaded workers share the cache


def max_age() -> float:
    return float(getattr(settings, "TOKEN_CACHE_SECONDS", 60))


def max_size() -> int:
    return int(getattr(settings, "TOKEN_CACHE_SIZE", 10_000))


def redis_backend() -> RedisCache | None:
    """The default cache when it is Redis and caching is on; else None."""
    if max_age() <= 0:
        return None
    backend = caches["default"]
    return backend if isinstance(backend, RedisCache) else None


def generation_key(backend: RedisCache) -> str:
    return backend.make_and_validate_key(GENERATION_KEY)


def new_generation() -> str:
    return secrets.token_hex(8)


def get(token_hash: str) -> Entry | None:
    entry = _entries.get(token_hash)
    if entry is None:
        return None
    if time.monotonic() - entry.stored_at > max_age():
        _entries.pop(token_hash, None)
        return None
    return entry


def put(token_hash: str, token, generation: str) -> None:
    with _lock:
        _entries[token_hash] = Entry(token=token, generation=generation, stored_at=time.monotonic())
        _entries.move_to_end(token_hash)
        while len(_entries) > max_size():
            _entries.popitem(last=False)


def forget(token_hash: str) -> None:
    _entries.pop(token_hash, None)


def clear() -> None:
    _entries.clear()


class GenerationWatch(ProcessConnection):
    """The auth generation as this process last read it, kept current by Redis's invalidation pushes."""

    protocol = 3
    purpose = "auth generation watch"

    def __init__(self) -> None:
        super().__init__()
        self.generation: str | None = None

    def prepared(self, connection: Connection) -> None:
        connection.send_command("CLIENT", "TRACKING", "ON")
        if connection.read_response() != b"OK":
            raise ConnectionError("CLIENT TRACKING ON refused")
        connection._parser.set_invalidation_push_handler(self._invalidated)
        self.generation = None

    def forgotten(self) -> None:
        self.generation = None

    def _invalidated(self, push) -> object:
        # The only key this connection reads is the generation (a flush pushes no key list: same).
        self.generation = None
        return _INVALIDATED

    def current(self, backend: RedisCache) -> str | None:
        """The generation now; None when the watch cannot say (take the synchronous path)."""
        if not self.lock.acquire(timeout=0.01):
            return None
        try:
            connection = self.connection(backend)
            if connection is None:
                return None
            try:
                while connection.can_read(timeout=0):
                    if connection.read_response(push_request=True) is not _INVALIDATED:
                        raise ConnectionError("unexpected reply on the auth generation watch")
                if self.generation is None:
                    self.generation = self._read(connection, backend)
            except Exception:
                log.warning("auth generation watch failed; reading the generation per request", exc_info=True)
                self.drop()
                return None
            return self.generation
        finally:
            self.lock.release()

    def _read(self, connection: Connection, backend: RedisCache) -> str:
        # SET NX: after a Redis restart the first reader starts a new generation, which no entry holds.
        # The GET makes Redis track the key for this connection; a push that arrives before its reply
        # is about an older value (the handler runs inside read_response and is overridden here).
        key = generation_key(backend)
        connection.send_packed_command(connection.pack_commands([("SET", key, new_generation(), "NX"), ("GET", key)]))
        connection.read_response()
        value = connection.read_response()
        if value is None:
            raise ConnectionError("the auth generation vanished between SET NX and GET")
        return value.decode()


_INVALIDATED = object()
_watch = GenerationWatch()


def watched_generation(backend: RedisCache) -> str | None:
    """The current auth generation without a round trip while it is unchanged; None when the watch is down."""
    return _watch.current(backend)


def bump() -> None:
    """Start a new generation now: every worker looks its tokens up again on the next request."""
    clear()
    _watch.generation = None
    backend = redis_backend()
    if backend is None:
        return
    try:
        client = backend._cache.get_client(write=True)
        client.set(generation_key(backend), new_generation())
        # Redis writes the invalidation pushes in the same event-loop pass as the SET's reply; a
        # second round trip makes sure that pass is over before the change's request answers.
        client.ping()
    except Exception:
        log.warning(
            "could not start a new auth generation; other workers trust their cached tokens for up to %s s",
            max_age(),
            exc_info=True,
        )


def bump_on_commit() -> None:
    """Bump once the current transaction commits (at once outside a transaction)."""
    clear()
    transaction.on_commit(bump)
