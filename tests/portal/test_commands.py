"""seed_demo and ensure_admin, which `make run` calls on every start."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from opsportal.accounts.roles import Role, role_of

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent(capsys):
    from aiops.models import Incident, Integration

    call_command("seed_demo")
    incidents = Incident.objects.count()
    demo_integrations = Integration.objects.filter(name__endswith="(demo)")
    assert incidents > 20 and Incident.objects.open().exists() and demo_integrations.count() == 5
    # The demo's filling disk is forecast full within its horizon: its warning is raised.
    from aiops.models import CapacityForecastResult

    assert CapacityForecastResult.objects.filter(forecast__name="Disks (demo)", alerting=True).exists()
    # The learned rule grouped the payments cascade (three alert names on three services) into one incident.
    from aiops.correlation_demo import demo_incident

    learned = demo_incident()
    assert learned is not None and learned.alert_count == 4 and learned.is_open
    assert {a.service for a in learned.alerts.all()} == {"payments-db", "payments-api", "payments-worker"}
    joined = learned.events.filter(kind="alert_firing", message__contains="Joined with confidence")
    assert joined.count() == 3
    api = joined.filter(message__startswith="HTTP5xxRate").first().message
    # Nine episodes, the oldest 18 days ago: their decayed count (half-life 30 days) is about 7.
    assert "fired within 30 s of DBConnectionsExhausted on payments-db 7 of the last 7 times" in api
    assert Incident.objects.filter(status="acknowledged", events__kind="comment").exists()
    users = set(User.objects.values_list("username", flat=True))
    assert {"oncall", "datasci", "reviewer"} <= users
    assert role_of(User.objects.get(username="oncall")) == Role.OPERATOR
    call_command("seed_demo")
    assert set(User.objects.values_list("username", flat=True)) == users
    assert Incident.objects.count() == incidents
    out = capsys.readouterr().out
    assert "0 demo users created" in out and "AIOps demo data already there" in out
    assert "MLOps demo registry already there" in out and "LLMOps demo data already there" in out


def test_seed_demo_fills_a_living_registry():
    from mlops.models import ApprovalRequest, ModelVersion, RegisteredModel, VersionEvent

    call_command("seed_demo")
    assert RegisteredModel.objects.count() == 4 and ModelVersion.objects.count() == 14
    assert ModelVersion.objects.filter(stage="Production").count() == 4
    assert set(ApprovalRequest.objects.values_list("status", flat=True)) == {"approved", "pending"}
    assert RegisteredModel.objects.get(name="churn-classifier").versions.exclude(model_card="").exists()
    assert VersionEvent.objects.filter(message__startswith="Rolled back to Production").count() == 2


def test_ensure_admin_prints_a_random_password_the_first_time_only(settings, tmp_path, capsys, client):
    settings.VAR_DIR = tmp_path
    call_command("ensure_admin")
    first = capsys.readouterr().out
    password = next(line.split(":", 1)[1].strip() for line in first.splitlines() if "password:" in line)
    assert len(password) >= 12
    credentials = tmp_path / "admin-credentials.txt"
    assert password in credentials.read_text()
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"
    assert client.login(username="admin", password=password)

    call_command("ensure_admin")
    assert password not in capsys.readouterr().out
    assert User.objects.filter(is_superuser=True).count() == 1


def test_two_installs_get_different_admin_passwords(settings, tmp_path, capsys, django_user_model):
    settings.VAR_DIR = tmp_path
    call_command("ensure_admin")
    first = (tmp_path / "admin-credentials.txt").read_text()
    django_user_model.objects.all().delete()
    call_command("ensure_admin")
    assert (tmp_path / "admin-credentials.txt").read_text() != first


def test_createsuperuser_noinput_works(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-root-password")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "root@example.com")
    call_command("createsuperuser", "--noinput")
    assert role_of(User.objects.get(username="root")) == Role.ADMIN


def test_seed_demo_has_prompts_runs_and_a_regression_to_compare():
    from llmops.models import EvalRun, Prompt, RunResult

    call_command("seed_demo")
    prompt = Prompt.objects.get(name="support-answer")
    assert dict(prompt.labels.values_list("name", "version__version")) == {"production": 1, "staging": 2}
    runs = list(EvalRun.objects.filter(kind=EvalRun.Kind.SCORE).order_by("id"))
    assert [r.status for r in runs] == ["completed", "completed"] and all(r.done == r.total == 8 for r in runs)
    # The live run on the demo model waits for a worker (and the demo endpoint `make run` starts).
    live = EvalRun.objects.get(kind=EvalRun.Kind.GENERATE)
    assert live.status == "queued" and live.total == 16
    assert {c.model.provider.name for c in live.columns.select_related("model__provider")} == {
        "Demo model (local, not an LLM)"
    }
    assert runs[0].pass_rate == 1.0 and runs[1].pass_rate < 0.8
    regressions = RunResult.objects.filter(run=runs[1], passed=False).values_list("item__position", flat=True)
    assert sorted(regressions) == [2, 4, 6]
