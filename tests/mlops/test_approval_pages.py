"""Promotion requests and rollback on the pages: asking, approving, rejecting, cancelling."""

from __future__ import annotations

import re

import pytest

from mlops import services
from mlops.models import ApprovalRequest
from opsportal.accounts.roles import Role
from tests.helpers import client_for
from tests.portal.factories import UserFactory

from .factories import stages, version
from .pages import messages_of, text_of

pytestmark = pytest.mark.django_db


def test_approval_flow_through_the_pages(operator, admin_user, guarded):
    """Operator asks for Production on a policy model; the admin approves; the previous version is archived."""
    client = client_for(operator)
    response = client.post(
        "/mlops/models/fraud/versions/2/transition/",
        {"transition-stage": "Production", "transition-archive_existing": "on", "transition-reason": "AUC +1pt"},
    )
    assert response.status_code == 302
    pending = ApprovalRequest.objects.get()
    assert (pending.status, pending.target_stage, pending.reason) == ("pending", "Production", "AUC +1pt")
    assert stages(guarded) == {1: "Production", 2: "None"}
    page = client.get(response["Location"])
    notice = f"Approval request #{pending.pk} is pending: moving version 2 to Production needs an admin's approval."
    assert notice in " ".join(text_of(page).split())
    assert f"Approval request #{pending.pk} to move this version to stage Production is pending" in text_of(page)
    assert f'href="/mlops/approvals/#request-{pending.pk}"' in page.content.decode()

    queue = client.get("/mlops/approvals/")
    row = re.search(rf'<tr id="request-{pending.pk}">.*?</tr>', queue.content.decode(), re.S).group(0)
    assert "fraud" in row and "version 2" in row and "stage Production" in row and "AUC +1pt" in row
    assert "Approve" not in row  # operators don't decide
    assert 'aria-label="Cancel request' in row  # ... but may cancel their own

    admin = client_for(admin_user)
    admin_row = re.search(
        rf'<tr id="request-{pending.pk}">.*?</tr>', admin.get("/mlops/approvals/").content.decode(), re.S
    )
    assert "Approve" in admin_row.group(0) and "Reject" in admin_row.group(0)
    assert "v1" in admin_row.group(0)  # what is in Production now, to compare with
    response = admin.post(f"/mlops/approvals/{pending.pk}/approve/", {"comment": "Looks good"}, follow=True)
    assert f"Approved request #{pending.pk}: fraud version 2 is now in Production." in messages_of(response)
    assert stages(guarded) == {1: "Archived", 2: "Production"}
    decided = re.search(r'<table[^>]*id="decided-requests".*?</table>', response.content.decode(), re.S).group(0)
    assert "Approved" in decided and "Looks good" in decided and "ada" in decided
    history = text_of(admin.get("/mlops/models/fraud/versions/2/")).split("History of version 2")[-1]
    assert f"Moved to Production from None (approval request #{pending.pk} approved)." in history


def test_request_promotion_button_names_the_request(operator, churn):
    client = client_for(operator)
    response = client.post(
        "/mlops/models/churn/versions/2/request-promotion/", {"promotion-reason": "beats v1"}, follow=True
    )
    pending = ApprovalRequest.objects.get()
    assert pending.target_stage == "Production" and pending.reason == "beats v1"
    assert f"Approval request #{pending.pk} is pending" in " ".join(messages_of(response))
    # Asking twice doesn't open a second request.
    client.post("/mlops/models/churn/versions/2/request-promotion/", {})
    assert ApprovalRequest.objects.count() == 1
    assert "Waiting for approval:" in text_of(client.get("/mlops/models/churn/"))


