"""Threshold rule pages (under /aiops/metrics/thresholds/; names in the aiops namespace, `metric_threshold...`)."""

urlpatterns: list = []
