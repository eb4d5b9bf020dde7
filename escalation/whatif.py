"""What-if for remedy limits: had agents been allowed more per grant, how many over-limit
escalations would not have happened, what would it have cost, and what rate would be left.

Counted in a fixed number of queries: the requests grouped by kind, currency, amount and
requester; the limits that stopped them; and the window's escalations grouped by ticket, from
which the escalated complaint tickets that only over-limit requests of one kind and currency
escalated are counted per the largest amount asked on each (the amount a limit must reach for
the ticket never to have escalated).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Max, Q
from django.utils import timezone

from escalation import metrics
from escalation.models import Escalation, RemedyKind, RemedyLimit, Trigger
from helpdesk.models import Membership
from helpdesk.money import rounded
from helpdesk.tenancy import require_tenant

# At most this many candidate limits per kind and currency.
MAX_CANDIDATES = 5

OVER_LIMIT = Q(trigger=Trigger.OVER_LIMIT, approval_request__isnull=False)


@dataclass(frozen=True)
class Candidate:
    """One higher per-grant limit: the requests it would have absorbed (asked no more than it),
    their cost, the escalated tickets that would not have been, and the rate left."""

    limit: Decimal
    absorbed: int
    cost: Decimal
    avoided: int
    rate: Decimal | None


@dataclass(frozen=True)
class WhatIf:
    kind: str
    currency: str
    requests: int
    asked: Decimal
    current_limit: Decimal | None
    complaints: int
    escalated: int
    rate: Decimal | None
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def kind_label(self) -> str:
        return str(RemedyKind(self.kind).label)

    def as_json(self) -> dict[str, Any]:
        """JSON-safe (amounts and rates as strings), for the API and an alert's details."""

        def money(amount: Decimal | None) -> str | None:
            return None if amount is None else str(rounded(amount, self.currency))

        return {
            "kind": self.kind,
            "kind_label": self.kind_label,
            "currency": self.currency,
            "requests": self.requests,
            "asked": money(self.asked),
            "current_limit": money(self.current_limit),
            "complaints": self.complaints,
            "escalated": self.escalated,
            "rate": metrics.percent_text(self.rate),
            "candidates": [
                {
                    "limit": money(candidate.limit),
                    "absorbed": candidate.absorbed,
                    "cost": money(candidate.cost),
                    "avoided": candidate.avoided,
                    "rate": metrics.percent_text(candidate.rate),
                }
                for candidate in self.candidates
            ],
        }


def candidate_limits(amounts: Counter[Decimal]) -> list[Decimal]:
    """Each distinct asked amount, ascending; with more than ``MAX_CANDIDATES`` of them, the
    amounts that absorb a fifth, two fifths... and all of the requests (quantiles)."""
    distinct = sorted(amounts)
    if len(distinct) <= MAX_CANDIDATES:
        return distinct
    asked = sorted(amounts.elements())
    chosen = {
        asked[math.ceil(step * len(asked) / MAX_CANDIDATES) - 1]
        for step in range(1, MAX_CANDIDATES + 1)
    }
    return sorted(chosen)


def _requests(start: datetime, end: datetime) -> list[dict[str, Any]]:
    return list(
        Escalation.objects.filter(OVER_LIMIT, created_at__gte=start, created_at__lt=end)
        .values(
            kind=F("approval_request__kind"),
            currency=F("approval_request__currency"),
            amount=F("approval_request__amount"),
            requester=F("approval_request__requested_by_id"),
        )
        .annotate(count=Count("pk"))
        .order_by()
    )


def _caps(requests: list[dict[str, Any]]) -> dict[tuple[str, str, int], Decimal | None]:
    """The per-grant cap each requester met, as ``limits.limit_for`` finds it (their own row,
    else their role's): 0 when not empowered at all, None when the row sets no per-grant cap.
    Two queries for all of them."""
    requesters = {row["requester"] for row in requests}
    roles = dict(
        Membership.objects.filter(tenant=require_tenant(), user_id__in=requesters).values_list(
            "user_id", "role"
        )
    )
    rows = RemedyLimit.objects.filter(
        kind__in={row["kind"] for row in requests},
        currency__in={row["currency"] for row in requests},
    ).filter(Q(user_id__in=requesters) | Q(user__isnull=True, role__in=set(roles.values())))
    own: dict[tuple[str, str, int], Decimal | None] = {}
    of_role: dict[tuple[str, str, str], Decimal | None] = {}
    for row in rows:
        if row.user_id is not None:
            own[row.kind, row.currency, row.user_id] = row.per_grant_max_amount
        else:
            of_role[row.kind, row.currency, row.role] = row.per_grant_max_amount
    caps: dict[tuple[str, str, int], Decimal | None] = {}
    for row in requests:
        key = (row["kind"], row["currency"], row["requester"])
        if key in own:
            caps[key] = own[key]
        else:
            role_key = (row["kind"], row["currency"], roles.get(row["requester"], ""))
            caps[key] = of_role[role_key] if role_key in of_role else Decimal(0)
    return caps


