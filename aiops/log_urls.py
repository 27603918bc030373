"""The log pages (under /aiops/logs/, names in the aiops namespace)."""

from django.urls import path

from .views import logs

urlpatterns = [
    path("", logs.log_search, name="logs"),
    path("patterns/", logs.log_patterns, name="log_patterns"),
    path("<int:pk>/", logs.log_record, name="log_record"),
]
