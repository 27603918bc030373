"""The token look-up of every API request: one statement that also checks the connection, same answers."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import Group
from django.db import close_old_connections, connection
from django.utils import timezone
from rest_framework.test import APIClient

from opsportal.accounts.models import ApiToken

from .factories import make_token


def get_me(raw: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client.get("/api/v1/accounts/me/")


@pytest.mark.django_db
def test_the_role_comes_with_the_token(viewer, operator, admin_user):
    for user, role in ((viewer, "viewer"), (operator, "operator"), (admin_user, "admin")):
        assert get_me(make_token(user)).json()["role"] == role
    # A group that is not a role gives none; the highest role group wins.
    viewer.groups.add(Group.objects.create(name="not-a-role"), Group.objects.get(name="operator"))
    assert get_me(make_token(viewer)).json()["role"] == "operator"


@pytest.mark.django_db
def test_a_roleless_user_is_refused_and_an_expired_token_is_unknown(viewer):
    raw = make_token(viewer)
    viewer.groups.clear()
    assert get_me(raw).status_code == 403
    ApiToken.objects.filter(user=viewer).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    assert get_me(raw).status_code == 401


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the combined look-up is PostgreSQL's")
def test_a_dead_database_connection_is_replaced_not_answered_with_500(viewer):
    raw = make_token(viewer)
    assert get_me(raw).status_code == 200
    # The server side of a kept connection goes away between two requests (a restart, an idle timeout).
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    connection.connection.close()
    # What a server's request_started signal does before each request (the test client leaves it out).
    close_old_connections()
    assert get_me(raw).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the prepared look-up is PostgreSQL's")
def test_a_dropped_prepared_look_up_is_prepared_again_and_revocation_still_counts(viewer):
    raw = make_token(viewer)
    assert get_me(raw).status_code == 200
    # Something resets the session's prepared statements (a pooler's DISCARD ALL, a DBA's DEALLOCATE).
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    assert get_me(raw).status_code == 200
    assert get_me(raw).status_code == 200
    # The prepared statement reads the token's row every time: a revoke refuses the very next request.
    ApiToken.objects.filter(user=viewer).update(revoked_at=timezone.now())
    assert get_me(raw).status_code == 401
