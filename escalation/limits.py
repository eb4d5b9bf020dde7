"""How much a person may still give: the merchant's limits against what was already given.

Pure reads; ``services.grant_remedy`` calls ``check_grant`` with the rows it has locked, and the
ticket page and the API call ``allowance`` to say "you can refund up to ¥300 now".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from escalation.models import PAYS_OUT, EmpowermentPolicy, Remedy, RemedyKind, RemedyLimit
from helpdesk.errors import HelpdeskError
from helpdesk.money import format_money, rounded, rounded_down
from helpdesk.permissions import ActingAgent
from helpdesk.tenancy import require_tenant
from tickets.models import Customer, Order

# What each limit is called when a grant runs into it.
LIMIT_NAMES = {
    "not_empowered": gettext_lazy("no limit is set for your role in this currency"),
    "per_grant": gettext_lazy("the most you may give in one grant"),
    "order_share": gettext_lazy("the share of the order's value you may give"),
    "per_agent_day": gettext_lazy("what you may give in one day"),
    "per_customer_period": gettext_lazy("what this customer may receive in the period"),
    "order_refundable": gettext_lazy("what was paid on the order and not yet refunded"),
    "free_order_value": gettext_lazy("the largest order you may make free"),
}


class LimitExceeded(HelpdeskError):
    """A grant past a limit: which limit, what it still allows and by how much the request
    went over."""

    code = "limit_exceeded"
    status = 403

    def __init__(
        self, *, limit: str, allowed: Decimal, requested: Decimal, currency: str, kind: str
    ) -> None:
        over = requested - allowed
        super().__init__(
            _("%(requested)s is more than %(limit)s allows: at most %(allowed)s, %(over)s over")
            % {
                "requested": format_money(requested, currency),
                "limit": LIMIT_NAMES[limit],
                "allowed": format_money(allowed, currency),
                "over": format_money(over, currency),
            },
            limit=limit,
            allowed=amount_text(allowed, currency),
            requested=amount_text(requested, currency),
            over=amount_text(over, currency),
            currency=currency,
            kind=kind,
        )


def amount_text(amount: Decimal, currency: str) -> str:
    """The amount in the currency's own places ("0.01", "1" for JPY), not the column's four;
    one finer than that (from an order's four places) exactly, never rounded."""
    shown = rounded(amount, currency)
    return str(shown) if shown == amount else format(amount.normalize(), "f")


def policy() -> EmpowermentPolicy:
    """The merchant's policy, created with the defaults the first time it is needed."""
    found, _ = EmpowermentPolicy.objects.get_or_create(tenant=require_tenant())
    return found


def limits_by_kind(acting_agent: ActingAgent, *, currency: str) -> dict[str, RemedyLimit]:
    """The limit of each remedy kind the person has in ``currency``, in one query: their own
    row, else their role's. A kind missing from the result is not empowered."""
    found: dict[str, RemedyLimit] = {}
    rows = RemedyLimit.objects.filter(currency=currency).filter(
        Q(user=acting_agent.user) | Q(user__isnull=True, role=acting_agent.role)
    )
    # The role's rows first, so a person's own row overrides them.
    for row in sorted(rows, key=lambda row: row.user_id is not None):
        found[row.kind] = row
    return found


def limit_for(acting_agent: ActingAgent, *, kind: str, currency: str) -> RemedyLimit | None:
    """The person's own limit for the kind and currency, else their role's; None: not
    empowered (nothing in this currency without approval)."""
    rows = {
        row.user_id is not None: row
        for row in RemedyLimit.objects.filter(kind=kind, currency=currency).filter(
            Q(user=acting_agent.user) | Q(user__isnull=True, role=acting_agent.role)
        )
    }
    return rows.get(True) or rows.get(False)


def start_of_day(moment: datetime) -> datetime:
    """Midnight of ``moment``'s day in the merchant's time zone: the per-day limit's start."""
    zone = ZoneInfo(require_tenant().time_zone)
    local = moment.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def _given(**filters: Any) -> Decimal:
    return Remedy.objects.filter(**filters).aggregate(total=Sum("amount"))["total"] or Decimal(0)


@dataclass(frozen=True)
class Bound:
    """One limit and what it still allows."""

    limit: str
    remaining: Decimal


def bounds(
    acting_agent: ActingAgent,
    *,
    kind: str,
    currency: str,
    customer: Customer,
    order: Order | None,
    now: datetime | None = None,
    known: dict[str, RemedyLimit] | None = None,
) -> list[Bound] | None:
    """Every limit a grant of ``kind`` would meet now, with what each still allows; None when
    the person may give nothing of the kind in this currency. ``known``: the person's limits
    from ``limits_by_kind``, when the caller has them already."""
    if known is None:
        row = limit_for(acting_agent, kind=kind, currency=currency)
    else:
        row = known.get(kind)
    if row is None:
        return None
    now = now or timezone.now()
    found: list[Bound] = []
    if kind == RemedyKind.FREE_ORDER:
        # A free order gives back what is left of the order; the cap is on the order's value.
        cap = row.per_grant_max_amount
        if cap is not None and order is not None and order.total_amount > cap:
            found.append(Bound("free_order_value", Decimal(0)))
    elif row.per_grant_max_amount is not None:
        found.append(Bound("per_grant", row.per_grant_max_amount))
    if row.order_share_max_percent is not None and order is not None:
        share = rounded_down(order.total_amount * row.order_share_max_percent / 100, currency)
        found.append(Bound("order_share", share))
    if row.per_agent_day_max_amount is not None:
        given = _given(
            granted_by=acting_agent.user,
            kind=kind,
            currency=currency,
            created_at__gte=start_of_day(now),
        )
        found.append(Bound("per_agent_day", row.per_agent_day_max_amount - given))
    if row.per_customer_period_max_amount is not None:
        since = now - timedelta(days=policy().customer_period_days)
        given = _given(customer=customer, kind=kind, currency=currency, created_at__gte=since)
        found.append(Bound("per_customer_period", row.per_customer_period_max_amount - given))
    if kind in PAYS_OUT and order is not None:
        found.append(Bound("order_refundable", order.paid_amount - order.refunded_amount))
    return [Bound(b.limit, max(b.remaining, Decimal(0))) for b in found]


def check_grant(
    acting_agent: ActingAgent,
    *,
    kind: str,
    amount: Decimal,
    currency: str,
    customer: Customer,
    order: Order | None,
) -> None:
    """Raise LimitExceeded naming the first limit ``amount`` would pass."""
    found = bounds(acting_agent, kind=kind, currency=currency, customer=customer, order=order)
    if found is None:
        raise LimitExceeded(
            limit="not_empowered",
            allowed=Decimal(0),
            requested=amount,
            currency=currency,
            kind=kind,
        )
    if kind == RemedyKind.FREE_ORDER and order is not None:
        # The free-order cap is on the order's value: say it against that, not the payout.
        cap = limit_for(acting_agent, kind=kind, currency=currency).per_grant_max_amount
        if cap is not None and order.total_amount > cap:
            raise LimitExceeded(
                limit="free_order_value",
                allowed=cap,
                requested=order.total_amount,
                currency=currency,
                kind=kind,
            )
    for bound in found:
        if amount > bound.remaining:
            raise LimitExceeded(
                limit=bound.limit,
                allowed=bound.remaining,
                requested=amount,
                currency=currency,
                kind=kind,
            )


@dataclass(frozen=True)
class Allowance:
    """What a person may still give of one kind on one ticket: ``amount`` (None: no cap at
    all), or nothing when ``empowered`` is false."""

    kind: str
    currency: str
    empowered: bool
    amount: Decimal | None
    binding_limit: str = ""

    @property
    def label(self) -> str:
        return str(RemedyKind(self.kind).label)

    @property
    def formatted(self) -> str:
        return format_money(self.amount, self.currency) if self.amount is not None else ""


def allowance(
    acting_agent: ActingAgent,
    *,
    kind: str,
    currency: str,
    customer: Customer,
    order: Order | None,
    known: dict[str, RemedyLimit] | None = None,
) -> Allowance:
    """What the person may still give of ``kind`` right now: the tightest of their limits."""
    found = bounds(
        acting_agent, kind=kind, currency=currency, customer=customer, order=order, known=known
    )
    if found is None:
        return Allowance(kind, currency, empowered=False, amount=None)
    if not found:
        return Allowance(kind, currency, empowered=True, amount=None)
    tightest = min(found, key=lambda bound: bound.remaining)
    return Allowance(
        kind, currency, empowered=True, amount=tightest.remaining, binding_limit=tightest.limit
    )
