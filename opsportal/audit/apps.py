from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "opsportal.audit"
    label = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (mirrors Django admin changes into the audit log)
