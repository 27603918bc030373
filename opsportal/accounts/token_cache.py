"""Each worker remembers the tokens it has checked; one Redis value says when to forget them.

Finding a token costs a PostgreSQL round trip on every API request. A worker process instead
keeps the tokens it found (with their user and role) in memory, stamped with the **auth
generation** it read from Redis before the look-up. Every change that can make a token invalid or
change what it may do (a token revoked, deleted or edited; a user deactivated, edited or deleted;
a role granted or taken) sets a new random generation once its transaction commits, so every
worker's next request sees a different generation and looks the token up again: a revoked token
is refused on the next request, on every worker, as without the cache.

The generation is read by the same Lua script that counts the request against the user's rate
limit (throttling.WINDOW_SCRIPT), so an authenticated request makes one Redis round trip and no
database query. Expiry is checked against the clock on every request. Safety nets: an entry is
used for at most `TOKEN_CACHE_SECONDS` (a change made behind the portal's back, in raw SQL, takes
effect within that time), the cache holds at most `TOKEN_CACHE_SIZE` tokens, and when Redis
cannot be reached every request looks its token up in the database as before.

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


def read_generation() -> str | None:
    """The current generation (set if Redis has none), or None when Redis cannot be reached."""
    backend = redis_backend()
    if backend is None:
        return None
    try:
        client = backend._cache.get_client(write=True)
        key = generation_key(backend)
        fresh = new_generation()
        # SET NX: after a Redis restart the first reader starts a new generation, which no entry holds.
        client.set(key, fresh, nx=True)
        value = client.get(key)
    except Exception:
        log.warning("auth generation unreadable; tokens are looked up in the database", exc_info=True)
        return None
    return value.decode() if isinstance(value, bytes) else value


def bump() -> None:
    """Start a new generation now: every worker looks its tokens up again on the next request."""
    clear()
    backend = redis_backend()
    if backend is None:
        return
    try:
        backend._cache.get_client(write=True).set(generation_key(backend), new_generation())
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
