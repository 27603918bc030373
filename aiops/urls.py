from django.urls import include, path

from . import views
from .views import checks, context, status_pages

app_name = "aiops"

urlpatterns = [
    path("", views.incident_list, name="index"),
    path("incidents/bulk/", views.incident_bulk, name="incident_bulk"),
    path("incidents/<int:pk>/", views.incident_detail, name="incident"),
    path("incidents/<int:pk>/context/", context.incident_context_panel, name="incident_context"),
    path("incidents/<int:pk>/<slug:action>/", views.incident_action, name="incident_action"),
    path("analytics/", views.analytics, name="analytics"),
    path("alerts/", views.alert_list, name="alerts"),
    path("alerts/<int:pk>/", views.alert_detail, name="alert"),
    path("integrations/", views.integration_list, name="integrations"),
    path("integrations/<int:pk>/", views.integration_detail, name="integration"),
    path("integrations/<int:pk>/<slug:action>/", views.integration_action, name="integration_action"),
    path("silences/", views.silence_list, name="silences"),
    path("silences/<int:pk>/expire/", views.silence_expire, name="silence_expire"),
    path("rules/", views.rule_list, name="rules"),
    path("rules/new/", views.rule_edit, name="rule_new"),
    path("rules/<int:pk>/", views.rule_edit, name="rule_edit"),
    path("channels/", views.channel_list, name="channels"),
    path("channels/<int:pk>/delete/", views.channel_delete, name="channel_delete"),
    path("routes/<int:pk>/delete/", views.route_delete, name="route_delete"),
    path("checks/", checks.check_list, name="checks"),
    path("checks/new/", checks.check_edit, name="check_new"),
    path("checks/bulk/", checks.check_bulk, name="check_bulk"),
    path("checks/<int:pk>/", checks.check_detail, name="check"),
    path("checks/<int:pk>/edit/", checks.check_edit, name="check_edit"),
    path("checks/<int:pk>/<slug:action>/", checks.check_action, name="check_action"),
    path("status-pages/", status_pages.status_page_list, name="status_pages"),
    path("status-pages/new/", status_pages.status_page_edit, name="status_page_new"),
    path("status-pages/<int:pk>/", status_pages.status_page_edit, name="status_page_edit"),
    path("status-pages/<int:pk>/delete/", status_pages.status_page_delete, name="status_page_delete"),
    # Metric collection pages (their own URL modules, in this namespace): the explorer, and targets,
    # Prometheus-compatible sources with their watched queries, and threshold rules.
    path("metrics/", include("aiops.explorer_urls")),
    path("metrics/", include("aiops.collection_urls")),
    path("metrics/forecasts/", include("aiops.forecast_urls")),
    path("metrics/thresholds/", include("aiops.threshold_urls")),
    path("metrics/anomalies/", include("aiops.anomaly_urls")),
    path("suggestions/", include("aiops.suggestion_urls")),
    path("runbooks/", include("aiops.runbook_urls")),
    path("logs/", include("aiops.log_urls")),
]
