"""Service levels: how soon the merchant promises a first reply and a resolution, per priority,
counted in the ticket's group's business hours; when each is due, and which were missed.

A ticket's clocks start when it is created (``start_clocks``, called by the code that files it)
and are recomputed when its priority or group changes (``restart_clocks``). The first response
is met by the first reply to the customer (``note_first_response``); the resolution by solving
the ticket. A beat sweep (``record_missed_targets``) marks missed targets once, audits them,
sends ``service_level_breached`` and tells agents' browsers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import django.dispatch
from django.db import transaction
from django.db.models import F, Q
from django.utils import formats, timezone
from django.utils.dates import WEEKDAYS_ABBR
from django.utils.translation import gettext as _

from helpdesk import realtime
from helpdesk.errors import BadInput
from helpdesk.permissions import SYSTEM, ActingAgent, Capability, require
from helpdesk.tenancy import require_tenant
from tickets import audit
from tickets.audit import AuditKind
from tickets.business_hours import Calendar, calendar_for
from tickets.models import ServiceTarget, Ticket

FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"
# The longest target a merchant may set: 60 days of business minutes.
LONGEST_TARGET_MINUTES = 60 * 24 * 60
# A clock is "due soon" with less than this left, or less than a quarter of its target.
DUE_SOON = timedelta(minutes=30)
DUE_SOON_SHARE = 0.25
# Tickets marked per transaction by the sweep.
SWEEP_BATCH = 200

DONE_STATUSES = (Ticket.Status.SOLVED, Ticket.Status.CLOSED)

# Sent once per missed target, inside the sweep's transaction, with ``ticket`` and ``target``
# ("first_response" or "resolution"). A receiver that reaches outside the database should do so
# through transaction.on_commit.
service_level_breached = django.dispatch.Signal()


# --- clocks ------------------------------------------------------------------------------------


def _target_for(priority: str) -> ServiceTarget | None:
    return ServiceTarget.objects.filter(priority=priority).first()


# ``start_clocks``'s target when the caller has not read it: read it here.
READ_TARGET: Any = object()


def start_clocks(
    ticket: Ticket, *, calendar: Calendar | None = None, target: Any = READ_TARGET
) -> list[str]:
    """Set when the first response and the resolution are due, from the merchant's target for
    the ticket's priority, counted in business hours from its creation (or now, for a ticket
    not yet saved). A clock already met or missed is left alone; without a target a clock has
    no due time. Returns the names of the fields whose value changed; the caller saves.
    ``target``: the ServiceTarget (or None) for the ticket's priority, if the caller read it."""
    if target is READ_TARGET:
        target = _target_for(ticket.priority)
    start = ticket.created_at or timezone.now()
    wanted: dict[str, datetime | None] = {}
    needs_calendar = target is not None and (
        target.first_response_minutes or target.resolution_minutes
    )
    if needs_calendar and calendar is None:
        calendar = calendar_for(ticket.group)

    def due_after(minutes: int | None) -> datetime | None:
        if not minutes or calendar is None:
            return None
        return calendar.add_business_minutes(start, minutes)

    if ticket.first_responded_at is None and ticket.first_response_breached_at is None:
        wanted["first_response_due_at"] = due_after(target and target.first_response_minutes)
    if ticket.is_open and ticket.resolution_breached_at is None:
        wanted["resolution_due_at"] = due_after(target and target.resolution_minutes)
    changed = []
    for name, value in wanted.items():
        if getattr(ticket, name) != value:
            setattr(ticket, name, value)
            changed.append(name)
    return changed


# What restart_clocks reads from the locked row: whether each clock is still running.
_CLOCK_STATE = [
    "status",
    "created_at",
    "first_responded_at",
    "first_response_breached_at",
    "resolution_breached_at",
]


def restart_clocks(*, ticket: Ticket) -> Ticket:
    """Recompute the due times of the clocks still running after the ticket's priority or group
    changed (taken from ``ticket`` as given), counted from its creation; met and missed ones
    stay as they were."""
    with transaction.atomic():
        ticket.refresh_from_db(
            fields=_CLOCK_STATE, from_queryset=Ticket.objects.select_for_update()
        )
        changed = start_clocks(ticket)
        if changed:
            ticket.save(update_fields=[*changed, "updated_at"])
    return ticket


