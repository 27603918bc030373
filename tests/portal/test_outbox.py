"""The outbox (opsportal.outbox) as a receiver sees it: signed, retried with one id, classified, never lost.

The core is exercised through an outbox defined here the way a new user would define
one (`Calls`, on the MLOps delivery table), and through both users the portal has.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import socket

import pytest
from django.utils import timezone

from aiops.models import Incident, Notification, NotificationChannel, NotificationRoute
from mlops.models import Webhook, WebhookDelivery
from opsportal import outbox
from opsportal.encryption import encrypt
from tests.helpers import running_worker, wait_for

pytestmark = pytest.mark.django_db

SECRET = "whsec-outbox-test"


class Calls(outbox.Outbox[WebhookDelivery]):
    """A minimal user of the core: signed POSTs of the stored payload to the stored target."""

    model = WebhookDelivery
    task = "mlops.tasks.send_webhook"

    def signing_secret(self, message: WebhookDelivery) -> str:
        return SECRET


CALLS = Calls()


def queued(target: str, *, event: str = "runbook.step", payload: dict | None = None) -> WebhookDelivery:
    hook = Webhook.objects.create(name=f"hook {Webhook.objects.count()}", url=target, secret=encrypt(SECRET))
    return WebhookDelivery.objects.create(webhook=hook, target=target, event=event, payload=payload or {"n": 1})


def on_call_incident(target: str) -> Incident:
    """An incident and a webhook channel routed every incident (no secret: sent unsigned)."""
    channel = NotificationChannel.objects.create(name="on-call", kind="webhook", target=target)
    NotificationRoute.objects.create(channel=channel)
    return Incident.objects.create(title="Checkout down", severity="critical", service="checkout")


def verifies(request: dict, secret: str) -> bool:
    signature = dict(part.split("=", 1) for part in request["headers"]["X-OpsPortal-Signature"].split(","))
    if signature["t"] != request["headers"]["X-OpsPortal-Timestamp"]:
        return False
    expected = hmac.new(secret.encode(), f"{signature['t']}.".encode() + request["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature["v1"], expected)


def test_the_receiver_gets_a_signed_body_with_the_same_delivery_id_on_a_retry(receiver, allow_loopback):
    row = queued(receiver.url, payload={"step": "restart", "service": "checkout"})
    receiver.status = 500
    assert CALLS.send(row.pk) == "retry"
    receiver.status = 200
    assert CALLS.send(row.pk) == "sent"

    first, second = receiver.requests
    for request in (first, second):
        assert verifies(request, SECRET)
        assert not verifies(request, "another secret")
        assert json.loads(request["body"]) == {"step": "restart", "service": "checkout"}
        assert request["headers"]["X-OpsPortal-Event"] == "runbook.step"
        assert request["headers"]["Content-Type"] == "application/json"
    assert first["headers"]["X-OpsPortal-Delivery"] == second["headers"]["X-OpsPortal-Delivery"]
    assert first["headers"]["X-OpsPortal-Delivery"] == str(row.delivery_id)


def test_a_server_error_then_success_is_one_delivery_sent_after_two_attempts(receiver, allow_loopback):
    row = queued(receiver.url)
    receiver.status = 500
    assert CALLS.send(row.pk) == "retry"
    row.refresh_from_db()
    assert (row.status, row.attempts, row.response_code, row.last_error) == ("pending", 1, 500, "HTTP 500")
    assert row.next_attempt_at > timezone.now()
    receiver.status = 200
    assert CALLS.send(row.pk) == "sent"
    assert CALLS.send(row.pk) == "gone"  # a redelivered task sends nothing more

    row.refresh_from_db()
    assert (row.status, row.attempts, row.response_code, row.last_error) == ("sent", 2, 200, "")
    assert row.sent_at is not None and row.next_attempt_at is None
    assert WebhookDelivery.objects.count() == 1 and len(receiver.requests) == 2


def test_not_found_fails_for_good_with_a_message(receiver, allow_loopback):
    row = queued(receiver.url)
    receiver.status = 404
    assert CALLS.send(row.pk) == "failed"
    assert CALLS.send(row.pk) == "gone"
    row.refresh_from_db()
    assert (row.status, row.attempts, row.response_code, row.last_error) == ("failed", 1, 404, "HTTP 404")
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("code", [408, 429, 502, 503])
def test_timeouts_rate_limits_and_server_errors_are_retried(receiver, allow_loopback, code):
    row = queued(receiver.url)
    receiver.status = code
    assert CALLS.send(row.pk) == "retry"


def test_server_errors_fail_for_good_after_the_last_attempt(receiver, allow_loopback):
    row = queued(receiver.url)
    receiver.status = 503
    outcomes = [CALLS.send(row.pk) for _ in range(outbox.MAX_ATTEMPTS)]
    assert outcomes == ["retry"] * (outbox.MAX_ATTEMPTS - 1) + ["failed"]
    row.refresh_from_db()
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", outbox.MAX_ATTEMPTS, None)
    assert len(receiver.requests) == outbox.MAX_ATTEMPTS


def test_a_redirect_is_not_followed_and_the_message_says_so(receiver, second_receiver, allow_loopback):
    row = queued(receiver.url)
    receiver.status, receiver.location = 307, second_receiver.url
    assert CALLS.send(row.pk) == "failed"
    assert second_receiver.requests == [] and len(receiver.requests) == 1
    row.refresh_from_db()
    assert (row.status, row.response_code) == ("failed", 307)
    assert row.last_error == "HTTP 307 (redirects are not followed: set the target to the final URL)"


def test_a_disallowed_host_is_refused_without_a_connection(receiver, settings, monkeypatch):
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = []
    connections = []
    real_create_connection = socket.create_connection
    monkeypatch.setattr(
        socket, "create_connection", lambda *a, **k: connections.append(a) or real_create_connection(*a, **k)
    )
    row = queued(receiver.url)
    assert CALLS.send(row.pk) == "failed"
    assert connections == [] and receiver.requests == []
    row.refresh_from_db()
    assert row.status == "failed" and row.attempts == 1
    assert row.last_error.startswith("refused: 127.0.0.1 resolves to 127.0.0.1, which is not a public address")
    assert "OPSPORTAL_OUTBOUND_ALLOWLIST" in row.last_error


def test_a_permanent_failure_from_a_hook_fails_at_once_without_sending(receiver, allow_loopback):
    class Unsignable(Calls):
        def signing_secret(self, message: WebhookDelivery) -> str:
            raise outbox.PermanentFailure("the signing secret cannot be read; set it again")

    row = queued(receiver.url)
    assert Unsignable().send(row.pk) == "failed"
    row.refresh_from_db()
    assert row.last_error == "the signing secret cannot be read; set it again"
    assert receiver.requests == []


def test_a_deliver_step_that_is_not_http(allow_loopback):
    """What email does: a user-supplied deliver step; its errors are retried, its success is recorded."""
    attempts: list[str] = []

    class Pigeons(Calls):
        def deliver(self, message: WebhookDelivery) -> int | None:
            attempts.append(message.target)
            if len(attempts) == 1:
                raise ConnectionError("the pigeon got lost")
            return None

        def recorded(self, message: WebhookDelivery) -> None:
            attempts.append(f"recorded {message.status}")

    row = queued("http://127.0.0.1:9/")
    row.target = "loft 7"
    row.save()
    assert Pigeons().send(row.pk) == "retry"
    assert Pigeons().send(row.pk) == "sent"
    assert attempts == ["loft 7", "recorded pending", "loft 7", "recorded sent"]
    row.refresh_from_db()
    assert (row.status, row.response_code, row.attempts) == ("sent", None, 2)


# --- The sweeper -------------------------------------------------------------------------------------------


def test_the_sweeper_resends_what_is_due_oldest_first_and_bounded(isolated_broker, receiver):
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    lost = [queued(receiver.url) for _ in range(3)]
    for second, row in enumerate(lost):  # a second apart, the first one queued the oldest
        WebhookDelivery.objects.filter(pk=row.pk).update(created_at=long_ago + datetime.timedelta(seconds=second))
    queued(receiver.url)  # never tried, but young: its own task is still on its way
    retry_waiting = queued(receiver.url)
    WebhookDelivery.objects.filter(pk=retry_waiting.pk).update(
        created_at=long_ago, attempts=1, next_attempt_at=timezone.now() + datetime.timedelta(seconds=30)
    )
    retry_lost = queued(receiver.url)
    WebhookDelivery.objects.filter(pk=retry_lost.pk).update(
        created_at=long_ago, attempts=1, next_attempt_at=timezone.now() - datetime.timedelta(minutes=5)
    )
    done = queued(receiver.url)
    WebhookDelivery.objects.filter(pk=done.pk).update(created_at=long_ago, status="sent")

    assert CALLS.requeue_pending() == 4
    due = WebhookDelivery.objects.filter(pk__in=[r.pk for r in lost])
    assert outbox.sweep(CALLS.task, due, limit=2) == [lost[0].pk, lost[1].pk]


def test_the_sweeper_stops_when_the_broker_is_down_and_leaves_the_rows_pending(broker_outage, receiver):
    row = queued(receiver.url)
    WebhookDelivery.objects.filter(pk=row.pk).update(created_at=timezone.now() - datetime.timedelta(hours=1))
    with broker_outage():
        assert CALLS.requeue_pending() == 0
    assert WebhookDelivery.objects.get().status == "pending"


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
def test_a_notification_lost_with_the_broker_reaches_the_receiver_through_the_sweeper(
    receiver, allow_loopback, broker_outage, isolated_broker
):
    from aiops import notifications
    from aiops.tasks import sweep_notifications

    incident = on_call_incident(receiver.url)
    with broker_outage():
        notifications.queue([(incident, "opened")])
    row = Notification.objects.get()
    assert row.status == "pending" and row.target == receiver.url
    Notification.objects.update(created_at=row.created_at - datetime.timedelta(hours=1))
    with running_worker():
        sweep_notifications.delay()
        assert wait_for(lambda: Notification.objects.filter(status="sent").exists(), timeout=30)
    (request,) = receiver.requests
    assert json.loads(request["body"])["incident"]["title"] == "Checkout down"
    assert request["headers"]["X-OpsPortal-Delivery"] == str(row.delivery_id)


# --- One backoff for every outbox ----------------------------------------------------------------------------


def test_both_users_share_one_backoff():
    expected = [8, 16, 32, 64, 128, 256, 512, 600, 600]
    assert [outbox.retry_delay(n).total_seconds() for n in range(1, 10)] == expected
    for model in (Notification, WebhookDelivery):
        assert [model(attempts=n).retry_delay().total_seconds() for n in range(1, 10)] == expected


def test_a_failed_notification_and_a_failed_webhook_wait_alike(receiver, allow_loopback):
    from aiops import notifications
    from mlops import webhooks

    receiver.status = 503
    (notification,) = notifications.queue([(on_call_incident(receiver.url), "opened")])
    delivery = queued(receiver.url)
    assert notifications.send(notification_id=notification.pk) == "retry"
    assert webhooks.send(delivery_id=delivery.pk) == "retry"
    notification.refresh_from_db()
    delivery.refresh_from_db()
    for row in (notification, delivery):
        wait = (row.next_attempt_at - timezone.now()).total_seconds()
        assert 6 <= wait <= 8
    assert notifications.NOTIFICATIONS.retry_delay_for(notification.pk) == webhooks.DELIVERIES.retry_delay_for(
        delivery.pk
    )
