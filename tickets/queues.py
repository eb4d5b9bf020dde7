"""What supervisors watch: each group's queue (how many tickets wait, for how long, how many are
VIP or near their first-response target) and its agents' presence and load.

A ticket waits while it is open (new or open), nobody has it and ``queued_at`` is set, as
``tickets.assignment.queue_for`` hands them out. Unrouted tickets (in no group) that are open and
unassigned are shown too, in a row of their own: nobody's queue hands them out, so a supervisor
has to. The overview costs a fixed handful of queries however many tickets wait.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import (
    Avg,
    Count,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    Min,
    Q,
    QuerySet,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from helpdesk.tenancy import require_tenant
from tickets import assignment
from tickets.models import AgentPresence, Group, GroupMember, Ticket
from tickets.service_levels import duration_words

# A first response due within this time counts as "due soon" on the overview.
DUE_SOON = timedelta(minutes=30)
WAITING_LIMIT = 50


@dataclass(frozen=True)
class AgentLoad:
    """One agent as a supervisor sees them: presence, work now and, in a group, capacity."""

    user: Any
    name: str
    presence: str  # AgentPresence.Status
    load: assignment.Load
    chat_capacity: int | None = None  # None: not counted in one group (the unrouted row)
    ticket_capacity: int | None = None

    @property
    def presence_label(self) -> str:
        return str(AgentPresence.Status(self.presence).label)

    @property
    def load_words(self) -> str:
        """ "2/3 chats, 5/20 tickets", or "2 chats, 5 tickets" where no capacity applies."""
        if self.chat_capacity is None or self.ticket_capacity is None:
            return _("%(chats)s chats, %(tickets)s tickets") % {
                "chats": self.load.chats,
                "tickets": self.load.tickets,
            }
        return _("%(chats)s/%(chat_capacity)s chats, %(tickets)s/%(ticket_capacity)s tickets") % {
            "chats": self.load.chats,
            "chat_capacity": self.chat_capacity,
            "tickets": self.load.tickets,
            "ticket_capacity": self.ticket_capacity,
        }


@dataclass(frozen=True)
class GroupQueue:
    """One row of the overview: a group (None: tickets in no group) and its waiting tickets."""

    group: Group | None
    waiting: int = 0
    oldest_wait: timedelta | None = None
    average_wait: timedelta | None = None
    vip: int = 0
    response_missed: int = 0  # first response due and not given
    response_due_soon: int = 0  # due within DUE_SOON, not given yet
    agents: tuple[AgentLoad, ...] = ()

    @property
    def name(self) -> str:
        return self.group.name if self.group is not None else _("Not in any group")

    @property
    def anchor(self) -> str:
        return f"group-{self.group.pk}" if self.group is not None else "group-none"

    @property
    def online_agents(self) -> list[str]:
        return [a.name for a in self.agents if a.presence == AgentPresence.Status.ONLINE]

    @property
    def oldest_wait_words(self) -> str:
        return wait_words(self.oldest_wait) if self.oldest_wait is not None else ""

    @property
    def average_wait_words(self) -> str:
        return wait_words(self.average_wait) if self.average_wait is not None else ""


@dataclass(frozen=True)
class WaitingTicket:
    ticket: Ticket
    waiting_since: datetime
    waited: timedelta

    @property
    def is_vip(self) -> bool:
        return self.ticket.customer.is_vip

    @property
    def waited_words(self) -> str:
        return wait_words(self.waited)


def wait_words(waited: timedelta) -> str:
    """A wait rounded down to the minute, written as the service clock writes time: "40m",
    "2h 5m", "3d 4h"."""
    return duration_words(timedelta(minutes=max(waited // timedelta(minutes=1), 0)))


def _waiting_tickets() -> QuerySet[Ticket]:
    """Every ticket that waits for an agent: a group's queue (as ``queue_for`` reads it), and
    open unassigned tickets in no group, queued or not."""
    return Ticket.objects.filter(
        Q(queued_at__isnull=False) | Q(group__isnull=True),
        assignee__isnull=True,
        status__in=assignment.ACTIVE_STATUSES,
        ignored_at__isnull=True,
    )


def _waiting_since() -> Coalesce:
    # Unrouted tickets from before routing existed have no ``queued_at``: they wait since opened.
    return Coalesce("queued_at", "created_at")


def queue_overview(now: datetime | None = None) -> list[GroupQueue]:
    """Each of the active merchant's groups with its queue and agents, by name; then a row for
    open unassigned tickets in no group, if there are any."""
    now = now or timezone.now()
    groups = list(Group.objects.order_by("name", "pk"))
    waited = ExpressionWrapper(
        Value(now, output_field=DateTimeField()) - _waiting_since(), output_field=DurationField()
    )
    unanswered = Q(first_responded_at__isnull=True, first_response_due_at__isnull=False)
    stats = {
        row["group_id"]: row
        for row in _waiting_tickets()
        .values("group_id")
        .annotate(
            waiting=Count("pk"),
            since=Min(_waiting_since()),
            average_wait=Avg(waited),
            vip=Count("pk", filter=Q(customer__is_vip=True)),
            missed=Count("pk", filter=unanswered & Q(first_response_due_at__lte=now)),
            due_soon=Count(
                "pk",
                filter=unanswered
                & Q(first_response_due_at__gt=now, first_response_due_at__lte=now + DUE_SOON),
            ),
        )
        .order_by()  # no Meta.ordering in the GROUP BY
    }
    members = list(
        GroupMember.objects.filter(group__in=groups).select_related("user").order_by("pk")
    )
    memberships = list(require_tenant().memberships.select_related("user").order_by("pk"))
    user_ids = {m.user_id for m in members} | {m.user_id for m in memberships}
    names = {m.user_id: m.display_name or m.user.get_username() for m in memberships}
    presence = dict(
        AgentPresence.objects.filter(user_id__in=user_ids).values_list("user_id", "status")
    )
    loads = assignment.loads_of(user_ids)

    def agent(user: Any, member: GroupMember | None = None) -> AgentLoad:
        return AgentLoad(
            user=user,
            name=names[user.pk],
            presence=presence.get(user.pk, AgentPresence.Status.OFFLINE),
            load=loads.get(user.pk, assignment.Load()),
            chat_capacity=member.chat_capacity if member else None,
            ticket_capacity=member.ticket_capacity if member else None,
        )

    def row(group: Group | None, agents: list[AgentLoad]) -> GroupQueue:
        agents.sort(key=lambda a: a.name.casefold())
        counted = stats.get(group.pk if group else None)
        if counted is None:
            return GroupQueue(group=group, agents=tuple(agents))
        return GroupQueue(
            group=group,
            waiting=counted["waiting"],
            oldest_wait=now - counted["since"],
            average_wait=counted["average_wait"],
            vip=counted["vip"],
            response_missed=counted["missed"],
            response_due_soon=counted["due_soon"],
            agents=tuple(agents),
        )

    by_group: dict[int, list[AgentLoad]] = defaultdict(list)
    for member in members:
        if member.user_id in names:  # someone who left the merchant takes no tickets
            by_group[member.group_id].append(agent(member.user, member))
    rows = [row(group, by_group[group.pk]) for group in groups]
    if None in stats:
        rows.append(row(None, [agent(m.user) for m in memberships]))
    return rows


def waiting_tickets(
    group: Group | None, *, limit: int = WAITING_LIMIT, now: datetime | None = None
) -> list[WaitingTicket]:
    """The first ``limit`` tickets of a group's queue in hand-out order (VIP first, then the
    first response due soonest, then the longest wait), with their customer; ``None``: open
    unassigned tickets in no group, in the same order. One query."""
    now = now or timezone.now()
    if group is not None:
        tickets = assignment.queue_for(group)
    else:
        # Nobody hands these out; list them as a queue would, oldest first within a tier.
        tickets = (
            _waiting_tickets()
            .filter(group__isnull=True)
            .order_by(
                F("customer__is_vip").desc(),
                F("first_response_due_at").asc(nulls_last=True),
                _waiting_since().asc(),
                "pk",
            )
        )
    tickets = tickets.select_related("customer", "group").annotate(since=_waiting_since())
    return [
        WaitingTicket(ticket=ticket, waiting_since=ticket.since, waited=now - ticket.since)
        for ticket in tickets[:limit]
    ]


def queue_wait(ticket: Ticket, now: datetime | None = None) -> str:
    """How long a waiting ticket has waited ("12m"); "" when it does not wait."""
    if not assignment.is_waiting(ticket) or ticket.queued_at is None:
        return ""
    return wait_words((now or timezone.now()) - ticket.queued_at)
