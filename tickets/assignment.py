"""Routing: which group a ticket goes to, and which agent of it gets the ticket, at once and fairly.

A ticket waits in its group's queue (``queued_at`` set) while it is open and nobody has it.
It is offered as soon as it arrives and handed out again whenever an agent may have room: an
agent comes online, closes or hands over work, or gets more capacity; a beat sweep catches what
a lost task missed (tickets/tasks.py).

Claims are race-free on PostgreSQL. The ticket row is locked and checked to be still waiting;
the chosen agent's presence row (their seat) is locked before their work is counted, so two
arrivals can never both take an agent's last free place and no ticket is given twice. Presence
rows are first taken with SKIP LOCKED (another arrival is busy with that agent: try the next)
and only then waited for, and a ticket lock is never waited for while a seat is held, so claims
cannot deadlock.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _

from helpdesk import realtime
from helpdesk.errors import BadInput
from helpdesk.permissions import SYSTEM
from helpdesk.tenancy import require_tenant
from tickets import audit
from tickets.audit import AuditKind
from tickets.models import (
    AgentPresence,
    Channel,
    Customer,
    Group,
    GroupMember,
    Message,
    Order,
    RoutingStrategy,
    Ticket,
)

logger = logging.getLogger(__name__)

# Conversations that happen live: they count against an agent's chat capacity, and go back to
# the queue when their agent goes offline. The JSON API carries merchants' in-app messaging.
LIVE_CHANNELS = frozenset({Channel.CHAT, Channel.WECHAT, Channel.PHONE, Channel.API})
# What counts as an agent's work: tickets waiting for an agent's answer.
ACTIVE_STATUSES = (Ticket.Status.NEW, Ticket.Status.OPEN)


@dataclass(frozen=True)
class Load:
    chats: int = 0
    tickets: int = 0

    def of(self, channel: str) -> int:
        return self.chats if channel in LIVE_CHANNELS else self.tickets


@dataclass(frozen=True)
class Routed:
    """Where a new ticket goes and why (the audit log keeps the rule)."""

    group: Group | None
    rule: str
    language: str = ""
    category: str = ""


# --- which group -----------------------------------------------------------------------------

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")


def language_of(text: str, *, customer_locale: str = "") -> str:
    """The customer's language: their known locale, else "zh" for text in Chinese characters
    and "en" for Latin letters; "" when the text says nothing."""
    if customer_locale:
        return customer_locale.strip().lower().replace("_", "-")
    sample = (text or "")[:2000]
    cjk = len(_CJK.findall(sample))
    latin = len(_LATIN.findall(sample))
    if cjk and cjk * 4 >= latin:  # one character carries about a word
        return "zh"
    return "en" if latin else ""


def _speaks(group_languages: list[str], language: str) -> bool:
    return any(
        language == wanted or language.startswith(f"{wanted}-") for wanted in group_languages
    )


def _fits(group: Group, *, language: str, channel: str, category: str) -> bool:
    if group.languages and not _speaks(group.languages, language):
        return False
    if group.channels and channel not in group.channels:
        return False
    categories = {c.casefold() for c in group.categories}
    return not categories or category.casefold() in categories


def category_of(*, order: Order | None, stated: str = "") -> str:
    """The product category a ticket is about: as the channel stated it, else the order's."""
    if stated:
        return stated.strip()[:100]
    if order is None:
        return ""
    return (
        order.lines.exclude(category="").values_list("category", flat=True).order_by("pk").first()
        or ""
    )


def route(
    *,
    customer: Customer,
    channel: str,
    text: str = "",
    order: Order | None = None,
    category: str = "",
    groups: list[Group] | None = None,
) -> Routed:
    """The group for a new ticket: the persona group the customer chose; else the group whose
    skills (language, channel, product category) fit it most closely; else the default group.
    ``groups``: the merchant's groups in id order, when the caller has read them already."""
    language = language_of(text, customer_locale=customer.locale)
    category = category_of(order=order, stated=category)
    groups = list(Group.objects.order_by("pk")) if groups is None else groups
    if customer.persona_group_id is not None:
        chosen = next((g for g in groups if g.pk == customer.persona_group_id and g.persona), None)
        if chosen is not None:
            return Routed(chosen, "persona chosen by the customer", language, category)
    skilled = [
        g
        for g in groups
        if not g.persona
        and (g.languages or g.channels or g.categories)
        and _fits(g, language=language, channel=channel, category=category)
    ]
    if skilled:
        best = max(
            skilled,
            key=lambda g: (bool(g.languages) + bool(g.channels) + bool(g.categories), -g.pk),
        )
        return Routed(best, "skills", language, category)
    default = next((g for g in groups if g.is_default), None)
    return Routed(default, "default group" if default else "", language, category)


