from django.apps import AppConfig


class AIOpsConfig(AppConfig):
    name = "aiops"
    verbose_name = "AIOps"
