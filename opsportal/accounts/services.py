"""Every write to users, roles and API tokens goes through here (and is audited)."""

from __future__ import annotations

import datetime

from django.contrib.auth.models import AnonymousUser, Group, User
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.utils import timezone

from opsportal.audit import services as audit

from .models import ApiToken, hash_token, new_raw_token
from .roles import ROLE_GROUPS, Role, role_of

USER_FIELDS = ("username", "email", "first_name", "last_name", "is_active")


def _user_state(user: User) -> dict:
    state = audit.snapshot(user, USER_FIELDS)
    role = role_of(user) if user.pk else None
    state["role"] = role.group_name if role else None
    return state


def _set_role(user: User, role: Role) -> None:
    user.groups.remove(*Group.objects.filter(name__in=ROLE_GROUPS))
    user.groups.add(Group.objects.get_or_create(name=role.group_name)[0])
    if hasattr(user, "_opsportal_role"):
        del user._opsportal_role


@transaction.atomic
def create_user(
    *,
    username: str,
    role: Role,
    actor: User | AnonymousUser | None,
    email: str = "",
    password: str | None = None,
    first_name: str = "",
    last_name: str = "",
) -> User:
    """Create an account with a role. Without a password the account cannot log in until one is set."""
    user = User(username=username, email=email, first_name=first_name, last_name=last_name)
    if password:
        validate_password(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    _set_role(user, role)
    audit.record(action=audit.Action.CREATE, actor=actor, obj=user, changes=audit.diff({}, _user_state(user)))
    return user


@transaction.atomic
def update_user(
    *,
    user: User,
    actor: User | AnonymousUser | None,
    role: Role | None = None,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    is_active: bool | None = None,
) -> User:
    """Change profile fields, role or active flag; records what changed."""
    demoting = is_active is False or (role is not None and role < Role.ADMIN)
    if actor is not None and actor.pk == user.pk and demoting and role_of(user) == Role.ADMIN:
        raise ValueError("You cannot remove your own admin role or deactivate yourself.")
    before = _user_state(user)
    for field, value in (
        ("email", email),
        ("first_name", first_name),
        ("last_name", last_name),
        ("is_active", is_active),
    ):
        if value is not None:
            setattr(user, field, value)
    user.save()
    if role is not None:
        _set_role(user, role)
    changes = audit.diff(before, _user_state(user))
    if changes:
        audit.record(action=audit.Action.UPDATE, actor=actor, obj=user, changes=changes)
    return user


@transaction.atomic
def set_password(*, user: User, password: str, actor: User | AnonymousUser | None) -> None:
    validate_password(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    audit.record(action=audit.Action.UPDATE, actor=actor, obj=user, changes={"password": ["***", "*** (changed)"]})


@transaction.atomic
def create_api_token(
    *,
    user: User,
    name: str,
    actor: User | AnonymousUser | None,
    expires_at: datetime.datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the raw token, which is never retrievable again."""
    name = name.strip()
    if not name:
        raise ValueError("A token needs a name, e.g. the script or host that will use it.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValueError("The expiry date must be in the future.")
    raw = new_raw_token()
    token = ApiToken.objects.create(
        user=user, name=name, token_hash=hash_token(raw), prefix=raw[:10], expires_at=expires_at
    )
    audit.record(
        action=audit.Action.TOKEN_CREATED,
        actor=actor,
        obj=token,
        changes={"name": [None, name], "user": [None, user.get_username()]},
    )
    return token, raw


@transaction.atomic
def revoke_api_token(*, token: ApiToken, actor: User | AnonymousUser | None) -> ApiToken:
    """Revoke a token; revoking twice is harmless and records nothing the second time."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit.record(
            action=audit.Action.TOKEN_REVOKED, actor=actor, obj=token, changes={"status": ["active", "revoked"]}
        )
    return token
