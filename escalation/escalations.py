"""Escalations: a ticket brought to the supervisors' attention, by a trigger the merchant
switched on (a remedy past an agent's limit, the customer asking for a supervisor, a missed
service-level target, repeated contact) or by an agent's hand, and settled by a supervisor.

``escalate`` is the one way in: it records the escalation (once per open ticket and trigger),
marks the ticket escalated the first time (what the escalation rate counts), audits it, tells
agents' pages and, after commit, has the rate checked against the merchant's threshold.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from escalation.models import ApprovalRequest, Escalation, EscalationPolicy, Trigger
from helpdesk import realtime
from helpdesk.errors import BadInput, InvalidTransition, PermissionDenied
from helpdesk.money import format_money
from helpdesk.permissions import (
    SYSTEM,
    ActingAgent,
    Actor,
    Capability,
    require,
    require_ticket_in_reach,
)
from helpdesk.tenancy import require_tenant
from tickets import audit
from tickets.audit import AuditKind
from tickets.models import Message, Ticket

State = Escalation.State

MAX_TEXT_CHARS = 5000
# Repeated contact reads at most this many tickets about one order and this many of their
# messages in the window (newest first): enough to count any real customer's returns.
MAX_TICKETS_PER_ORDER = 50
MAX_MESSAGES_COUNTED = 500

# The policy switch of each trigger.
SWITCHES = {
    Trigger.OVER_LIMIT: "on_over_limit",
    Trigger.CUSTOMER_REQUEST: "on_customer_request",
    Trigger.MANUAL: "on_manual",
    Trigger.FIRST_RESPONSE_BREACH: "on_first_response_breach",
    Trigger.RESOLUTION_BREACH: "on_resolution_breach",
    Trigger.REPEAT_CONTACT: "on_repeat_contact",
}


def policy() -> EscalationPolicy:
    """The merchant's escalation policy, created with the defaults the first time it is needed."""
    found, _created = EscalationPolicy.objects.get_or_create(tenant=require_tenant())
    return found


def is_switched_on(rules: EscalationPolicy, trigger: str) -> bool:
    return bool(getattr(rules, SWITCHES[Trigger(trigger)]))


def escalate(
    *,
    ticket: Ticket,
    trigger: str,
    reason: str = "",
    raised_by: ActingAgent | None = None,
    approval_request: ApprovalRequest | None = None,
) -> Escalation | None:
    """Bring ``ticket`` to the supervisors for ``trigger`` when the merchant switched that
    trigger on (None when it is off); while an escalation for the ticket and trigger is open,
    escalating again returns that one, even when two workers escalate at the same moment.

    The ticket's assignee and group at this moment are kept on the escalation (the per-agent
    and per-group rates); the ticket's first escalation marks it escalated, once.
    """
    if trigger not in Trigger.values:
        raise BadInput(_("Unknown trigger %(trigger)s") % {"trigger": trigger}, field="trigger")
    trigger = Trigger(trigger).value
    if not is_switched_on(policy(), trigger):
        return None
    reason = (reason or "").strip()[:MAX_TEXT_CHARS]
    with transaction.atomic():
        existing = _open_escalation(ticket, trigger)
        if existing is not None:
            return existing
        try:
            # A savepoint: the partial unique index refuses a second open escalation that a
            # concurrent transaction committed first; the outer transaction goes on.
            with transaction.atomic():
                escalation = Escalation.objects.create(
                    ticket=ticket,
                    trigger=trigger,
                    reason=reason,
                    raised_by=raised_by.user if raised_by is not None else None,
                    agent_id=ticket.assignee_id,
                    group_id=ticket.group_id,
                    approval_request=approval_request,
                )
        except IntegrityError:
            existing = _open_escalation(ticket, trigger)
            if existing is None:
                raise
            return existing
        first = Ticket.objects.filter(pk=ticket.pk, escalated_at__isnull=True).update(
            escalated_at=escalation.created_at
        )
        if first:
            ticket.escalated_at = escalation.created_at
        audit.record(
            actor=raised_by or SYSTEM,
            kind=AuditKind.ESCALATION_RAISED,
            obj=ticket,
            details={
                "escalation": escalation.pk,
                "trigger": trigger,
                "reason": reason or None,
                "approval_request": approval_request.pk if approval_request else None,
                "first": bool(first),
            },
        )
        realtime.publish_after_commit(
            ticket.tenant_id,
            "escalation.raised",
            {"ticket": ticket.number, "escalation": escalation.pk, "trigger": trigger},
            ticket=ticket,
        )
        from escalation import tasks

        tasks.check_escalation_rate.delay_on_commit(ticket.tenant_id)
    return escalation


