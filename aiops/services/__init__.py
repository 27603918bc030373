"""AIOps's facade: every write and multi-model operation of the app goes through here.

Ingest (`ingest_delivery`) runs in the request: it deduplicates and commits the
alerts before the sender gets its 2xx, and needs no broker. Correlation into
incidents (`process_pending_alerts`) runs in a worker; alerts carry a `pending`
flag until it has, so the sweeper finishes whatever a lost task did not. Other
apps open incidents with `raise_alert`, through the same pipeline.

By domain: integrations (and test alerts), ingest, alerts (raise_alert), correlation, incidents
(triage), rules (silences and correlation rules), channels (notification channels
and routes), overview. Import from here, not from the submodules.
"""

from .actor import Actor
from .alerts import RaisedAlert, raise_alert
from .channels import create_channel_with_route, delete_channel, delete_route, save_channel, save_route
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
    "RaisedAlert",
    "SentTestAlert",
    "acknowledge_incident",
    "active_silences",
    "add_event",
    "assign_incident",
    "bulk_transition",
    "comment_on_incident",
    "content_hash",
    "create_channel_with_route",
    "create_integration",
    "create_silence",
    "delete_channel",
    "delete_integration",
    "delete_route",
    "delete_rule",
    "delivery_digest",
    "expire_silence",
    "group_of",
    "ingest_delivery",
    "matching_silence",
    "merge_incidents",
    "overview",
    "process_pending_alerts",
    "raise_alert",
    "record_deliveries",
    "reopen_incident",
    "resolve_incident",
    "rotate_integration_token",
    "rule_for",
    "sample_payload",
    "save_channel",
    "save_route",
    "save_rule",
    "schedule_correlation",
    "send_test_alert",
    "split_alert",
    "token_matches",
    "update_incident",
    "update_integration",
    "validate_matchers",
]
