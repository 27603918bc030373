"""Merge suggestions of learned correlation (under /aiops/suggestions/, names in the aiops namespace)."""

from django.urls import path

from .views import suggestions

urlpatterns = [
    path("incident/<int:pk>/", suggestions.suggestion_panel, name="suggestions"),
    path("<int:pk>/<slug:action>/", suggestions.suggestion_action, name="suggestion_action"),
]
