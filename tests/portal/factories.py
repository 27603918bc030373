from __future__ import annotations

import factory
from django.contrib.auth.models import Group, User

from opsportal.accounts import services
from opsportal.accounts.roles import Role

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    """A user with a role (viewer by default) and the password PASSWORD."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def role(self, create: bool, extracted: Role | None, **kwargs) -> None:
        self.save()
        role = extracted if extracted is not None else Role.VIEWER
        if role:
            self.groups.add(Group.objects.get_or_create(name=role.group_name)[0])


def make_token(user: User, name: str = "test") -> str:
    """A real API token for `user`, created through the service."""
    _token, raw = services.create_api_token(user=user, name=name, actor=user)
    return raw