def _open_escalation(ticket: Ticket, trigger: str) -> Escalation | None:
    return Escalation.objects.filter(ticket=ticket, trigger=trigger, state=State.OPEN).first()


def require_escalator(acting_agent: Actor, ticket: Ticket) -> None:
    """Refuse unless a member of the merchant who works the ticket acts: escalating by hand is
    a person's judgement (not the system's, not support access's), and counts in the
    merchant's escalation rate."""
    require_ticket_in_reach(acting_agent, ticket)
    if not isinstance(acting_agent, ActingAgent) or acting_agent.membership is None:
        raise PermissionDenied(_("Only the merchant's own people escalate tickets"))


def may_escalate_by_hand(
    acting_agent: ActingAgent, ticket: Ticket, rules: EscalationPolicy
) -> bool:
    """Whether the ticket page offers this person the "Escalate to a supervisor" form."""
    if not rules.on_manual:
        return False
    try:
        require_escalator(acting_agent, ticket)
    except PermissionDenied:
        return False
    return True


def escalate_by_hand(*, acting_agent: ActingAgent, ticket: Ticket, reason: str) -> Escalation:
    """An agent who works the ticket brings it to a supervisor, saying why; refused when the
    merchant switched escalating by hand off, or while the ticket already waits for a
    supervisor on someone's hand escalation."""
    require_escalator(acting_agent, ticket)
    reason = (reason or "").strip()
    if not reason:
        raise BadInput(_("Say why the ticket needs a supervisor"), field="reason")
    if len(reason) > MAX_TEXT_CHARS:
        raise BadInput(
            _("%(field)s has at most %(limit)s characters")
            % {"field": "reason", "limit": MAX_TEXT_CHARS},
            field="reason",
        )
    waiting = _open_escalation(ticket, Trigger.MANUAL)
    if waiting is not None:
        raise InvalidTransition(
            _("This ticket already waits for a supervisor (escalated by %(who)s)")
            % {"who": audit.actor_label(waiting.raised_by)},
            escalation=waiting.pk,
        )
    escalation = escalate(
        ticket=ticket, trigger=Trigger.MANUAL, reason=reason, raised_by=acting_agent
    )
    if escalation is None:
        raise PermissionDenied(_("This merchant has switched escalating by hand off"))
    return escalation


def resolve_escalation(
    *, acting_agent: Actor, escalation: Escalation, resolution: str
) -> Escalation:
    """A supervisor settles an open escalation, saying how; once (a second supervisor finds
    it settled)."""
    require(acting_agent, Capability.SUPERVISE)
    resolution = (resolution or "").strip()
    if not resolution:
        raise BadInput(_("Say how the escalation was settled"), field="resolution")
    if len(resolution) > MAX_TEXT_CHARS:
        raise BadInput(
            _("%(field)s has at most %(limit)s characters")
            % {"field": "resolution", "limit": MAX_TEXT_CHARS},
            field="resolution",
        )
    with transaction.atomic():
        locked = (
            Escalation.objects.select_for_update(of=("self",))
            .select_related("ticket")
            .get(pk=escalation.pk)
        )
        if not locked.is_open:
            raise InvalidTransition(
                _("This escalation was already resolved by %(who)s")
                % {"who": audit.actor_label(locked.resolved_by)},
                state=locked.state,
            )
        locked.state = State.RESOLVED
        locked.resolved_by = acting_agent.user
        locked.resolved_at = timezone.now()
        locked.resolution = resolution
        locked.save(update_fields=["state", "resolved_by", "resolved_at", "resolution"])
        ticket = locked.ticket
        audit.record(
            actor=acting_agent,
            kind=AuditKind.ESCALATION_RESOLVED,
            obj=ticket,
            changes={"state": (State.OPEN.value, State.RESOLVED.value)},
            details={
                "escalation": locked.pk,
                "trigger": locked.trigger,
                "resolution": resolution,
            },
        )
        realtime.publish_after_commit(
            ticket.tenant_id,
            "escalation.resolved",
            {"ticket": ticket.number, "escalation": locked.pk, "trigger": locked.trigger},
            ticket=ticket,
        )
    return locked


