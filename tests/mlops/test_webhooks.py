"""Registry webhooks for real: a local receiver records what OpsPortal sends, signed, retried, never lost."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from mlops import services, webhooks
from mlops.models import Webhook, WebhookDelivery
from mlops.tasks import sweep_webhooks
from opsportal.encryption import decrypt
from tests.helpers import running_worker, wait_for

pytestmark = pytest.mark.django_db

HOOKS = "/api/v1/mlops/webhooks/"


def send_pending() -> list[str]:
    """What the worker does for each enqueued task."""
    ids = WebhookDelivery.objects.filter(status="pending").order_by("id").values_list("id", flat=True)
    return [webhooks.send(delivery_id=pk) for pk in list(ids)]


def verify(request: dict, secret: str) -> bool:
    signature = dict(part.split("=", 1) for part in request["headers"]["X-OpsPortal-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{signature['t']}.".encode() + request["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature["v1"], expected)


def test_secret_shown_once_stored_encrypted_and_admins_only(admin_api, operator_api, receiver, allow_loopback):
    assert operator_api.post(HOOKS, {"name": "ci", "url": receiver.url}, format="json").status_code == 403
    created = admin_api.post(HOOKS, {"name": "ci", "url": receiver.url, "events": ["stage_changed"]}, format="json")
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    assert len(secret) > 30
    hook = Webhook.objects.get()
    assert secret not in hook.secret and decrypt(hook.secret) == secret
    assert "secret" not in admin_api.get(f"{HOOKS}{hook.pk}/").json()
    assert "secret" not in str(admin_api.get(HOOKS).json())


def test_events_are_posted_signed_and_filtered(admin_user, operator, receiver, allow_loopback):
    _hook, secret = services.create_webhook(
        name="deploys", url=receiver.url, actor=admin_user, events=["version_created", "stage_changed"]
    )
    model = services.create_model(name="churn", actor=operator)  # model_created: not subscribed
    version = services.create_version(model=model, actor=operator, source="s3://m/1")
    services.transition_stage(version=version, stage="Staging", actor=operator)
    assert send_pending() == ["sent", "sent"]
    events = [r["headers"]["X-OpsPortal-Event"] for r in receiver.requests]
    assert events == ["version_created", "stage_changed"]
    assert all(verify(r, secret) for r in receiver.requests)
    body = receiver.json(-1)
    assert body["model"]["name"] == "churn" and body["version"]["version"] == "1"
    assert body["data"]["to_stage"] == "Staging" and body["actor"] == operator.username
    delivery = WebhookDelivery.objects.filter(event="stage_changed").get()
    assert delivery.status == "sent" and delivery.response_code == 200 and delivery.attempts == 1
    assert receiver.requests[-1]["headers"]["X-OpsPortal-Delivery"] == str(delivery.delivery_id)
    assert delivery.sent_at is not None and delivery.target == receiver.url


def test_a_webhook_for_one_model_ignores_the_others(admin_user, operator, receiver, allow_loopback, make_model):
    churn = make_model(name="churn", versions=0)
    make_model(name="other", versions=0)
    services.create_webhook(name="churn only", url=receiver.url, actor=admin_user, model=churn)
    services.set_model_tag(model=churn, key="team", value="growth", actor=operator)
    services.set_model_tag(model=services.get_model("other"), key="team", value="risk", actor=operator)
    send_pending()
    assert [r["headers"]["X-OpsPortal-Event"] for r in receiver.requests] == ["tag_set"]
    assert receiver.json()["data"] == {"key": "team", "value": "growth"}


def test_server_errors_are_retried_with_backoff_then_fail_for_good(admin_user, operator, receiver, allow_loopback):
    services.create_webhook(name="flaky", url=receiver.url, actor=admin_user)
    receiver.status = 503
    services.create_model(name="churn", actor=operator)
    assert send_pending() == ["retry"]
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and delivery.last_error == "HTTP 503" and delivery.next_attempt_at
    for _ in range(webhooks.MAX_ATTEMPTS - 1):
        send_pending()
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts == webhooks.MAX_ATTEMPTS
    assert len(receiver.requests) == webhooks.MAX_ATTEMPTS


def test_client_errors_fail_at_once(admin_user, operator, receiver, allow_loopback):
    services.create_webhook(name="gone", url=receiver.url, actor=admin_user)
    receiver.status = 404
    services.create_model(name="churn", actor=operator)
    assert send_pending() == ["failed"]


def test_private_addresses_are_refused_unless_allowed(admin_api, settings):
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = []
    refused = admin_api.post(HOOKS, {"name": "x", "url": "http://127.0.0.1:9/hook"}, format="json")
    assert refused.status_code == 400 and "not a public address" in str(refused.json()["errors"]["url"])
    unknown = admin_api.post(HOOKS, {"name": "x", "url": "http://example.com/", "events": ["nope"]}, format="json")
    assert unknown.status_code == 400 and "events" in unknown.json()["errors"]


def test_delivery_log_is_visible(admin_api, admin_user, operator, receiver, allow_loopback):
    hook, _ = services.create_webhook(name="log", url=receiver.url, actor=admin_user)
    services.create_model(name="churn", actor=operator)
    send_pending()
    log = admin_api.get(f"{HOOKS}{hook.pk}/deliveries/").json()["results"]
    assert [(d["event"], d["status"], d["response_code"]) for d in log] == [("model_created", "sent", 200)]
    assert log[0]["delivered_at"] is not None and log[0]["attempts"] == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
def test_a_real_worker_sends_and_the_sweeper_recovers_deliveries_lost_with_the_broker(
    admin_user, operator, receiver, allow_loopback, broker_outage, isolated_broker
):
    services.create_webhook(name="ci", url=receiver.url, actor=admin_user, events=["model_created"])
    with broker_outage():
        services.create_model(name="while-down", actor=operator)
    assert WebhookDelivery.objects.get().status == "pending"
    WebhookDelivery.objects.update(created_at=WebhookDelivery.objects.get().created_at.replace(year=2020))
    with running_worker():
        services.create_model(name="while-up", actor=operator)
        sweep_webhooks.delay()
        assert wait_for(lambda: not WebhookDelivery.objects.filter(status="pending").exists(), timeout=30)
    names = sorted(r["body"].decode().split('"name": "')[1].split('"')[0] for r in receiver.requests)
    assert names == ["while-down", "while-up"]
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"sent"}