def route_new_ticket(*, ticket: Ticket) -> Ticket:
    """Put a new, unrouted ticket in the group ``route`` chooses and offer it to an agent."""
    from tickets import tasks

    if ticket.group_id is None:
        routed = route(customer=ticket.customer, channel=ticket.channel, text=ticket.subject)
        if routed.group is not None:
            Ticket.objects.filter(pk=ticket.pk).update(group=routed.group)
            ticket.group = routed.group
    tasks.offer_ticket.delay_on_commit(require_tenant().pk, ticket.pk)
    return ticket


# --- waiting --------------------------------------------------------------------------------


def is_waiting(ticket: Ticket) -> bool:
    # Spam and blocked senders' tickets (tickets.spam) never wait for an agent.
    return (
        ticket.status in ACTIVE_STATUSES
        and ticket.assignee_id is None
        and ticket.ignored_at is None
    )


def queue_fields(ticket: Ticket, *, now: datetime | None = None) -> list[str]:
    """Keep ``queued_at`` true to the ticket's state after a change of status or assignee: set
    when it starts waiting, cleared when it stops. Returns the fields changed (caller saves)."""
    waiting = is_waiting(ticket)
    if waiting and ticket.queued_at is None:
        ticket.queued_at = now or timezone.now()
        return ["queued_at"]
    if not waiting and ticket.queued_at is not None:
        ticket.queued_at = None
        return ["queued_at"]
    return []


def queue_for(group: Group | None) -> QuerySet[Ticket]:
    """A group's waiting tickets in hand-out order: VIP customers first, then whoever's first
    response is due soonest (near or past the target), then whoever waited longest."""
    return Ticket.objects.filter(
        group=group,
        queued_at__isnull=False,
        assignee__isnull=True,
        status__in=ACTIVE_STATUSES,
        ignored_at__isnull=True,
    ).order_by(
        F("customer__is_vip").desc(),
        F("first_response_due_at").asc(nulls_last=True),
        "queued_at",
        "pk",
    )


# --- agents' work ---------------------------------------------------------------------------


def loads_of(user_ids: Iterable[int]) -> dict[int, Load]:
    """How much work each agent has now: open live conversations and other open tickets."""
    ids = list(user_ids)
    loads = dict.fromkeys(ids, Load())
    rows = (
        Ticket.objects.filter(assignee_id__in=ids, status__in=ACTIVE_STATUSES)
        .values("assignee_id")
        .annotate(
            chats=Count("pk", filter=Q(channel__in=LIVE_CHANNELS)),
            tickets=Count("pk", filter=~Q(channel__in=LIVE_CHANNELS)),
        )
    )
    for row in rows:
        loads[row["assignee_id"]] = Load(chats=row["chats"], tickets=row["tickets"])
    return loads


def _capacity(member: GroupMember, channel: str) -> int:
    return member.chat_capacity if channel in LIVE_CHANNELS else member.ticket_capacity


def _last_agent_of(customer_id: int) -> int | None:
    """The agent who last replied to the customer, on any ticket."""
    return (
        Message.objects.filter(
            ticket__customer_id=customer_id,
            direction=Message.Direction.OUTBOUND,
            author_user__isnull=False,
        )
        .order_by("-created_at", "-pk")
        .values_list("author_user_id", flat=True)
        .first()
    )


def _candidates(ticket: Ticket) -> list[tuple[GroupMember, str]]:
    """Online members of the ticket's group with room for it, best first, with the rule."""
    group = ticket.group
    online = AgentPresence.objects.filter(status=AgentPresence.Status.ONLINE).values("user_id")
    members = list(GroupMember.objects.filter(group=group, user_id__in=online))
    if not members:
        return []
    loads = loads_of(m.user_id for m in members)
    room = [
        m for m in members if loads[m.user_id].of(ticket.channel) < _capacity(m, ticket.channel)
    ]
    if not room:
        return []
    oldest = timezone.now().replace(year=1970)
    if group.strategy == RoutingStrategy.ROUND_ROBIN:
        room.sort(key=lambda m: (m.last_assigned_at or oldest, m.user_id))
    else:
        room.sort(
            key=lambda m: (
                loads[m.user_id].of(ticket.channel),
                m.last_assigned_at or oldest,
                m.user_id,
            )
        )
    ranked = [(m, str(RoutingStrategy(group.strategy).value)) for m in room]
    if group.sticky:
        last = _last_agent_of(ticket.customer_id)
        for index, (member, _rule) in enumerate(ranked):
            if member.user_id == last:
                ranked.insert(0, (ranked.pop(index)[0], "sticky"))
                break
    return ranked


