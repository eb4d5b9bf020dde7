"""Approval requests: a remedy past an agent's limits goes to a supervisor, who approves it,
gives another amount (counter) or denies it. An approved or countered request is granted with
``services.grant_remedy`` in the supervisor's name, so the supervisor's own limits apply."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from escalation import services
from escalation.limits import LimitExceeded
from escalation.models import ApprovalRequest, RemedyKind
from helpdesk import realtime
from helpdesk.errors import BadInput, InvalidTransition
from helpdesk.money import checked_amount, checked_currency, rounded
from helpdesk.permissions import ActingAgent, Capability, require
from tickets import audit
from tickets.audit import AuditKind
from tickets.models import Order, Ticket

State = ApprovalRequest.State

APPROVE, COUNTER, DENY = "approve", "counter", "deny"
DECISIONS = {APPROVE: State.APPROVED, COUNTER: State.COUNTERED, DENY: State.DENIED}
AUDIT_KINDS = {
    State.APPROVED: AuditKind.APPROVAL_APPROVED,
    State.COUNTERED: AuditKind.APPROVAL_COUNTERED,
    State.DENIED: AuditKind.APPROVAL_DENIED,
}
MAX_TEXT_CHARS = 5000


def request_approval(
    *,
    acting_agent: ActingAgent,
    ticket: Ticket,
    kind: str,
    amount: Decimal | str | None,
    currency: str,
    order: Order | None = None,
    note: str = "",
    refusal: str = "",
    refusal_limit: str = "",
) -> ApprovalRequest:
    """Ask a supervisor to approve a remedy on a ticket the person works; while one request
    for the ticket and kind waits, asking again returns that one.

    A free order asks for what is left of the order to give back, whatever ``amount`` says.
    """
    services.require_remedy_giver(acting_agent, ticket)
    if kind not in RemedyKind.values:
        raise BadInput(_("Unknown remedy %(kind)s") % {"kind": kind}, field="kind")
    order = order or ticket.order
    currency = checked_currency(currency)
    with transaction.atomic():
        # The ticket's row serialises asks on it: two clicks make one request.
        Ticket.objects.select_for_update().filter(pk=ticket.pk).first()
        waiting = ApprovalRequest.objects.filter(
            ticket=ticket, kind=kind, state=State.PENDING
        ).first()
        if waiting is not None:
            return waiting
        if kind == RemedyKind.FREE_ORDER and order is not None:
            amount = order.paid_amount - order.refunded_amount
        else:
            amount = checked_amount(amount if amount is not None else "", currency)
        if amount <= 0:
            raise BadInput(_("A remedy needs an amount above zero"), field="amount")
        approval = ApprovalRequest.objects.create(
            ticket=ticket,
            requested_by=acting_agent.user,
            kind=kind,
            amount=amount,
            currency=currency,
            order=order,
            note=note.strip()[:MAX_TEXT_CHARS],
            refusal=refusal,
            refusal_limit=refusal_limit[:40],
        )
        audit.record(
            actor=acting_agent,
            kind=AuditKind.APPROVAL_REQUESTED,
            obj=approval,
            details={
                "ticket": ticket.number,
                "kind": kind,
                "amount": amount,
                "currency": currency,
                "limit": refusal_limit or None,
            },
        )
        _announce(approval, "approval.requested")
    return approval


def ask_after_refusal(
    *,
    acting_agent: ActingAgent,
    ticket: Ticket,
    kind: str,
    amount: Decimal | str | None,
    note: str,
    refused: LimitExceeded,
) -> ApprovalRequest:
    """The grant that ``refused`` stopped at a limit, sent to a supervisor for approval."""
    return request_approval(
        acting_agent=acting_agent,
        ticket=ticket,
        kind=kind,
        amount=amount,
        currency=refused.extra["currency"],
        note=note,
        refusal=refused.message,
        refusal_limit=refused.extra["limit"],
    )


def decide_approval(
    *,
    acting_agent: ActingAgent,
    request: ApprovalRequest,
    decision: str,
    amount: Decimal | str | None = None,
    reason: str = "",
) -> ApprovalRequest:
    """A supervisor approves, counters (another amount, with a reason) or denies (with a
    reason) a waiting request, once; an approval or counter is granted within the
    supervisor's own limits, or nothing is written."""
    require(acting_agent, Capability.SUPERVISE)
    new_state = DECISIONS.get(decision)
    if new_state is None:
        raise BadInput(_("Decide to approve, counter or deny"), field="decision")
    reason = (reason or "").strip()
    if len(reason) > MAX_TEXT_CHARS:
        raise BadInput(
            _("%(field)s has at most %(limit)s characters")
            % {"field": "reason", "limit": MAX_TEXT_CHARS},
            field="reason",
        )
    if new_state in (State.DENIED, State.COUNTERED) and not reason:
        raise BadInput(_("Say why, for the agent and the customer"), field="reason")
    with transaction.atomic():
        # Two supervisors deciding at once: the second waits here, then finds it decided.
        locked = (
            ApprovalRequest.objects.select_for_update(of=("self",))
            .select_related("ticket", "order")
            .get(pk=request.pk)
        )
        if not locked.is_pending:
            raise InvalidTransition(
                _("This request was already decided: %(state)s")
                % {"state": locked.get_state_display()},
                state=locked.state,
            )
        given: Decimal | None = None
        remedy = None
        if new_state != State.DENIED:
            kind, given = locked.kind, locked.amount
            if new_state == State.COUNTERED:
                given = checked_amount(
                    amount if amount is not None else "", locked.currency, field="amount"
                )
                if given <= 0:
                    raise BadInput(_("A counter-offer needs an amount above zero"), field="amount")
                if given == locked.amount:
                    raise BadInput(
                        _("A counter-offer gives another amount than was asked"), field="amount"
                    )
                # A free order countered is a refund of the amount offered.
                if kind == RemedyKind.FREE_ORDER:
                    kind = RemedyKind.REFUND
            remedy = services.grant_remedy(
                acting_agent=acting_agent,
                ticket=locked.ticket,
                kind=kind,
                amount=given,
                order=locked.order,
                currency=locked.currency,
                note=locked.note,
            )
            given = remedy.amount
        locked.state = new_state
        locked.decided_by = acting_agent.user
        locked.decided_at = timezone.now()
        locked.decision_reason = reason
        locked.granted_amount = given
        locked.remedy = remedy
        locked.save(
            update_fields=[
                "state",
                "decided_by",
                "decided_at",
                "decision_reason",
                "granted_amount",
                "remedy",
            ]
        )
        audit.record(
            actor=acting_agent,
            kind=AUDIT_KINDS[new_state],
            obj=locked,
            changes={"state": (State.PENDING.value, new_state.value)},
            details={
                "ticket": locked.ticket.number,
                "kind": locked.kind,
                "amount": locked.amount,
                "granted_amount": given,
                "currency": locked.currency,
                "remedy": remedy.pk if remedy else None,
                "reason": reason or None,
            },
        )
        _announce(locked, "approval.decided")
    return locked


def amount_text(amount: Decimal | None, currency: str) -> str | None:
    return None if amount is None else str(rounded(amount, currency))


def _announce(approval: ApprovalRequest, event: str) -> None:
    realtime.publish_after_commit(
        approval.tenant_id,
        event,
        {
            "ticket": approval.ticket.number,
            "approval_request": approval.pk,
            "kind": approval.kind,
            "state": approval.state,
            "amount": amount_text(approval.amount, approval.currency),
            "currency": approval.currency,
        },
        ticket=approval.ticket,
    )
