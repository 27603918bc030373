"""DRF permission class deciding access by role (see roles.py)."""

from __future__ import annotations

from rest_framework import permissions

from .roles import Role, has_role


class RolePermission(permissions.BasePermission):
    """Reads need the viewer role, writes the operator role, unless the view says otherwise.

    A view may set `required_role` (every method), `read_role` / `write_role`, or
    `action_roles = {"approve": Role.ADMIN}` for individual viewset actions.
    """

    message = "Your role does not allow this."

    def required(self, request, view) -> Role:
        action = getattr(view, "action", None)
        action_roles = getattr(view, "action_roles", {})
        if action in action_roles:
            return action_roles[action]
        if getattr(view, "required_role", None) is not None:
            return view.required_role
        if request.method in permissions.SAFE_METHODS:
            return getattr(view, "read_role", Role.VIEWER)
        return getattr(view, "write_role", Role.OPERATOR)

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        role = self.required(request, view)
        if not has_role(request.user, role):
            self.message = f"This needs the {role.label.lower()} role."
            return False
        return True
