"""Reads about remedies that the ticket page and the API share: what an agent may still give on
a ticket, the ladder from the least costly remedy, and the remedies already granted."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from escalation import limits
from escalation.limits import Allowance
from escalation.models import NEEDS_ORDER, ApprovalRequest, Remedy, RemedyKind
from helpdesk.money import format_money, rounded
from helpdesk.permissions import ActingAgent, Capability, require
from tickets.models import Ticket

# What an agent may do, said per kind: "You can refund up to ¥300.00 now".
UP_TO = {
    RemedyKind.GIFT: gettext_lazy("You can give a gift worth up to %(amount)s now"),
    RemedyKind.RESHIP: gettext_lazy("You can reship at a cost of up to %(amount)s now"),
    RemedyKind.PRICE_PROTECTION: gettext_lazy(
        "You can compensate a price drop with up to %(amount)s now"
    ),
    RemedyKind.REFUND: gettext_lazy("You can refund up to %(amount)s now"),
    RemedyKind.FREE_ORDER: gettext_lazy("You can make this order free (%(amount)s) now"),
}
NO_CAP = {
    RemedyKind.GIFT: gettext_lazy("You can give a gift of any value"),
    RemedyKind.RESHIP: gettext_lazy("You can reship at any cost"),
    RemedyKind.PRICE_PROTECTION: gettext_lazy("You can compensate a price drop of any amount"),
    RemedyKind.REFUND: gettext_lazy("You can refund any amount"),
    RemedyKind.FREE_ORDER: gettext_lazy("You can make this order free"),
}
NEEDS_APPROVAL = gettext_lazy("needs a supervisor's approval")


@dataclass(frozen=True)
class LadderStep:
    """One rung of the ladder: what to try, and whether the agent may do it now."""

    key: str
    label: str
    # What the agent may do, in words: "You can refund up to ¥300.00 now", "needs a
    # supervisor's approval", or for explaining, a reminder.
    verdict: str
    empowered: bool
    kind: str = ""  # the remedy kind a grant of this step is ("" for explaining)
    amount: Decimal | None = None  # what the grant form starts with (a full refund's amount)


@dataclass(frozen=True)
class RemedyPanel:
    """Everything the ticket page's "Make it right" panel shows."""

    currency: str
    has_order: bool
    may_grant: bool
    allowances: list[Allowance]
    ladder: list[LadderStep]
    remedies: list[Remedy]
    kinds: list[tuple[str, str]]
    can_retry: bool
    can_mark_executed: bool
    # The remedies whose execution this person may act on (retry, mark executed).
    may_handle: frozenset[int]
    # Remedies asked for past someone's limits, and what supervisors decided, oldest first.
    approval_requests: list[ApprovalRequest] = field(default_factory=list)


def currency_of(ticket: Ticket) -> str:
    """The currency remedies on ``ticket`` are given in: its order's, else the merchant's."""
    return ticket.order.currency if ticket.order_id else ticket.tenant.default_currency


def ticket_allowances(*, acting_agent: ActingAgent, ticket: Ticket) -> list[Allowance]:
    """What ``acting_agent`` may still give of each remedy kind on ``ticket``, ladder order.

    A kind that needs an order is not empowered on a ticket without one.
    """
    currency = currency_of(ticket)
    known = limits.limits_by_kind(acting_agent, currency=currency)
    found = []
    for kind in RemedyKind.values:
        if kind in NEEDS_ORDER and ticket.order_id is None:
            found.append(Allowance(kind, currency, empowered=False, amount=None))
            continue
        found.append(
            limits.allowance(
                acting_agent,
                kind=kind,
                currency=currency,
                customer=ticket.customer,
                order=ticket.order,
                known=known,
            )
        )
    return found


def verdict(allowance: Allowance) -> str:
    """The allowance in the agent's words."""
    if not allowance.empowered:
        return str(NEEDS_APPROVAL)
    if allowance.amount is None:
        return str(NO_CAP[allowance.kind])
    if allowance.amount <= 0:
        return _("Nothing left you may give now: %(approval)s") % {"approval": NEEDS_APPROVAL}
    return str(UP_TO[allowance.kind]) % {"amount": allowance.formatted}


def may_give(allowance: Allowance) -> bool:
    return allowance.empowered and allowance.amount != 0


def ladder(*, ticket: Ticket, allowances: list[Allowance]) -> list[LadderStep]:
    """From the least costly remedy up: explain, then each kind, with a refund split into a
    partial and a full one; each step says whether the agent may take it now."""
    steps = [
        LadderStep(
            key="explain",
            label=_("Explain"),
            verdict=_(
                "Costs nothing: first make sure the customer understands what happened and "
                "what comes next."
            ),
            empowered=True,
        )
    ]
    for allowance in allowances:
        kind = allowance.kind
        label = _("Partial refund") if kind == RemedyKind.REFUND else allowance.label
        if kind in NEEDS_ORDER and ticket.order_id is None:
            words = _("Only for a ticket with an order")
            steps.append(LadderStep(kind, label, words, False, kind))
        elif kind == RemedyKind.FREE_ORDER:
            # Its allowance is what is left of the order to give back, or nothing.
            words = verdict(allowance) if may_give(allowance) else str(NEEDS_APPROVAL)
            steps.append(LadderStep(kind, label, words, may_give(allowance), kind))
        else:
            steps.append(LadderStep(kind, label, verdict(allowance), may_give(allowance), kind))
        if kind == RemedyKind.REFUND:
            steps.append(full_refund_step(ticket=ticket, allowance=allowance))
    return steps


