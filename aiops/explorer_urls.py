"""The metric explorer's pages (under /aiops/metrics/, names in the aiops namespace)."""

from django.urls import path

from .views import explorer

urlpatterns = [
    path("", explorer.metric_explorer, name="metric_explorer"),
    path("explorer/data/", explorer.metric_explorer_data, name="metric_explorer_data"),
    path("explorer/picker/", explorer.metric_explorer_picker, name="metric_explorer_picker"),
]
