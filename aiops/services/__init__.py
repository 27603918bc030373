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
from .alerts import RaisedAlert, raise_alert
from .channels import create_channel_with_route, delete_channel, delete_route, save_channel, save_route
from .check_runs import claim_due_checks, evaluate_heartbeats, record_ping, run_due_checks, store_outcomes
from .checks import (
    LatencyPoint,
    PublicCheck,
    PublicIncident,
    Uptime,
    bulk_set_paused,
    create_check,
    daily_uptime,
    delete_check,
    delete_status_page,
    down_periods,
    incidents_opened,
    latency_series,
    ping_url,
    prune_check_history,
    public_status,
    run_check_now,
    save_status_page,
    set_paused,
    test_check,
    update_check,
    uptime,
)
from .correlation import group_of, process_pending_alerts, rule_for
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

__all__ = [
    "CORRELATION_DEBOUNCE_SECONDS",
    "DUPLICATE_WINDOW_SECONDS",
    "RULE_FIELDS",
    "Actor",
    "IngestResult",
    "LatencyPoint",
    "PublicCheck",
    "PublicIncident",
    "RaisedAlert",
    "SentTestAlert",
    "Uptime",
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
    "daily_uptime",
    "delete_channel",
    "delete_check",
    "delete_integration",
    "delete_route",
    "delete_rule",
    "delete_status_page",
    "delivery_digest",
    "down_periods",
    "evaluate_heartbeats",
    "expire_silence",
    "group_of",
    "incidents_opened",
    "ingest_delivery",
    "latency_series",
    "matching_silence",
    "merge_incidents",
    "overview",
    "ping_url",
    "process_pending_alerts",
    "prune_check_history",
    "public_status",
    "raise_alert",
    "record_deliveries",
    "record_ping",
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
    "save_status_page",
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
