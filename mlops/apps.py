from django.apps import AppConfig


class MLOpsConfig(AppConfig):
    name = "mlops"
    verbose_name = "MLOps"
