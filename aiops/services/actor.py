"""Who did something: a signed-in user, or nobody (a sender, a worker, another app)."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User

Actor = User | AnonymousUser | None


def user_of(actor: Actor) -> User | None:
    """The user to store as the one who did it; None for the system."""
    return actor if actor is not None and actor.is_authenticated else None


def actor_name(actor: Actor) -> str:
    return actor.get_username() if actor is not None and actor.is_authenticated else "system"