def _has_room(member: GroupMember, channel: str) -> bool:
    """Counted with the agent's seat locked: work another claim gave them just before counts."""
    return loads_of([member.user_id])[member.user_id].of(channel) < _capacity(member, channel)


class _SeatFull(Exception):
    """Rolls back the savepoint of a seat found full, releasing its lock."""


def _take_seat(member: GroupMember, channel: str, *, wait: bool) -> bool | None:
    """Lock ``member``'s seat and check they have room: True (the lock is kept), False (full:
    the lock is released at once), None (another claim holds it; only when not waiting)."""
    try:
        with transaction.atomic():  # a savepoint: rolling it back releases the seat's lock
            seat = (
                AgentPresence.objects.filter(
                    status=AgentPresence.Status.ONLINE, user_id=member.user_id
                )
                .select_for_update(skip_locked=not wait)
                .first()
            )
            if seat is None:
                return None if not wait else False  # busy, or they went offline meanwhile
            if not _has_room(member, channel):
                raise _SeatFull
            return True
    except _SeatFull:
        return False


def _claim_agent(ticket: Ticket) -> tuple[GroupMember, str] | None:
    """Lock the seat of the best agent with room for ``ticket``; None if nobody has room.

    A claim holds at most one seat: a seat found full is released before the next is tried, so
    a claim waiting for a busy seat holds none another claim could be waiting for.
    """
    ranked = _candidates(ticket)
    busy: list[tuple[GroupMember, str]] = []
    for member, rule in ranked:
        taken = _take_seat(member, ticket.channel, wait=False)
        if taken is None:
            busy.append((member, rule))  # another claim is giving this agent work right now
        elif taken:
            return member, rule
    for member, rule in busy:
        if _take_seat(member, ticket.channel, wait=True):
            return member, rule
    return None


def _give(ticket: Ticket, member: GroupMember, rule: str) -> None:
    now = timezone.now()
    waited = (now - ticket.queued_at).total_seconds() if ticket.queued_at else 0
    Ticket.objects.filter(pk=ticket.pk).update(
        assignee_id=member.user_id, assigned_at=now, queued_at=None, updated_at=now
    )
    GroupMember.objects.filter(pk=member.pk).update(last_assigned_at=now)
    ticket.assignee_id, ticket.assigned_at, ticket.queued_at = member.user_id, now, None
    audit.record(
        actor=SYSTEM,
        kind=AuditKind.TICKET_AUTO_ASSIGNED,
        obj=ticket,
        changes={"assignee": (None, member.user_id)},
        details={"rule": rule, "group": ticket.group.name, "waited_seconds": round(waited)},
    )
    realtime.publish_after_commit(
        ticket.tenant_id,
        "ticket.updated",
        {"ticket": ticket.number, "assignee": member.user_id},
        ticket=ticket,
    )


def offer_ticket(*, ticket_id: int) -> int | None:
    """Give a waiting ticket to the best online agent of its group with room; the agent's user
    id, or None when it waits (nobody has room, or it is no longer waiting)."""
    with transaction.atomic():
        ticket = (
            Ticket.objects.select_for_update(of=("self",))
            .select_related("group")
            .filter(pk=ticket_id)
            .first()
        )
        if ticket is None or ticket.group is None or not is_waiting(ticket):
            return None
        claimed = _claim_agent(ticket)
        if claimed is None:
            return None
        _give(ticket, *claimed)
        return claimed[0].user_id


def hand_out_queued(*, group_ids: list[int] | None = None) -> int:
    """Hand waiting tickets, in queue order, to agents who have room; returns how many.

    Live conversations and other tickets fill separate capacities, so each queue is worked
    through per kind until nobody has room for the next one. One transaction per ticket.
    """
    waiting = Ticket.objects.filter(
        queued_at__isnull=False, group__isnull=False, assignee__isnull=True, ignored_at__isnull=True
    )
    if group_ids is not None:
        waiting = waiting.filter(group_id__in=group_ids)
    groups = Group.objects.filter(pk__in=waiting.values("group_id")).order_by("pk")
    given = 0
    for group in groups:
        for live in (True, False):
            kind = Q(channel__in=LIVE_CHANNELS) if live else ~Q(channel__in=LIVE_CHANNELS)
            given += _hand_out(group, queue_for(group).filter(kind))
    return given


# How long a hand-out waits for tickets another claim holds (a new arrival being offered), so
# an agent who just came online is not left idle beside a ticket that just missed them.
HELD_TICKET_RETRIES = 40
HELD_TICKET_PAUSE = 0.05


