"""Pages that manage metric collection: scrape targets, Prometheus-compatible sources and watched
queries, threshold rules (under /aiops/metrics/, names in the aiops namespace)."""

from django.urls import path

from .views import metric_targets

urlpatterns = [
    path("targets/", metric_targets.metric_targets, name="metric_targets"),
    path("targets/new/", metric_targets.metric_target_edit, name="metric_target_new"),
    path("targets/<int:pk>/", metric_targets.metric_target, name="metric_target"),
    path("targets/<int:pk>/edit/", metric_targets.metric_target_edit, name="metric_target_edit"),
    path("targets/<int:pk>/<slug:action>/", metric_targets.metric_target_action, name="metric_target_action"),
]
