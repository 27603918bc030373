"""Personal API tokens: created once, stored hashed, accepted as Bearer or Token, revocable."""

from __future__ import annotations

import datetime

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from opsportal.accounts import services
from opsportal.accounts.models import ApiToken
from opsportal.audit.models import AuditEntry

from .factories import make_token

pytestmark = pytest.mark.django_db


def get_me(raw: str, keyword: str = "Bearer"):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {raw}")
    return client.get("/api/v1/accounts/me/")


def test_bearer_and_token_keywords_are_both_accepted(viewer):
    raw = make_token(viewer)
    for keyword in ("Bearer", "Token", "bearer"):
        response = get_me(raw, keyword)
        assert response.status_code == 200, keyword
        assert response.json()["username"] == "vera"
        assert response.json()["role"] == "viewer"


def test_only_the_hash_is_stored(viewer):
    raw = make_token(viewer)
    token = ApiToken.objects.get(user=viewer)
    assert raw not in {token.token_hash, token.prefix, token.name}
    assert len(token.token_hash) == 64
    assert raw.startswith(token.prefix)


def test_bad_missing_revoked_and_expired_tokens_get_401(viewer):
    assert APIClient().get("/api/v1/accounts/me/").status_code == 401
    response = get_me("opp_not-a-real-token")
    assert response.status_code == 401
    assert "token" in response.json()["detail"].lower()

    raw = make_token(viewer)
    token = ApiToken.objects.get(user=viewer)
    services.revoke_api_token(token=token, actor=viewer)
    assert get_me(raw).status_code == 401

    token, raw = services.create_api_token(
        user=viewer, name="short", actor=viewer, expires_at=timezone.now() + datetime.timedelta(seconds=1)
    )
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    assert get_me(raw).status_code == 401


def test_deactivated_users_token_stops_working(viewer):
    raw = make_token(viewer)
    viewer.is_active = False
    viewer.save()
    assert get_me(raw).status_code == 401


def test_last_used_time_is_recorded(viewer):
    raw = make_token(viewer)
    assert ApiToken.objects.get(user=viewer).last_used_at is None
    get_me(raw)
    assert ApiToken.objects.get(user=viewer).last_used_at is not None


def test_profile_page_shows_a_new_token_once_and_it_works(client, viewer):
    client.force_login(viewer)
    response = client.post("/accounts/tokens/", {"name": "laptop script", "expires_in_days": "30"}, follow=True)
    assert response.redirect_chain == [("/accounts/profile/", 302)]
    raw = response.context["new_token"]
    assert raw.encode() in response.content
    assert get_me(raw).status_code == 200
    again = client.get("/accounts/profile/")
    assert raw.encode() not in again.content
    assert raw not in str(dict(client.session))
    assert b"laptop script" in again.content
    token = ApiToken.objects.get(name="laptop script")
    assert token.expires_at is not None


def test_profile_page_revokes_a_token(client, viewer):
    raw = make_token(viewer, name="old")
    client.force_login(viewer)
    token = ApiToken.objects.get(name="old")
    response = client.post(f"/accounts/tokens/{token.pk}/revoke/", follow=True)
    assert b"revoked" in response.content
    assert get_me(raw).status_code == 401
    assert AuditEntry.objects.filter(action="token_revoked", object_id=str(token.pk)).count() == 1


def test_cannot_revoke_someone_elses_token(client, viewer, operator):
    make_token(operator, name="theirs")
    client.force_login(viewer)
    token = ApiToken.objects.get(name="theirs")
    assert client.post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 404
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None


def test_api_creates_lists_and_revokes_own_tokens(viewer_api):
    created = viewer_api.post("/api/v1/accounts/tokens/", {"name": "ci"}, format="json")
    assert created.status_code == 201
    raw = created.json()["token"]
    assert get_me(raw).status_code == 200
    listing = viewer_api.get("/api/v1/accounts/tokens/").json()
    assert listing["count"] == 2
    assert all("token" not in row for row in listing["results"])
    revoked = viewer_api.delete(f"/api/v1/accounts/tokens/{created.json()['id']}/")
    assert revoked.json()["status"] == "revoked"
    assert get_me(raw).status_code == 401


def test_api_rejects_a_nameless_token(viewer_api):
    response = viewer_api.post("/api/v1/accounts/tokens/", {"name": ""}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("name:")


def test_management_command_prints_the_token_last(viewer, capsys):
    call_command("create_api_token", "vera", "--name", "deploy")
    out = capsys.readouterr().out.strip().splitlines()
    assert get_me(out[-1]).status_code == 200


def test_management_command_names_an_unknown_user(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("create_api_token", "ghost")
