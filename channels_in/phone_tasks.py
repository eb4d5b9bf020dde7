"""Celery beat of the phone channel: tell agents' pages when a call-back falls due.

The "Call-backs due" view asks the database's clock itself (``phone_calls.due_call_backs``), so
a call-back is in the queue from its time whatever happens here; this only makes open inbox
pages refresh their counts and lists then, as they do on every ticket event. Each call-back is
announced once (a conditional UPDATE claims it), and a lost push is only a late refresh.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from channels_in.models import CallBack
from helpdesk import realtime, tenancy
from helpdesk.models import Tenant

logger = logging.getLogger(__name__)

# Call-backs announced per merchant per run; the rest wait for the next run.
BATCH = 500


def announce_due_call_backs_of_tenant() -> int:
    """Announce the active merchant's call-backs that fell due and were not announced yet."""
    now = timezone.now()
    due = list(
        CallBack.objects.filter(done_at__isnull=True, announced_at__isnull=True, due_at__lte=now)
        .select_related("ticket")
        .order_by("due_at")[:BATCH]
    )
    announced = 0
    for call_back in due:
        with transaction.atomic():
            claimed = CallBack.objects.filter(pk=call_back.pk, announced_at__isnull=True).update(
                announced_at=now
            )
            if claimed != 1:
                continue  # another run announced it a moment ago
            ticket = call_back.ticket
            realtime.publish_after_commit(
                ticket.tenant_id,
                "ticket.updated",
                {"ticket": ticket.number, "call_back_due": True},
                ticket=ticket,
            )
            announced += 1
    return announced


@shared_task
def announce_due_call_backs() -> int:
    """Celery beat: every merchant's call-backs that fell due, announced to agents' pages."""
    announced = 0
    for tenant in Tenant.objects.filter(is_active=True):
        with tenancy.activate(tenant):
            announced += announce_due_call_backs_of_tenant()
    if announced:
        logger.info("announced %d due call-backs", announced)
    return announced
