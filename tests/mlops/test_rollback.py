"""Guarded rollback: a newly promoted version that does worse than the one it replaced on the same window gets a
rollback proposal (an approval request with the evidence), once per pair; approving it brings the old version
back."""

from __future__ import annotations

import datetime
import re

import pytest

from mlops import services as mlops_services
from mlops.models import ApprovalRequest, ModelAlias, Stage, TaskType
from mlops.services import monitor_checks, rollback_proposals
from tests.helpers import client_for

from . import factories
from .pages import text_of_html
from .test_monitor_checks import HOUR, NOW, batch_of, check, monitor_for, production_model, rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def model(operator, admin_user):
    return production_model(operator, admin_user)


def serve(monitor, version, *, hours, accuracy: float, end=NOW, labelled: int = 100, **metrics) -> None:
    """`hours` hourly batches of `version` ending at `end`, each with `labelled` labelled rows at `accuracy`."""
    for i in range(hours):
        batch_of(monitor, rows(50, seed=100 + i), end=end - i * HOUR, version=version,
                 performance={"rows": labelled, "accuracy": accuracy, **metrics})  # fmt: skip


def promote(model, number: int, admin_user):
    mlops_services.transition_stage(version=factories.version(model, number), stage=Stage.PRODUCTION, actor=admin_user)
    return factories.version(model, number)


def test_a_worse_new_version_gets_a_rollback_proposal_with_the_evidence_once(model, admin_user):
    monitor = monitor_for(model)
    v1 = factories.version(model, 1)
    serve(monitor, v1, hours=24, accuracy=0.90, end=NOW - 6 * HOUR)
    v2 = promote(model, 2, admin_user)
    serve(monitor, v2, hours=6, accuracy=0.78)

    result = monitor_checks.evaluate_window(monitor=monitor, now=NOW)
    assert result.version == v2
    request = ApprovalRequest.objects.get(rollback=True)
    assert request.version == v1 and request.target_stage == Stage.PRODUCTION and request.status == "pending"
    evidence = request.evidence
    assert (evidence["metric"], evidence["from_version_number"], evidence["to_version_number"]) == ("accuracy", 2, 1)
    assert evidence["new"]["metrics"]["accuracy"] == pytest.approx(0.78)
    assert evidence["previous"]["metrics"]["accuracy"] == pytest.approx(0.90)
    assert evidence["new"]["labelled_rows"] == 600 and evidence["new"]["batches"] == 6
    # v1 served the window's first 18 hours: both are judged on the same 24 hours.
    assert evidence["same_window"] is True and evidence["previous"]["batches"] == 18
    assert "accuracy 0.78 on version 2" in request.reason
    assert model.events.filter(kind="approval_requested", data__approval_request=request.pk).exists()

    mlops_services.reject(request=request, actor=admin_user, comment="known seasonal dip")
    monitor_checks.evaluate_window(monitor=monitor, now=NOW + HOUR)
    assert ApprovalRequest.objects.filter(rollback=True).count() == 1  # once per pair, whatever became of it


def test_approving_the_proposal_brings_the_replaced_version_back(model, admin_user):
    monitor = monitor_for(model)
    serve(monitor, factories.version(model, 1), hours=12, accuracy=0.9, end=NOW - 24 * HOUR)
    v2 = promote(model, 2, admin_user)
    serve(monitor, v2, hours=12, accuracy=0.6)
    request = rollback_proposals.propose_rollback(monitor=monitor, now=NOW)
    # v1 served nothing in the last 24 hours: it is judged on the 24 hours before v2's first batch.
    assert request is not None and request.evidence["same_window"] is False
    assert request.evidence["previous"]["batches"] == 12
    mlops_services.approve(request=request, actor=admin_user)
    assert factories.stages(model) == {1: Stage.PRODUCTION, 2: Stage.ARCHIVED}


def test_no_proposal_within_tolerance_or_without_enough_labels(model, operator, admin_user):
    monitor = monitor_for(model)
    serve(monitor, factories.version(model, 1), hours=12, accuracy=0.90, end=NOW - 12 * HOUR)
    v2 = promote(model, 2, admin_user)
    serve(monitor, v2, hours=12, accuracy=0.89)  # 1 % worse: within the 2 % tolerance
    assert rollback_proposals.propose_rollback(monitor=monitor, now=NOW) is None

    fraud = production_model(operator, admin_user, name="fraud")
    few = monitor_for(fraud)
    serve(few, factories.version(fraud, 1), hours=12, accuracy=0.90, end=NOW - 12 * HOUR)
    serve(few, promote(fraud, 2, admin_user), hours=3, accuracy=0.5, labelled=10)  # 30 labelled rows only
    assert rollback_proposals.compare_versions(monitor=few, now=NOW) is None
    assert not ApprovalRequest.objects.exists()


def test_a_canary_on_the_same_window_and_the_monitors_metric_check_decide(model, admin_user, operator):
    monitor = monitor_for(model, task=TaskType.REGRESSION, follow_alias="champion")
    v1, v2 = factories.version(model, 1), factories.version(model, 2)
    mlops_services.set_alias(model=model, version=v1, alias="champion", actor=operator)
    serve(monitor, v1, hours=24, accuracy=0, rmse=4.0)
    mlops_services.set_alias(model=model, version=v2, alias="champion", actor=operator)
    serve(monitor, v2, hours=6, accuracy=0, rmse=5.0, end=NOW - datetime.timedelta(minutes=30))
    check(monitor, admin_user, name="rmse", kind="metric", rule="rmse", bound=10, scope="window")
    request = rollback_proposals.propose_rollback(monitor=monitor, now=NOW)
    assert request is not None
    assert request.kind == "alias" and request.alias == "champion" and request.version == v1
    assert request.evidence["metric"] == "rmse" and request.evidence["lower_is_better"] is True
    assert request.evidence["same_window"] is True
    mlops_services.approve(request=request, actor=admin_user)
    assert ModelAlias.objects.get(model=model, alias="champion").version == v1


def test_the_approver_sees_the_evidence_on_the_page_and_in_the_api(model, admin_user, admin_api):
    monitor = monitor_for(model)
    serve(monitor, factories.version(model, 1), hours=12, accuracy=0.9, end=NOW - 24 * HOUR)
    serve(monitor, promote(model, 2, admin_user), hours=12, accuracy=0.6)
    request = rollback_proposals.propose_rollback(monitor=monitor, now=NOW)

    [item] = admin_api.get("/api/v1/mlops/approvals/", {"status": "pending"}).json()["results"]
    assert item["id"] == request.pk and item["rollback"] is True
    assert item["evidence"]["new_value"] == pytest.approx(0.6) and item["evidence"]["previous_value"] == 0.9

    page = client_for(admin_user).get("/mlops/approvals/").content.decode()
    table = re.search(r'<table[^>]*rollback-evidence[^>]*aria-label="Evidence of request (\d+)".*?</table>', page, re.S)
    assert table and table.group(1) == str(request.pk)
    text = text_of_html(table.group(0))
    assert "v2 (now) 0.6000 1200 12 batches" in text
    assert "v1 (replaced) 0.9000 1200 12 batches" in text and text.endswith("before the promotion")
