"""Loki's push API at the portal's root (`/loki/api/v1/push`), so Promtail, Grafana Alloy and Loki logging
handlers post here unchanged; authenticated by a `logs` integration token (aiops.api.logs)."""

from django.urls import path

from .api.logs import loki_push

app_name = "loki"

urlpatterns = [path("api/v1/push", loki_push, name="push")]
