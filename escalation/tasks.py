"""Celery tasks of remedies. Each takes the tenant id first."""

from __future__ import annotations

from celery import shared_task

from escalation import execution
from helpdesk import tenancy
from helpdesk.tasks import WEBHOOK_TRIES, webhook_backoff

MAX_RETRIES = WEBHOOK_TRIES - 1


@shared_task(bind=True, base=tenancy.TenantTask, acks_late=True, max_retries=MAX_RETRIES)
def execute_remedy(  # type: ignore[no-untyped-def]
    self, tenant_id: int, remedy_id: int, after_attempt: int | None = None
) -> str:
    """Have the merchant's order system carry out a granted remedy; a failure that may pass is
    tried again with backoff, 6 tries in all, then the remedy is ``failed``.

    A task stands down when the remedy is no longer pending or was tried since it was queued.
    Inline (eager) Celery cannot wait for a retry, so there the first try is also the last.
    """
    last_try = self.request.retries >= MAX_RETRIES or bool(self.request.is_eager)
    retry_in = None if last_try else webhook_backoff(self.request.retries)
    try:
        return execution.execute(
            remedy_id=remedy_id, retry_in=retry_in, after_attempt=after_attempt
        )
    except execution.ExecutionDeferred as deferred:
        raise self.retry(
            exc=deferred.failure, countdown=retry_in, kwargs={"after_attempt": deferred.attempt}
        ) from deferred
