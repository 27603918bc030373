"""Threshold rule pages (under /aiops/metrics/thresholds/; names in the aiops namespace, `metric_threshold...`)."""

from django.urls import path

from .views import metric_thresholds

urlpatterns = [
    path("", metric_thresholds.metric_thresholds, name="metric_thresholds"),
    path("new/", metric_thresholds.metric_threshold_edit, name="metric_threshold_new"),
    path("preview/", metric_thresholds.metric_threshold_preview, name="metric_threshold_preview"),
    path("<int:pk>/", metric_thresholds.metric_threshold, name="metric_threshold"),
    path("<int:pk>/edit/", metric_thresholds.metric_threshold_edit, name="metric_threshold_edit"),
    path("<int:pk>/delete/", metric_thresholds.metric_threshold_delete, name="metric_threshold_delete"),
    path("<int:pk>/<slug:action>/", metric_thresholds.metric_threshold_action, name="metric_threshold_action"),
]
