"""Approval requests: a remedy past an agent's limits goes to a supervisor, who approves it,
gives another amount (counter) or denies it. An approved or countered request is granted with
``services.grant_remedy`` in the supervisor's name, so the supervisor's own limits apply.

A request on a ticket escalates the ticket (trigger "over limit") in the same transaction, and
its decision settles that escalation. A price-drop batch (``is_batch``: no ticket, the orders
in ``batch_orders``) is approved or denied as a whole; approving pays each order with
``price_drops.pay_batch``."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from escalation import escalations, services
from escalation.limits import LimitExceeded
from escalation.models import ApprovalRequest, RemedyKind, Trigger
from helpdesk import realtime
from helpdesk.errors import BadInput, InvalidTransition
from helpdesk.money import checked_amount, checked_currency, format_money, rounded
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
    """Ask a supervisor to approve a remedy on a ticket the person works, escalating the
    ticket; while one request for the ticket and kind waits, asking again returns that one
    (and escalates nothing more).

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
        escalations.escalate(
            ticket=ticket,
            trigger=Trigger.OVER_LIMIT,
            reason=approval.refusal or approval.note,
            raised_by=acting_agent,
            approval_request=approval,
        )
        announce(approval, "approval.requested")
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
    supervisor's own limits, or nothing is written. The escalation the request raised is
    settled with it.

    A price-drop batch is approved (each listed order still owed is paid, within the
    supervisor's limits; ``granted_amount`` is what was paid) or denied, never countered.
    """
    require(acting_agent, Capability.SUPERVISE)
    new_state = DECISIONS.get(decision)
    if new_state is None:
        raise BadInput(_("Decide to approve, counter or deny"), field="decision")
    if new_state == State.COUNTERED and request.is_batch:
        raise BadInput(
            _("A batch of orders cannot be countered: approve or deny a batch"),
            field="decision",
        )
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
            .select_related("ticket", "order", "price_drop")
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
        batch_results: list[dict[str, object]] = []
        if locked.is_batch:
            if new_state == State.APPROVED:
                given, batch_results, summary = _pay_batch(acting_agent, locked)
                reason = f"{reason}\n\n{summary}" if reason else summary
        elif new_state != State.DENIED:
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
                "ticket": locked.ticket.number if locked.ticket_id else None,
                "price_drop": locked.price_drop_id,
                "kind": locked.kind,
                "amount": locked.amount,
                "granted_amount": given,
                "currency": locked.currency,
                "remedy": remedy.pk if remedy else None,
                "orders": batch_results or None,
                "reason": reason or None,
            },
        )
        escalations.settle_approval_escalation(acting_agent=acting_agent, approval_request=locked)
        announce(locked, "approval.decided")
    return locked


def _pay_batch(
    acting_agent: ActingAgent, approval: ApprovalRequest
) -> tuple[Decimal, list[dict[str, object]], str]:
    """Pay an approved batch: what was paid in all, each order's outcome for the audit log,
    and the outcomes in words for the decision. When no order could be paid and some were
    refused, the first refusal is raised and nothing is written."""
    from escalation import price_drops

    results = price_drops.pay_batch(acting_agent=acting_agent, approval=approval)
    paid = [result for result in results if result.granted]
    refused = [result for result in results if result.outcome == price_drops.Outcome.REFUSED]
    if refused and not paid:
        first = refused[0]
        if first.refused_at_limit is not None:
            raise first.refused_at_limit
        raise BadInput(first.describe())
    total = sum((result.amount for result in paid), Decimal(0))
    summary = "\n".join(
        [
            _("%(count)s of %(asked)s orders compensated, %(amount)s in all.")
            % {
                "count": len(paid),
                "asked": len(approval.batch_orders),
                "amount": format_money(total, approval.currency),
            },
            *(result.describe() for result in results),
        ]
    )
    outcomes = [
        {
            "order": result.order.number,
            "outcome": result.outcome.value,
            "amount": result.amount if result.granted else None,
            "remedy": result.remedy.pk if result.remedy else None,
            "reason": result.reason or None,
        }
        for result in results
    ]
    return total, outcomes, summary


def amount_text(amount: Decimal | None, currency: str) -> str | None:
    return None if amount is None else str(rounded(amount, currency))


def announce(approval: ApprovalRequest, event: str) -> None:
    """Tell connected agents a request was made or decided (after commit). A request on a
    ticket goes to those who may work the ticket; a price-drop batch, which has no ticket, to
    supervisors only, as ``supervisor.<event>``."""
    payload = {
        "ticket": approval.ticket.number if approval.ticket_id else None,
        "approval_request": approval.pk,
        "kind": approval.kind,
        "state": approval.state,
        "amount": amount_text(approval.amount, approval.currency),
        "currency": approval.currency,
    }
    if approval.is_batch:
        payload["price_drop"] = {"id": approval.price_drop_id, "sku": approval.price_drop.sku}
        payload["orders"] = len(approval.batch_orders)
        realtime.publish_after_commit(approval.tenant_id, f"supervisor.{event}", payload)
        return
    realtime.publish_after_commit(approval.tenant_id, event, payload, ticket=approval.ticket)
