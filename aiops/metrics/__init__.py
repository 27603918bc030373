"""The metric collection engine (issue 11).

Used by the metric services: `aiops.services.scrape_targets`, `prom_sources`, `thresholds`,
`collection` and `metrics` (reads).

- `exposition`: Prometheus text and OpenMetrics parsing (prometheus_client's parsers).
- `http`: outbound HTTP with httpx under the portal's allow-list (opsportal.outbound).
- `scrape`: scraping targets; `remote`: pulling watched queries from Prometheus-compatible APIs.
- `store`: series ids resolved in bulk (cache + INSERT ... ON CONFLICT), samples written with COPY.
- `partitions`: daily sample and monthly rollup partitions on PostgreSQL; retention.
- `rollups`: 5-minute rollups (min, max, sum, count, first, last, counter increase).
- `promql`: the supported PromQL subset, parsed; `query`: its evaluation over stored samples.
"""
