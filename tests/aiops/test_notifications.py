"""Incident notifications, for real: channels set up through the API, incidents opened from Alertmanager
payloads, and a local HTTP receiver that records what OpsPortal actually sends.

The outbox task is enqueued with `transaction.on_commit`; inside a `django_db` test the transaction never
commits, so the tests call `notifications.send()` themselves, as the worker would.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import inspect
import json
import socket
import ssl
import threading
import time

import pytest
from django.db import DatabaseError, connection, transaction

from aiops import notifications, services
from aiops.models import Incident, IncidentEvent, Notification, NotificationChannel
from opsportal.audit.models import AuditEntry
from opsportal.encryption import decrypt
from tests.aiops.conftest import am_alert, am_payload, deliver
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db

SECRET = "whsec-correct-horse-battery-staple"
CHANNELS = "/api/v1/aiops/channels/"


def create_channel_via_api(api, **fields) -> dict:
    response = api.post(CHANNELS, fields, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def make_channel(actor, target: str, *, kind: str = "webhook", secret: str | None = SECRET, **route):
    """A channel (via the service the API calls) with one route; the route defaults to critical only."""
    name = f"{kind} {NotificationChannel.objects.count()}"
    channel = services.save_channel(actor=actor, name=name, kind=kind, target=target, secret=secret)
    severities, only_services = route.get("severities", ["critical"]), route.get("services", [])
    services.save_route(actor=actor, channel=channel, severities=severities, services=only_services)
    return channel


def open_incident(alertmanager, *, alertname: str = "HighErrorRate", service: str = "checkout", severity="critical"):
    """Ingest an Alertmanager payload the way Alertmanager does and correlate it: returns the new incident."""
    integration, token = alertmanager
    payload = am_payload(am_alert(alertname, service=service, severity=severity), group_key=f"{{}}:{alertname}")
    response = deliver(integration, token, payload)
    assert response.status_code == 202, response.content
    assert response.json()["created"] == 1
    before = set(Incident.objects.values_list("pk", flat=True))
    assert services.process_pending_alerts() == 1
    return Incident.objects.exclude(pk__in=before).get()


def send_pending() -> list[str]:
    """What the worker does for each enqueued task."""
    ids = list(Notification.objects.filter(status="pending").order_by("id").values_list("id", flat=True))
    return [notifications.send(notification_id=pk) for pk in ids]


def enqueued(callbacks) -> list[tuple[str, tuple]]:
    """(task name, args) of the `enqueue_on_commit` callbacks captured by django_capture_on_commit_callbacks."""
    found = []
    for callback in callbacks:
        captured = inspect.getclosurevars(callback).nonlocals
        found.append((captured["name"], captured["args"]))
    return found


def timeline(incident: Incident) -> list[str]:
    return list(
        IncidentEvent.objects.filter(incident=incident, kind=IncidentEvent.Kind.NOTIFICATION)
        .order_by("at", "id")
        .values_list("message", flat=True)
    )


# --- 1. Setting up a channel ---------------------------------------------------------------------------------


def test_admin_creates_webhook_channel_and_the_secret_is_never_shown_and_stored_encrypted(admin_api, allow_loopback):
    channel = create_channel_via_api(
        admin_api, name="On-call webhook", kind="webhook", target="http://127.0.0.1:9/hooks", secret=SECRET
    )
    assert channel["has_secret"] is True
    assert "secret" not in channel

    route = admin_api.post(f"{CHANNELS}{channel['id']}/routes/", {"severities": ["critical"]}, format="json")
    assert route.status_code == 201, route.content
    assert route.json()["severities"] == ["critical"]

    for response in (admin_api.get(f"{CHANNELS}{channel['id']}/"), admin_api.get(CHANNELS)):
        assert response.status_code == 200
        assert SECRET not in response.content.decode()
    detail = admin_api.get(f"{CHANNELS}{channel['id']}/").json()
    assert detail["has_secret"] is True
    assert [r["severities"] for r in detail["routes"]] == [["critical"]]

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT secret_encrypted FROM {NotificationChannel._meta.db_table} WHERE id = %s", [channel["id"]]
        )
        (stored,) = cursor.fetchone()
    assert stored and SECRET not in stored
    assert decrypt(stored) == SECRET  # readable back, for signing
    audit = json.dumps(list(AuditEntry.objects.values("changes", "message")))
    assert SECRET not in audit


def test_operators_cannot_manage_channels(operator_api, allow_loopback):
    response = operator_api.post(
        CHANNELS, {"name": "x", "kind": "webhook", "target": "http://127.0.0.1:9/"}, format="json"
    )
    assert response.status_code == 403
    assert not NotificationChannel.objects.exists()


# --- 2. An incident opens: a signed POST reaches the receiver ------------------------------------------------


def test_opened_incident_is_posted_signed_to_the_webhook(
    admin_api, alertmanager, receiver, allow_loopback, django_capture_on_commit_callbacks
):
    channel = create_channel_via_api(admin_api, name="On-call", kind="webhook", target=receiver.url, secret=SECRET)
    admin_api.post(f"{CHANNELS}{channel['id']}/routes/", {"severities": ["critical"]}, format="json")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        incident = open_incident(alertmanager)
    notification = Notification.objects.get(incident=incident)
    assert (notification.event, notification.status, notification.attempts) == ("opened", "pending", 0)
    # the ingest enqueued correlation, correlation enqueued the send (and the incident's troubleshooting
    # context), all after commit ...
    assert enqueued(callbacks) == [
        ("aiops.tasks.process_alerts", ()),
        ("aiops.tasks.send_notification", (notification.pk,)),
        ("aiops.tasks.assemble_incident_contexts", ([incident.pk],)),
    ]
    assert receiver.requests == []  # ... and nothing is sent inside the transaction

    started = int(time.time())
    assert send_pending() == ["sent"]

    (request,) = receiver.requests
    assert request["method"] == "POST"
    assert request["path"] == "/hooks/opsportal"
    assert request["headers"]["Content-Type"] == "application/json"
    document = json.loads(request["body"])
    assert document["event"] == "opened"
    assert document["incident"]["id"] == incident.pk
    assert document["incident"]["title"] == incident.title == "HighErrorRate on checkout"
    assert document["incident"]["severity"] == "critical"
    assert document["incident"]["service"] == "checkout"
    assert document["incident"]["status"] == "triggered"
    assert document["incident"]["url"].endswith(incident.get_absolute_url())

    timestamp = request["headers"]["X-OpsPortal-Timestamp"]
    assert started - 5 <= int(timestamp) <= time.time() + 5
    assert request["headers"]["X-OpsPortal-Event"] == "opened"
    assert request["headers"]["X-OpsPortal-Delivery"] == str(notification.delivery_id)
    signature = dict(part.split("=", 1) for part in request["headers"]["X-OpsPortal-Signature"].split(","))
    assert signature["t"] == timestamp
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature["v1"], expected)
    wrong = hmac.new(b"another secret", f"{timestamp}.".encode() + request["body"], hashlib.sha256).hexdigest()
    assert signature["v1"] != wrong

    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.response_code) == ("sent", 1, 200)
    assert notification.sent_at is not None and notification.last_error == ""
    (message,) = timeline(incident)
    assert "Notified On-call" in message and "opened" in message and "HTTP 200" in message

    # A second delivery of the task (the sweeper, a redelivered message) sends nothing more.
    assert notifications.send(notification_id=notification.pk) == "gone"
    assert len(receiver.requests) == 1


def test_webhook_without_secret_is_sent_unsigned(admin_user, alertmanager, receiver, allow_loopback):
    make_channel(admin_user, receiver.url, secret=None)
    open_incident(alertmanager)
    assert send_pending() == ["sent"]
    (request,) = receiver.requests
    assert request["headers"]["X-OpsPortal-Signature"] is None
    assert json.loads(request["body"])["event"] == "opened"


# --- 3. Routing ----------------------------------------------------------------------------------------------


def test_routes_filter_by_severity_and_service(admin_user, alertmanager, receiver, allow_loopback):
    critical_only = make_channel(admin_user, receiver.url, severities=["critical"])
    payments_only = make_channel(admin_user, receiver.url, severities=[], services=["payments"])

    warning = open_incident(alertmanager, alertname="SlowRequests", severity="warning", service="checkout")
    assert not Notification.objects.filter(incident=warning).exists()

    checkout = open_incident(alertmanager, alertname="HighErrorRate", severity="critical", service="checkout")
    assert list(Notification.objects.filter(incident=checkout).values_list("channel", flat=True)) == [critical_only.pk]

    payments = open_incident(alertmanager, alertname="CardDeclines", severity="warning", service="payments")
    assert list(Notification.objects.filter(incident=payments).values_list("channel", flat=True)) == [payments_only.pk]

    assert send_pending() == ["sent", "sent"]
    assert sorted(receiver.json(i)["incident"]["id"] for i in range(2)) == [checkout.pk, payments.pk]
    assert timeline(warning) == []


def test_a_channel_with_two_matching_routes_is_notified_once(admin_user, alertmanager, receiver, allow_loopback):
    channel = make_channel(admin_user, receiver.url, severities=["critical"])
    services.save_route(actor=admin_user, channel=channel, severities=[], services=["checkout"])
    open_incident(alertmanager)
    assert send_pending() == ["sent"]
    assert len(receiver.requests) == 1


def test_disabled_route_and_disabled_channel_do_not_notify(admin_user, alertmanager, receiver, allow_loopback):
    channel = make_channel(admin_user, receiver.url, severities=[])
    services.save_channel(actor=admin_user, channel=channel, enabled=False)
    other = services.save_channel(actor=admin_user, name="other", kind="webhook", target=receiver.url)
    services.save_route(actor=admin_user, channel=other, severities=[], services=[], enabled=False)
    open_incident(alertmanager)
    assert not Notification.objects.exists()
    assert receiver.requests == []


# --- 4. Failures and the rest of the incident's life ---------------------------------------------------------


def test_server_error_is_retried_then_fails_for_good(admin_user, alertmanager, receiver, allow_loopback):
    make_channel(admin_user, receiver.url)
    receiver.status = 500
    incident = open_incident(alertmanager)
    notification = Notification.objects.get(incident=incident)

    assert notifications.send(notification_id=notification.pk) == "retry"
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.response_code) == ("pending", 1, 500)
    assert notification.last_error == "HTTP 500"
    assert "will retry" in timeline(incident)[-1] and "attempt 1" in timeline(incident)[-1]

    outcomes = [notifications.send(notification_id=notification.pk) for _ in range(notifications.MAX_ATTEMPTS - 1)]
    assert outcomes == ["retry"] * (notifications.MAX_ATTEMPTS - 2) + ["failed"]
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("failed", notifications.MAX_ATTEMPTS)
    assert notification.sent_at is None
    assert len(receiver.requests) == notifications.MAX_ATTEMPTS
    assert len(timeline(incident)) == notifications.MAX_ATTEMPTS
    assert f"failed for good after {notifications.MAX_ATTEMPTS} attempt(s): HTTP 500" in timeline(incident)[-1]

    assert notifications.send(notification_id=notification.pk) == "gone"
    assert len(receiver.requests) == notifications.MAX_ATTEMPTS


def test_a_receiver_that_recovers_gets_the_notification(admin_user, alertmanager, receiver, allow_loopback):
    make_channel(admin_user, receiver.url)
    receiver.status = 503
    incident = open_incident(alertmanager)
    assert send_pending() == ["retry"]
    receiver.status = 200
    assert send_pending() == ["sent"]
    notification = Notification.objects.get(incident=incident)
    assert (notification.status, notification.attempts, notification.response_code) == ("sent", 2, 200)
    assert notification.last_error == ""
    assert "will retry" in timeline(incident)[0] and "HTTP 200" in timeline(incident)[1]
    first, second = receiver.requests
    assert first["headers"]["X-OpsPortal-Delivery"] == second["headers"]["X-OpsPortal-Delivery"]
    assert first["body"] == second["body"]


@pytest.mark.parametrize(("code", "outcome"), [(404, "failed"), (400, "failed"), (410, "failed"), (429, "retry")])
def test_client_errors_fail_at_once_except_too_many_requests(
    admin_user, alertmanager, receiver, allow_loopback, code, outcome
):
    make_channel(admin_user, receiver.url)
    receiver.status = code
    incident = open_incident(alertmanager)
    assert send_pending() == [outcome]
    notification = Notification.objects.get(incident=incident)
    assert (notification.attempts, notification.response_code) == (1, code)
    if outcome == "failed":
        assert notification.status == "failed"
        assert f"failed for good after 1 attempt(s): HTTP {code}" in timeline(incident)[-1]
        assert send_pending() == []
        assert len(receiver.requests) == 1
    else:
        assert notification.status == "pending"


def test_unreachable_receiver_is_retried(admin_user, alertmanager, receiver, allow_loopback):
    make_channel(admin_user, receiver.url)
    receiver.close()  # nothing listens on the port any more
    incident = open_incident(alertmanager)
    assert send_pending() == ["retry"]
    notification = Notification.objects.get(incident=incident)
    assert (notification.status, notification.attempts, notification.response_code) == ("pending", 1, None)
    assert "will retry" in timeline(incident)[-1]


def test_acknowledge_and_resolve_notify(admin_user, alertmanager, receiver, allow_loopback):
    make_channel(admin_user, receiver.url)
    incident = open_incident(alertmanager)
    assert send_pending() == ["sent"]

    services.acknowledge_incident(incident=incident, actor=admin_user)
    services.acknowledge_incident(incident=incident, actor=admin_user)  # a second time changes nothing
    assert list(Notification.objects.filter(status="pending").values_list("event", flat=True)) == ["acknowledged"]
    assert send_pending() == ["sent"]
    acknowledged = receiver.json()
    assert acknowledged["event"] == "acknowledged"
    assert acknowledged["incident"]["status"] == "acknowledged"
    assert acknowledged["incident"]["acknowledged_at"] is not None
    assert receiver.requests[-1]["headers"]["X-OpsPortal-Event"] == "acknowledged"

    services.resolve_incident(incident=incident, actor=admin_user, note="rolled back")
    assert list(Notification.objects.filter(status="pending").values_list("event", flat=True)) == ["resolved"]
    assert send_pending() == ["sent"]
    resolved = receiver.json()
    assert resolved["event"] == "resolved"
    assert resolved["incident"]["status"] == "resolved"
    assert resolved["incident"]["resolved_at"] is not None

    assert [r["event"] for r in map(json.loads, (r["body"] for r in receiver.requests))] == [
        "opened",
        "acknowledged",
        "resolved",
    ]
    assert [m.split("“")[1].split("”")[0] for m in timeline(incident)] == ["opened", "acknowledged", "resolved"]


def test_alert_resolving_resolves_and_notifies(admin_user, alertmanager, receiver, allow_loopback):
    make_channel(admin_user, receiver.url)
    incident = open_incident(alertmanager)
    integration, token = alertmanager
    response = deliver(integration, token, am_payload(am_alert(status="resolved"), group_key="{}:HighErrorRate"))
    assert response.status_code == 202
    services.process_pending_alerts()
    assert send_pending() == ["sent", "sent"]
    assert [json.loads(r["body"])["event"] for r in receiver.requests] == ["opened", "resolved"]
    assert receiver.json()["incident"]["id"] == incident.pk


# --- 5. The outbound allow-list ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:9/hooks",
        "http://localhost:9/hooks",
        "http://10.1.2.3/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/hooks",
        "file:///etc/passwd",
    ],
)
def test_private_targets_are_refused_when_the_channel_is_created(admin_api, settings, target):
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = []
    response = admin_api.post(CHANNELS, {"name": "x", "kind": "webhook", "target": target}, format="json")
    assert response.status_code == 400, response.content
    assert "target" in response.json()["errors"]
    assert response.json()["detail"].startswith("target:")
    assert not NotificationChannel.objects.exists()


def test_slack_target_is_checked_too(admin_api, settings):
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = []
    response = admin_api.post(CHANNELS, {"name": "x", "kind": "slack", "target": "http://127.0.0.1:9/"}, format="json")
    assert response.status_code == 400
    assert "target" in response.json()["errors"]


def test_send_is_refused_once_the_allow_list_no_longer_allows_the_target(
    admin_user, alertmanager, receiver, settings, allow_loopback
):
    make_channel(admin_user, receiver.url)
    incident = open_incident(alertmanager)
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = []
    assert send_pending() == ["failed"]
    notification = Notification.objects.get(incident=incident)
    assert (notification.status, notification.attempts) == ("failed", 1)
    assert notification.last_error.startswith("refused:")
    assert "refused" in timeline(incident)[-1] and "OPSPORTAL_OUTBOUND_ALLOWLIST" in timeline(incident)[-1]
    assert receiver.requests == []


def test_allow_list_by_network(admin_user, alertmanager, receiver, settings):
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = ["127.0.0.0/8"]
    make_channel(admin_user, receiver.url.replace("127.0.0.1", "localhost"))
    open_incident(alertmanager)
    assert send_pending() == ["sent"]
    assert len(receiver.requests) == 1


def test_redirects_are_not_followed(admin_user, alertmanager, receiver, second_receiver, allow_loopback):
    """A receiver answering 302 must not make OpsPortal request an address the allow-list does not allow."""
    make_channel(admin_user, receiver.url)
    receiver.status, receiver.location = 302, second_receiver.url
    incident = open_incident(alertmanager)
    assert send_pending() == ["failed"]
    assert second_receiver.requests == []
    assert len(receiver.requests) == 1
    notification = Notification.objects.get(incident=incident)
    assert (notification.status, notification.response_code) == ("failed", 302)
    assert "HTTP 302" in timeline(incident)[-1]


def test_connects_to_the_address_that_was_checked(
    admin_user, alertmanager, receiver, second_receiver, allow_loopback, monkeypatch
):
    """DNS rebinding: a name that resolves to an allowed address when checked and to another one afterwards."""
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1"] * 2 + ["127.0.0.2"] * 10)  # save_channel's check, send's check, then the switch

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "hooks.rebind.test":
            host = next(answers)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    port = receiver.server.server_address[1]
    make_channel(admin_user, f"http://hooks.rebind.test:{port}/hooks/opsportal")
    open_incident(alertmanager)
    assert send_pending() == ["sent"]
    assert second_receiver.requests == []
    (request,) = receiver.requests
    assert request["headers"]["Host"] == f"hooks.rebind.test:{port}"


def self_signed_certificate(folder) -> tuple[str, str]:
    """A certificate for `localhost` (its own CA) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_file), str(key_file)