def full_refund_step(*, ticket: Ticket, allowance: Allowance) -> LadderStep:
    """Refunding everything still refundable on the order, if the agent's refund allowance
    covers it."""
    label = _("Full refund")
    order = ticket.order
    if order is None:
        words = _("Only for a ticket with an order")
        return LadderStep("full_refund", label, words, False, RemedyKind.REFUND)
    refundable = order.paid_amount - order.refunded_amount
    if refundable <= 0:
        words = _("Everything paid on this order has been refunded")
        return LadderStep("full_refund", label, words, False, RemedyKind.REFUND)
    amount = format_money(refundable, order.currency)
    if allowance.empowered and (allowance.amount is None or allowance.amount >= refundable):
        words = _("You can refund all %(amount)s now") % {"amount": amount}
        return LadderStep(
            "full_refund",
            label,
            words,
            True,
            RemedyKind.REFUND,
            rounded(refundable, order.currency),
        )
    words = _("%(amount)s: %(approval)s") % {"amount": amount, "approval": NEEDS_APPROVAL}
    return LadderStep("full_refund", label, words, False, RemedyKind.REFUND)


def ticket_remedies(*, ticket: Ticket) -> QuerySet[Remedy]:
    """The remedies granted on ``ticket``, newest first."""
    return ticket.remedies.select_related("granted_by", "order").order_by("-created_at", "-pk")


def access_remedy(*, ticket: Ticket, pk: int) -> Remedy:
    """A remedy of ``ticket`` (already checked to be in the agent's reach), or 404."""
    remedy = ticket_remedies(ticket=ticket).filter(pk=pk).first()
    if remedy is None:
        raise Http404("No such remedy")
    return remedy


def execution_action(name: str) -> Callable[..., Any] | None:
    """``escalation.execution``'s function ``name`` (retry, mark executed by hand), or None
    while that module or function does not exist."""
    if importlib.util.find_spec("escalation.execution") is None:
        return None
    from escalation import execution

    return getattr(execution, name, None)


def remedy_panel(*, acting_agent: ActingAgent, ticket: Ticket) -> RemedyPanel:
    """The "Make it right" panel of ``ticket`` as ``acting_agent`` sees it."""
    allowances = ticket_allowances(acting_agent=acting_agent, ticket=ticket)
    remedies = list(ticket_remedies(ticket=ticket))
    kinds = [
        (value, label)
        for value, label in RemedyKind.choices
        if ticket.order_id is not None or value not in NEEDS_ORDER
    ]
    return RemedyPanel(
        currency=currency_of(ticket),
        has_order=ticket.order_id is not None,
        # A platform operator on support access has no role there: they give nothing.
        may_grant=acting_agent.membership is not None,
        allowances=allowances,
        ladder=ladder(ticket=ticket, allowances=allowances),
        remedies=remedies,
        kinds=kinds,
        can_retry=execution_action("retry_execution") is not None,
        can_mark_executed=execution_action("mark_executed_by_hand") is not None,
        may_handle=frozenset(
            remedy.pk
            for remedy in remedies
            if acting_agent.can(Capability.SUPERVISE)
            or remedy.granted_by_id == acting_agent.user.pk
        ),
        approval_requests=list(ticket_approval_requests(ticket=ticket)),
    )


# --- approval requests ---------------------------------------------------------------------

# The supervisor's page shows what was decided in this many days below what waits.
DECIDED_SHOWN_DAYS = 7


def _approval_rows() -> QuerySet[ApprovalRequest]:
    return ApprovalRequest.objects.select_related(
        "ticket", "ticket__customer", "requested_by", "decided_by", "order", "remedy", "price_drop"
    )


def ticket_approval_requests(*, ticket: Ticket) -> QuerySet[ApprovalRequest]:
    """The approval requests of ``ticket``, oldest first, as its page shows them (who asked and
    who decided; the ticket is the caller's)."""
    return (
        ApprovalRequest.objects.filter(ticket=ticket)
        .select_related("requested_by", "decided_by")
        .order_by("created_at", "pk")
    )


def pending_approval_requests() -> QuerySet[ApprovalRequest]:
    """The merchant's requests waiting for a supervisor, oldest first."""
    return _approval_rows().filter(state=ApprovalRequest.State.PENDING).order_by("created_at", "pk")


def recently_decided_approval_requests(
    *, days: int = DECIDED_SHOWN_DAYS
) -> QuerySet[ApprovalRequest]:
    """The requests decided in the last ``days`` days, latest decision first."""
    since = timezone.now() - timedelta(days=days)
    return (
        _approval_rows()
        .exclude(state=ApprovalRequest.State.PENDING)
        .filter(decided_at__gte=since)
        .order_by("-decided_at", "-pk")
    )


def approval_requests(*, state: str = "") -> QuerySet[ApprovalRequest]:
    """The merchant's requests in ``state`` (all when empty), oldest first."""
    rows = _approval_rows().order_by("created_at", "pk")
    return rows.filter(state=state) if state else rows


def access_approval_request(*, acting_agent: ActingAgent, pk: int) -> ApprovalRequest:
    """A request of the active merchant for a supervisor to decide: PermissionDenied for a
    role that does not supervise, 404 for an id that is not this merchant's."""
    require(acting_agent, Capability.SUPERVISE)
    found = _approval_rows().filter(pk=pk).first()
    if found is None:
        raise Http404("No such approval request")
    return found
