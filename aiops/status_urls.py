"""Public status pages, mounted at /status/ (AIOpsConfig.extra_urls); readable without login."""

from django.urls import path

from .views import status_pages

urlpatterns = [
    path("<slug:slug>/", status_pages.public_status_page, name="status-page"),
    path("<slug:slug>/status.json", status_pages.public_status_json, name="status-page-json"),
]