def _avoidable(start: datetime, end: datetime) -> dict[tuple[str, str], Counter[Decimal]]:
    """Escalated complaint tickets of the window whose every escalation is an over-limit
    request of one kind and currency, counted per the largest amount asked on them.

    One query grouped by ticket over the window's escalations (an escalation is never older
    than its ticket, so a ticket created in the window has all of its escalations there too),
    folded here: the rows are the escalated tickets of a few days."""
    per_ticket = (
        Escalation.objects.filter(
            created_at__gte=start,
            created_at__lt=end,
            ticket__created_at__gte=start,
            ticket__created_at__lt=end,
            ticket__reason_code__in=metrics.complaint_code_query(),
            ticket__escalated_at__isnull=False,
        )
        .values("ticket_id")
        .annotate(
            others=Count("pk", filter=~OVER_LIMIT),
            kinds=Count("approval_request__kind", distinct=True, filter=OVER_LIMIT),
            currencies=Count("approval_request__currency", distinct=True, filter=OVER_LIMIT),
            kind=Max("approval_request__kind", filter=OVER_LIMIT),
            currency=Max("approval_request__currency", filter=OVER_LIMIT),
            needed=Max("approval_request__amount", filter=OVER_LIMIT),
        )
        .order_by()
    )
    found: dict[tuple[str, str], Counter[Decimal]] = defaultdict(Counter)
    for row in per_ticket:
        if row["others"] == 0 and row["kinds"] == 1 and row["currencies"] == 1:
            found[row["kind"], row["currency"]][row["needed"]] += 1
    return found


def what_if(
    *, days: int = 7, end: datetime | None = None, figures: metrics.RateFigures | None = None
) -> list[WhatIf]:
    """Per remedy kind and currency with over-limit escalations created in the ``days`` before
    ``end``: the per-grant cap most of those requests ran into, and for each candidate higher
    cap the requests it would have absorbed, their cost and the ``days``-day escalation rate
    left had the tickets that only those requests escalated not been escalated."""
    days = metrics.check_days(days)
    end = end if end is not None else timezone.now()
    start = end - timedelta(days=days)
    requests = _requests(start, end)
    if not requests:
        return []
    caps = _caps(requests)
    avoidable = _avoidable(start, end)
    if figures is None or figures.days != days:
        figures = metrics.escalation_rate(days=days, end=end)
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in requests:
        grouped[row["kind"], row["currency"]].append(row)
    found = []
    for (kind, currency), rows in grouped.items():
        amounts: Counter[Decimal] = Counter()
        met: Counter[Decimal | None] = Counter()
        for row in rows:
            amounts[row["amount"]] += row["count"]
            met[caps[kind, currency, row["requester"]]] += row["count"]
        # The cap most requests ran into; of equally common ones, the lowest.
        current = min(met, key=lambda cap: (-met[cap], cap is None, cap or 0))
        needed = avoidable.get((kind, currency), Counter())
        candidates = []
        for limit in candidate_limits(amounts):
            avoided = sum(n for amount, n in needed.items() if amount <= limit)
            candidates.append(
                Candidate(
                    limit=limit,
                    absorbed=sum(n for amount, n in amounts.items() if amount <= limit),
                    cost=sum(
                        (amount * n for amount, n in amounts.items() if amount <= limit),
                        Decimal(0),
                    ),
                    avoided=avoided,
                    rate=metrics.percent(figures.escalated - avoided, figures.complaints),
                )
            )
        found.append(
            WhatIf(
                kind=kind,
                currency=currency,
                requests=sum(amounts.values()),
                asked=sum((amount * n for amount, n in amounts.items()), Decimal(0)),
                current_limit=current,
                complaints=figures.complaints,
                escalated=figures.escalated,
                rate=figures.rate,
                candidates=candidates,
            )
        )
    found.sort(key=lambda w: (metrics.KIND_ORDER.get(w.kind, 99), w.currency))
    return found