def settle_approval_escalation(*, acting_agent: Actor, approval_request: ApprovalRequest) -> None:
    """Resolve the open over-limit escalation raised with ``approval_request`` once a
    supervisor decided it, the decision as its resolution; nothing when there is none. While
    another request of the ticket waits, the escalation moves on to that one instead."""
    open_one = Escalation.objects.filter(
        approval_request=approval_request, trigger=Trigger.OVER_LIMIT, state=State.OPEN
    ).first()
    if open_one is None:
        return
    # Another request on the ticket still waits (a second remedy kind asked while this one
    # waited found the escalation open): the escalation waits for that one.
    waiting = (
        ApprovalRequest.objects.filter(
            ticket_id=approval_request.ticket_id, state=ApprovalRequest.State.PENDING
        )
        .exclude(pk=approval_request.pk)
        .order_by("created_at", "pk")
        .first()
    )
    if waiting is not None:
        open_one.approval_request = waiting
        open_one.save(update_fields=["approval_request"])
        return
    decision = approval_request.get_state_display()
    if approval_request.granted_amount is not None:
        decision = _("%(decision)s: %(amount)s granted") % {
            "decision": decision,
            "amount": format_money(approval_request.granted_amount, approval_request.currency),
        }
    if approval_request.decision_reason:
        decision = f"{decision}. {approval_request.decision_reason}"
    resolve_escalation(acting_agent=acting_agent, escalation=open_one, resolution=decision)


# --- reads -------------------------------------------------------------------------------------


def open_escalations() -> QuerySet[Escalation]:
    """The supervisors' queue: the active merchant's open escalations, oldest first."""
    return (
        Escalation.objects.filter(state=State.OPEN)
        .select_related(
            "ticket", "ticket__customer", "agent", "group", "raised_by", "approval_request"
        )
        .order_by("created_at", "pk")
    )


def escalations_of(ticket: Ticket) -> list[Escalation]:
    """Every escalation of a ticket, open and resolved, oldest first (no query for a ticket
    never escalated: ``escalate`` stamps ``escalated_at`` with the first one)."""
    if ticket.escalated_at is None:
        return []
    return list(
        Escalation.objects.filter(ticket=ticket)
        .select_related("raised_by", "agent", "resolved_by", "approval_request")
        .order_by("created_at", "pk")
    )


def access_escalation(*, acting_agent: ActingAgent, pk: int) -> Escalation:
    """The active merchant's escalation with this id, on a ticket the person may work, or 404
    (another merchant's id included)."""
    from helpdesk.permissions import can_work_ticket

    found = Escalation.objects.select_related("ticket", "ticket__group").filter(pk=pk).first()
    if found is None or not can_work_ticket(acting_agent, found.ticket):
        raise Http404("No such escalation")
    return found


# --- what customers write ------------------------------------------------------------------------

# Scripts written without spaces between words: a phrase in them is found anywhere in the text.
_UNSPACED = "\u2e80-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af\uff00-\uffef"
_UNSPACED_CHAR = re.compile(f"[{_UNSPACED}]")
# A letter or digit of a spaced script: a phrase must not have one right before or after it.
_WORD_CHAR = f"[^\\W{_UNSPACED}]"


def asks_for_supervisor(text: str, phrases: list[str]) -> str | None:
    """The first of the merchant's ``phrases`` the customer's text contains, ignoring case:
    phrases in spaced scripts as whole words ("manager", never "management"), Chinese and
    other unspaced scripts anywhere; None when there is none."""
    if not text:
        return None
    for phrase in phrases or []:
        phrase = (phrase or "").strip()
        if not phrase:
            continue
        if _UNSPACED_CHAR.search(phrase):
            if phrase.casefold() in text.casefold():
                return phrase
            continue
        words = r"\s+".join(re.escape(word) for word in phrase.split())
        if re.search(f"(?<!{_WORD_CHAR}){words}(?!{_WORD_CHAR})", text, re.IGNORECASE):
            return phrase
    return None


def _exchange_messages() -> Q:
    """The messages of an exchange with the customer: theirs, and the replies a person wrote
    (automatic notices such as the out-of-hours one answer nobody; notes are internal)."""
    return Q(direction=Message.Direction.INBOUND) | Q(
        direction=Message.Direction.OUTBOUND, author_user__isnull=False
    )


