"""Audit logins, logouts and failed logins."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from opsportal.audit import services as audit


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
