"""viewer < operator < admin, decided in one place for pages and the API."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from opsportal.accounts.roles import Role, has_role, role_of

from .factories import UserFactory

pytestmark = pytest.mark.django_db


def test_roles_include_the_ones_below(viewer, operator, admin_user):
    assert has_role(admin_user, Role.OPERATOR) and has_role(admin_user, Role.VIEWER)
    assert has_role(operator, Role.VIEWER) and not has_role(operator, Role.ADMIN)
    assert not has_role(viewer, Role.OPERATOR)


def test_superuser_is_admin_and_inactive_user_has_no_role():
    root = User.objects.create_superuser("root", "root@example.com", "x-long-password-1")
    assert role_of(root) == Role.ADMIN
    gone = UserFactory(role=Role.ADMIN, is_active=False)
    assert role_of(gone) is None


def test_the_groups_exist_after_migrations():
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= {"viewer", "operator", "admin"}


@pytest.mark.parametrize(("fixture", "status"), [("viewer", 403), ("operator", 403), ("admin_user", 200)])
def test_only_admins_manage_users_in_the_ui(client, request, fixture, status):
    client.force_login(request.getfixturevalue(fixture))
    assert client.get("/accounts/users/").status_code == status
    assert client.get("/accounts/users/new/").status_code == status


def test_admin_creates_a_user_and_changes_their_role_in_the_ui(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/accounts/users/new/",
        {"username": "newbie", "email": "n@example.com", "role": "viewer", "password": "a-Strong-passphrase-9"},
    )
    assert response.status_code == 302
    newbie = User.objects.get(username="newbie")
    assert role_of(newbie) == Role.VIEWER
    assert newbie.check_password("a-Strong-passphrase-9")

    response = client.post(
        f"/accounts/users/{newbie.pk}/",
        {"email": "n@example.com", "role": "operator", "is_active": "on", "first_name": "", "last_name": ""},
    )
    assert response.status_code == 302
    assert role_of(User.objects.get(pk=newbie.pk)) == Role.OPERATOR
    listing = client.get("/accounts/users/")
    assert b"newbie" in listing.content and b"Operator" in listing.content


def test_user_form_names_the_problem(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/accounts/users/new/", {"username": "ada", "role": "viewer"})
    assert response.status_code == 400
    assert b"already exists" in response.content
    response = client.post("/accounts/users/new/", {"username": "weak", "role": "viewer", "password": "123"})
    assert response.status_code == 400
    assert b"too short" in response.content
    assert not User.objects.filter(username="weak").exists()


def test_admin_cannot_demote_themselves(client, admin_user):
    client.force_login(admin_user)
    response = client.post(f"/accounts/users/{admin_user.pk}/", {"role": "viewer", "is_active": "on"})
    assert response.status_code == 400
    assert b"cannot remove your own admin role" in response.content
    assert role_of(User.objects.get(pk=admin_user.pk)) == Role.ADMIN


def test_api_user_management_needs_admin(viewer_api, operator_api, admin_api):
    assert viewer_api.get("/api/v1/accounts/users/").status_code == 403
    denied = operator_api.post("/api/v1/accounts/users/", {"username": "x", "role": "viewer"}, format="json")
    assert denied.status_code == 403
    assert "admin role" in denied.json()["detail"]
    created = admin_api.post("/api/v1/accounts/users/", {"username": "api-made", "role": "operator"}, format="json")
    assert created.status_code == 201
    assert created.json()["role"] == "operator"
    patched = admin_api.patch(f"/api/v1/accounts/users/{created.json()['id']}/", {"role": "admin"}, format="json")
    assert patched.json()["role"] == "admin"


def test_api_rejects_an_unknown_role(admin_api):
    response = admin_api.post("/api/v1/accounts/users/", {"username": "r", "role": "god"}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("role:")
    assert not User.objects.filter(username="r").exists()


def test_navigation_shows_admin_entries_only_to_admins(client, viewer, admin_user):
    client.force_login(viewer)
    assert b"Users &amp; roles" not in client.get("/").content
    client.force_login(admin_user)
    assert b"Users &amp; roles" in client.get("/").content
