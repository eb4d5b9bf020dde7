"""Celery tasks of the platform core. Each takes the tenant id first."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from helpdesk import tenancy, webhook_subscriptions, webhooks
from helpdesk.models import WebhookDelivery

WEBHOOK_TRIES = 6
MAX_RETRIES = WEBHOOK_TRIES - 1


def webhook_backoff(retries: int) -> int:
    """Seconds before the next try: 30 s, 2 min, 8 min, 32 min, ~2 h (by default)."""
    return settings.HELPDESK_WEBHOOK_RETRY_SECONDS * 4**retries


@shared_task(bind=True, base=tenancy.TenantTask, acks_late=True, max_retries=MAX_RETRIES)
def deliver_webhook(  # type: ignore[no-untyped-def]
    self, tenant_id: int, delivery_id: int, after_attempt: int | None = None
) -> str:
    """Deliver a queued webhook, signed with its channel account's secret; a failure that may
    pass is tried again with backoff, 6 tries in all, then the delivery is ``failed``.

    A task stands down when the delivery was attempted since it was queued (a resend, or a
    retry of an earlier run). Inline (eager) Celery cannot wait for a retry, so there the
    first try is also the last.
    """
    delivery = (
        WebhookDelivery.objects.select_related("channel_account").filter(pk=delivery_id).first()
    )
    if delivery is None:
        return "gone"
    if after_attempt is not None and delivery.attempts != after_attempt:
        return "superseded"
    account = delivery.channel_account
    # A channel's webhooks are signed with its secret; a subscription's with its own.
    secret = account.inbound_secret if account else webhook_subscriptions.signing_secret(delivery)
    try:
        webhooks.send_signed(delivery=delivery, secret=secret)
    except webhooks.AttemptSuperseded:
        return "superseded"
    except webhooks.WebhookFailed as failure:
        if failure.permanent:
            return "failed"
        if self.request.retries >= MAX_RETRIES or self.request.is_eager:
            webhooks.give_up(delivery=delivery)
            return "failed"
        countdown = webhook_backoff(self.request.retries)
        webhooks.schedule_retry(delivery=delivery, countdown=countdown)
        raise self.retry(
            exc=failure, countdown=countdown, kwargs={"after_attempt": delivery.attempts}
        ) from failure
    return "delivered"


@shared_task(bind=True, base=tenancy.TenantTask, acks_late=True)
def write_tenant_export(self, tenant_id: int, export_id: int) -> str:  # type: ignore[no-untyped-def]
    """Write an owner's export of all the merchant's data (helpdesk.exports) and email them."""
    from helpdesk import exports
    from helpdesk.models import TenantExport

    export = TenantExport.objects.filter(pk=export_id).first()
    if export is None:
        return "gone"
    return exports.write_export(export=export).state


@shared_task
def delete_due_tenants() -> int:
    """Hourly: delete the merchants whose deletion grace period is over (helpdesk.deletion),
    and remove the files of data exports whose link expired."""
    from helpdesk import deletion, exports
    from helpdesk.models import Tenant

    deleted = deletion.delete_due_tenants()
    for tenant in Tenant.objects.filter(is_active=True).iterator():
        with tenancy.activate(tenant):
            exports.remove_expired_exports()
    return len(deleted)
