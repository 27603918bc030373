"""The metric explorer's pages (under /aiops/metrics/, names in the aiops namespace)."""

urlpatterns: list = []
