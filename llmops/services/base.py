"""What every LLMOps service shares: the error classes, the actor, and the checks of names and numbers.

The errors are the core protocol's (`opsportal.errors`); the names LLMOps has always used stay as
aliases: `LLMOpsError` is any refusal, `NotFound` a missing row, `GateRefused` the release gate's 409.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django.contrib.auth.models import AnonymousUser, User

from opsportal.errors import Conflict, InvalidInput, NotAllowed, NotFound, ServiceError

Actor = User | AnonymousUser | None

LLMOpsError = ServiceError
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,199}$")

__all__ = ["Actor", "GateRefused", "InvalidInput", "LLMOpsError", "NotAllowed", "NotFound", "ServiceError"]


class GateRefused(Conflict):
    """Moving `production` is refused by the prompt's release gate (409, code "gate_refused")."""

    code = "gate_refused"


def user_of(actor: Actor) -> User | None:
    """The actor as the user a row records (None for the system or an anonymous caller)."""
    return actor if actor is not None and actor.is_authenticated else None


def clean_name(value: object, field: str = "name") -> str:
    """A prompt's or dataset's name: letters, digits and `_-./`, starting with a letter or digit."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("required", field=field)
    value = value.strip()
    if not NAME_RE.match(value):
        raise InvalidInput(f"{value!r} must start with a letter or digit and use letters, digits, '_', '-', '.', '/'",
                           field=field)  # fmt: skip
    return value


def clean_decimal(value: object, field: str) -> Decimal:
    """A price: a finite number, zero or more."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{value!r} is not a number", field=field) from None
    if number < 0 or not number.is_finite():
        raise InvalidInput("must be zero or more", field=field)
    return number
