from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "opsportal.accounts"
    label = "accounts"
    verbose_name = "Accounts and API tokens"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects login/logout auditing)
