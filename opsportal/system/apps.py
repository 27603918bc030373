from django.apps import AppConfig


class SystemConfig(AppConfig):
    name = "opsportal.system"
    label = "system"
    verbose_name = "System: workers, queues, health"
