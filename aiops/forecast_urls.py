"""Capacity forecast pages (under /aiops/metrics/forecasts/; names in the aiops namespace, `metric_forecast...`)."""

from django.urls import path

from .views import forecasts

urlpatterns = [
    path("", forecasts.metric_forecasts, name="metric_forecasts"),
    path("new/", forecasts.metric_forecast_edit, name="metric_forecast_new"),
    path("<int:pk>/", forecasts.metric_forecast, name="metric_forecast"),
    path("<int:pk>/edit/", forecasts.metric_forecast_edit, name="metric_forecast_edit"),
    path("<int:pk>/<slug:action>/", forecasts.metric_forecast_action, name="metric_forecast_action"),
]