def note_first_response(*, ticket: Ticket, at: datetime) -> None:
    """Record the ticket's first reply to the customer at ``at``; later replies change nothing
    (a conditional UPDATE, so two replies at once record the first to commit)."""
    updated = Ticket.objects.filter(pk=ticket.pk, first_responded_at__isnull=True).update(
        first_responded_at=at
    )
    if updated:
        ticket.first_responded_at = at


# --- the sweep ---------------------------------------------------------------------------------


def _missed(target: str, now: datetime) -> Q:
    """Tickets whose ``target`` was missed by ``now`` and not marked yet: still not met, or met
    only after it was due."""
    if target == FIRST_RESPONSE:
        return Q(
            first_response_due_at__lt=now,
            first_response_breached_at__isnull=True,
        ) & (
            Q(first_responded_at__isnull=True) & ~Q(status__in=DONE_STATUSES)
            | Q(first_responded_at__gt=F("first_response_due_at"))
        )
    return Q(resolution_due_at__lt=now, resolution_breached_at__isnull=True) & (
        ~Q(status__in=DONE_STATUSES) | Q(solved_at__gt=F("resolution_due_at"))
    )


def missed_tickets(target: str, now: datetime, *, limit: int) -> list[Ticket]:
    """Up to ``limit`` of the active merchant's tickets whose ``target`` was missed by ``now``
    and is not marked yet, longest overdue first."""
    missed = Ticket.objects.filter(_missed(target, now)).order_by(f"{target}_due_at", "pk")
    return list(missed[:limit])


def _mark_batch(target: str, now: datetime) -> tuple[int, int]:
    """Mark up to a batch of missed ``target``s in one transaction: (candidates seen, marked)."""
    due_field, breached_field = f"{target}_due_at", f"{target}_breached_at"
    tenant_id = require_tenant().pk
    with transaction.atomic():
        tickets = missed_tickets(target, now, limit=SWEEP_BATCH)
        events = []
        marked = 0
        for ticket in tickets:
            # Marked once: a sweep running alongside waits for this row, then finds it marked.
            claimed = Ticket.objects.filter(
                pk=ticket.pk, **{f"{breached_field}__isnull": True}
            ).update(**{breached_field: F(due_field)})
            if not claimed:
                continue
            marked += 1
            due_at = getattr(ticket, due_field)
            setattr(ticket, breached_field, due_at)
            events.append(
                audit.entry(
                    actor=SYSTEM,
                    kind=AuditKind.TICKET_TARGET_MISSED,
                    obj=ticket,
                    details={"target": target, "due_at": due_at},
                )
            )
            service_level_breached.send(sender=Ticket, ticket=ticket, target=target)
            realtime.publish_after_commit(
                tenant_id,
                "ticket.updated",
                {"ticket": ticket.number, "target_missed": target},
                ticket=ticket,
            )
        if events:
            audit.record_all(events)
    return len(tickets), marked


def record_missed_targets(now: datetime | None = None) -> int:
    """Mark the active merchant's missed first responses and resolutions, each once even when
    sweeps run side by side: audited, signalled and pushed to agents' pages. Returns how many
    were marked."""
    now = now or timezone.now()
    marked = 0
    for target in (FIRST_RESPONSE, RESOLUTION):
        # Every pass marks or skips what it saw, so the candidates shrink; the bound is a guard.
        for _round in range(10_000):
            seen, done = _mark_batch(target, now)
            marked += done
            if seen < SWEEP_BATCH:
                break
    return marked


# --- what an agent sees ------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceClock:
    """The clock an agent sees on a ticket: the first response until it is given, then the
    resolution. ``remaining`` is business time left (negative: business time overdue);
    ``paused`` means the group is closed now, so the clock is not running."""

    target: str
    due_at: datetime
    remaining: timedelta
    breached: bool
    paused: bool
    due_soon: bool
    opens_at: datetime | None
    label: str
    zone: Any = None

    @property
    def state(self) -> str:
        """The one word the page's style goes by: breached, paused, due-soon or ""."""
        if self.breached:
            return "breached"
        if self.paused:
            return "paused"
        if self.due_soon:
            return "due-soon"
        return ""

    @property
    def title(self) -> str:
        """When it is due, in the merchant's time zone."""
        when = self.due_at.astimezone(self.zone) if self.zone else self.due_at
        # As date_format(when, "D Y-m-d H:i") words it, at a tenth of the cost: the inbox
        # words fifty of these per page.
        day = WEEKDAYS_ABBR[when.weekday()]
        words = f"{day} {when:%Y-%m-%d %H:%M} ({getattr(self.zone, 'key', 'UTC')})"
        if self.target == FIRST_RESPONSE:
            return _("First response due %(when)s") % {"when": words}
        return _("Resolution due %(when)s") % {"when": words}


