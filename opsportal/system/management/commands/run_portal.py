"""`make run`'s last step: serve the Procfile's processes and print the URL once the portal is ready.

    python manage.py run_portal [--procfile Procfile] [--stop-timeout 30]

The web server listens on `BIND` (default 127.0.0.1:8000). Celery logs at `CELERY_LOG_LEVEL`
(WARNING here unless set, so the announcement stays on screen; the Procfile's own default is INFO).
When `/readyz` answers 200 and a worker has reported, it prints the URL (and, the first time, the
admin's name and password, which `ensure_admin --announce-later` left in var/) as the last lines.
Ctrl-C stops everything, says "OpsPortal stopped." and exits 0.
"""

from __future__ import annotations

import logging
import os
import sys
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.utils import timezone

from opsportal.accounts.management.commands.ensure_admin import credentials_path, pending_announcement_path
from opsportal.system import services
from opsportal.system.supervisor import Supervisor, parse_procfile


def portal_url(bind: str) -> str:
    host, _, port = bind.rpartition(":")
    # Listening on every interface: this machine answers on 127.0.0.1 too.
    host = "127.0.0.1" if host in ("", "0.0.0.0") else host.strip("[]")  # noqa: S104
    return f"http://{host}:{port}"


class Command(BaseCommand):
    help = "Run the web server, Celery worker and beat (and the demo model) from the Procfile; Ctrl-C stops them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--procfile", default=str(Path(settings.BASE_DIR) / "Procfile"))
        parser.add_argument("--stop-timeout", type=float, default=30.0, help="seconds each process has to stop")

    def handle(self, *args, procfile: str, stop_timeout: float, **options) -> None:
        try:
            processes = parse_procfile(Path(procfile).read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"{procfile}: {exc}") from exc
        env = dict(os.environ)
        env.setdefault("CELERY_LOG_LEVEL", "WARNING")
        # Celery itself exports its level as a number (e.g. "30") to the processes it starts; its CLI takes names.
        if env["CELERY_LOG_LEVEL"].isdigit():
            env["CELERY_LOG_LEVEL"] = logging.getLevelName(int(env["CELERY_LOG_LEVEL"]))
        env["PYTHONUNBUFFERED"] = "1"
        # The programs of this environment (gunicorn, celery, python) first, as `make run` has them.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        bind = env.get("BIND") or "127.0.0.1:8000"
        url = portal_url(bind)
        started = timezone.now()

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=3) as answer:  # noqa: S310 (http:// built here)
                    if answer.status != 200:
                        return False
                return any(w.online and w.started_at >= started for w in services.workers())
            except OSError:
                return False
            finally:
                connection.close()

        supervisor = Supervisor(
            processes, env=env, cwd=Path(settings.BASE_DIR), out=sys.stdout, stop_timeout=stop_timeout,
            ready=ready, announcement=lambda: self.announcement(url, processes), stop_last=frozenset({"demo-llm"}),
        )  # fmt: skip
        status = supervisor.run()
        if status:
            sys.exit(status)

    def announcement(self, url: str, processes: dict[str, str]) -> str:
        """The lines printed once the portal answers: the first-run credentials, then the URL (last)."""
        bar = "=" * 72
        lines = ["", bar]
        pending = pending_announcement_path()
        credentials = credentials_path()
        if pending.exists() and credentials.exists():
            lines += [
                "Admin user created (first run):",
                *(f"  {line}" for line in credentials.read_text().splitlines()),
            ]
            lines.append(f"  (kept in {credentials}; shown this once)")
            pending.unlink(missing_ok=True)
        elif credentials.exists():
            lines.append(f"Admin credentials are in {credentials}.")
        if "demo-llm" in processes:
            lines.append(f"Demo model (local, not an LLM) on http://{settings.OPSPORTAL_DEMO_LLM_BIND}/v1.")
        lines.append(bar)
        stopping = ", ".join(processes)
        lines.append(f"OpsPortal on {url}  (ready; Ctrl-C stops {stopping})")
        return "\n".join(lines)
