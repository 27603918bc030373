"""seed_demo's monitoring: three weeks of batches with drift from the middle, a breach and its incident."""

import pytest
from django.core.management import call_command

from aiops.models import Alert
from mlops.models import Breach, Monitor

pytestmark = pytest.mark.django_db


def test_seed_demo_monitors_the_churn_model_through_a_drift_that_opens_an_incident(capsys):
    call_command("seed_demo")
    monitor = Monitor.objects.get(model__name="churn-classifier")
    batches = list(monitor.batches.order_by("end"))
    assert len(batches) == 21 and monitor.reference is not None
    assert all(b.version is not None and b.version.stage == "Production" for b in batches)
    # Calm for the first ten days, drifting from day 11 on.
    assert not any(b.dataset_drift for b in batches[:10])
    assert all(b.dataset_drift for b in batches[12:])
    assert batches[-1].performance["accuracy"] < batches[0].performance["accuracy"]
    breach = Breach.objects.get(monitor=monitor, monitor_check__name="Dataset drift", resolved_at__isnull=True)
    alerts = Alert.objects.filter(integration__internal_source="mlops", labels__check="Dataset drift", status="firing")
    assert breach.message and alerts.count() == 1
    assert alerts[0].incident is not None and alerts[0].incident.is_open
    assert "monitoring created" in capsys.readouterr().out
    call_command("seed_demo")
    assert "monitoring already there" in capsys.readouterr().out
    assert monitor.batches.count() == 21
