"""Start an evaluation run from the command line or CI, optionally wait for it and fail below a pass rate.

    python manage.py run_eval --prompt support-answer --label staging --dataset golden --model openai/gpt-4o-mini \\
        --scorer '{"type": "icontains", "config": {"value": "refund"}}' --wait --min-pass-rate 0.9

Without --wait it prints the run's id and returns. With --wait (implied by --min-pass-rate) it shows a
progress bar on stderr, prints the summary, and exits with status 1 when the run failed, was cancelled,
timed out, or a column's pass rate is below --min-pass-rate.

Who executes the run: by default a Celery worker on the `evals` queue (the command waits for it and
says so on stderr when nobody has picked the run up after a while). With --inline this process
executes it, for CI jobs without workers; a worker that gets the queued message as well finds the
run leased or finished and leaves it alone.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import TextIO

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from llmops import engine, services
from llmops.models import EvalRun, PromptVersion
from opsportal.errors import as_field

NOBODY_PICKED_UP_SECONDS = 30.0
# After cancelling, requests in flight finish (up to the provider's timeout) before the run stops.
CANCEL_GRACE_SECONDS = 60.0


class ProgressBar:
    """A one-line bar redrawn in place on a terminal; in a CI log, a line per 10% step instead."""

    def __init__(self, out: TextIO, width: int = 30) -> None:
        self.out = out
        self.width = width
        self.tty = hasattr(out, "isatty") and out.isatty()
        self.started = time.monotonic()
        self.last_step: int | None = None
        self.last_text = ""

    def update(self, run: EvalRun) -> None:
        total = max(run.total, 1)
        fraction = min(run.done / total, 1.0)
        filled = int(self.width * fraction)
        text = (
            f"run #{run.pk} [{'#' * filled}{'-' * (self.width - filled)}] {run.done}/{run.total} {fraction:4.0%} "
            f"errors {run.errors}  {run.status}  {time.monotonic() - self.started:.0f}s"
        )
        if self.tty:
            if text != self.last_text:
                self.out.write(f"\r{text}")
                self.out.flush()
        else:
            step = int(fraction * 10)
            if step != self.last_step or run.finished:
                self.out.write(f"{text}\n")
                self.out.flush()
                self.last_step = step
        self.last_text = text

    def close(self) -> None:
        if self.tty and self.last_text:
            self.out.write("\n")
            self.out.flush()
        self.last_text = ""


class Command(BaseCommand):
    help = "Start an evaluation run of a prompt version on a dataset; --wait for it and check --min-pass-rate."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--prompt", required=True, help="The prompt's name.")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--label", help="Evaluate the version this label points at (default: production).")
        which.add_argument("--prompt-version", type=int, help="Evaluate this version number.")
        parser.add_argument("--dataset", required=True, help="The dataset's name (or id).")
        parser.add_argument(
            "--model", action="append", dest="models", default=[],
            help="provider/model or model; repeat for several. Default: the model the prompt version names.",
        )  # fmt: skip
        parser.add_argument(
            "--scorer", action="append", dest="scorers", default=[], metavar="JSON",
            help='A scorer as JSON, e.g. \'{"type": "icontains", "config": {"value": "Paris"}}\'; repeat for several.',
        )  # fmt: skip
        parser.add_argument("--scorers-file", help='A JSON file: a list of scorers (or {"scorers": [...]}).')
        parser.add_argument("--judge-model", help="provider/model that grades llm-rubric scorers.")
        parser.add_argument("--concurrency", type=int, help="At most this many requests at once (default: the "
                            "provider's limit).")  # fmt: skip
        parser.add_argument("--name", default="", help="A name for the run.")
        parser.add_argument("--user", help="Record the run as started by this user (audit log).")
        parser.add_argument("--wait", action="store_true", help="Wait for the run to finish and print its summary.")
        parser.add_argument(
            "--inline",
            action="store_true",
            help="Execute the run in this process instead of a worker (implies --wait).",
        )
        parser.add_argument(
            "--min-pass-rate", type=float, help="0..1: exit 1 when a column's pass rate is lower (implies --wait)."
        )
        parser.add_argument("--timeout", type=float, help="Give up waiting after this many seconds: cancel the run, "
                            "exit 1.")  # fmt: skip
        parser.add_argument("--poll", type=float, default=1.0, help="Seconds between progress checks (default 1).")

    def handle(self, *args, **options) -> None:
        threshold = options["min_pass_rate"]
        if threshold is not None and not 0 <= threshold <= 1:
            raise CommandError("--min-pass-rate: a number from 0 to 1, e.g. 0.9")
        scorers = self._scorers(options["scorers"], options["scorers_file"])
        actor = self._actor(options["user"])
        version = self._version(options["prompt"], options["label"], options["prompt_version"])
        try:
            with as_field("dataset"):
                dataset = services.get_dataset(reference=options["dataset"])
            names = options["models"] or ([version.model] if version.model else [])
            if not names:
                raise CommandError(f"--model: {version} names no model of its own; say which to use")
            with as_field("model"):
                models = [services.resolve_model(reference=name) for name in names]
            with as_field("judge_model"):
                judge = services.resolve_model(reference=options["judge_model"]) if options["judge_model"] else None
            run = services.create_run(
                dataset=dataset, prompt_versions=[version], models=models, scorers=scorers, actor=actor,
                name=options["name"], judge_model=judge, concurrency=options["concurrency"],
            )  # fmt: skip
        except services.LLMOpsError as exc:
            raise CommandError(self._flag_message(exc)) from None
        self.stdout.write(f"Run #{run.pk} started: {run.name} ({run.total} results).")
        if not (options["wait"] or options["inline"] or threshold is not None):
            self.stdout.write(f"Follow it on its page or with GET /api/v1/llmops/runs/{run.pk}/.")
            return
        run = self._wait(run, inline=options["inline"], timeout=options["timeout"], poll=max(options["poll"], 0.05))
        self._report(run)
        self._verdict(run, threshold)

    # --- arguments ---

    def _scorers(self, inline: list[str], path: str | None) -> list[dict]:
        scorers = []
        for index, text in enumerate(inline, start=1):
            try:
                scorer = json.loads(text)
            except json.JSONDecodeError as exc:
                raise CommandError(f"--scorer #{index} is not valid JSON ({exc.msg}): {text}") from None
            scorers += scorer if isinstance(scorer, list) else [scorer]
        if path:
            try:
                data = json.loads(Path(path).read_text())
            except OSError as exc:
                raise CommandError(f"--scorers-file: cannot read {path}: {exc.strerror}") from None
            except json.JSONDecodeError as exc:
                raise CommandError(f"--scorers-file: {path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
            data = data.get("scorers") if isinstance(data, dict) else data
            if not isinstance(data, list):
                raise CommandError(f'--scorers-file: {path} must hold a list of scorers or {{"scorers": [...]}}')
            scorers += data
        if not scorers:
            raise CommandError(
                'No scorers: give at least one with --scorer \'{"type": "icontains", "config": {"value": "..."}}\' '
                "or --scorers-file (a run without scorers would pass everything)."
            )
        return scorers

    def _actor(self, username: str | None) -> User | None:
        if not username:
            return None
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"--user: no active user {username!r}")
        return user

    def _version(self, name: str, label: str | None, number: int | None) -> PromptVersion:
        # A miss is named by the option that gave the name: look-ups raise NotFound without a field.
        try:
            with as_field("name"):
                prompt = services.get_prompt(name=name)
            if number is not None:
                with as_field("version"):
                    return services.get_version(prompt=prompt, number=number)
            with as_field("label"):
                return services.resolve(name=name, label=label or services.PRODUCTION)
        except services.LLMOpsError as exc:
            raise CommandError(self._flag_message(exc)) from None

    @staticmethod
    def _flag_message(exc: services.LLMOpsError) -> str:
        flags = {"name": "--prompt", "label": "--label", "version": "--prompt-version", "dataset": "--dataset",
                 "model": "--model", "judge_model": "--judge-model", "concurrency": "--concurrency"}  # fmt: skip
        field = exc.field.split("[")[0].split(".")[0]
        if field == "scorers":
            return f"--scorer: {exc}"  # the path says which scorer and which of its options
        flag = flags.get(field)
        return f"{flag}: {exc.message}" if flag else str(exc)

    # --- waiting ---

    def _wait(self, run: EvalRun, *, inline: bool, timeout: float | None, poll: float) -> EvalRun:
        failure: list[BaseException] = []
        executor = self._execute_here(run, failure) if inline else None
        bar = ProgressBar(self.stderr._out)
        started = time.monotonic()
        warned = False
        cancelled_at: float | None = None
        try:
            while True:
                run.refresh_from_db()
                bar.update(run)
                if run.finished:
                    break
                if failure:
                    raise CommandError(f"Run #{run.pk} could not be executed: {failure[0]}")
                waited = time.monotonic() - started
                if not (inline or warned) and run.status == EvalRun.Status.QUEUED and waited > NOBODY_PICKED_UP_SECONDS:
                    warned = True
                    bar.close()
                    self.stderr.write(
                        f"No worker has picked up run #{run.pk} after {waited:.0f}s: is a worker consuming the "
                        "`evals` queue? (Or use --inline to execute it in this process.)"
                    )
                if timeout is not None and waited > timeout and cancelled_at is None:
                    cancelled_at = time.monotonic()
                    bar.close()
                    self.stderr.write(f"Timed out after {timeout:g}s: cancelling run #{run.pk}.")
                    self._cancel(run)
                if cancelled_at is not None and time.monotonic() - cancelled_at > CANCEL_GRACE_SECONDS:
                    bar.close()
                    self.stderr.write(f"Run #{run.pk} has not stopped {CANCEL_GRACE_SECONDS:.0f}s after cancelling.")
                    raise SystemExit(1)
                time.sleep(poll)
        except KeyboardInterrupt:
            bar.close()
            self._cancel(run)
            self.stderr.write(f"Interrupted: run #{run.pk} cancelled.")
            raise SystemExit(130) from None
        finally:
            bar.close()
        if executor is not None:
            executor.join(timeout=CANCEL_GRACE_SECONDS)
        return run

    @staticmethod
    def _execute_here(run: EvalRun, failure: list[BaseException]) -> threading.Thread:
        """Execute the run on a thread of this process (its own database connection); the caller polls."""

        def execute() -> None:
            try:
                engine.execute(run.pk)
            except BaseException as exc:  # reported by the waiting thread
                failure.append(exc)
            finally:
                connection.close()

        executor = threading.Thread(target=execute, name=f"run-eval-{run.pk}", daemon=True)
        executor.start()
        return executor

    @staticmethod
    def _cancel(run: EvalRun) -> None:
        with contextlib.suppress(services.LLMOpsError):  # it finished meanwhile
            services.cancel_run(run=run, actor=None)

    # --- results ---

    def _report(self, run: EvalRun) -> None:
        duration = (run.finished_at - run.started_at).total_seconds() if run.finished_at and run.started_at else None
        took = f" in {duration:.1f}s" if duration is not None else ""
        self.stdout.write(
            f"Run #{run.pk} {run.status}{took}: {run.done}/{run.total} results, {run.errors} errors, "
            f"cost ${run.cost:.6f}"
        )
        if run.error:
            self.stdout.write(f"  error: {run.error}")
        for column in run.summary.get("columns", []):
            rate = column.get("pass_rate")
            shown = f"{rate:.1%}" if rate is not None else "n/a (nothing scored)"
            scored = column.get("results", 0) - column.get("errors", 0)
            self.stdout.write(
                f"  {column['label']}: pass rate {shown} ({column.get('passed', 0)}/{scored} passed, "
                f"{column.get('errors', 0)} errors)"
            )
            for name, stats in sorted(column.get("scorers", {}).items()):
                scorer_rate, mean = stats.get("pass_rate"), stats.get("mean_score")
                self.stdout.write(
                    f"    {name}: {scorer_rate:.1%} passed, mean score {mean:.3f}"
                    if scorer_rate is not None and mean is not None
                    else f"    {name}: no results"
                )

    def _verdict(self, run: EvalRun, threshold: float | None) -> None:
        if run.status == EvalRun.Status.FAILED:
            self.stderr.write(f"FAILED: run #{run.pk} failed: {run.error or 'see the worker log'}")
            raise SystemExit(1)
        if run.status == EvalRun.Status.CANCELLED:
            self.stderr.write(f"FAILED: run #{run.pk} was cancelled ({run.done}/{run.total} results).")
            raise SystemExit(1)
        if threshold is None:
            return
        below = []
        for column in run.summary.get("columns", []):
            rate = column.get("pass_rate")
            if rate is None or rate < threshold:
                shown = f"{rate:.1%}" if rate is not None else "nothing (every result errored)"
                below.append(f"{column['label']} passed {shown}")
        if below:
            self.stderr.write(f"FAILED: below --min-pass-rate {threshold:.1%}: {'; '.join(below)}.")
            raise SystemExit(1)
        self.stdout.write(f"OK: every column passed at least {threshold:.1%}.")
