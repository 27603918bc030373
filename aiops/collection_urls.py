"""Pages that manage metric collection: scrape targets, Prometheus-compatible sources and watched
queries, threshold rules (under /aiops/metrics/, names in the aiops namespace)."""

urlpatterns: list = []
