from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "opsportal.accounts"
    label = "accounts"
    verbose_name = "Accounts and API tokens"

    def ready(self) -> None:
        from . import (
            schema,  # noqa: F401  (registers the token scheme with drf-spectacular)
            signals,  # noqa: F401  (connects login/logout auditing)
        )
