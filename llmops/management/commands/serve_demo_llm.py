"""Serve the demo model: a local OpenAI-compatible endpoint answering from the datasets (llmops/demo_llm.py).

    python manage.py serve_demo_llm                 # on OPSPORTAL_DEMO_LLM_BIND (127.0.0.1:8001)
    python manage.py serve_demo_llm --bind 127.0.0.1:9000 --latency 0

`make run` starts it (Procfile `demo-llm`); the demo provider "Demo model (local, not an LLM)"
points at it. It is a stand-in for a real provider, for trying the portal without a network.
"""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from llmops.demo_llm import DEMO_MODELS, DemoModel, Knowledge
from llmops.models import DatasetItem

# The newest items are enough to answer the demo and what a newcomer adds.
MAX_ITEMS = 20_000


def knowledge_from_datasets() -> Knowledge:
    """(input values, expected output) of the newest dataset items that have an expected output."""
    try:
        rows = (
            DatasetItem.objects.exclude(expected_output="")
            .order_by("-id")
            .values_list("input", "expected_output")[:MAX_ITEMS]
        )
        pairs = []
        for values, expected in rows:
            if isinstance(values, dict):
                texts = [str(v) for v in values.values() if isinstance(v, str | int | float) and str(v).strip()]
                pairs.append((texts, expected))
        return pairs
    finally:
        connection.close()  # each request thread has its own connection: do not leave it open


class Command(BaseCommand):
    help = "Serve the demo model, an OpenAI-compatible endpoint that answers from the datasets (not an LLM)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default=settings.OPSPORTAL_DEMO_LLM_BIND, help="host:port to listen on")
        parser.add_argument("--latency", type=float, default=1.0, help="scale of the simulated latency (0: none)")

    def handle(self, *args, bind: str, latency: float, **options) -> None:
        host, _, port = bind.rpartition(":")
        if not host or not port.isdigit():
            raise CommandError(f"--bind must be host:port, got {bind!r}")
        if latency < 0:
            raise CommandError("--latency must be 0 or more")
        try:
            server = DemoModel(knowledge_from_datasets, host=host, port=int(port), latency=latency)
        except OSError as exc:
            raise CommandError(f"cannot listen on {bind}: {exc.strerror or exc}") from exc
        server.start()
        self.stdout.write(f"Demo model (not an LLM) on {server.base_url}, models: {', '.join(DEMO_MODELS)}")
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        stop.wait()
        server.close()
        self.stdout.write("Demo model stopped.")