def test_reject_needs_a_comment(operator, admin_user, guarded):
    pending = services.request_promotion(version=version(guarded, 2), actor=operator)
    admin = client_for(admin_user)
    response = admin.post(f"/mlops/approvals/{pending.pk}/reject/", {"comment": "  "}, follow=True)
    assert f"Request #{pending.pk}: Say why the request is rejected." in messages_of(response)
    pending.refresh_from_db()
    assert pending.status == "pending"
    response = admin.post(f"/mlops/approvals/{pending.pk}/reject/", {"comment": "Drift on EU traffic"}, follow=True)
    pending.refresh_from_db()
    assert pending.status == "rejected" and pending.comment == "Drift on EU traffic"
    assert f"Rejected request #{pending.pk}." in messages_of(response)
    assert stages(guarded) == {1: "Production", 2: "None"}
    assert "Drift on EU traffic" in text_of(response)
    # Decided is decided.
    response = admin.post(f"/mlops/approvals/{pending.pk}/approve/", follow=True)
    assert f"Request #{pending.pk}: Approval request #{pending.pk} is already rejected." in messages_of(response)


def test_requester_cancels_their_own_request_only(operator, guarded):
    pending = services.request_promotion(version=version(guarded, 2), actor=operator)
    other = client_for(UserFactory(username="olga", role=Role.OPERATOR))
    assert other.post(f"/mlops/approvals/{pending.pk}/cancel/").status_code == 403
    assert 'aria-label="Cancel request' not in other.get("/mlops/approvals/").content.decode()
    response = client_for(operator).post(
        f"/mlops/approvals/{pending.pk}/cancel/", {"next": "/mlops/models/fraud/versions/2/"}
    )
    assert response["Location"] == "/mlops/models/fraud/versions/2/"
    pending.refresh_from_db()
    assert pending.status == "cancelled"
    # Never redirected off-site.
    response = client_for(operator).post(f"/mlops/approvals/{pending.pk}/cancel/", {"next": "https://evil.example/"})
    assert response["Location"] == "/mlops/approvals/"


def test_rollback_from_the_model_page(operator, churn):
    services.transition_stage(version=version(churn, 1), stage="Production", actor=operator)
    services.transition_stage(version=version(churn, 2), stage="Production", actor=operator, archive_existing=True)
    client = client_for(operator)
    page = client.get("/mlops/models/churn/").content.decode()
    options = re.search(r'<select[^>]*name="rollback-version".*?</select>', page, re.S).group(0)
    assert re.findall(r'<option value="(\d+)">', options) == ["1"]
    response = client.post(
        "/mlops/models/churn/actions/rollback/", {"rollback-version": "1", "rollback-reason": "latency"}, follow=True
    )
    assert "Rolled back: version 1 is in Production again. Archived version 2." in messages_of(response)
    assert stages(churn) == {1: "Production", 2: "Archived"}
    assert "Rolled back to Production from Archived." in text_of(response)
    response = client.post("/mlops/models/churn/actions/rollback/", {"rollback-version": "1"}, follow=True)
    assert "Version 1 is already in Production." in messages_of(response)


def test_rollback_under_a_policy_needs_approval_unless_an_admin_does_it(operator, admin_user, make_model):
    guarded = make_model("fraud")
    services.transition_stage(version=version(guarded, 1), stage="Production", actor=admin_user)
    services.transition_stage(version=version(guarded, 2), stage="Production", actor=admin_user)
    services.update_model(model=guarded, actor=admin_user, approval_required=True)
    assert stages(guarded) == {1: "Archived", 2: "Production"}
    response = client_for(operator).post(
        "/mlops/models/fraud/actions/rollback/", {"rollback-version": "1"}, follow=True
    )
    pending = ApprovalRequest.objects.get(status="pending")
    assert pending.rollback and pending.version.version == 1
    assert f"Approval request #{pending.pk} is pending" in " ".join(messages_of(response))
    assert stages(guarded) == {1: "Archived", 2: "Production"}
    assert "rollback" in text_of(client_for(operator).get("/mlops/approvals/"))
    response = client_for(admin_user).post(
        "/mlops/models/fraud/actions/rollback/", {"rollback-version": "1"}, follow=True
    )
    assert "Rolled back: version 1 is in Production again. Archived version 2." in messages_of(response)


def test_no_rollback_candidates_says_so(operator, churn):
    assert "No earlier Production version to roll back to." in text_of(client_for(operator).get("/mlops/models/churn/"))
