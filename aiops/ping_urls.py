"""Heartbeat ping URLs, mounted at /ping/ (AIOpsConfig.extra_urls); public, the UUID is the secret."""

from django.urls import path

from .views import pings

urlpatterns = [
    path("<uuid:ping_uuid>", pings.ping, name="ping"),
    path("<uuid:ping_uuid>/start", pings.ping, {"kind": "start"}, name="ping_start"),
    path("<uuid:ping_uuid>/fail", pings.ping, {"kind": "fail"}, name="ping_fail"),
    path("<uuid:ping_uuid>/<int:exit_status>", pings.ping, name="ping_exit"),
]