def test_https_receiver_certificate_is_verified(admin_user, alertmanager, settings, monkeypatch, tmp_path):
    """HTTPS goes to the checked address but verifies the certificate for the host name; an untrusted one fails."""
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = ["127.0.0.0/8", "::1"]
    cert_file, key_file = self_signed_certificate(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    server = Receiver(tls=tls)
    try:
        make_channel(admin_user, server.url)
        incident = open_incident(alertmanager)
        assert send_pending() == ["retry"]  # not trusted yet
        assert "CERTIFICATE_VERIFY_FAILED" in timeline(incident)[-1]
        assert server.requests == []

        monkeypatch.setenv("SSL_CERT_FILE", cert_file)  # now the portal trusts it
        assert send_pending() == ["sent"]
        (request,) = server.requests
        assert json.loads(request["body"])["incident"]["id"] == incident.pk
        assert "X-OpsPortal-Signature" in request["headers"]
    finally:
        server.close()


# --- 6. Slack and email ------------------------------------------------------------------------------------


def test_slack_channel_posts_text_with_the_incident_title(admin_user, alertmanager, receiver, allow_loopback):
    make_channel(admin_user, receiver.url, kind="slack", secret=None)
    incident = open_incident(alertmanager)
    assert send_pending() == ["sent"]
    document = receiver.json()
    assert list(document) == ["text"]
    assert incident.title in document["text"]
    assert "CRITICAL" in document["text"] and "opened" in document["text"]
    assert document["text"].endswith(incident.get_absolute_url())
    assert "Slack-compatible webhook" in timeline(incident)[-1]


def test_email_channel_sends_to_each_listed_address(admin_user, alertmanager, mailoutbox):
    make_channel(admin_user, "oncall@example.com, sre@example.com", kind="email", secret=None)
    incident = open_incident(alertmanager)
    assert send_pending() == ["sent"]
    (mail,) = mailoutbox
    assert mail.to == ["oncall@example.com", "sre@example.com"]
    assert incident.title in mail.subject
    assert "opened" in mail.subject
    assert json.loads(mail.body)["incident"]["id"] == incident.pk
    notification = Notification.objects.get(incident=incident)
    assert (notification.status, notification.response_code) == ("sent", None)
    assert "(Email)" in timeline(incident)[-1]


def test_email_with_a_multi_line_title_is_still_sent(admin_user, alertmanager, mailoutbox):
    """Titles can be edited to anything; a line break must not turn into an undeliverable subject."""
    make_channel(admin_user, "oncall@example.com", kind="email", secret=None)
    incident = open_incident(alertmanager)
    services.update_incident(incident=incident, actor=admin_user, title="Checkout is down\nsee the runbook")
    services.acknowledge_incident(incident=incident, actor=admin_user)
    assert send_pending() == ["sent", "sent"]
    assert "Checkout is down see the runbook" in mailoutbox[-1].subject


def test_invalid_email_address_is_refused(admin_api):
    response = admin_api.post(CHANNELS, {"name": "mail", "kind": "email", "target": "oncall@, x"}, format="json")
    assert response.status_code == 400
    assert "target" in response.json()["errors"]


def test_unreadable_secret_fails_without_sending_unsigned(admin_user, alertmanager, receiver, allow_loopback, settings):
    """After SECRET_KEY changed the signing secret cannot be decrypted: retrying cannot help, so say so."""
    make_channel(admin_user, receiver.url)
    incident = open_incident(alertmanager)
    settings.SECRET_KEY = "another-secret-key-" * 4
    assert send_pending() == ["failed"]
    assert receiver.requests == []
    assert "SECRET_KEY" in timeline(incident)[-1]


# --- 7. The sweeper ------------------------------------------------------------------------------------------


def test_sweeper_requeues_old_pending_notifications(
    admin_user, alertmanager, receiver, allow_loopback, isolated_broker, tmp_path
):
    from opsportal.celery import app

    make_channel(admin_user, receiver.url)
    first = open_incident(alertmanager, alertname="First")
    assert send_pending() == ["sent"]
    open_incident(alertmanager, alertname="Second")

    assert notifications.requeue_pending() == 0  # younger than the default two minutes
    assert notifications.requeue_pending(older_than=datetime.timedelta(0)) == 1  # the sent one is not requeued
    if app.conf.broker_url.startswith("filesystem"):
        assert len(list((tmp_path / "queue").iterdir())) == 1

    assert send_pending() == ["sent"]
    assert notifications.requeue_pending(older_than=datetime.timedelta(0)) == 0
    assert [json.loads(r["body"])["incident"]["title"] for r in receiver.requests] == [
        first.title,
        "Second on checkout",
    ]


# --- Concurrency (PostgreSQL row locks) ------------------------------------------------------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_a_slow_receiver_holds_up_neither_the_incident_nor_other_channels(
    admin_user, alertmanager, allow_loopback, isolated_broker
):
    """While one channel's receiver is slow, the incident can be triaged and other channels are notified."""
    slow, fast = Receiver(), Receiver()
    slow.hold = threading.Event()
    try:
        make_channel(admin_user, slow.url)
        make_channel(admin_user, fast.url)
        incident = open_incident(alertmanager)
        first, second = Notification.objects.filter(incident=incident).order_by("channel_id")
        outcome: list[str] = []

        def send_in_worker() -> None:
            try:
                outcome.append(notifications.send(notification_id=first.pk))
            finally:
                connection.close()

        worker = threading.Thread(target=send_in_worker)
        worker.start()
        assert slow.entered.wait(5)

        with transaction.atomic():
            try:
                Incident.objects.select_for_update(nowait=True).get(pk=incident.pk)
            except DatabaseError:
                pytest.fail("sending a notification locks the incident row")
        assert notifications.send(notification_id=second.pk) == "sent"  # not skipped as "locked"
        assert len(fast.requests) == 1
        # The notification being sent is locked: a duplicate task does not send it twice.
        assert notifications.send(notification_id=first.pk) == "gone"

        slow.hold.set()
        worker.join(10)
        assert outcome == ["sent"]
        assert len(slow.requests) == 1
    finally:
        slow.hold.set()
        slow.close()
        fast.close()


