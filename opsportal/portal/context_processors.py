from django.http import HttpRequest
from django.urls import reverse

from opsportal.registry import portal_apps

# Pages outside the namespaces that still have their own entry in the navigation bar, by URL name.
SECTION_OF_URL_NAME = {"api-docs": "api-docs"}


def navigation(request: HttpRequest) -> dict:
    """The product apps' entries in the navigation bar: (namespace, label, URL), in the registry's order, and
    `nav_section`: the entry the page belongs to (its URL namespace, or its own entry such as the API docs)."""
    match = getattr(request, "resolver_match", None)
    section = (match.namespace or SECTION_OF_URL_NAME.get(match.url_name or "", "")) if match else ""
    return {
        "nav_apps": [(app.label, app.nav_label, reverse(f"{app.label}:index")) for app in portal_apps()],
        "nav_section": section,
    }
