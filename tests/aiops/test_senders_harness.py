"""End-to-end check of the RealSenders harness: real Prometheus + Alertmanager deliver to a local webhook."""

from __future__ import annotations

import json
import os
import pathlib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.aiops.senders import ALERTMANAGER, PROMETHEUS, RealSenders, free_port
from tests.conftest import need_service
from tests.helpers import wait_for

TOKEN = "s3cret"
DELIVERY_TIMEOUT = 30.0


class _Recorder:
    """Thread-safe list of (authorization header, JSON body) pairs received by the webhook."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str | None, Any]] = []

    def add(self, auth: str | None, body: Any) -> None:
        with self.lock:
            self.requests.append((auth, body))

    def snapshot(self) -> list[tuple[str | None, Any]]:
        with self.lock:
            return list(self.requests)


@pytest.fixture
def webhook() -> Iterator[tuple[str, _Recorder]]:
    """A threaded HTTP server on 127.0.0.1 that records every POST; yields (url, recorder)."""
    recorder = _Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            recorder.add(self.headers.get("Authorization"), body)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api/aiops/alerts/webhook/", recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _require_binaries() -> None:
    missing = [path for path in (PROMETHEUS, ALERTMANAGER) if not os.access(path, os.X_OK)]
    if missing:
        need_service(", ".join(missing))


def _is_test_alert(alert: dict[str, Any]) -> bool:
    labels = alert.get("labels", {})
    return labels.get("alertname") == "OpsPortalTestAlert" and labels.get("service") == "checkout"


def _wait_for(
    recorder: _Recorder, senders: RealSenders, what: str, match: Callable[[str | None, Any], bool]
) -> tuple[str | None, dict[str, Any]]:
    """Return the first recorded request satisfying `match`, failing after DELIVERY_TIMEOUT seconds."""
    found: list[tuple[str | None, Any]] = []

    def arrived() -> bool:
        found[:] = [(auth, body) for auth, body in recorder.snapshot() if match(auth, body)]
        return bool(found)

    if not wait_for(arrived, timeout=DELIVERY_TIMEOUT, interval=0.2):
        received = recorder.snapshot()
        pytest.fail(f"no {what} webhook within {DELIVERY_TIMEOUT:.0f}s; received {received!r}\n{senders.logs()}")
    return found[0]


def _notification(status: str) -> Callable[[str | None, Any], bool]:
    def match(auth: str | None, body: Any) -> bool:
        return (
            isinstance(body, dict)
            and body.get("version") == "4"
            and body.get("status") == status
            and any(_is_test_alert(a) and a.get("status") == status for a in body.get("alerts", []))
        )

    return match


@pytest.mark.services
def test_real_prometheus_and_alertmanager_deliver_firing_then_resolved(
    webhook: tuple[str, _Recorder], tmp_path: pathlib.Path
) -> None:
    _require_binaries()
    url, recorder = webhook

    with RealSenders(url, TOKEN, tmp_path) as senders:
        auth, body = _wait_for(recorder, senders, "firing", _notification("firing"))
        assert auth == f"Bearer {TOKEN}", senders.logs()
        assert body["receiver"] == "opsportal"
        assert body["groupLabels"] == {"alertname": "OpsPortalTestAlert", "service": "checkout"}
        alert = next(a for a in body["alerts"] if _is_test_alert(a))
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["summary"] == "Checkout is failing"
        assert alert["fingerprint"]

        senders.set_firing(False)
        auth, body = _wait_for(recorder, senders, "resolved", _notification("resolved"))
        assert auth == f"Bearer {TOKEN}", senders.logs()
        resolved = next(a for a in body["alerts"] if _is_test_alert(a))
        assert resolved["fingerprint"] == alert["fingerprint"]
        assert resolved["endsAt"] >= resolved["startsAt"]
