"""Celery tasks of remedies and escalation alerts. Each takes the tenant id first, except the
beat sweep, which visits every active merchant."""

from __future__ import annotations

import logging

from celery import shared_task

from escalation import execution
from helpdesk import tenancy
from helpdesk.models import Tenant
from helpdesk.tasks import WEBHOOK_TRIES, webhook_backoff

logger = logging.getLogger(__name__)

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


@shared_task(base=tenancy.TenantTask, acks_late=True)
def check_escalation_rate(tenant_id: int) -> int | None:
    """Alert supervisors when the merchant's 7-day escalation rate crosses its threshold (once
    per crossing) and clear the alert when it falls back; the alert's id, or None."""
    from escalation import alerts

    alert = alerts.check_escalation_rate()
    return alert.pk if alert is not None else None


@shared_task
def sweep_alerts() -> int:
    """Celery beat: every active merchant's escalation rate and defect rates are checked, so an
    alert is raised (or cleared) even when no escalation happens to trigger a check."""
    from escalation import alerts

    raised = 0
    for tenant in Tenant.objects.filter(is_active=True).order_by("pk"):
        try:
            with tenancy.activate(tenant):
                raised += alerts.check_escalation_rate() is not None
                raised += len(alerts.check_defect_rates())
        except Exception:  # one merchant's failure must not stop the sweep for the others
            logger.exception("alert sweep failed for tenant %s", tenant.pk)
    return raised
