"""Real metric endpoints for the collection tests: a local exposition server, node_exporter and Prometheus.

- `ExpositionServer`: serves whatever body the test sets (text format, OpenMetrics or garbage) on
  127.0.0.1, optionally requiring a bearer token or basic auth, and records the requests.
- `NodeExporter`: Debian's `prometheus-node-exporter` on a free port.
- `PrometheusServer`: Debian's `prometheus`, scraping the targets it is given every second.
"""

from __future__ import annotations

import base64
import json
import pathlib
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.aiops.senders import PROMETHEUS, free_port

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_FORMAT = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class ExpositionServer:
    """Serves `body` with `content_type` at /metrics; with `token` or `basic` set, other requests get 401."""

    def __init__(self, body: str = "", content_type: str = TEXT_FORMAT) -> None:
        self.body = body
        self.content_type = content_type
        self.status = 200
        self.token: str | None = None
        self.basic: tuple[str, str] | None = None
        self.delay = 0.0
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append({"path": self.path, "headers": dict(self.headers)})
                if server.delay:
                    time.sleep(server.delay)
                authorization = self.headers.get("Authorization", "")
                expected = None
                if server.token is not None:
                    expected = f"Bearer {server.token}"
                elif server.basic is not None:
                    expected = "Basic " + base64.b64encode(":".join(server.basic).encode()).decode()
                if expected is not None and authorization != expected:
                    self._answer(401, b"unauthorized", "text/plain")
                    return
                self._answer(server.status, server.body.encode(), server.content_type)

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda request, address: None  # a client that gave up (timeouts)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def _wait_http(url: str, process: subprocess.Popen, log: pathlib.Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class NodeExporter:
    """Debian's prometheus-node-exporter on 127.0.0.1:<free port> (a few collectors, so a scrape is quick)."""

    def __init__(self, tmp_path: pathlib.Path) -> None:
        if not pathlib.Path(NODE_EXPORTER).exists():
            pytest.fail(f"{NODE_EXPORTER} is missing: apt-get install prometheus-node-exporter (.ci/run does)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.log = tmp_path / "node-exporter.log"
        self._log = self.log.open("wb")
        self.process = subprocess.Popen(
            [
                NODE_EXPORTER,
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--collector.disable-defaults",
                "--collector.cpu",
                "--collector.loadavg",
                "--collector.meminfo",
                "--collector.time",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_http(self.url, self.process, self.log)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        _stop(self.process)
        self._log.close()


class PrometheusServer:
    """Debian's Prometheus scraping `targets` (host:port) every second as job "node", its API on a free port.

    `data_dir` starts it on an existing TSDB (blocks backfilled with promtool)."""

    def __init__(self, tmp_path: pathlib.Path, targets: list[str], *, data_dir: pathlib.Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp_path / "prometheus.yml"
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [{"job_name": "node", "static_configs": [{"targets": targets}]}]
                    if targets
                    else [],
                }
            )
        )
        self.log = tmp_path / "prometheus.log"
        self._log = self.log.open("wb")
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={data_dir or tmp_path / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            cwd=tmp_path,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_http(f"{self.url}/-/ready", self.process, self.log)
        except BaseException:
            self.close()
            raise

    def query_range(self, expression: str, start: float, end: float, step: float) -> dict:
        query = urllib.parse.urlencode({"query": expression, "start": start, "end": end, "step": step})
        with urllib.request.urlopen(f"{self.url}/api/v1/query_range?{query}", timeout=5) as response:
            return json.loads(response.read())

    def query(self, expression: str) -> dict:
        url = f"{self.url}/api/v1/query?query={urllib.parse.quote(expression)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())

    def close(self) -> None:
        _stop(self.process)
        self._log.close()
