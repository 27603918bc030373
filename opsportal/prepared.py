"""Server-side prepared statements on PostgreSQL: a statement is parsed and planned once per connection.

The statements that run on every request of a kind (the token look-up, a registration, an MLflow page
built as JSON) spend more of their time being parsed and planned than being run. `execute` sends each
as `EXECUTE <name>(...)` of a statement `PREPARE`d the first time the connection (a server session)
sees its text, named after a hash of that text, so every shape of statement (say, an MLflow search per
filter shape, with its values as parameters) has one prepared statement per connection. Each
connection keeps at most `MAX_PER_CONNECTION` of them: the least recently used is deallocated when a
new one is prepared, so arbitrary filters cannot fill the server's memory.

With a connection per request (`CONN_MAX_AGE=0`) preparing would cost a round trip every time: the
statements then go as plain SQL. A statement the server cannot prepare (a parameter whose type it
cannot infer) runs as plain SQL from then on; inside a caller's transaction the PREPARE has a
savepoint of its own, so a refusal does not break it. When a session's statements were dropped behind our back
(`DISCARD ALL`, `DEALLOCATE ALL`, a pooler), nothing ran: they are prepared again, unless a caller's
transaction is now broken.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from collections import OrderedDict

import psycopg
from django.db import ProgrammingError, connection, transaction

Sql = tuple[str, list]

MAX_PER_CONNECTION = 200

# Per driver connection (server session): the names prepared on it, least recently used first.
_sessions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Statement texts the server refused to prepare (by name); they run as plain SQL.
_unpreparable: set[str] = set()
_PLACEHOLDER = re.compile(r"%[%s]")


def statement_name(sql: str) -> str:
    return "p_" + hashlib.sha1(sql.encode(), usedforsecurity=False).hexdigest()[:20]


def numbered(sql: str) -> str:
    """`sql` (a DB-API format string: %s placeholders, %% for a literal %) with $1, $2 ... for PREPARE."""
    counter = iter(range(1, 1 << 30))
    return _PLACEHOLDER.sub(lambda match: "%" if match.group() == "%%" else f"${next(counter)}", sql)


def uses_prepared() -> bool:
    """Whether statements are prepared on this connection (PostgreSQL, persistent connections)."""
    return connection.vendor == "postgresql" and bool(connection.settings_dict.get("CONN_MAX_AGE"))


def execute(cursor, statements: list[Sql]) -> None:
    """Send `statements` in one round trip (one implicit transaction outside a caller's); read their
    results with fetchone() and nextset(), in order.

    Each is prepared the first time this connection sees it (one round trip more, once per connection
    and statement) when `uses_prepared()`; otherwise they go as plain SQL.
    """
    if not uses_prepared():
        _execute_plain(cursor, statements)
        return
    try:
        _execute_prepared(cursor, statements)
    except ProgrammingError as exc:
        if not isinstance(exc.__cause__, psycopg.errors.InvalidSqlStatementName):
            raise
        _sessions.pop(connection.connection, None)
        if connection.in_atomic_block:
            raise
        _execute_prepared(cursor, statements)


def _execute_plain(cursor, statements: list[Sql]) -> None:
    cursor.execute(";\n".join(sql for sql, _ in statements), [p for _, params in statements for p in params])


def _execute_prepared(cursor, statements: list[Sql]) -> None:
    names = [_prepared_name(cursor, sql) for sql, _ in statements]
    calls = [
        sql if name is None else f"EXECUTE {name}({', '.join(['%s'] * len(params))})" if params else f"EXECUTE {name}"
        for name, (sql, params) in zip(names, statements, strict=True)
    ]
    cursor.execute(";\n".join(calls), [param for _, params in statements for param in params])


def _prepared_name(cursor, sql: str) -> str | None:
    """The name `sql` is prepared under on this connection (prepared now if needed); None: send it plain."""
    name = statement_name(sql)
    if name in _unpreparable:
        return None
    raw = connection.connection
    session = _sessions.get(raw)
    if session is None:
        session = _sessions[raw] = OrderedDict()
    if name in session:
        session.move_to_end(name)
        return name
    evicted = []
    while len(session) >= MAX_PER_CONNECTION:
        evicted.append(session.popitem(last=False)[0])
    statement = "".join(f"DEALLOCATE {old};\n" for old in evicted) + f"PREPARE {name} AS {numbered(sql)}"
    try:
        if connection.in_atomic_block:
            # In a caller's transaction, a refused PREPARE must not break it: a savepoint (two round trips
            # more, once per connection and statement). PREPARE is not undone by a rollback.
            with transaction.atomic(using=connection.alias):
                cursor.execute(statement)
        else:
            cursor.execute(statement)
    except ProgrammingError as exc:
        # A dropped session statement (the DEALLOCATE) is execute()'s to handle.
        if isinstance(exc.__cause__, psycopg.errors.InvalidSqlStatementName):
            raise
        if len(_unpreparable) > 10_000:
            _unpreparable.clear()
        _unpreparable.add(name)
        return None
    session[name] = None
    return name
