from django.urls import path
from rest_framework.routers import SimpleRouter

from opsportal.portal.api_views import AppApiRoot

from . import anomalies, checks, forecasts, logs, metrics, runbooks, views
from .context import IncidentContextView
from .ingest import ingest
from .status_pages import StatusPageViewSet

app_name = "aiops"

router = SimpleRouter(trailing_slash=True)
router.register("integrations", views.IntegrationViewSet, basename="integration")
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("incidents", views.IncidentViewSet, basename="incident")
router.register("silences", views.SilenceViewSet, basename="silence")
router.register("rules", views.CorrelationRuleViewSet, basename="rule")
router.register("channels", views.NotificationChannelViewSet, basename="channel")
router.register("checks", checks.CheckViewSet, basename="check")
router.register("status-pages", StatusPageViewSet, basename="status-page")
router.register("forecasts", forecasts.CapacityForecastViewSet, basename="forecast")
router.register("anomalies/monitors", anomalies.AnomalyMonitorViewSet, basename="anomaly-monitor")
router.register("anomalies", anomalies.AnomalyViewSet, basename="anomaly")
router.register("runbooks", runbooks.RunbookViewSet, basename="runbook")
router.register("logs", logs.LogRecordViewSet, basename="log-record")
router.register("log-patterns", logs.LogPatternViewSet, basename="log-pattern")
for prefix, viewset, basename in metrics.ROUTES:
    router.register(prefix, viewset, basename=basename)

urlpatterns = [
    path("", AppApiRoot.as_view(router=router, app_namespace="api:aiops"), name="root"),
    path("ingest/<int:integration_id>/", ingest, name="ingest"),
    path("otlp/v1/logs", logs.otlp_logs, name="otlp-logs"),
    path("logs/ingest/", logs.json_lines, name="log-ingest"),
    path("incidents/<int:pk>/context/", IncidentContextView.as_view(), name="incident-context"),
    *router.urls,
    *metrics.prometheus_urls(),
]
