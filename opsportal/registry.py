"""The app registry: what each product app contributes to the portal, declared in its AppConfig.

The core never imports an app. (An app's apps.py imports this module, not the class, so that Django
finds exactly one AppConfig in it.) A product app's `AppConfig` subclasses `PortalApp` and
declares its pages, API, navigation entry and colour, and implements `summary()` (its
card on the overview) and `seed_demo()` (its demo data). The overview, `seed_demo`, the
navigation bar, the URL configuration and the API root iterate over `portal_apps()`, so
removing an app from `INSTALLED_APPS` leaves a working portal without it.

    class AIOpsConfig(registry.PortalApp):
        name = "aiops"
        verbose_name = "AIOps"
        order = 10
        urls = "aiops.urls"
        api_urls = "aiops.api.urls"

        def summary(self, *, with_charts: bool) -> AppSummary:
            from .services import overview  # services import models: not before the registry is ready
            return overview(with_charts=with_charts)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from django.apps import AppConfig, apps

if TYPE_CHECKING:
    import datetime

    from django.contrib.auth.models import User

    from opsportal.portal.changes import Change
    from opsportal.portal.summary import AppSummary


class PortalApp(AppConfig):
    """A product app of the portal (AIOps, MLOps, LLMOps ...) and what it contributes.

    - `urls`: the module of its pages, mounted at `/<label>/` under the namespace `<label>`,
      whose `index` URL the navigation bar links to;
    - `api_urls`: the module of its REST API, mounted at `/api/v1/<label>/` (namespace `api:<label>`),
      whose `root` URL the API root lists;
    - `extra_urls`: other (prefix, module) mounts, e.g. the MLflow-compatible API at `mlflow/`;
    - `order`: its place in the navigation bar and on the overview; `colour`: its colour in charts.
    """

    order: int = 100
    colour: str = "#6c757d"
    urls: str = ""
    api_urls: str = ""
    extra_urls: tuple[tuple[str, str], ...] = ()

    @property
    def nav_label(self) -> str:
        return str(self.verbose_name)

    def summary(self, *, with_charts: bool) -> AppSummary:
        """The app's card on the overview: headline figures, charts and recent items."""
        raise NotImplementedError(f"{self.label} must say what its overview card shows")

    def seed_demo(self, *, users: Mapping[str, User]) -> str:
        """Load the app's demo data if it is not there yet; says what happened, in a few words.

        `users` are the demo users by username (see `seed_demo`'s DEMO_USERS).
        """
        return "no demo data"

    def recent_changes(self, *, start: datetime.datetime, end: datetime.datetime, limit: int) -> list[Change]:
        """What people (or the app) changed in [start, end], newest first, at most `limit`.

        Shown in the context panel of incidents that opened in that window (model promotions, prompt
        label moves, rule and silence edits ...), each linking to its page. One query, no N+1.
        """
        return []


def portal_apps() -> list[PortalApp]:
    """The installed product apps, in navigation order."""
    found = [config for config in apps.get_app_configs() if isinstance(config, PortalApp)]
    return sorted(found, key=lambda config: (config.order, config.label))


def app_colours() -> dict[str, str]:
    """Each product app's chart colour by app label."""
    return {config.label: config.colour for config in portal_apps()}
