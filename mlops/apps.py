from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from opsportal import registry

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from opsportal.portal.summary import AppSummary


class MLOpsConfig(registry.PortalApp):
    """The model registry, with its MLflow-compatible API."""

    name = "mlops"
    verbose_name = "MLOps"
    order = 20
    colour = "#0d6efd"
    urls = "mlops.urls"
    api_urls = "mlops.api.urls"
    extra_urls = (("mlflow/", "mlops.mlflow_api.urls"),)

    def summary(self, *, with_charts: bool) -> AppSummary:
        # Services import models, which exist only once the registry is ready: imported here, not above.
        from .services import overview

        return overview(with_charts=with_charts)

    def seed_demo(self, *, users: Mapping[str, User]) -> str:
        from .demo import seed

        created = seed(scientist=users["datasci"], admin=users["mllead"])
        return f"MLOps demo registry {'created' if created else 'already there'}"
