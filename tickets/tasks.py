"""Celery tasks of routing, presence and service levels. Each takes the tenant id first, except
the beat sweeps, which visit every active merchant."""

from __future__ import annotations

import logging

from celery import shared_task

from helpdesk import tenancy
from helpdesk.models import Tenant

logger = logging.getLogger(__name__)


@shared_task(base=tenancy.TenantTask, acks_late=True)
def offer_ticket(tenant_id: int, ticket_id: int) -> int | None:
    """Give a queued ticket to an agent with room now; the user id, or None (it waits)."""
    from tickets import assignment

    return assignment.offer_ticket(ticket_id=ticket_id)


@shared_task(base=tenancy.TenantTask, acks_late=True)
def hand_out_queued(tenant_id: int, group_ids: list[int] | None = None) -> int:
    """Hand queued tickets to agents who have room (all groups, or ``group_ids``)."""
    from tickets import assignment

    return assignment.hand_out_queued(group_ids=group_ids)


@shared_task(base=tenancy.TenantTask, acks_late=True)
def notify_out_of_hours(tenant_id: int, ticket_id: int) -> bool:
    """Tell a customer who wrote while the ticket's group is closed when it opens again."""
    from tickets import assignment

    return assignment.notify_out_of_hours(ticket_id=ticket_id)


def _each_active_tenant(label: str, work: object) -> int:
    done = 0
    for tenant in Tenant.objects.filter(is_active=True).order_by("pk"):
        try:
            with tenancy.activate(tenant):
                done += work()  # type: ignore[operator]
        except Exception:  # one merchant's failure must not stop the sweep for the others
            logger.exception("%s failed for tenant %s", label, tenant.pk)
    return done


@shared_task
def sweep_routing() -> int:
    """Celery beat: agents whose heartbeat stopped become away, then offline (their live
    conversations go back to the queue); queued work is handed to whoever has room; missed
    service-level targets are recorded. Each step is idempotent and safe to run anywhere."""
    from tickets import assignment, presence, service_levels

    def one_tenant() -> int:
        changed = len(presence.sweep_presence())
        handed = assignment.hand_out_queued()
        missed = service_levels.record_missed_targets()
        return changed + handed + missed

    return _each_active_tenant("routing sweep", one_tenant)


@shared_task(base=tenancy.TenantTask, acks_late=True)
def run_import(tenant_id: int, job_id: int) -> int | None:
    """Import a customers or orders file chunk by chunk; the rows processed, or None when
    another worker has the job. A worker lost mid-file is resumed after its last chunk."""
    from tickets import imports

    job = imports.run_import(job_id=job_id)
    return job.processed_rows if job is not None else None


@shared_task
def sweep_imports() -> int:
    """Celery beat: imports whose worker was lost are handed out again; files uploaded but never
    started are let go (tickets.imports.sweep_imports)."""
    from tickets import imports

    return _each_active_tenant("import sweep", imports.sweep_imports)
