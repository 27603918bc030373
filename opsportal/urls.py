from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from opsportal.accounts.api.views import ApiTokenViewSet, MeView, UserViewSet
from opsportal.audit.api.views import AuditEntryViewSet
from opsportal.portal.api_views import ApiRoot
from opsportal.registry import portal_apps
from opsportal.system import views as system_views
from opsportal.system.api.views import SystemStatusView

router = SimpleRouter()
router.register("accounts/users", UserViewSet, basename="user")
router.register("accounts/tokens", ApiTokenViewSet, basename="token")
router.register("audit/entries", AuditEntryViewSet, basename="auditentry")

api_v1 = [
    path("", ApiRoot.as_view(), name="root"),
    path("accounts/me/", MeView.as_view(), name="me"),
    path("system/status/", SystemStatusView.as_view(), name="system-status"),
    *(path(f"{app.label}/", include(app.api_urls)) for app in portal_apps() if app.api_urls),
    *router.urls,
]

admin.site.site_header = "OpsPortal administration"
admin.site.site_title = "OpsPortal admin"

urlpatterns = [
    path("", include("opsportal.portal.urls")),
    path("accounts/", include("opsportal.accounts.urls")),
    path("audit/", include("opsportal.audit.urls")),
    path("system/", include("opsportal.system.urls")),
    *(path(f"{app.label}/", include(app.urls)) for app in portal_apps() if app.urls),
    *(path(prefix, include(module)) for app in portal_apps() for prefix, module in app.extra_urls),
    path("api/v1/", include((api_v1, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("healthz", system_views.healthz, name="healthz"),
    path("readyz", system_views.readyz, name="readyz"),
    path("metrics", system_views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
]