def contacts_about(ticket: Ticket, *, since: datetime) -> int:
    """How many times the customer got in touch about the ticket's order (every ticket about
    it), or about the ticket when it has no order, since ``since``.

    A contact is a customer's message that opens an exchange: the first of a ticket, or one
    that follows a person's reply (the customer came back after an answer). Several messages in
    a row are one contact; internal notes play no part.
    """
    tickets = Ticket.objects.filter(order_id=ticket.order_id) if ticket.order_id else None
    if tickets is None:
        ticket_ids = [ticket.pk]
    else:
        ticket_ids = list(
            tickets.order_by("-pk").values_list("pk", flat=True)[:MAX_TICKETS_PER_ORDER]
        )
    # What each ticket last said before the window: whether its first message in the window
    # follows a reply.
    before = dict(
        Ticket.objects.filter(pk__in=ticket_ids)
        .annotate(
            last_direction=Subquery(
                Message.objects.filter(
                    _exchange_messages(), ticket=OuterRef("pk"), created_at__lt=since
                )
                .order_by("-created_at", "-pk")
                .values("direction")[:1]
            )
        )
        .values_list("pk", "last_direction")
    )
    recent = list(
        Message.objects.filter(
            _exchange_messages(), ticket_id__in=ticket_ids, created_at__gte=since
        )
        .order_by("-created_at", "-pk")
        .values_list("ticket_id", "direction")[:MAX_MESSAGES_COUNTED]
    )
    # Past the cap (hundreds of messages in the window) the oldest are left out, and the first
    # one kept is judged against the message before the window: the count stays far above
    # any merchant's threshold.
    recent.reverse()
    previous = dict(before)
    contacts = 0
    for ticket_id, direction in recent:
        if direction == Message.Direction.INBOUND and previous.get(ticket_id) in (
            None,
            Message.Direction.OUTBOUND,
        ):
            contacts += 1
        previous[ticket_id] = direction
    return contacts


def opens_an_exchange(message: Message) -> bool:
    """Whether a customer's message is a contact: the first of its ticket, or one that follows
    a person's reply."""
    if message.direction != Message.Direction.INBOUND:
        return False
    previous = (
        Message.objects.filter(_exchange_messages(), ticket_id=message.ticket_id)
        .filter(
            Q(created_at__lt=message.created_at)
            | Q(created_at=message.created_at, pk__lt=message.pk)
        )
        .order_by("-created_at", "-pk")
        .values_list("direction", flat=True)
        .first()
    )
    return previous in (None, Message.Direction.OUTBOUND)


def _first_inbound(message: Message) -> bool:
    return not Message.objects.filter(
        ticket_id=message.ticket_id, direction=Message.Direction.INBOUND, pk__lt=message.pk
    ).exists()


def check_customer_message(
    *, ticket: Ticket, message: Message, opened_ticket: bool = False
) -> list[Escalation]:
    """Escalate a ticket on a customer's message when a trigger the merchant switched on says
    so: the customer asks for a supervisor (one of the merchant's phrases), or got in touch
    about the same order ``repeat_contacts`` times within ``repeat_days`` days. Returns the
    escalations raised or found open. The live chat's "Talk to a supervisor" button is a
    customer's request in so many words.

    ``opened_ticket``: the message opened its ticket (the caller knows), so it is the ticket's
    first and opens an exchange, and a ticket with no order has exactly one contact: no query
    needs to say so."""
    if message.direction != Message.Direction.INBOUND or message.ticket_id != ticket.pk:
        return []
    rules = policy()
    raised: list[Escalation] = []
    tenant = require_tenant()
    # Reasons the helpdesk writes are stored in the merchant's language, as its notices are.
    with translation.override(tenant.locale or None):
        if rules.on_customer_request:
            text = message.body_text or message.full_text
            if (opened_ticket or _first_inbound(message)) and message.subject:
                text = f"{message.subject}\n{text}"
            phrase = asks_for_supervisor(text, rules.supervisor_phrases)
            reason = None
            if (message.metadata or {}).get("chat_kind") == "supervisor":
                reason = _("The customer pressed “Talk to a supervisor” in the live chat")
            elif phrase is not None:
                reason = _("The customer wrote “%(phrase)s”") % {"phrase": phrase}
            if reason is not None:
                escalation = escalate(
                    ticket=ticket, trigger=Trigger.CUSTOMER_REQUEST, reason=reason
                )
                if escalation is not None:
                    raised.append(escalation)
        if rules.on_repeat_contact and (opened_ticket or opens_an_exchange(message)):
            since = timezone.now() - timedelta(days=rules.repeat_days)
            alone = opened_ticket and ticket.order_id is None and message.created_at >= since
            count = 1 if alone else contacts_about(ticket, since=since)
            if count >= rules.repeat_contacts:
                about = (
                    _("order %(order)s") % {"order": ticket.order.number}
                    if ticket.order_id
                    else _("ticket #%(number)s") % {"number": ticket.number}
                )
                escalation = escalate(
                    ticket=ticket,
                    trigger=Trigger.REPEAT_CONTACT,
                    reason=ngettext(
                        "%(count)s contacts about %(about)s in %(days)s day",
                        "%(count)s contacts about %(about)s in %(days)s days",
                        rules.repeat_days,
                    )
                    % {"count": count, "about": about, "days": rules.repeat_days},
                )
                if escalation is not None:
                    raised.append(escalation)
    return raised
