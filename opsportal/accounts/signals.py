"""Audit logins, logouts and failed logins; start a new auth generation when tokens, users or roles change."""

from django.contrib.auth.models import Group, User
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from opsportal.audit import services as audit

from . import token_cache
from .models import ApiToken


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs) -> None:
    audit.record(action=audit.Action.LOGIN, actor=user, obj=user)


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit.record(action=audit.Action.LOGOUT, actor=user, obj=user)


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get("username", ""))[:150]
    audit.record(
        action=audit.Action.LOGIN_FAILED,
        actor=None,
        actor_name=username,
        app_label="auth",
        model="user",
        object_repr=username,
        message="Wrong username or password.",
    )


# Whatever can make a token invalid or change what it may do starts a new auth generation once it
# commits, so every worker looks its cached tokens up again (token_cache).
def _auth_changed(sender, **kwargs) -> None:
    update_fields = kwargs.get("update_fields")
    if update_fields is not None and set(update_fields) <= {"last_login", "last_used_at"}:
        return
    token_cache.bump_on_commit()


def _auth_relation_changed(sender, action, **kwargs) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        token_cache.bump_on_commit()


for _model in (User, Group, ApiToken):
    post_save.connect(_auth_changed, sender=_model, dispatch_uid=f"token-cache-save-{_model.__name__}")
    post_delete.connect(_auth_changed, sender=_model, dispatch_uid=f"token-cache-delete-{_model.__name__}")
for _through in (User.groups.through, User.user_permissions.through, Group.permissions.through):
    m2m_changed.connect(_auth_relation_changed, sender=_through, dispatch_uid=f"token-cache-m2m-{_through.__name__}")
