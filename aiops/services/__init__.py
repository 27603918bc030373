"""AIOps's facade: every write and multi-model operation of the app goes through here.

Ingest (`ingest_delivery`) runs in the request: it deduplicates and commits the
alerts before the sender gets its 2xx, and needs no broker. Correlation into
incidents (`process_pending_alerts`) runs in a worker; alerts carry a `pending`
flag until it has, so the sweeper finishes whatever a lost task did not. Other
apps open incidents with `raise_alert`, through the same pipeline.

By domain: integrations (and test alerts), ingest, alerts (raise_alert), correlation, incidents
(triage), rules (silences and correlation rules), channels (notification channels
and routes), overview, checks and check_runs (uptime checks, pings, status pages).
Import from here, not from the submodules.
"""

from .actor import Actor
from .alert_links import RaisedAlertLink, raised_alert_links
from .alerts import RaisedAlert, raise_alert
from .app_notes import note_on_alert_incident
from .channels import create_channel_with_route, delete_channel, delete_route, save_channel, save_route
from .check_runs import claim_due_checks, evaluate_heartbeats, record_ping, run_due_checks, store_outcomes
from .checks import (
    LatencyPoint,
    Uptime,
    bulk_set_paused,
    create_check,
    delete_check,
    down_periods,
    incidents_opened,
    latency_series,
    ping_url,
    prune_check_history,
    run_check_now,
    set_paused,
    test_check,
    update_check,
    uptime,
)
from .correlation import group_of, learn_cofirings, process_pending_alerts, rule_for
from .forecasts import (
    ForecastRun,
    compute_forecast,
    delete_capacity_forecast,
    forecast_history,
    forecast_url,
    full_text,
    run_forecast_now,
    save_capacity_forecast,
    series_forecasts,
    soonest_forecasts,
    update_due_forecasts,
)
from .incidents import (
    acknowledge_incident,
    add_event,
    assign_incident,
    bulk_transition,
    comment_on_incident,
    merge_incidents,
    reopen_incident,
    resolve_incident,
    split_alert,
    update_incident,
)
from .ingest import (
    CORRELATION_DEBOUNCE_SECONDS,
    DUPLICATE_WINDOW_SECONDS,
    IngestResult,
    active_silences,
    content_hash,
    delivery_digest,
    ingest_delivery,
    matching_silence,
    record_deliveries,
    schedule_correlation,
)
from .integrations import (
    SentTestAlert,
    create_integration,
    delete_integration,
    rotate_integration_token,
    sample_payload,
    send_test_alert,
    token_matches,
    update_integration,
)
from .overview import overview
from .rules import RULE_FIELDS, create_silence, delete_rule, expire_silence, save_rule, validate_matchers
from .suggestions import accept_merge_suggestion, pending_suggestions, reject_merge_suggestion

__all__ = [
    "CORRELATION_DEBOUNCE_SECONDS",
    "DUPLICATE_WINDOW_SECONDS",
    "RULE_FIELDS",
    "Actor",
    "IngestResult",
    "LatencyPoint",
    "RaisedAlert",
    "RaisedAlertLink",
    "SentTestAlert",
    "Uptime",
    "accept_merge_suggestion",
    "acknowledge_incident",
    "active_silences",
    "add_event",
    "assign_incident",
    "bulk_set_paused",
    "bulk_transition",
    "claim_due_checks",
    "comment_on_incident",
    "content_hash",
    "create_channel_with_route",
    "create_check",
    "create_integration",
    "create_silence",
    "delete_channel",
    "delete_check",
    "delete_integration",
    "delete_route",
    "delete_rule",
    "delivery_digest",
    "down_periods",
    "evaluate_heartbeats",
    "expire_silence",
    "group_of",
    "incidents_opened",
    "ingest_delivery",
    "latency_series",
    "learn_cofirings",
    "matching_silence",
    "merge_incidents",
    "note_on_alert_incident",
    "overview",
    "pending_suggestions",
    "ping_url",
    "process_pending_alerts",
    "prune_check_history",
    "raise_alert",
    "raised_alert_links",
    "record_deliveries",
    "record_ping",
    "reject_merge_suggestion",
    "reopen_incident",
    "resolve_incident",
    "rotate_integration_token",
    "rule_for",
    "run_check_now",
    "run_due_checks",
    "sample_payload",
    "save_channel",
    "save_route",
    "save_rule",
    "schedule_correlation",
    "send_test_alert",
    "set_paused",
    "split_alert",
    "store_outcomes",
    "test_check",
    "token_matches",
    "update_check",
    "update_incident",
    "update_integration",
    "uptime",
    "validate_matchers",
]

# Metric collection: targets, sources and watched queries; threshold rules; scheduling and storage; reading.
from .collection import dispatch_due_collection, maintain_metric_storage, roll_up_metrics
from .metrics import (
    find_series,
    label_names,
    label_values,
    run_query_instant,
    run_query_range,
    series_chart,
    series_matching,
    series_url,
)
from .prom_sources import (
    SourceReport,
    collect_queries,
    delete_prom_source,
    delete_watched_query,
    run_watched_query_now,
    save_prom_source,
    save_watched_query,
    test_prom_source,
)
from .scrape_targets import (
    ScrapeReport,
    collect_targets,
    delete_scrape_target,
    save_scrape_target,
    scrape_target_now,
    test_scrape_target,
)
from .thresholds import delete_threshold_rule, evaluate_threshold_rules, save_threshold_rule

__all__ += [
    "ScrapeReport",
    "SourceReport",
    "collect_queries",
    "collect_targets",
    "delete_prom_source",
    "delete_scrape_target",
    "delete_threshold_rule",
    "delete_watched_query",
    "dispatch_due_collection",
    "evaluate_threshold_rules",
    "find_series",
    "label_names",
    "label_values",
    "maintain_metric_storage",
    "roll_up_metrics",
    "run_query_instant",
    "run_query_range",
    "run_watched_query_now",
    "save_prom_source",
    "save_scrape_target",
    "save_threshold_rule",
    "save_watched_query",
    "scrape_target_now",
    "series_chart",
    "series_matching",
    "series_url",
    "test_prom_source",
    "test_scrape_target",
]

# Capacity forecasts (issue 12): when gauges reach their limit; warnings through raise_alert.
__all__ += [
    "ForecastRun",
    "compute_forecast",
    "delete_capacity_forecast",
    "forecast_history",
    "forecast_url",
    "full_text",
    "run_forecast_now",
    "save_capacity_forecast",
    "series_forecasts",
    "soonest_forecasts",
    "update_due_forecasts",
]

# Live anomaly detection (issue 12): monitors scoring stored series, alerts through raise_alert, feedback.
from .anomalies import (  # noqa: E402
    MonitorRun,
    delete_anomaly_monitor,
    save_anomaly_monitor,
    score_anomaly_monitors,
    score_monitor,
    series_overlays,
    set_anomaly_feedback,
)

__all__ += [
    "MonitorRun",
    "delete_anomaly_monitor",
    "save_anomaly_monitor",
    "score_anomaly_monitors",
    "score_monitor",
    "series_overlays",
    "set_anomaly_feedback",
]
