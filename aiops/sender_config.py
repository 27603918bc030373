"""Ready-to-paste configuration for each kind of sender."""

from __future__ import annotations

import json

from .models import Integration


def sender_configuration(integration: Integration, url: str, token: str) -> dict[str, str]:
    """{"title": ..., "text": ...} showing how to point the sender at `url` with `token`."""
    if integration.kind == Integration.Kind.LOGS:
        from .logs.senders import log_sender_configuration

        return log_sender_configuration(url, token)
    if integration.kind == Integration.Kind.ALERTMANAGER:
        return {
            "title": "alertmanager.yml",
            "text": f"""route:
  receiver: opsportal
  group_by: ['alertname', 'service']
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 4h

receivers:
  - name: opsportal
    webhook_configs:
      - url: {url}
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
""",
        }
    if integration.kind == Integration.Kind.GRAFANA:
        return {
            "title": "Grafana contact point (Alerting → Contact points → Add → Webhook)",
            "text": f"""Integration:             Webhook
URL:                     {url}
HTTP Method:             POST
Authorization Header - Scheme:       Bearer
Authorization Header - Credentials:  {token}

# or provisioned (grafana/provisioning/alerting/opsportal.yaml):
apiVersion: 1
contactPoints:
  - orgId: 1
    name: opsportal
    receivers:
      - uid: opsportal
        type: webhook
        settings:
          url: {url}
          httpMethod: POST
          authorization_scheme: Bearer
          authorization_credentials: {token}
""",
        }
    if integration.kind == Integration.Kind.PAGERDUTY:
        example = {
            "routing_key": token,
            "event_action": "trigger",
            "dedup_key": "disk-full-db-3",
            "payload": {"summary": "Disk 95% full on db-3", "source": "db-3", "severity": "critical"},
        }
        return {
            "title": "PagerDuty Events API v2 (routing key = the token)",
            "text": f"""Events URL:    {url}
Routing key:   {token}

curl -X POST {url} -H 'Content-Type: application/json' -d '{json.dumps(example)}'
""",
        }
    example = {
        "title": "Checkout error rate above 5%",
        "severity": "critical",
        "service": "checkout",
        "labels": {"env": "prod"},
    }
    return {
        "title": "Generic JSON",
        "text": f"""curl -X POST {url} \\
  -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\
  -d '{json.dumps(example)}'
""",
    }
