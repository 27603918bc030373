"""`manage.py run_eval`, as a CI job runs it: start a run, wait with a progress bar, fail below a pass rate."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from llmops import services
from llmops.models import EvalRun

# The run is executed by another thread (--inline) or a worker: both need committed data.
pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
NAMES_THE_CITY = json.dumps({"type": "icontains", "config": {"value": "capital is"}})


@pytest.fixture
def staging(fake_llm, llm, capitals_prompt, capitals_dataset, operator):
    """capitals v1 at `staging`; the fake model answers three of the four countries well."""
    fake_llm.answers["capital of Japan"] = "I am not sure."
    services.move_label(prompt=capitals_prompt, label="staging", version=capitals_prompt.versions.get(), actor=operator)
    return capitals_prompt


@pytest.fixture
def no_broker(dead_broker):
    """--inline needs no broker: the run's task message is only logged as not sent (and leaves nothing behind)."""


COMMAND = ["--prompt", "capitals", "--label", "staging", "--dataset", "capitals", "--poll", "0.05"]


def run_eval(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("run_eval", *COMMAND, "--model", "local/test-model", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_passes_at_the_threshold_and_shows_progress_and_the_summary(staging, no_broker):
    out, err = run_eval("--scorer", NAMES_THE_CITY, "--inline", "--min-pass-rate", "0.75")

    run = EvalRun.objects.get()
    assert run.status == "completed" and run.done == 4
    assert f"Run #{run.pk} started: capitals v1 on capitals (4 results)." in out
    assert "capitals v1 x test-model: pass rate 75.0% (3/4 passed, 0 errors)" in out
    assert "    icontains: 75.0% passed, mean score 0.750" in out
    assert f"cost ${run.cost:.6f}" in out and run.cost > 0
    assert "OK: every column passed at least 75.0%." in out
    progress = err.splitlines()
    assert progress[-1].startswith(f"run #{run.pk} [{'#' * 30}] 4/4 100% errors 0  completed")


def test_fails_below_the_threshold_with_exit_status_1(staging, no_broker):
    with pytest.raises(SystemExit) as exit_info:
        run_eval("--scorer", NAMES_THE_CITY, "--inline", "--min-pass-rate", "0.9")

    assert exit_info.value.code == 1


def test_the_command_line_exits_1_below_the_threshold(staging, tmp_path):
    """The real process, as CI calls it: exit status 1, the reason and the progress on stderr."""
    # No broker at all: --inline does without one.
    env = {**os.environ, "DATABASE_URL": database_url(), "SECRET_KEY": settings.SECRET_KEY,
           "CELERY_BROKER_URL": "redis://127.0.0.1:9/0", "OPSPORTAL_VAR_DIR": str(tmp_path)}  # fmt: skip
    command = [sys.executable, "manage.py", "run_eval", *COMMAND, "--scorer", NAMES_THE_CITY, "--inline",
               "--min-pass-rate", "0.9"]  # fmt: skip

    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 1, done.stderr
    assert "FAILED: below --min-pass-rate 90.0%: capitals v1 x test-model passed 75.0%." in done.stderr
    assert "4/4 100%" in done.stderr and "pass rate 75.0%" in done.stdout


def test_a_worker_executes_the_run_while_the_command_waits(staging, fake_llm, worker):
    out, err = run_eval("--scorer", NAMES_THE_CITY, "--wait", "--timeout", "60")

    run = EvalRun.objects.get()
    assert run.status == "completed" and len(fake_llm.chat_requests) == 4
    assert "pass rate 75.0%" in out and "4/4 100%" in err


def test_without_scorers_it_refuses_and_names_the_option(staging):
    with pytest.raises(CommandError, match="--scorer"):
        run_eval("--wait")
    assert not EvalRun.objects.exists()


def test_bad_arguments_are_named(staging):
    with pytest.raises(CommandError, match="--scorer #1 is not valid JSON"):
        run_eval("--scorer", "{type: icontains}")
    with pytest.raises(CommandError, match=r"--label: Prompt 'capitals' has no label 'canary'"):
        call_command("run_eval", *COMMAND, "--label", "canary", "--scorer", NAMES_THE_CITY)
    with pytest.raises(CommandError, match=r"scorers\[0\]"):
        run_eval("--scorer", '{"type": "no-such-scorer"}')


def test_a_run_that_does_not_finish_in_time_is_cancelled(staging, fake_llm, no_broker):
    fake_llm.delay = 0.5
    with pytest.raises(SystemExit) as exit_info:
        run_eval("--scorer", NAMES_THE_CITY, "--inline", "--concurrency", "1", "--timeout", "0.3")

    assert exit_info.value.code == 1
    run = EvalRun.objects.get()
    assert run.cancel_requested and run.status == "cancelled"


def database_url() -> str:
    """The test database as a DATABASE_URL, for a process started by the test."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