def _hand_out(group: Group, queue: QuerySet[Ticket]) -> int:
    given = 0
    retries = 0
    while True:
        with transaction.atomic():
            ticket = queue.select_for_update(skip_locked=True, of=("self",)).first()
            if ticket is not None:
                ticket.group = group
                claimed = _claim_agent(ticket)
                if claimed is None:
                    return given  # nobody has room for the next one
                _give(ticket, *claimed)
                given += 1
                continue
        if not queue.exists() or retries >= HELD_TICKET_RETRIES:
            return given
        retries += 1  # every waiting ticket is held by another claim: let it finish
        time.sleep(HELD_TICKET_PAUSE)


def return_to_queue(*, user: Any, reason: str) -> list[int]:
    """An agent who went offline gives back their open live conversations: each waits again in
    its group's queue (audited) and is handed to whoever has room, after commit."""
    from tickets import tasks

    with transaction.atomic():
        tickets = list(
            Ticket.objects.select_for_update()
            .filter(assignee=user, status__in=ACTIVE_STATUSES, channel__in=LIVE_CHANNELS)
            .order_by("pk")
        )
        if not tickets:
            return []
        now = timezone.now()
        Ticket.objects.filter(pk__in=[t.pk for t in tickets]).update(
            assignee=None, queued_at=now, updated_at=now
        )
        events = []
        for ticket in tickets:
            ticket.assignee_id, ticket.queued_at = None, now
            events.append(
                audit.entry(
                    actor=SYSTEM,
                    kind=AuditKind.TICKET_RETURNED_TO_QUEUE,
                    obj=ticket,
                    changes={"assignee": (user.pk, None)},
                    details={"reason": reason},
                )
            )
            realtime.publish_after_commit(
                ticket.tenant_id,
                "ticket.updated",
                {"ticket": ticket.number, "assignee": None},
                ticket=ticket,
            )
        audit.record_all(events)
        group_ids = sorted({t.group_id for t in tickets if t.group_id is not None})
        tasks.hand_out_queued.delay_on_commit(require_tenant().pk, group_ids)
    return [t.pk for t in tickets]


# --- out of hours ---------------------------------------------------------------------------


def opening_words(opens_at: datetime, zone: Any) -> str:
    """When the group opens, as the customer reads it: weekday, date and time in the merchant's
    time zone, with the zone named."""
    local = opens_at.astimezone(zone)
    day = f"{formats.date_format(local, 'l')} {formats.date_format(local, 'DATE_FORMAT')}"
    return f"{day} {local:%H:%M} ({zone.key})"


def notify_out_of_hours(*, ticket_id: int) -> bool:
    """Tell a customer who wrote while the ticket's group is closed when it opens again, once per
    closed spell, on the channel they wrote on. True when a notice was sent."""
    from tickets import business_hours

    ticket = Ticket.objects.select_related("group", "customer").filter(pk=ticket_id).first()
    if ticket is None or not ticket.is_open or ticket.ignored_at is not None:
        return False  # spam and blocked senders are never answered
    calendar = business_hours.calendar_for(ticket.group)
    now = timezone.now()
    if calendar.is_open(now):
        return False
    opens_at = calendar.next_opening(now)
    if opens_at is None:
        return False
    told = ticket.out_of_hours_notice_at
    if told is not None and calendar.next_opening(told) == opens_at:
        return False  # already told during this closed spell
    language = ticket.language or ticket.customer.locale or require_tenant().locale
    try:
        return _send_out_of_hours_notice(ticket, told, now, opens_at, calendar.zone, language)
    except BadInput as cannot:
        # The channel cannot reply (an API channel without a callback URL): the message is
        # filed all the same and agents answer once the channel is set up.
        logger.info("out-of-hours notice for ticket %s not sent: %s", ticket.pk, cannot.message)
        return False


def _send_out_of_hours_notice(
    ticket: Ticket,
    told: datetime | None,
    now: datetime,
    opens_at: datetime,
    zone: Any,
    language: str,
) -> bool:
    from tickets.services import reply_to_customer

    with transaction.atomic():
        # Two messages arriving together send one notice.
        claimed = (
            Ticket.objects.filter(pk=ticket.pk, out_of_hours_notice_at=told).update(
                out_of_hours_notice_at=now
            )
            == 1
        )
        if not claimed:
            return False
        with translation.override("zh-hans" if language.startswith("zh") else "en"):
            when = opening_words(opens_at, zone)
            template = (ticket.group.out_of_hours_reply if ticket.group else "") or _(
                "Thank you for your message. We are closed now and will answer from {opens_at}."
            )
            text = template.replace("{opens_at}", when)
        reply_to_customer(acting_agent=SYSTEM, ticket=ticket, text=text, status=ticket.status)
    return True
