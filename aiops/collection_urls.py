"""Pages that manage metric collection: scrape targets, Prometheus-compatible sources and watched
queries (under /aiops/metrics/, names in the aiops namespace; threshold rules have their own module)."""

from django.urls import path

from .views import metric_sources, metric_targets

urlpatterns = [
    path("targets/", metric_targets.metric_targets, name="metric_targets"),
    path("targets/new/", metric_targets.metric_target_edit, name="metric_target_new"),
    path("targets/<int:pk>/", metric_targets.metric_target, name="metric_target"),
    path("targets/<int:pk>/edit/", metric_targets.metric_target_edit, name="metric_target_edit"),
    path("targets/<int:pk>/<slug:action>/", metric_targets.metric_target_action, name="metric_target_action"),
    path("sources/", metric_sources.metric_sources, name="metric_sources"),
    path("sources/new/", metric_sources.metric_source_edit, name="metric_source_new"),
    path("sources/<int:pk>/", metric_sources.metric_source, name="metric_source"),
    path("sources/<int:pk>/edit/", metric_sources.metric_source_edit, name="metric_source_edit"),
    path("sources/<int:source_pk>/queries/new/", metric_sources.metric_query_edit, name="metric_query_new"),
    path("sources/<int:pk>/<slug:action>/", metric_sources.metric_source_action, name="metric_source_action"),
    path("queries/<int:pk>/", metric_sources.metric_query, name="metric_query"),
    path("queries/<int:pk>/edit/", metric_sources.metric_query_edit, name="metric_query_edit"),
    path("queries/<int:pk>/<slug:action>/", metric_sources.metric_query_action, name="metric_query_action"),
]
