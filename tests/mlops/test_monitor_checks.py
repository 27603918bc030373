"""Monitor checks: what each kind measures on a batch, breaches that become AIOps incidents and resolve on
recovery, window checks over merged batch profiles, the schedule, the sweeper, and the checks/breaches API."""

from __future__ import annotations

import datetime

import numpy as np
import pyarrow as pa
import pytest
from django.utils import timezone

from aiops import services as aiops_services
from aiops.models import Alert, Incident
from mlops import services as mlops_services
from mlops.drift.profiles import BatchProfile, ProfileSpec, window_drift
from mlops.drift.quality import profile_quality
from mlops.drift.schema import infer_schema
from mlops.models import Breach, Monitor, MonitorCheck, MonitoringBatch, ReferenceDataset, Stage, VersionEvent
from mlops.services import monitor_checks
from opsportal.errors import InvalidInput

from . import factories

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def rows(n: int, *, seed: int, shift: float = 0.0, missing: float = 0.0, plans=("basic", "pro", "team")) -> pa.Table:
    """A table of `n` rows: age and income (numerical, `shift` standard deviations off), plan (categorical);
    a `missing` share of ages is empty."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40 + 10 * shift, 10, n)
    ages = [None if rng.random() < missing else float(a) for a in age]
    return pa.table(
        {
            "age": pa.array(ages, pa.float64()),
            "income": rng.normal(50_000 + 10_000 * shift, 10_000, n),
            "plan": rng.choice(list(plans), n),
        }
    )


def monitor_for(model, *, reference: pa.Table | None = None, **fields) -> Monitor:
    """A monitor of `model` following Production with a reference (its spec and profile from the engine)."""
    reference = reference if reference is not None else rows(2000, seed=1)
    schema = {name: column.to_dict() for name, column in infer_schema(reference).items()}
    monitor = Monitor.objects.create(model=model, schema=schema, **fields)
    spec = ProfileSpec.from_reference(reference)
    ref = ReferenceDataset.objects.create(
        monitor=monitor, name="reference.parquet", file="", rows=reference.num_rows, schema=schema,
        spec=spec.to_dict(), profile=spec.profile(reference).to_dict(),
    )  # fmt: skip
    monitor.reference = ref
    monitor.save(update_fields=["reference"])
    return monitor


def batch_of(
    monitor: Monitor, table: pa.Table, *, end: datetime.datetime = NOW, version=None, performance=None
) -> MonitoringBatch:
    """A stored batch as record_batch leaves it: profile, drift against the reference, quality, metrics."""
    reference = monitor.reference
    spec = ProfileSpec.from_dict(reference.spec)
    profile = spec.profile(table)
    drift = window_drift(spec, BatchProfile.from_dict(reference.profile), profile)
    return MonitoringBatch.objects.create(
        monitor=monitor, version=version if version is not None else monitor.current_version(), reference=reference,
        source=MonitoringBatch.Source.ROWS, rows=table.num_rows, start=end - datetime.timedelta(hours=1), end=end,
        received_at=end, profile=profile.to_dict(), drift=drift.to_dict(), drift_share=drift.drift_share,
        dataset_drift=drift.dataset_drift, drifted_columns=drift.drifted_columns,
        quality=[q.to_dict() for q in profile_quality(spec, profile)], performance=performance or {},
        labelled_rows=int((performance or {}).get("rows", 0)),
    )  # fmt: skip


def production_model(operator, admin_user, name: str = "churn"):
    model = factories.registered_model(actor=operator, name=name)
    mlops_services.transition_stage(version=factories.version(model, 1), stage=Stage.PRODUCTION, actor=admin_user)
    return model


@pytest.fixture
def model(operator, admin_user):
    return production_model(operator, admin_user)


@pytest.fixture
def monitor(model):
    return monitor_for(model)


def check(monitor: Monitor, admin_user, **fields) -> MonitorCheck:
    return monitor_checks.save_check(monitor=monitor, actor=admin_user, **{"name": "drift", **fields})


def incident_of(breach: Breach) -> Incident | None:
    aiops_services.process_pending_alerts()
    alert = Alert.objects.filter(fingerprint=breach.dedup_key).order_by("-id").first()
    return Incident.objects.get(pk=alert.incident_id) if alert and alert.incident_id else None


def test_a_drifted_batch_breaches_dataset_drift_and_opens_an_incident_that_a_clean_batch_resolves(
    monitor, model, admin_user
):
    drift = check(monitor, admin_user, name="Dataset drift", kind="dataset_drift", severity="error")
    breaches = monitor_checks.evaluate_batch(batch=batch_of(monitor, rows(1000, seed=2, shift=1.5, plans=("pro",))))
    assert len(breaches) == 1
    breach = breaches[0]
    assert breach.is_open and breach.value == 1.0 and breach.version.version == 1
    assert "3 of 3 columns drifted" in breach.message

    alert = Alert.objects.get(fingerprint=breach.dedup_key)
    assert alert.status == "firing" and alert.severity == "error"
    assert alert.labels == {
        "model": "churn", "version": "1", "monitor": "production", "check": "Dataset drift",
        "check_kind": "dataset_drift",
    }  # fmt: skip
    assert alert.links[0]["href"].endswith(f"/monitoring/batches/{breach.batch_id}/")
    incident = incident_of(breach)
    assert incident is not None and incident.status == "triggered"
    assert VersionEvent.objects.filter(model=model, kind="breach_opened", version__version=1).exists()
    drift.refresh_from_db()
    assert drift.state == "breached"

    assert monitor_checks.evaluate_batch(batch=batch_of(monitor, rows(1000, seed=3), end=NOW + HOUR)) == []
    breach.refresh_from_db()
    assert breach.resolved_at is not None
    assert Alert.objects.get(pk=alert.pk).status == "resolved"
    aiops_services.process_pending_alerts()
    assert Incident.objects.get(pk=incident.pk).status == "resolved"
    assert VersionEvent.objects.filter(model=model, kind="breach_resolved").exists()
    drift.refresh_from_db()
    assert drift.state == "ok" and drift.last_value == 0.0


HOUR = datetime.timedelta(hours=1)


def test_a_breach_that_goes_on_stays_one_breach_and_one_alert(monitor, admin_user):
    check(monitor, admin_user, kind="dataset_drift")
    for i in range(3):
        monitor_checks.evaluate_batch(batch=batch_of(monitor, rows(500, seed=10 + i, shift=2), end=NOW + i * HOUR))
    assert Breach.objects.count() == 1
    assert Alert.objects.filter(fingerprint=Breach.objects.get().dedup_key).count() == 1


def test_column_drift_names_the_drifted_column_and_spares_the_stable_one(monitor, admin_user):
    age = check(monitor, admin_user, name="age drift", kind="column_drift", column="age")
    plan = check(monitor, admin_user, name="plan drift", kind="column_drift", column="plan")
    drifted_age = rows(1000, seed=4, shift=1.0)
    drifted_age = drifted_age.set_column(2, "plan", rows(1000, seed=5).column("plan"))
    opened = monitor_checks.evaluate_batch(batch=batch_of(monitor, drifted_age))
    assert [b.monitor_check_id for b in opened] == [age.pk]
    assert opened[0].message.startswith("column age drifted: wasserstein distance")
    plan.refresh_from_db()
    assert plan.state == "ok"


def test_a_quality_rule_breaches_on_missing_values_and_names_the_column(monitor, admin_user):
    check(monitor, admin_user, name="missing", kind="quality", rule="missing_share", bound=0.1)
    opened = monitor_checks.evaluate_batch(batch=batch_of(monitor, rows(1000, seed=6, missing=0.3)))
    assert len(opened) == 1
    assert opened[0].evidence["column"] == "age" and 0.25 < opened[0].evidence["share"] < 0.35
    assert opened[0].message.startswith("missing share of column age: ")


def test_a_metric_floor_waits_for_labels_then_breaches(monitor, admin_user):
    accuracy = check(monitor, admin_user, name="accuracy", kind="metric", rule="accuracy", bound=0.8)
    assert monitor_checks.evaluate_batch(batch=batch_of(monitor, rows(100, seed=7))) == []
    accuracy.refresh_from_db()
    assert accuracy.state == "unknown"  # no labelled rows: nothing to judge yet
    labelled = batch_of(monitor, rows(100, seed=8), end=NOW + HOUR, performance={"rows": 100, "accuracy": 0.7})
    [breach] = monitor_checks.evaluate_batch(batch=labelled)
    assert breach.value == 0.7 and "below the floor 0.8" in breach.message


def test_an_error_metric_bound_is_a_ceiling(monitor, admin_user):
    check(monitor, admin_user, name="rmse", kind="metric", rule="rmse", bound=5.0)
    assert (
        monitor_checks.evaluate_batch(batch=batch_of(monitor, rows(50, seed=9), performance={"rows": 50, "rmse": 4}))
        == []
    )
    late = batch_of(monitor, rows(50, seed=9), end=NOW + HOUR, performance={"rows": 50, "rmse": 6})
    assert len(monitor_checks.evaluate_batch(batch=late)) == 1


def test_a_batch_is_evaluated_once_and_a_late_older_batch_does_not_overrule_a_newer_one(monitor, admin_user):
    drift = check(monitor, admin_user, kind="dataset_drift")
    older = batch_of(monitor, rows(500, seed=11, shift=2), end=NOW - HOUR)
    newer = batch_of(monitor, rows(500, seed=12), end=NOW)
    assert monitor_checks.evaluate_batch(batch=newer) == []
    assert monitor_checks.evaluate_batch(batch=older) == []  # the newer batch already said the data is fine
    older.refresh_from_db()
    assert older.evaluated_at is not None
    drift.refresh_from_db()
    assert drift.state == "ok" and not Breach.objects.exists()
    assert monitor_checks.evaluate_batch(batch=newer) == []


def test_window_checks_merge_the_followed_versions_batches_of_the_window(monitor, model, admin_user):
    window = check(monitor, admin_user, name="window drift", kind="column_drift", column="income", scope="window")
    for i in range(12):
        batch_of(monitor, rows(60, seed=20 + i, shift=0.5), end=NOW - i * HOUR)
    # Outside the window, and another version's: both left out.
    batch_of(monitor, rows(2000, seed=40, shift=-3), end=NOW - 30 * HOUR)
    batch_of(monitor, rows(2000, seed=41, shift=-3), end=NOW, version=factories.version(model, 2))
    result = monitor_checks.evaluate_window(monitor=monitor, now=NOW)
    assert result.batches == 12 and result.version.version == 1
    assert result.drift["current_rows"] == 720  # the twelve batches' profiles merged, nothing else
    assert [b.monitor_check_id for b in result.opened] == [window.pk]
    breach = result.opened[0]
    assert breach.batch is None and breach.window_end == NOW and breach.evidence["batches"] == 12
    assert Alert.objects.get(fingerprint=breach.dedup_key).links[0]["href"].endswith(f"?monitor={monitor.pk}")
    assert Monitor.objects.get(pk=monitor.pk).last_evaluated_at == NOW


def test_the_schedule_claims_monitors_when_their_period_came_round(monitor, model, django_capture_on_commit_callbacks):
    other = monitor_for(model, name="shadow", schedule_minutes=30)
    Monitor.objects.filter(pk=other.pk).update(last_evaluated_at=NOW - datetime.timedelta(minutes=10))
    with django_capture_on_commit_callbacks() as callbacks:
        assert monitor_checks.enqueue_due_monitors(now=NOW) == 1  # `production` was never evaluated
        assert monitor_checks.enqueue_due_monitors(now=NOW + datetime.timedelta(minutes=5)) == 0
    assert len(callbacks) == 1
    assert monitor_checks.enqueue_due_monitors(now=NOW + datetime.timedelta(minutes=21)) == 1  # `shadow`, 31 min on


def test_disabling_or_deleting_a_breached_check_resolves_its_alert(monitor, admin_user):
    drift = check(monitor, admin_user, kind="dataset_drift")
    [breach] = monitor_checks.evaluate_batch(batch=batch_of(monitor, rows(500, seed=13, shift=2)))
    monitor_checks.save_check(monitor=monitor, actor=admin_user, check=drift, name="drift", kind="dataset_drift",
                              enabled=False)  # fmt: skip
    assert Alert.objects.get(fingerprint=breach.dedup_key).status == "resolved"
    assert Breach.objects.get(pk=breach.pk).resolved_at is not None
    monitor_checks.save_check(monitor=monitor, actor=admin_user, check=drift, name="drift", kind="dataset_drift")
    [again] = monitor_checks.evaluate_batch(batch=batch_of(monitor, rows(500, seed=14, shift=2), end=NOW + HOUR))
    monitor_checks.delete_check(check=drift, actor=admin_user)
    assert Alert.objects.filter(fingerprint=again.dedup_key).order_by("-id").first().status == "resolved"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "column_drift"}, "column"),
        ({"kind": "column_drift", "column": "nope"}, "column"),
        ({"kind": "quality", "rule": "missing_share"}, "bound"),
        ({"kind": "quality", "rule": "sparkle", "bound": 0.1}, "rule"),
        ({"kind": "metric", "rule": "accuracy"}, "bound"),
        ({"kind": "dataset_drift", "bound": 2}, "bound"),
        ({"kind": "dataset_drift", "severity": "loud"}, "severity"),
        ({"kind": "sideways"}, "kind"),
    ],
)
def test_a_check_that_cannot_be_judged_is_refused_naming_the_field(monitor, admin_user, fields, field):
    with pytest.raises(InvalidInput) as refused:
        check(monitor, admin_user, **fields)
    assert refused.value.field == field
    assert not MonitorCheck.objects.exists()


def test_the_sweeper_re_enqueues_batches_whose_evaluation_was_lost(monitor, isolated_broker):
    lost = batch_of(monitor, rows(50, seed=15), end=NOW - HOUR)
    MonitoringBatch.objects.filter(pk=lost.pk).update(received_at=timezone.now() - datetime.timedelta(minutes=5))
    just_arrived = batch_of(monitor, rows(50, seed=16))  # its task is still on its way
    MonitoringBatch.objects.filter(pk=just_arrived.pk).update(received_at=timezone.now())
    assert monitor_checks.requeue_unevaluated_batches() == 1


def test_checks_api_viewers_read_admins_write(monitor, viewer_api, operator_api, admin_api):
    url = f"/api/v1/mlops/monitors/{monitor.pk}/checks/"
    body = {"name": "Income drift", "kind": "column_drift", "column": "income", "scope": "window", "severity": "error"}
    assert operator_api.post(url, body, format="json").status_code == 403
    created = admin_api.post(url, body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["state"] == "unknown" and created.json()["open_breach"] is None
    refused = admin_api.post(url, {"name": "x", "kind": "quality", "rule": "missing_share"}, format="json")
    assert refused.status_code == 400 and "bound" in refused.json()["errors"]
    listed = viewer_api.get(url).json()
    assert [c["name"] for c in listed["results"]] == ["Income drift"]
    check_url = f"{url}{created.json()['id']}/"
    changed = admin_api.patch(check_url, {"bound": 0.2}, format="json")
    assert changed.status_code == 200 and changed.json()["bound"] == 0.2 and changed.json()["column"] == "income"
    assert admin_api.delete(check_url).status_code == 204
    assert not MonitorCheck.objects.exists()


def test_breaches_api_lists_open_breaches_with_their_report(monitor, admin_user, viewer_api):
    check(monitor, admin_user, kind="dataset_drift")
    [breach] = monitor_checks.evaluate_batch(batch=batch_of(monitor, rows(500, seed=17, shift=2)))
    page = viewer_api.get("/api/v1/mlops/breaches/", {"model": "churn", "open": "true"}).json()
    assert page["count"] == 1
    [item] = page["results"]
    assert item["id"] == breach.pk and item["version"] == 1 and item["check"] == "drift" and item["is_open"]
    assert item["report_url"].endswith(f"/monitoring/batches/{breach.batch_id}/")
    assert viewer_api.get("/api/v1/mlops/breaches/", {"open": "false"}).json()["count"] == 0
