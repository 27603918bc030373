"""Metric collection: scrape targets, Prometheus-compatible sources, series, samples and rollups."""

from __future__ import annotations

__all__: list[str] = []
