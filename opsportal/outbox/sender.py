"""One attempt at an outbox row, its result classified and recorded the same way for every outbox."""

from __future__ import annotations

import datetime
import json
from typing import Generic, TypeVar

from celery import Task
from django.db import transaction
from django.utils import timezone

from opsportal.outbound import HTTPStatusError, OutboundRefused, post_json, signed_headers

from .models import MAX_ATTEMPTS, OutboxMessage, PermanentFailure, Status, retry_delay
from .sweeper import requeue_pending

Message = TypeVar("Message", bound=OutboxMessage)

# What an attempt returns for the row's status afterwards.
OUTCOMES = {Status.SENT: "sent", Status.FAILED: "failed", Status.PENDING: "retry"}


class Outbox(Generic[Message]):
    """How the rows of one outbox model are sent. Subclass it once per outbox and override the hooks.

    The defaults POST `payload` as JSON to `target`, unsigned, and record nothing
    beyond the row itself.
    """

    model: type[Message]
    task: str  # the dotted name of the send task, taking the row's id
    select_related: tuple[str, ...] = ()  # what the hooks read, fetched with the row
    # How a 3xx answer's message names what to fix ("set <target_label> to the final URL").
    target_label = "the target"

    # --- Hooks --------------------------------------------------------------------------------------------

    def prepare(self, message: Message) -> str:
        """Before each attempt, under the row lock: bring the row up to date with its configuration.

        Returns a reason not to send at all (the row then fails for good with it), or "".
        """
        return ""

    def signing_secret(self, message: Message) -> str:
        """The HMAC secret the body is signed with ("" sends it unsigned); may raise PermanentFailure."""
        return ""

    def deliver(self, message: Message) -> int | None:
        """Send once: POST the signed payload to `target`. Returns the HTTP status (None if not HTTP).

        Raises `OutboundRefused`, `HTTPStatusError`, `PermanentFailure`, or any other error (retried).
        """
        body = json.dumps(message.payload).encode()
        secret = self.signing_secret(message)
        headers = signed_headers(secret=secret, body=body, event=message.event, delivery_id=str(message.delivery_id))
        return post_json(message.target, body, headers)

    def recorded(self, message: Message) -> None:
        """After each attempt was saved (status, attempts, last_error, response_code tell its result)."""

    # --- Sending ------------------------------------------------------------------------------------------

    def send(self, pk: int) -> str:
        """Attempt one pending row. Returns 'sent', 'failed', 'retry' or 'gone'.

        'gone' means there is nothing to do: the row was deleted, is no longer pending,
        or another worker holds it right now (a duplicate task sends nothing twice).
        """
        with transaction.atomic():
            message = (
                # of=("self",): lock only this row; the rows it reports on stay free for other work and sends.
                self.model.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related(*self.select_related)
                .filter(pk=pk, status=Status.PENDING)
                .first()
            )
            if message is None:
                return "gone"
            message.attempts += 1
            refusal = self.prepare(message)
            if refusal:
                return self._finish(message, Status.FAILED, refusal)
            try:
                code = self.deliver(message)
            except OutboundRefused as exc:
                return self._finish(message, Status.FAILED, f"refused: {exc}")
            except PermanentFailure as exc:
                return self._finish(message, Status.FAILED, str(exc))
            except HTTPStatusError as exc:
                message.response_code = exc.code
                permanent = 300 <= exc.code < 500 and exc.code not in (408, 429)
                error = f"HTTP {exc.code}"
                if 300 <= exc.code < 400:
                    error += f" (redirects are not followed: set {self.target_label} to the final URL)"
                return self._finish(message, Status.FAILED if permanent else None, error)
            except Exception as exc:  # network errors, SMTP errors: retried
                return self._finish(message, None, f"{type(exc).__name__}: {exc}")
            message.response_code = code
            return self._finish(message, Status.SENT, "")

    def _finish(self, message: Message, status: str | None, error: str) -> str:
        """Save the attempt's result and record it. status None means 'retry if attempts remain'."""
        if status is None:
            status = Status.FAILED if message.attempts >= MAX_ATTEMPTS else Status.PENDING
        now = timezone.now()
        message.status = status
        message.last_error = error
        message.next_attempt_at = now + message.retry_delay() if status == Status.PENDING else None
        if status == Status.SENT:
            message.sent_at = now
        message.save()
        self.recorded(message)
        return OUTCOMES[status]

    def retry_delay_for(self, pk: int) -> datetime.timedelta:
        """The backoff before retrying row `pk` (the first one's if the row is gone)."""
        message = self.model.objects.filter(pk=pk).only("attempts").first()
        return message.retry_delay() if message else retry_delay(1)

    def send_in_task(self, task: Task, pk: int) -> str:
        """The body of the bound send task: one attempt, then a Celery retry after the backoff while one is due.

        Declare the task with `bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_ATTEMPTS`.
        """
        outcome = self.send(pk)
        if outcome == "retry" and task.request.retries < task.max_retries:
            raise task.retry(countdown=self.retry_delay_for(pk).total_seconds())
        return outcome

    def requeue_pending(self, *, older_than: datetime.timedelta = datetime.timedelta(minutes=2)) -> int:
        """The sweeper's work for this outbox: re-enqueue rows the broker lost. Returns how many."""
        return requeue_pending(self.model, self.task, older_than=older_than)
