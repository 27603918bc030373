from django.http import HttpRequest
from django.urls import reverse

from opsportal.registry import portal_apps


def navigation(request: HttpRequest) -> dict:
    """The product apps' entries in the navigation bar: (namespace, label, URL), in the registry's order."""
    return {"nav_apps": [(app.label, app.nav_label, reverse(f"{app.label}:index")) for app in portal_apps()]}
