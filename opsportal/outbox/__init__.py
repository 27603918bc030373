"""The outbox: outgoing messages that are committed first, sent by a task, retried, and never lost.

Every message the portal sends to another system (AIOps notifications, MLOps
registry webhooks, and whatever comes next) is a row of a model that inherits
`OutboxMessage`, sent by an `Outbox` that says what to do with it. The row is
written in the transaction of the change it reports; its send task is enqueued by
name after commit; a periodic sweeper re-enqueues rows still pending (the broker
was down, or a worker died).

One attempt (`Outbox.send`):
- locks only the row (a duplicate task finds nothing to do: 'gone'),
- asks the `prepare()` hook whether to send at all (and to refresh the row),
- calls `deliver()`: by default a JSON POST of `payload` to `target` through
  `opsportal.outbound` (allow-list, no redirects, DNS-rebinding safe), signed with
  `signing_secret()`: `X-OpsPortal-Signature: t=<unix>,v1=<hex>`,
  `X-OpsPortal-Timestamp`, `X-OpsPortal-Event` and `X-OpsPortal-Delivery` (the row's
  `delivery_id`, the same on every retry),
- classifies the result: 2xx is sent; a refused target, a `PermanentFailure`, and
  3xx/4xx answers except 408 and 429 fail for good with a message (a 3xx says that
  redirects are not followed); network errors and 5xx are retried until
  MAX_ATTEMPTS (6) attempts were made,
- saves the row and calls the `recorded()` hook (e.g. a line on a timeline).

One backoff (`retry_delay`, used by the task's retry and the row's next_attempt_at):
8 s after the first failure, doubling (16 s, 32 s ...), at most RETRY_CAP_SECONDS
(10 minutes), for every outbox.

A new outbox, e.g. a runbook's HTTP action::

    # models.py
    class RunbookCall(OutboxMessage):
        step = models.ForeignKey(RunbookStep, on_delete=models.CASCADE)

        class Meta:
            indexes = [pending_index("runbookcall_pending_idx")]

    # runbooks.py
    class RunbookCalls(Outbox[RunbookCall]):
        model = RunbookCall
        task = "aiops.tasks.send_runbook_call"
        select_related = ("step",)  # what the hooks read

        def signing_secret(self, message: RunbookCall) -> str:
            return decrypt(message.step.secret)

    RUNBOOK_CALLS = RunbookCalls()

    # in the service, inside the change's transaction
    call = RunbookCall.objects.create(step=step, target=step.url, event="runbook.step", payload={...})
    enqueue_on_commit(RUNBOOK_CALLS.task, call.pk)

    # tasks.py
    @shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=outbox.MAX_ATTEMPTS)
    def send_runbook_call(self, call_id: int) -> str:
        return runbooks.RUNBOOK_CALLS.send_in_task(self, call_id)

    @shared_task(acks_late=True, reject_on_worker_lost=True)
    def sweep_runbook_calls() -> int:  # a beat schedule entry, every couple of minutes
        return runbooks.RUNBOOK_CALLS.requeue_pending()

Override `prepare()` to refresh the row from its configuration or refuse to send,
`deliver()` for what is not a signed POST (email, a chat message), `recorded()` to
log each attempt elsewhere. `sweep()` re-enqueues the oldest due rows of any
pending-work table (the system page's probes use it too).
"""

from .models import (
    FIRST_RETRY_SECONDS,
    MAX_ATTEMPTS,
    RETRY_CAP_SECONDS,
    OutboxMessage,
    PermanentFailure,
    Status,
    pending_index,
    retry_delay,
)
from .sender import Outbox
from .sweeper import SWEEP_LIMIT, requeue_pending, sweep

__all__ = [
    "FIRST_RETRY_SECONDS",
    "MAX_ATTEMPTS",
    "RETRY_CAP_SECONDS",
    "SWEEP_LIMIT",
    "Outbox",
    "OutboxMessage",
    "PermanentFailure",
    "Status",
    "pending_index",
    "requeue_pending",
    "retry_delay",
    "sweep",
]
