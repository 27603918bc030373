"""Real log senders against the live portal: the OpenTelemetry SDK's OTLP/HTTP log exporter and
python-logging-loki's LokiHandler. Records, templates and a new-error-pattern alert appear."""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from logging_loki import LokiHandler
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from aiops import services
from aiops.logs import mining, store
from aiops.models import Alert, LogRecord, LogTemplate
from tests.helpers import wait_for


@pytest.fixture
def logs_token(admin_user, live_server) -> str:
    """A logs integration's token, on a record table emptied (the live server's tests commit)."""
    mining.forget()
    store.forget_known()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM aiops_logrecord")
    _, token = services.create_integration(name="app logs", kind="logs", actor=admin_user)
    yield token
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM aiops_logrecord")
    mining.forget()


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


@pytest.mark.django_db(transaction=True)
def test_the_opentelemetry_sdk_exports_logs_over_otlp_http(logs_token, live_server):
    provider = LoggerProvider(resource=Resource.create({"service.name": "shop", "deployment.environment": "test"}))
    exporter = OTLPLogExporter(
        endpoint=f"{live_server.url}/api/v1/aiops/otlp/v1/logs",
        headers={"Authorization": f"Bearer {logs_token}"},
        compression=Compression.Gzip,
        timeout=10,
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = _logger("shop.checkout", LoggingHandler(level=logging.DEBUG, logger_provider=provider))
    try:
        for order in range(5):
            logger.info("order %s placed by customer %s", 1000 + order, 7 + order)
        logger.error("order 1005 failed: payment gateway timeout after 30s", extra={"order.id": "1005"})
        provider.force_flush()
    finally:
        provider.shutdown()

    assert wait_for(lambda: LogRecord.objects.filter(service="shop").count() == 6, timeout=15)
    error = LogRecord.objects.get(service="shop", severity="error")
    assert error.body == "order 1005 failed: payment gateway timeout after 30s"
    assert error.attributes["order.id"] == "1005" and error.attributes["deployment.environment"] == "test"
    placed = LogTemplate.objects.get(service="shop", template__startswith="order <*> placed")
    assert placed.count == 5
    alert = Alert.objects.get(labels__alertname="NewErrorLogPattern", service="shop")
    assert "payment gateway timeout" in alert.title
    assert f"template={error.template_id}" in alert.links[0]["href"]


@pytest.mark.django_db(transaction=True)
def test_a_loki_logging_handler_pushes_to_the_loki_api(logs_token, live_server):
    handler = LokiHandler(
        url=f"{live_server.url}/loki/api/v1/push",
        tags={"service": "inventory", "env": "test"},
        auth=("loki", logs_token),  # the token as the basic-auth password, as Promtail and Alloy send it
        version="1",
    )
    logger = _logger("inventory.sync", handler)
    for sku in range(4):
        logger.warning("stock for sku-%s below threshold", 40 + sku)
    logger.critical("warehouse db connection lost")

    assert wait_for(lambda: LogRecord.objects.filter(service="inventory").count() == 5, timeout=15)
    assert set(LogRecord.objects.filter(service="inventory").values_list("severity", flat=True)) == {
        "warning",
        "critical",
    }
    low = LogTemplate.objects.get(service="inventory", template__startswith="stock for")
    assert low.count == 4
    alert = Alert.objects.get(labels__alertname="NewErrorLogPattern", service="inventory")
    assert alert.severity == "critical"
