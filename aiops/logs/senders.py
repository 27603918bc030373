"""Ready-to-paste sender configurations for a `logs` integration: the OpenTelemetry Collector, Promtail,
Grafana Alloy, and curl with JSON lines."""

from __future__ import annotations

from django.urls import reverse


def log_sender_configuration(otlp_url: str, token: str) -> dict[str, str]:
    """{"title", "text"} for the integration page; `otlp_url` is the absolute OTLP logs URL."""
    base = otlp_url.removesuffix(reverse("api:aiops:otlp-logs"))
    loki = f"{base}{reverse('loki:push')}"
    jsonl = f"{base}{reverse('api:aiops:log-ingest')}"
    return {
        "title": "OpenTelemetry Collector, Promtail, Grafana Alloy or JSON lines",
        "text": f"""# OpenTelemetry Collector (otelcol-contrib), exporter otlphttp: logs go to {otlp_url}
exporters:
  otlphttp/opsportal:
    logs_endpoint: {otlp_url}
    compression: gzip
    headers:
      Authorization: "Bearer {token}"
service:
  pipelines:
    logs:
      receivers: [otlp, filelog]
      exporters: [otlphttp/opsportal]

# Any OpenTelemetry SDK:
#   OTEL_EXPORTER_OTLP_LOGS_ENDPOINT={otlp_url}
#   OTEL_EXPORTER_OTLP_LOGS_HEADERS="Authorization=Bearer {token}"
#   OTEL_EXPORTER_OTLP_LOGS_PROTOCOL=http/protobuf

# Promtail (promtail.yaml): the service comes from the label service, else service_name, else job
clients:
  - url: {loki}
    basic_auth:
      username: opsportal
      password: {token}

# Grafana Alloy (config.alloy)
loki.write "opsportal" {{
  endpoint {{
    url = "{loki}"
    bearer_token = "{token}"
  }}
}}

# JSON lines from a script: one record per line (only "body" is required)
curl -X POST {jsonl} -H 'Authorization: Bearer {token}' -H 'Content-Type: application/x-ndjson' \\
  --data-binary $'{{"service": "batch", "severity": "error", "body": "job 12 failed"}}\\n'
""",
    }
