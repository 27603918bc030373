"""Anomaly monitor pages (under /aiops/metrics/anomalies/; names in the aiops namespace, `metric_anomal...`)."""

from django.urls import path

from .views import anomalies

urlpatterns = [
    path("", anomalies.metric_anomalies, name="metric_anomalies"),
    path("new/", anomalies.metric_anomaly_edit, name="metric_anomaly_new"),
    path("<int:pk>/", anomalies.metric_anomaly_monitor, name="metric_anomaly_monitor"),
    path("<int:pk>/edit/", anomalies.metric_anomaly_edit, name="metric_anomaly_edit"),
    path("<int:pk>/delete/", anomalies.metric_anomaly_delete, name="metric_anomaly_delete"),
    path("<int:pk>/<slug:action>/", anomalies.metric_anomaly_action, name="metric_anomaly_action"),
    path("anomaly/<int:pk>/<slug:feedback>/", anomalies.metric_anomaly_feedback, name="metric_anomaly_feedback"),
]
