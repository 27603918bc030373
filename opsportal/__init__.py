"""OpsPortal: AIOps, MLOps and LLMOps in one Django portal."""

from .celery import app as celery_app

__all__ = ("celery_app",)
