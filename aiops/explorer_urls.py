"""The metric explorer's pages (under /aiops/metrics/, names in the aiops namespace)."""

from django.urls import path

urlpatterns: list = []
