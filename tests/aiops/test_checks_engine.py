"""The check engine against local servers: what each kind reports, in the library's own words."""

from __future__ import annotations

import pytest

from aiops import services
from aiops.checks.runner import CheckSpec, run_many

from .check_targets import DNSServer, Target, closed_port, tls_context

pytestmark = pytest.mark.django_db


@pytest.fixture
def target():
    server = Target()
    yield server
    server.close()


def run(kind: str, config: dict, **options) -> object:
    (outcome,) = run_many([CheckSpec(kind=kind, config=services_config(kind, config), **options)])
    return outcome


def services_config(kind: str, config: dict) -> dict:
    from aiops.checks.config import validate_config

    return validate_config(kind, config)


def test_http_check_up_with_its_status_latency_keyword_and_json_path(target, allow_loopback):
    outcome = run(
        "http", {"url": target.url("/health"), "keyword": '"ok"', "json_path": "$.version", "json_expected": 3}
    )
    assert outcome.up, outcome.error
    assert outcome.status_code == 200 and outcome.error == ""
    assert 0 < outcome.latency_ms < 5000
    assert outcome.details["json_value"] == 3


def test_http_check_down_on_a_500_says_so(target, allow_loopback):
    target.answer(500)
    outcome = run("http", {"url": target.url()})
    assert not outcome.up
    assert outcome.status_code == 500
    assert outcome.error == "HTTP 500 Internal Server Error; expected 200-299"


def test_http_assertions_fail_with_what_was_found(target, allow_loopback):
    target.answer(200, {"status": "degraded", "version": 3})
    assert run("http", {"url": target.url(), "keyword": "ok"}).error == "the body does not contain 'ok'"
    assert run("http", {"url": target.url(), "keyword": "degraded", "keyword_absent": True}).error == (
        "the body contains 'degraded', which must be absent"
    )
    assert run("http", {"url": target.url(), "keyword": r"deg\w+", "keyword_regex": True}).up
    assert run("http", {"url": target.url(), "json_path": "$.status", "json_expected": "ok"}).error == (
        'JSON path $.status is "degraded", expected "ok"'
    )
    assert run("http", {"url": target.url(), "json_path": "$.missing"}).error == (
        "JSON path $.missing matches nothing in the body"
    )
    assert run("http", {"url": target.url(), "expected_status": ["4xx"]}).error == "HTTP 200 OK; expected 4xx"


def test_redirects_are_followed_or_not_as_configured(target, allow_loopback):
    followed = run("http", {"url": target.url("/redirect")})
    assert followed.up and followed.details["redirects"] == [target.url("/")]
    assert run("http", {"url": target.url("/redirect"), "follow_redirects": False}).error == (
        "HTTP 302 Found; expected 200-299"
    )
    assert run("http", {"url": target.url("/redirect"), "follow_redirects": False, "expected_status": [302]}).up


def test_slow_answers_fail_the_latency_limit_and_the_timeout(target, allow_loopback):
    target.delay = 0.3
    slow = run("http", {"url": target.url(), "max_latency_ms": 100})
    assert not slow.up and slow.error.startswith("took ") and slow.error.endswith("over the limit of 100 ms")
    timed_out = run("http", {"url": target.url()}, timeout=0.1)
    assert timed_out.error == "TimeoutError: no answer within 0.1 s"


def test_tcp_check_connects_or_reports_the_refusal(target, allow_loopback):
    assert run("tcp", {"host": "127.0.0.1", "port": target.port}).up
    port = closed_port()
    refused = run("tcp", {"host": "127.0.0.1", "port": port})
    assert not refused.up
    assert refused.error == f"ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', {port})"


def test_tls_certificate_is_verified_and_its_days_to_expiry_read(tmp_path, allow_loopback):
    server = Target(tls=tls_context(tmp_path, days=10))
    try:
        untrusted = run("http", {"url": server.url()})
        assert not untrusted.up and "CERTIFICATE_VERIFY_FAILED" in untrusted.error
        unverified = run("http", {"url": server.url(), "verify_tls": False})
        assert unverified.up, unverified.error
        assert 9.9 < unverified.details["tls"]["days_left"] <= 10
        assert unverified.details["tls"]["subject"] == "CN=localhost"
        expiring = run("http", {"url": server.url(), "verify_tls": False, "tls_min_days_left": 30})
        assert not expiring.up and expiring.error.startswith("TLS certificate expires in 10.0 days")

        tls_only = run("tls", {"host": "127.0.0.1", "port": server.port, "verify": False, "min_days_left": 30})
        assert not tls_only.up and "fewer than 30" in tls_only.error
        assert 9.9 < tls_only.details["tls"]["days_left"] <= 10
        assert run("tls", {"host": "127.0.0.1", "port": server.port, "verify": False, "min_days_left": 7}).up
        verified = run("tls", {"host": "localhost", "port": server.port})
        assert not verified.up and "CERTIFICATE_VERIFY_FAILED" in verified.error
    finally:
        server.close()


def test_dns_check_compares_the_answers(allow_loopback):
    server = DNSServer({("api.example.test", "A"): ["192.0.2.10", "192.0.2.11"]})
    base = {"nameservers": ["127.0.0.1"], "port": server.port}
    try:
        found = run("dns", {**base, "name": "api.example.test", "expected": ["192.0.2.11"]})
        assert found.up, found.error
        assert found.details["answers"] == ["192.0.2.10", "192.0.2.11"]
        wrong = run("dns", {**base, "name": "api.example.test", "expected": ["192.0.2.99"]})
        assert wrong.error == "api.example.test A answers ['192.0.2.10', '192.0.2.11']; missing ['192.0.2.99']"
        missing = run("dns", {**base, "name": "nope.example.test"})
        assert missing.error == "NXDOMAIN: The DNS query name does not exist: nope.example.test."
    finally:
        server.close()


def test_upside_down_inverts_the_result(target, allow_loopback):
    target.answer(500)
    inverted = run("http", {"url": target.url()}, upside_down=True)
    assert inverted.up and inverted.details["inverted_error"].startswith("HTTP 500")
    target.answer(200)
    answered = run("http", {"url": target.url()}, upside_down=True)
    assert not answered.up and answered.error == "Upside down: the check passed (HTTP 200)"


def test_internal_targets_are_refused_unless_allow_listed(target, settings):
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = []
    for kind, config in (
        ("http", {"url": target.url()}),
        ("tcp", {"host": "127.0.0.1", "port": target.port}),
        ("tls", {"host": "localhost", "port": target.port}),
    ):
        outcome = run(kind, config, upside_down=True)  # a refusal is never inverted into "up"
        assert not outcome.up
        assert outcome.error.startswith("Refused by the outbound allow-list: ")
        assert "OPSPORTAL_OUTBOUND_ALLOWLIST" in outcome.error
    assert target.hits == 0


def test_each_redirect_hop_is_vetted(target, settings):
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    target.redirect_to = f"http://127.0.0.2:{target.port}/"
    outcome = run("http", {"url": target.url("/redirect")})
    assert not outcome.up
    assert outcome.error.startswith("Refused by the outbound allow-list: 127.0.0.2 resolves to 127.0.0.2")
    assert target.hits == 1


def test_test_check_runs_once_and_saves_nothing(target, allow_loopback):
    outcome = services.test_check(kind="http", config={"url": target.url()})
    assert outcome.up and outcome.status_code == 200
    from aiops.models import Check, CheckResult

    assert Check.objects.count() == CheckResult.objects.count() == 0
