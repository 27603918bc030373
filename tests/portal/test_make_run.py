"""`make run` as a newcomer runs it: embedded defaults (SQLite in a fresh var dir, no Redis), the URL and
the first admin password printed last once the portal answers, and Ctrl-C ending cleanly with exit 0.

It runs the Makefile's own `run` recipe (migrate, seed_demo, ensure_admin, run_portal with the
Procfile), with this environment's Python instead of installing a new one. About 30-40 s.
"""

from __future__ import annotations

import fcntl
import os
import pty
import queue
import shutil
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Output:
    """The lines a terminal (the pty's master side, `fd`) shows, read in the background."""

    def __init__(self, fd: int) -> None:
        self.lines: list[str] = []
        self.fresh: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        threading.Thread(target=self._read, args=(fd,), daemon=True).start()

    def _read(self, fd: int) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: every process holding the terminal has exited
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                line = raw.decode("utf-8", "replace").rstrip("\r")
                self.lines.append(line)
                self.fresh.put(line)
        self.fresh.put(None)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.fresh.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            if line is None:
                break
            if text in line:
                return line
        raise AssertionError(f"{text!r} not printed within {timeout} s; output:\n" + "\n".join(self.lines[-60:]))


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_announces_the_ready_portal_last_and_stops_cleanly_on_ctrl_c(tmp_path):
    port, llm_port = free_port(), free_port()
    # What the suite's own Celery workers exported (CELERY_LOG_LEVEL=30 ...) is no part of a user's shell.
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"} and not k.startswith("CELERY_")
    }
    env.pop("OPSPORTAL_REQUIRE_SERVICES", None)
    env.update(
        OPSPORTAL_VAR_DIR=str(tmp_path / "var"), BIND=f"127.0.0.1:{port}",
        OPSPORTAL_DEMO_LLM_BIND=f"127.0.0.1:{llm_port}", WEB_CONCURRENCY="1", CELERY_CONCURRENCY="1",
    )  # fmt: skip
    venv = Path(sys.prefix)
    # The recipe as it is, with this environment (-o: do not reinstall it).
    command = ["make", "--no-print-directory", "run", f"VENV={venv}", "-o", str(venv / ".installed-runtime")]
    # In a terminal of its own (a pty), as the foreground job of a shell: Ctrl-C is the terminal's.
    master, terminal = pty.openpty()
    make = subprocess.Popen(
        command, cwd=ROOT, env=env, stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )  # fmt: skip
    os.close(terminal)
    output = Output(master)
    try:
        url_line = output.wait_for(f"OpsPortal on http://127.0.0.1:{port}", timeout=120)
        time.sleep(3)  # whatever else the processes print now would push the URL off the screen
        before = output.lines[: output.lines.index(url_line)]
        assert output.lines[-1] == url_line, "the URL is not the last thing printed:\n" + "\n".join(output.lines[-20:])
        # The portal answered /readyz before the announcement, and the first run's credentials come with it.
        assert any('"GET /readyz HTTP/1.1" 200' in line for line in before)
        banner = "\n".join(before[-10:])
        assert "username: admin" in banner and "password: " in banner
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            assert answer.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{llm_port}/v1/models", timeout=5) as answer:
            assert b"demo-large" in answer.read()

        os.write(master, b"\x03")  # Ctrl-C
        returncode = make.wait(timeout=60)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
    time.sleep(0.5)  # the last lines on their way through the terminal
    os.close(master)
    text = "\n".join(output.lines)
    assert returncode == 0, text[-3000:]
    assert "OpsPortal stopped." in [line for line in output.lines if line.strip()][-1]
    assert "ERROR" not in text and "Traceback" not in text and "make: ***" not in text, text[-3000:]
    # Shown once: the next run points at the file instead of printing the password again.
    assert not (tmp_path / "var" / "admin-credentials.announce").exists()
