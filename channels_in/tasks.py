"""Celery tasks of the inbound pipeline and outbound delivery. Each takes the tenant id first.

Tasks are thin: they call ``pipeline`` and ``outbound``, which hand work back with the task
base's ``delay_on_commit`` (helpdesk.tenancy.TenantTask).
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction

from channels_in import outbound, pipeline
from channels_in.models import Mailbox
from helpdesk import tenancy
from helpdesk.models import Tenant

logger = logging.getLogger(__name__)

MAX_RETRIES = 5


def backoff(retries: int) -> int:
    """Seconds before the next try: 30s, 2m, 8m, 32m, ~2h."""
    return 30 * 4**retries


class InboundTask(tenancy.TenantTask):
    def enqueue_failed(self, tenant_id: int, raw_id: int, *args: object, **kwargs: object) -> None:
        pipeline.never_queued(raw_id)


@shared_task(bind=True, base=InboundTask, acks_late=True, max_retries=MAX_RETRIES)
def process_raw_inbound(self, tenant_id: int, raw_id: int) -> str | None:  # type: ignore[no-untyped-def]
    try:
        raw = pipeline.process_raw(raw_id)
    except Exception as exc:
        if self.request.retries >= MAX_RETRIES or self.request.is_eager:
            # Stays failed, with its error, for an admin to retry.
            return "failed"
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    return raw.state if raw is not None else None


@shared_task(bind=True, base=tenancy.TenantTask, acks_late=True, max_retries=MAX_RETRIES)
def deliver_message(  # type: ignore[no-untyped-def]
    self, tenant_id: int, message_id: int, after_attempt: int | None = None
) -> str:
    """Send an agent's reply; a failure that may pass is tried again with backoff.

    Inline (eager) Celery cannot wait for a retry, so there the first try is also the last.
    """
    last_try = self.request.retries >= MAX_RETRIES or bool(self.request.is_eager)
    retry_in = None if last_try else backoff(self.request.retries)
    try:
        return outbound.deliver(
            message_id=message_id, retry_in=retry_in, after_attempt=after_attempt
        )
    except outbound.DeliveryDeferred as deferred:
        # The retry names the try it follows, so it stands down if "Send now" tried since.
        raise self.retry(
            exc=deferred.error, countdown=retry_in, kwargs={"after_attempt": deferred.attempt}
        ) from deferred


@shared_task(bind=True, base=tenancy.TenantTask, acks_late=True)
def poll_mailbox(self, tenant_id: int, mailbox_id: int) -> int:  # type: ignore[no-untyped-def]
    from channels_in import imap

    return imap.poll(mailbox_id=mailbox_id)


@shared_task
def poll_all_mailboxes() -> int:
    """Celery beat: one poll task per connected IMAP mailbox of every active merchant."""
    queued = 0
    for tenant in Tenant.objects.filter(is_active=True):
        with tenancy.activate(tenant):
            mailboxes = Mailbox.objects.filter(
                account__is_active=True, account__paused=False
            ).exclude(imap_host="")
            for mailbox_id in mailboxes.values_list("pk", flat=True):
                poll_mailbox.delay(tenant.pk, mailbox_id)
                queued += 1
    return queued


@shared_task
def requeue_stale_inbound() -> int:
    """Celery beat: received payloads that no worker holds and that were never queued (broker
    down) or waited too long (a worker killed mid-way) go back in the queue."""
    requeued = 0
    for tenant in Tenant.objects.filter(is_active=True):
        with tenancy.activate(tenant), transaction.atomic():
            for raw_id in pipeline.stale_inbound():
                pipeline.enqueue(tenant.pk, raw_id)
                requeued += 1
    if requeued:
        logger.warning("requeued %d stale inbound payloads", requeued)
    return requeued
