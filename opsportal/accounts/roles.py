"""Roles and the one place that decides who may do what.

Roles are Django groups (created by a migration). Each role includes the ones
before it: viewer < operator < admin. Superusers are admins. Pages use
`role_required`, the API uses `opsportal.accounts.permissions.RolePermission`;
both call `has_role`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse


class Role(enum.IntEnum):
    """A role; a higher value includes every lower one."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def group_name(self) -> str:
        return self.name.lower()

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @classmethod
    def from_name(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown role {name!r}; choose viewer, operator or admin") from None

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        return [(role.group_name, role.label) for role in cls]


ROLE_GROUPS = [role.group_name for role in Role]


def role_of(user: User | AnonymousUser | None) -> Role | None:
    """The user's highest role, or None for anonymous, inactive or role-less users."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    cached = getattr(user, "_opsportal_role", False)
    if cached is not False:
        return cached
    if user.is_superuser:
        role: Role | None = Role.ADMIN
    else:
        names = {g.name for g in user.groups.all()} & set(ROLE_GROUPS)
        role = max((Role.from_name(n) for n in names), default=None)
    user._opsportal_role = role
    return role


def has_role(user: User | AnonymousUser | None, role: Role) -> bool:
    current = role_of(user)
    return current is not None and current >= role


def require_role(request: HttpRequest, role: Role, what: str) -> None:
    """Inside a view: refuse (403) unless the user has `role`; `what` names the action in the message."""
    if not has_role(request.user, role):
        raise PermissionDenied(f"{what} needs the {role.label.lower()} role.")


def role_required(role: Role) -> Callable:
    """Decorator for page views: login is enforced by middleware, this checks the role."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not has_role(request.user, role):
                raise PermissionDenied(f"This page needs the {role.label.lower()} role.")
            return view(request, *args, **kwargs)

        wrapped.required_role = role
        return wrapped

    return decorator
