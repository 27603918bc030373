"""Prepared statements (opsportal.prepared): the same answers as plain SQL, each statement prepared once per
connection, at most MAX_PER_CONNECTION of them, and nothing lost when the session's statements vanish."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection

from opsportal import prepared

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="server-side prepared statements are PostgreSQL's"),
]


def answer(sql: str, params: list) -> tuple:
    with connection.cursor() as cursor:
        prepared.execute(cursor, [(sql, params)])
        return cursor.fetchone()


def session_statements() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {name for (name,) in cursor.fetchall()}


@pytest.fixture(autouse=True)
def _persistent_connection() -> Iterator[None]:
    # Statements are prepared on persistent connections only (a connection per request would pay a round trip).
    before = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = 600
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    prepared._sessions.pop(connection.connection, None)
    yield
    connection.settings_dict["CONN_MAX_AGE"] = before


def test_a_statement_is_prepared_once_and_answers_as_plain_sql():
    sql = "SELECT %s::int + 1, upper(%s::text), 'a%%b'"
    assert answer(sql, [41, "x"]) == (42, "X", "a%b")
    assert answer(sql, [1, "y"]) == (2, "Y", "a%b")
    assert session_statements() == {prepared.statement_name(sql)}


def test_statements_sent_together_are_read_in_order():
    with connection.cursor() as cursor:
        prepared.execute(cursor, [("SELECT %s::int * 2", [21]), ("SELECT %s::text || '!'", ["hi"])])
        first = cursor.fetchone()
        cursor.nextset()
        second = cursor.fetchone()
    assert (first, second) == ((42,), ("hi!",))
    assert len(session_statements()) == 2


def test_at_most_the_cap_stay_prepared_least_recently_used_first_out(monkeypatch):
    monkeypatch.setattr(prepared, "MAX_PER_CONNECTION", 3)
    shapes = [f"SELECT %s::int + {n}" for n in range(5)]
    for n, sql in enumerate(shapes):
        assert answer(sql, [10]) == (10 + n,)
    assert session_statements() == {prepared.statement_name(sql) for sql in shapes[2:]}
    assert answer(shapes[2], [0]) == (2,)  # used again: now the most recent
    assert answer(shapes[0], [0]) == (0,)  # prepared again, evicting shapes[3]
    assert session_statements() == {prepared.statement_name(sql) for sql in (shapes[0], shapes[2], shapes[4])}


@pytest.mark.django_db(transaction=True)
def test_statements_dropped_behind_our_back_are_prepared_again():
    sql = "SELECT %s::int * 3"
    assert answer(sql, [2]) == (6,)
    with connection.cursor() as cursor:
        cursor.execute("DISCARD ALL")
    assert answer(sql, [3]) == (9,)
    assert session_statements() == {prepared.statement_name(sql)}


def test_a_statement_the_server_cannot_prepare_runs_as_plain_sql():
    """Here inside the test's transaction, which the refused PREPARE leaves usable."""
    assert connection.in_atomic_block
    sql = "SELECT 7 WHERE %s IS NULL"
    assert answer(sql, [None]) == (7,)
    assert answer(sql, [None]) == (7,)
    assert session_statements() == set()


def test_without_persistent_connections_nothing_is_prepared():
    connection.settings_dict["CONN_MAX_AGE"] = 0
    assert answer("SELECT %s::int", [5]) == (5,)
    assert session_statements() == set()
