"""Whether agents can take work now: online, away or offline, kept live by their browsers.

An agent chooses a status (``set_presence``); their open pages send a heartbeat over the agents'
WebSocket (``record_heartbeat``), and a beat sweep (``sweep_presence``) moves an agent whose
heartbeat stopped to away, then to offline, keeping what they chose so the next heartbeat
restores it. Online agents get new conversations (``tickets.assignment``); away agents keep
theirs; an agent who goes offline gives their live conversations back to the queue.

Every change of status is audited in its transaction and pushed to the merchant's agents
("agent.presence") after it commits. Rows are changed with conditional UPDATEs or under a row
lock, so two sweeps, or a sweep and a heartbeat, change a row once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from helpdesk import realtime
from helpdesk.errors import BadInput, PermissionDenied
from helpdesk.permissions import (
    SYSTEM,
    ActingAgent,
    Actor,
    Capability,
    SystemActor,
    acting_agent_for,
    require,
)
from helpdesk.tenancy import require_tenant
from tickets import assignment, audit, tasks
from tickets.audit import AuditKind
from tickets.models import AgentPresence

Status = AgentPresence.Status

PRESENCE_EVENT = "agent.presence"

# Why the helpdesk changed a status (audit details; the queue's reason when going offline).
WENT_OFFLINE = "went offline"
HEARTBEAT_STOPPED = "heartbeat stopped"
HEARTBEAT_RESUMED = "heartbeat resumed"
HEARTBEAT_STARTED = "heartbeat started"


def _require_member_who_works(acting_agent: ActingAgent) -> None:
    """Presence is for the merchant's own people who work tickets: a platform operator on
    support access takes no conversations."""
    require(acting_agent, Capability.WORK_TICKETS)
    if acting_agent.membership is None:
        raise PermissionDenied(_("You are not a member of this merchant"))


def _announce_change(row: AgentPresence, *, old: str, actor: Actor, reason: str = "") -> None:
    """What follows a change of ``row.status`` (already written, same transaction): the audit
    row, the push, and the work that moves: queued work handed out to an agent who came online
    (after commit), an agent who went offline giving back their live conversations (now).

    ``reason`` says why the helpdesk changed it; empty when the agent chose.
    """
    new = row.status
    audit.record(
        actor=actor,
        kind=AuditKind.AGENT_PRESENCE_CHANGED,
        obj=row,
        changes={"presence": (old, new)},
        details={"reason": reason} if reason else None,
    )
    realtime.publish_after_commit(
        row.tenant_id, PRESENCE_EVENT, {"user": row.user_id, "status": new}
    )
    if new == Status.ONLINE:
        tasks.hand_out_queued.delay_on_commit(row.tenant_id, None)
    elif new == Status.OFFLINE:
        assignment.return_to_queue(user=row.user, reason=reason or WENT_OFFLINE)


def set_presence(*, acting_agent: ActingAgent, status: str) -> AgentPresence:
    """The agent chooses to be online, away or offline in the merchant; going online asks for
    queued work, going offline gives their live conversations back to the queue."""
    _require_member_who_works(acting_agent)
    if status not in Status.values:
        raise BadInput(_("Choose online, away or offline"), field="status")
    user = acting_agent.user
    now = timezone.now()
    with transaction.atomic():
        # The row lock is the agent's seat: a hand-out counting their work finishes first.
        row, _created = AgentPresence.objects.select_for_update().get_or_create(user=user)
        old = row.status
        if old == status and row.chosen_status == status:
            return row
        row.status = row.chosen_status = status
        row.last_heartbeat_at = now  # choosing is a sign of life, like a heartbeat
        fields = ["status", "chosen_status", "last_heartbeat_at"]
        if old != status:
            row.changed_at = now
            fields.append("changed_at")
        row.save(update_fields=fields)
        if old != status:
            _announce_change(row, old=old, actor=acting_agent)
    return row


def _touch(*, user_id: int, now: datetime) -> AgentPresence | None:
    """The common heartbeat in one statement: the agent's row with ``last_heartbeat_at`` moved
    to ``now``, or None when there is no row or its status is not the chosen one."""
    # Django's update() cannot return the row, and a heartbeat arrives every few seconds from
    # every open page; raw SQL names the tenant itself (row-level security still applies).
    table = AgentPresence._meta.db_table
    rows = list(
        AgentPresence.objects.raw(
            f"UPDATE {table} SET last_heartbeat_at = %s "
            "WHERE tenant_id = %s AND user_id = %s AND status = chosen_status RETURNING *",
            [now, require_tenant().pk, user_id],
        )
    )
    return rows[0] if rows else None


def record_heartbeat(*, user: Any) -> AgentPresence:
    """The agent's page is open in the active merchant: they are present, in the status they
    chose (restored if the sweep had moved them away or offline)."""
    now = timezone.now()
    kept = _touch(user_id=user.pk, now=now)
    if kept is not None:
        return kept
    _require_member_who_works(acting_agent_for(user, require_tenant()))
    with transaction.atomic():
        row, created = AgentPresence.objects.select_for_update().get_or_create(user=user)
        row.last_heartbeat_at = now
        fields = ["last_heartbeat_at"]
        old = row.status
        if old != row.chosen_status:
            row.status, row.changed_at = row.chosen_status, now
            fields += ["status", "changed_at"]
        row.save(update_fields=fields)
        if old != row.status:
            _announce_change(
                row,
                old=old,
                # The system carries out what the agent chose earlier.
                actor=SystemActor(on_behalf_of=user),
                reason=HEARTBEAT_STARTED if created else HEARTBEAT_RESUMED,
            )
    return row


def sweep_presence(now: datetime | None = None) -> list[AgentPresence]:
    """Agents of the active merchant whose heartbeat stopped: online ones become away after
    ``HELPDESK_PRESENCE_AWAY_SECONDS``, online and away ones offline after
    ``HELPDESK_PRESENCE_OFFLINE_SECONDS`` (their live conversations go back to the queue).
    What they chose is kept. Returns the rows whose status changed.

    A row never heard from (``last_heartbeat_at`` empty) is left alone: no page set it.
    """
    now = now or timezone.now()
    away_before = now - timedelta(seconds=settings.HELPDESK_PRESENCE_AWAY_SECONDS)
    offline_before = now - timedelta(seconds=settings.HELPDESK_PRESENCE_OFFLINE_SECONDS)
    silent = (
        AgentPresence.objects.filter(
            Q(status=Status.ONLINE, last_heartbeat_at__lt=away_before)
            | Q(status__in=[Status.ONLINE, Status.AWAY], last_heartbeat_at__lt=offline_before)
        )
        .select_related("user")
        .order_by("pk")
    )
    changed = []
    for row in silent:
        if row.last_heartbeat_at < offline_before:
            new, cutoff = Status.OFFLINE, offline_before
        else:
            new, cutoff = Status.AWAY, away_before
        old = row.status
        with transaction.atomic():
            # Only if nothing moved since the read: another sweep already changed it, or a
            # heartbeat arrived, and then this one changes nothing.
            moved = AgentPresence.objects.filter(
                pk=row.pk, status=old, last_heartbeat_at__lt=cutoff
            ).update(status=new, changed_at=now)
            if not moved:
                continue
            row.status, row.changed_at = new, now
            _announce_change(row, old=old, actor=SYSTEM, reason=HEARTBEAT_STOPPED)
        changed.append(row)
    return changed


def presence_of(user_ids: Iterable[int]) -> dict[int, str]:
    """Each agent's status in the active merchant; an agent never seen is offline."""
    ids = list(user_ids)
    found = dict(AgentPresence.objects.filter(user_id__in=ids).values_list("user_id", "status"))
    return {pk: found.get(pk, Status.OFFLINE) for pk in ids}
