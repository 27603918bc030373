"""A Redis connection that belongs to one worker process, for work a request must not wait on.

The cache's connection pool serves request/reply commands. Two per-request checks use a
connection of their own instead: the auth generation watch (token_cache: a RESP3 connection
with client-side tracking, so Redis pushes the change instead of being asked every request) and
the rate-limit counter (throttling: the window script sent without waiting, its reply read by the
next request). Both need a connection nothing else reads from, made in the process that uses it:
gunicorn forks its workers after importing the app, and a socket shared with the parent would mix
two processes' replies. So the connection is made on first use, remade when `os.getpid()`
changes, dropped on any error and tried again after `RETRY_SECONDS`; while it is down, callers
take their synchronous path through the cache's pool.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from django.core.cache.backends.redis import RedisCache
from redis.backoff import NoBackoff
from redis.connection import Connection, parse_url
from redis.retry import Retry

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
# A request waits at most this long for Redis on these connections before taking the synchronous path.
SOCKET_SECONDS = 1.0
# Pool-only options of the cache's OPTIONS, which a single connection does not take.
_POOL_OPTIONS = {"max_connections", "connection_class", "timeout"}


def connection_for(backend: RedisCache, *, protocol: int) -> Connection:
    """A new, unconnected connection to the cache's write server with the cache's options."""
    cache_client = backend._cache
    kwargs = parse_url(cache_client._servers[0])
    connection_class = kwargs.pop("connection_class", Connection)
    kwargs.update({name: value for name, value in cache_client._pool_options.items() if name not in _POOL_OPTIONS})
    kwargs.setdefault("socket_timeout", SOCKET_SECONDS)
    kwargs.setdefault("socket_connect_timeout", SOCKET_SECONDS)
    # No retries: a failed command falls back to the synchronous path at once.
    kwargs.update(protocol=protocol, retry=Retry(NoBackoff(), 0), health_check_interval=0)
    return connection_class(**kwargs)


class ProcessConnection:
    """This process's own connection to the cache's Redis; `lock` serialises threads that share it.

    Subclasses prepare a new connection in `prepared` (raise to refuse it) and forget what they
    knew through it in `forgotten`.
    """

    protocol = 2
    purpose = "Redis"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._connection: Connection | None = None
        self._pid: int | None = None
        self._server: str | None = None
        self._retry_at = 0.0
        self._failing = False

    def forked(self) -> bool:
        """Whether the connection was made by another process (gunicorn's master, before the fork)."""
        return self._pid is not None and self._pid != os.getpid()

    def connection(self, backend: RedisCache) -> Connection | None:
        """The connection, made now if needed; None while Redis is unreachable (call with `lock` held)."""
        server = backend._cache._servers[0]
        if self._connection is not None and (self.forked() or self._server != server):
            self.drop(retry=False)  # a forked child, or another cache: the old socket is not ours to use
        if self._connection is not None:
            return self._connection
        if time.monotonic() < self._retry_at:
            return None
        connection = connection_for(backend, protocol=self.protocol)
        try:
            connection.connect()
            self.prepared(connection)
        except Exception:
            # Once per outage, not once per retry.
            (log.debug if self._failing else log.warning)(
                "%s: no connection to Redis; using the synchronous path", self.purpose, exc_info=True
            )
            self._failing = True
            connection.disconnect()
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return None
        self._connection, self._pid, self._server, self._failing = connection, os.getpid(), server, False
        return connection

    def drop(self, *, retry: bool = True) -> None:
        """Forget the connection (after an error: not again for `RETRY_SECONDS`)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.disconnect()  # only closes the socket in a forked child, as redis-py checks the pid
        if retry:
            self._retry_at = time.monotonic() + RETRY_SECONDS
        self.forgotten()

    def prepared(self, connection: Connection) -> None:
        """Set up a new connection (raise to refuse it)."""

    def forgotten(self) -> None:
        """Forget what was learnt through the dropped connection."""
