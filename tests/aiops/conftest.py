"""AIOps fixtures: integrations with their real tokens, and two incidents to triage.

The payload helpers (`deliver`, `am_alert`, `am_payload`) live in factories.py and are
importable from here too.
"""

from __future__ import annotations

import pytest

from aiops.models import Incident, Integration

from . import factories
from .factories import am_alert, am_payload, deliver

__all__ = ["am_alert", "am_payload", "deliver"]


@pytest.fixture
def make_integration(admin_user):
    def make(kind: str = "alertmanager", name: str | None = None, **kwargs) -> tuple[Integration, str]:
        return factories.integration(kind, name, actor=admin_user, **kwargs)

    return make


@pytest.fixture
def alertmanager(make_integration) -> tuple[Integration, str]:
    return make_integration("alertmanager")


@pytest.fixture
def two_incidents(alertmanager) -> tuple[Incident, Incident]:
    """checkout (critical, triggered) and search (warning, triggered)."""
    integration, token = alertmanager
    checkout = factories.incident(integration, token, "checkout", severity="critical", instance="a")
    search = factories.incident(integration, token, "search", alertname="SlowQueries", severity="warning")
    return checkout, search


@pytest.fixture(autouse=True)
def _no_correlation_debounce_across_tests():
    """The once-a-second correlation debounce lives in the (possibly shared Redis) cache."""
    from django.core.cache import cache

    cache.delete("aiops:correlation-scheduled")
