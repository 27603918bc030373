from django.http import HttpRequest

from .roles import Role, role_of


def roles(request: HttpRequest) -> dict:
    """The current user's role, for menus and buttons that only some roles see."""
    role = role_of(getattr(request, "user", None))
    return {
        "user_role": role,
        "is_viewer": role is not None,
        "is_operator": role is not None and role >= Role.OPERATOR,
        "is_admin": role is not None and role >= Role.ADMIN,
    }
