from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from opsportal import registry

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from opsportal.portal.summary import AppSummary


class LLMOpsConfig(registry.PortalApp):
    """Prompts, datasets and evaluation runs."""

    name = "llmops"
    verbose_name = "LLMOps"
    order = 30
    colour = "#6f42c1"
    urls = "llmops.urls"
    api_urls = "llmops.api.urls"

    def summary(self, *, with_charts: bool) -> AppSummary:
        # Services import models, which exist only once the registry is ready: imported here, not above.
        from .services import overview

        return overview(with_charts=with_charts)

    def seed_demo(self, *, users: Mapping[str, User]) -> str:
        from .demo import seed

        created = seed(author=users["promptdev"], admin=users["mllead"])
        return f"LLMOps demo data {'created' if created else 'already there'}"
