from django.apps import AppConfig


class LLMOpsConfig(AppConfig):
    name = "llmops"
    verbose_name = "LLMOps"