def test_the_task_retries_until_the_attempts_are_used_up(admin_user, alertmanager, receiver, allow_loopback):
    """The worker's task (run eagerly here: retries run at once) gives every attempt, then the row fails."""
    from aiops.tasks import send_notification

    make_channel(admin_user, receiver.url)
    receiver.status = 502
    incident = open_incident(alertmanager)
    notification = Notification.objects.get(incident=incident)
    assert send_notification.apply(args=[notification.pk]).get() == "failed"
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("failed", notifications.MAX_ATTEMPTS)
    assert len(receiver.requests) == notifications.MAX_ATTEMPTS


def test_sweeper_leaves_a_scheduled_retry_alone_until_it_is_overdue(
    admin_user, alertmanager, receiver, allow_loopback, isolated_broker
):
    from django.utils import timezone

    from aiops.models import Notification

    make_channel(admin_user, receiver.url)
    receiver.status = 500
    open_incident(alertmanager)
    assert send_pending() == ["retry"]
    notification = Notification.objects.get()
    assert notification.next_attempt_at > timezone.now()
    assert notifications.requeue_pending(older_than=datetime.timedelta(0)) == 0
    Notification.objects.filter(pk=notification.pk).update(
        next_attempt_at=timezone.now() - datetime.timedelta(minutes=2)
    )
    assert notifications.requeue_pending(older_than=datetime.timedelta(0)) == 1


def test_a_notification_queued_before_its_channel_was_disabled_is_not_sent(
    admin_user, alertmanager, receiver, allow_loopback
):
    from aiops.models import Notification

    channel = make_channel(admin_user, receiver.url)
    open_incident(alertmanager)
    services.save_channel(actor=admin_user, channel=channel, enabled=False)
    assert send_pending() == ["failed"]
    assert receiver.requests == []
    assert Notification.objects.get().last_error == "not sent: the channel was disabled"