def duration_words(span: timedelta) -> str:
    """A length of time as an agent glances at it: "3d 4h", "2h 15m", "5m" (rounded up)."""
    minutes = max(0, math.ceil(span.total_seconds() / 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return _("%(days)sd %(hours)sh") % {"days": days, "hours": hours}
    if hours:
        return _("%(hours)sh %(minutes)sm") % {"hours": hours, "minutes": minutes}
    return _("%(minutes)sm") % {"minutes": minutes}


def clock_of(
    ticket: Ticket, now: datetime | None = None, *, calendar: Calendar | None = None
) -> ServiceClock | None:
    """The running clock of a ticket as the agent sees it, or None: solved and closed tickets,
    and tickets without a due time, show none. ``calendar`` spares a query per ticket in
    lists (it must be the ticket's group's)."""
    if not ticket.is_open:
        return None
    if ticket.first_responded_at is None and ticket.first_response_due_at is not None:
        target, due_at = FIRST_RESPONSE, ticket.first_response_due_at
        marked = ticket.first_response_breached_at is not None
    elif ticket.resolution_due_at is not None:
        target, due_at = RESOLUTION, ticket.resolution_due_at
        marked = ticket.resolution_breached_at is not None
    else:
        return None
    now = now or timezone.now()
    calendar = calendar or calendar_for(ticket.group)
    if now < due_at:
        remaining = calendar.business_time_between(now, due_at)
    else:
        remaining = -calendar.business_time_between(due_at, now)
    breached = marked or now >= due_at
    paused = not breached and not calendar.is_open(now)
    opens_at = calendar.next_opening(now) if paused else None
    whole = calendar.business_time_between(ticket.created_at or now, due_at)
    due_soon = not breached and (remaining <= DUE_SOON or remaining < whole * DUE_SOON_SHARE)
    if breached:
        label = _("overdue by %(time)s") % {"time": duration_words(-remaining)}
    elif paused and opens_at is not None:
        local = opens_at.astimezone(calendar.zone)
        label = _("paused until %(time)s") % {"time": formats.date_format(local, "D H:i")}
    elif paused:
        label = _("paused")
    else:
        label = _("%(time)s left") % {"time": duration_words(remaining)}
    return ServiceClock(
        target=target,
        due_at=due_at,
        remaining=remaining,
        breached=breached,
        paused=paused,
        due_soon=due_soon,
        opens_at=opens_at,
        label=label,
        zone=calendar.zone,
    )


# --- the merchant's targets --------------------------------------------------------------------


def _clean_minutes(value: object, *, field: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(_("A target is a whole number of minutes"), field=field)
    if value <= 0:
        raise BadInput(_("A target must be at least one minute"), field=field)
    if value > LONGEST_TARGET_MINUTES:
        raise BadInput(
            _("A target can be at most %(days)s days of business time")
            % {"days": LONGEST_TARGET_MINUTES // (24 * 60)},
            field=field,
        )
    return value


def set_service_target(
    *,
    acting_agent: ActingAgent,
    priority: str,
    first_response_minutes: int | None,
    resolution_minutes: int | None,
) -> ServiceTarget:
    """Set how many business minutes the merchant allows for a first response and for a
    resolution of tickets of one priority (None: no target). New tickets follow it; tickets
    already open keep their due times until their priority or group changes."""
    require(acting_agent, Capability.MANAGE_GROUPS)
    if priority not in Ticket.Priority.values:
        raise BadInput(
            _("There is no priority %(priority)s") % {"priority": priority}, field="priority"
        )
    wanted = {
        "first_response_minutes": _clean_minutes(
            first_response_minutes, field="first_response_minutes"
        ),
        "resolution_minutes": _clean_minutes(resolution_minutes, field="resolution_minutes"),
    }
    with transaction.atomic():
        target, _created = ServiceTarget.objects.select_for_update().get_or_create(
            priority=priority
        )
        changes = {
            name: (getattr(target, name), value)
            for name, value in wanted.items()
            if getattr(target, name) != value
        }
        if not changes:
            return target
        for name, (_old, new) in changes.items():
            setattr(target, name, new)
        target.save(update_fields=list(changes))
        audit.record(
            actor=acting_agent,
            kind=AuditKind.SERVICE_TARGET_SET,
            obj=target,
            changes=changes,
            details={"priority": priority},
        )
    return target
