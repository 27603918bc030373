"""Real Prometheus + Alertmanager, run as subprocesses, for end-to-end tests of the alert webhook.

Usage::

    with RealSenders("http://127.0.0.1:8000/hook", "s3cret", tmp_path) as senders:
        ...  # Prometheus fires OpsPortalTestAlert; Alertmanager POSTs it to the webhook
        senders.set_firing(False)  # the alert resolves; Alertmanager sends a "resolved" notification

The configuration files are written as JSON, which is valid YAML, so no YAML library is needed.
"""

from __future__ import annotations

import json
import pathlib
import socket
import subprocess
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import IO, Any

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"

ALERT_NAME = "OpsPortalTestAlert"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
LOG_TAIL_CHARS = 4000


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now (the usual small race applies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: pathlib.Path, chars: int = LOG_TAIL_CHARS) -> str:
    """The last `chars` characters of a log file ('' if it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return text[-chars:]


class _Process:
    """One child process whose stdout and stderr go to a single log file."""

    def __init__(self, name: str, argv: list[str], log_path: pathlib.Path, cwd: pathlib.Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.popen = subprocess.Popen(  # argv is built from constants and temp paths only
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def tail(self) -> str:
        """Recent output of the process."""
        return _tail(self.log_path)

    def stop(self) -> None:
        """Terminate the process, kill it if it does not exit in time, and close its log."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=STOP_TIMEOUT)
        self._log.close()


class RealSenders:
    """Context manager: starts Alertmanager then Prometheus in a temp dir; stops both (terminate, then kill) on exit.

    Alertmanager routes every alert to the receiver ``opsportal``, a webhook to `webhook_url` that authenticates
    with ``Authorization: Bearer <bearer_token>`` and also sends resolved notifications. Prometheus evaluates a
    single rule, ``OpsPortalTestAlert`` (labels severity=critical, service=checkout), every second; whether it
    fires is switched with :meth:`set_firing` without restarting anything.
    """

    def __init__(self, webhook_url: str, bearer_token: str, tmp_path: pathlib.Path, *, firing: bool = True) -> None:
        self.webhook_url = webhook_url
        self.bearer_token = bearer_token
        self.dir = pathlib.Path(tmp_path)
        self.firing = firing
        self.am_port = free_port()
        self.prom_port = free_port()
        self.alertmanager_url = f"http://127.0.0.1:{self.am_port}"
        self.prometheus_url = f"http://127.0.0.1:{self.prom_port}"
        self.alertmanager_config = self.dir / "alertmanager.yml"
        self.prometheus_config = self.dir / "prometheus.yml"
        self.rules_file = self.dir / "rules.yml"
        self._alertmanager: _Process | None = None
        self._prometheus: _Process | None = None

    # -- configuration -------------------------------------------------------------------------------------------

    def _alertmanager_yaml(self) -> dict[str, Any]:
        return {
            "route": {
                "receiver": "opsportal",
                "group_by": ["alertname", "service"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "opsportal",
                    "webhook_configs": [
                        {
                            "url": self.webhook_url,
                            "send_resolved": True,
                            "max_alerts": 0,
                            "http_config": {
                                "authorization": {"type": "Bearer", "credentials": self.bearer_token},
                            },
                        }
                    ],
                }
            ],
            # No `templates:` entry: Debian's binary reads default.tmpl from /usr/share/prometheus/alertmanager/ itself.
        }

    def _prometheus_yaml(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.rules_file)],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.am_port}"]}]}]},
            "scrape_configs": [
                {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{self.prom_port}"]}]},
            ],
        }

    def _rules_yaml(self, firing: bool) -> dict[str, Any]:
        return {
            "groups": [
                {
                    "name": "opsportal-test",
                    "interval": "1s",
                    "rules": [
                        {
                            "alert": ALERT_NAME,
                            "expr": "vector(1) > 0" if firing else "vector(0) > 0",
                            "for": "0s",
                            "labels": {"severity": "critical", "service": "checkout"},
                            "annotations": {
                                "summary": "Checkout is failing",
                                "description": "Synthetic alert raised by the OpsPortal end-to-end test harness.",
                            },
                        }
                    ],
                }
            ]
        }

    @staticmethod
    def _write(path: pathlib.Path, data: dict[str, Any]) -> None:
        """Write `data` as JSON (valid YAML) atomically, so a reload never sees a half-written file."""
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> RealSenders:
        """Write the configuration, start Alertmanager then Prometheus, and wait until both are ready."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write(self.alertmanager_config, self._alertmanager_yaml())
        self._write(self.prometheus_config, self._prometheus_yaml())
        self._write(self.rules_file, self._rules_yaml(self.firing))
        try:
            self._alertmanager = _Process(
                "alertmanager",
                [
                    ALERTMANAGER,
                    f"--config.file={self.alertmanager_config}",
                    f"--storage.path={self.dir / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{self.am_port}",
                    f"--web.external-url={self.alertmanager_url}",  # payload's externalURL, not the hostname
                    "--cluster.listen-address=",  # no gossip: no peers and no port 9094 to collide on
                    "--log.level=debug",  # logs every notify attempt, which logs() shows on failure
                ],
                self.dir / "alertmanager.log",
                self.dir,
            )
            self._wait_ready(self._alertmanager, self.alertmanager_url)
            self._prometheus = _Process(
                "prometheus",
                [
                    PROMETHEUS,
                    f"--config.file={self.prometheus_config}",
                    f"--storage.tsdb.path={self.dir / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{self.prom_port}",
                    f"--web.external-url={self.prometheus_url}",  # alerts' generatorURL, not the hostname
                    "--rules.alert.resend-delay=1s",
                    "--web.enable-lifecycle",
                ],
                self.dir / "prometheus.log",
                self.dir,
            )
            self._wait_ready(self._prometheus, self.prometheus_url)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop Prometheus, then Alertmanager (terminate, then kill after a timeout)."""
        for proc in (self._prometheus, self._alertmanager):
            if proc is not None:
                proc.stop()

    def __enter__(self) -> RealSenders:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_ready(self, proc: _Process, base_url: str, timeout: float = READY_TIMEOUT) -> None:
        """Poll ``<base_url>/-/ready`` until it answers 200; raise with the log tail if the process dies or hangs."""
        deadline = time.monotonic() + timeout
        while True:
            code = proc.popen.poll()
            if code is not None:
                raise RuntimeError(f"{proc.name} exited with code {code} before becoming ready:\n{proc.tail()}")
            try:
                with urllib.request.urlopen(f"{base_url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} not ready at {base_url} after {timeout:.0f}s:\n{proc.tail()}")
            time.sleep(0.1)

    # -- control -------------------------------------------------------------------------------------------------

    def set_firing(self, on: bool) -> None:
        """Switch OpsPortalTestAlert on or off by rewriting rules.yml and asking Prometheus to reload it."""
        self.firing = on
        self._write(self.rules_file, self._rules_yaml(on))
        req = urllib.request.Request(f"{self.prometheus_url}/-/reload", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            if resp.status != 200:
                raise RuntimeError(f"Prometheus reload failed with HTTP {resp.status}:\n{self.logs()}")

    def logs(self) -> str:
        """Recent output of both processes, for assertion messages."""
        parts = []
        for proc in (self._alertmanager, self._prometheus):
            if proc is not None:
                parts.append(f"----- {proc.name} ({proc.log_path}) -----\n{proc.tail()}")
        return "\n".join(parts) or "(no processes started)"
