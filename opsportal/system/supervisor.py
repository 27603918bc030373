"""Runs the Procfile's processes for `make run`, announces the portal once it answers, and stops cleanly.

Like honcho (which it replaces for `make run`; `honcho start` still works with the same Procfile),
it starts every process, prefixes their output with the time and the process name, and stops all
of them when one exits or on Ctrl-C. Unlike it:

- Each process runs in its own session and a stop signal goes to the process itself, not its whole
  group: a Celery worker then stops its pool children itself (a group signal kills them under it:
  "ERROR ... exited with 'signal 15 (SIGTERM)'") and gunicorn its workers.
- Processes get `stop_timeout` seconds (default 30: a worker finishes the task in hand) before the
  rest is killed.
- A requested stop (SIGINT or SIGTERM) that ends every process in time prints "OpsPortal stopped."
  and exits 0 (it takes the terminal's foreground, so Ctrl-C does not kill `make` above it); a
  process that exits on its own, or one that had to be killed, exits non-zero.
- Once `ready()` says so (the portal answers `/readyz`, a worker reports) and the output has been
  quiet for a moment, it prints `announcement()`, so the URL is the last thing on the screen.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

QUIET_SECONDS = 1.0  # output silence before the announcement
MAX_QUIET_WAIT = 15.0  # announce anyway this long after readiness
READY_POLL_SECONDS = 0.5


@contextlib.contextmanager
def terminal_foreground():
    """Make this process's group the terminal's foreground group while the block runs.

    Ctrl-C sends SIGINT to the terminal's foreground group. Under `make run` that group holds make
    too, which would die of it ("Interrupt", exit status 130) whatever the recipe then does. In a
    group of its own and in the foreground, this process alone gets the Ctrl-C, stops everything and
    exits 0, and make with it. Nothing changes without a terminal, or when not in the foreground.
    """
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        yield
        return
    try:
        original = os.tcgetpgrp(fd)
        if original != os.getpgrp() or os.getsid(0) == os.getpid():
            yield
            return
        previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background group may not set it otherwise
        try:
            os.setpgid(0, 0)
            os.tcsetpgrp(fd, os.getpgrp())
            yield
        finally:
            with contextlib.suppress(OSError):
                os.tcsetpgrp(fd, original)
            signal.signal(signal.SIGTTOU, previous)
    finally:
        os.close(fd)


def parse_procfile(text: str) -> dict[str, str]:
    """`name: command` lines, in order; blank lines and `#` comments are skipped."""
    processes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip() or not command.strip() or not name.strip().replace("-", "").isalnum():
            raise ValueError(f"Procfile line {number}: expected 'name: command', got {line!r}")
        processes[name.strip()] = command.strip()
    if not processes:
        raise ValueError("the Procfile declares no process")
    return processes


@dataclass
class Child:
    name: str
    command: str
    process: subprocess.Popen | None = None
    returncode: int | None = None
    output_done: bool = False
    reader: threading.Thread | None = field(default=None, repr=False)


class Supervisor:
    """Start `processes` (name -> shell command), relay their output to `out`, stop them together."""

    def __init__(
        self, processes: dict[str, str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        out: TextIO = sys.stdout, stop_timeout: float = 30.0, ready: Callable[[], bool] | None = None,
        announcement: Callable[[], str] | None = None, stop_last: frozenset[str] = frozenset(),
    ) -> None:  # fmt: skip
        self.children = [Child(name=f"{name}.1", command=command) for name, command in processes.items()]
        self.env = env if env is not None else dict(os.environ)
        self.cwd = cwd
        self.out = out
        self.stop_timeout = stop_timeout
        self.ready = ready
        self.announcement = announcement
        # Processes the others use while they stop (the demo model a worker's evaluation run still asks).
        self.stop_last = {f"{name}.1" for name in stop_last}
        self.width = max(len("system"), *(len(c.name) for c in self.children))
        self.lines: queue.SimpleQueue[tuple[Child, str | None]] = queue.SimpleQueue()
        self.stop_requested = threading.Event()
        self.is_ready = threading.Event()
        self.stops = 0

    # --- output ---

    def _print(self, name: str, text: str) -> None:
        stamp = datetime.datetime.now().strftime("%H:%M:%S")
        self.out.write(f"{stamp} {name.ljust(self.width)} | {text}\n")
        self.out.flush()

    def system(self, text: str) -> None:
        self._print("system", text)

    def _read(self, child: Child) -> None:
        assert child.process is not None and child.process.stdout is not None
        for raw in iter(child.process.stdout.readline, b""):
            self.lines.put((child, raw.decode("utf-8", "replace").rstrip("\r\n")))
        self.lines.put((child, None))

    # --- life cycle ---

    def _start(self) -> None:
        for child in self.children:
            # `exec`: the signal reaches the program itself, not a shell in front of it. The commands are the
            # project's own Procfile, run through the shell for its ${VAR:-default} expansion.
            child.process = subprocess.Popen(  # noqa: S603
                ["/bin/sh", "-c", f"exec {child.command}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd, start_new_session=True,
            )  # fmt: skip
            self.system(f"{child.name} started (pid={child.process.pid})")
            child.reader = threading.Thread(target=self._read, args=(child,), daemon=True)
            child.reader.start()

    def _watch_readiness(self) -> None:
        while not self.stop_requested.is_set():
            with contextlib.suppress(Exception):
                if self.ready is None or self.ready():
                    self.is_ready.set()
                    return
            self.stop_requested.wait(READY_POLL_SECONDS)

    def _on_signal(self, signum: int, frame) -> None:
        self.stops += 1
        self.system(f"{signal.Signals(signum).name} received, stopping")
        self.stop_requested.set()

    def _terminate(self, children: list[Child]) -> None:
        for child in children:
            if child.returncode is None and child.process is not None:
                self.system(f"sending SIGTERM to {child.name} (pid {child.process.pid})")
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    child.process.send_signal(signal.SIGTERM)

    def _signal(self, sig: int, *, group: bool = False) -> None:
        for child in self.children:
            if child.process is None or child.returncode is not None:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if group:
                    os.killpg(child.process.pid, sig)
                else:
                    child.process.send_signal(sig)

    def _running(self) -> list[Child]:
        return [c for c in self.children if c.returncode is None or not c.output_done]

    def _pump(self, timeout: float) -> bool:
        """Relay one line (or notice an exit); False when nothing came within `timeout`."""
        try:
            child, line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return False
        if line is not None:
            self._print(child.name, line)
            return True
        assert child.process is not None
        child.returncode = child.process.wait()
        child.output_done = True
        # Whatever the process left behind in its group (it has its own session) goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGKILL)
        self.system(f"{child.name} stopped (rc={child.returncode})")
        return True

    def run(self) -> int:
        """Run until a stop is requested or a process exits; the exit status for the caller."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            with terminal_foreground():
                return self._run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self) -> int:
        self._start()
        threading.Thread(target=self._watch_readiness, daemon=True).start()
        announced = False
        last_output = time.monotonic()
        ready_since: float | None = None
        failed: Child | None = None
        while not self.stop_requested.is_set():
            if self._pump(0.1):
                last_output = time.monotonic()
            exited = next((c for c in self.children if c.returncode is not None), None)
            if exited is not None:
                failed = exited
                self.system(f"{exited.name} exited on its own; stopping the others")
                break
            if not announced and self.is_ready.is_set():
                now = time.monotonic()
                ready_since = ready_since or now
                if now - last_output >= QUIET_SECONDS or now - ready_since >= MAX_QUIET_WAIT:
                    if self.announcement is not None:
                        self.out.write(self.announcement().rstrip("\n") + "\n")
                        self.out.flush()
                    announced = True
        return self._stop(failed)

    def _stop(self, failed: Child | None) -> int:
        deadline = time.monotonic() + self.stop_timeout
        first = [c for c in self.children if c.name not in self.stop_last]
        last = [c for c in self.children if c.name in self.stop_last]
        forced = False
        for group in (first, last):
            self._terminate(group)
            stops_seen = self.stops
            while any(c.returncode is None or not c.output_done for c in group) and time.monotonic() < deadline:
                if self.stops > stops_seen:
                    self.system("second stop request: killing what is left")
                    forced = True
                    break
                self._pump(0.1)
            if forced:
                break
        killed = [c for c in self.children if c.returncode is None]
        if killed:
            self.system(f"{', '.join(c.name for c in killed)} did not stop in time: killing")
            self._signal(signal.SIGKILL, group=True)
            while self._running():
                self._pump(0.5)
        if failed is None and not killed:
            self.system("OpsPortal stopped.")
            return 0
        if failed is not None:
            return failed.returncode or 1
        return 1
