"""seed_demo shows a runbook with past runs: remediations, a failure in the target's words, and its figures."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from aiops.models import Runbook
from aiops.runbook_demo import NAME
from aiops.services import runbooks as runbook_services
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


def test_the_demo_runbook_has_a_history(admin_user):
    call_command("seed_demo")
    runbook = Runbook.objects.get(name=NAME)
    runs = list(runbook.runs.all())
    assert len(runs) >= 5 and {r.status for r in runs} == {"succeeded", "failed"}
    assert any(r.remediated for r in runs)
    assert runbook.secret_names == ["K8S_TOKEN"] and "demo-service-account-token" not in str(runbook.secrets_encrypted)
    figures = runbook_services.runbook_figures(runbook)
    assert figures.success_rate is not None and figures.mttr_with is not None and figures.mttr_without is not None
    page = client_for(admin_user).get(runbook.get_absolute_url()).content.decode()
    assert 'data-status="failed"' in page and 'data-status="succeeded"' in page and "MTTR with it" in page
    failed = runbook.runs.get(status="failed")
    run_page = client_for(admin_user).get(failed.get_absolute_url()).content.decode()
    assert "HTTP 403 Forbidden: deployments.apps &quot;checkout&quot; is forbidden" in run_page
    call_command("seed_demo")
    assert runbook.runs.count() == len(runs)
