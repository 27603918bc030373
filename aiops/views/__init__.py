"""AIOps pages, by domain: incidents, alerts, integrations, silences and rules, notification channels, analytics."""

from .alerts import alert_detail, alert_list
from .analytics import analytics
from .channels import channel_delete, channel_list, route_delete
from .incidents import incident_action, incident_bulk, incident_detail, incident_list
from .integrations import integration_action, integration_detail, integration_list
from .rules import rule_edit, rule_list, silence_expire, silence_list

__all__ = [
    "alert_detail",
    "alert_list",
    "analytics",
    "channel_delete",
    "channel_list",
    "incident_action",
    "incident_bulk",
    "incident_detail",
    "incident_list",
    "integration_action",
    "integration_detail",
    "integration_list",
    "route_delete",
    "rule_edit",
    "rule_list",
    "silence_expire",
    "silence_list",
]
