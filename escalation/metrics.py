"""What supervisors watch: the escalation rate, who and what drives it, what remedies cost.

Pure reads of the active tenant's data. Every figure is counted by the database (grouped,
filtered aggregates), never by loading tickets into Python: each function runs a fixed number of
queries whatever the number of tickets, so the dashboard stays fast at a million tickets.

Definitions (issue 17): a complaint ticket is one filed under a reason code the merchant marks as
a complaint; an escalated ticket has ``escalated_at``; the escalation rate over a window is the
share of complaint tickets created in it that were escalated, in percent.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from escalation.models import EscalationPolicy, Remedy, RemedyKind
from helpdesk.models import Membership
from helpdesk.permissions import RULES, Capability
from helpdesk.tenancy import require_tenant
from tickets.models import Order, OrderLine, ReasonCode, Ticket
from tickets.people import display_names

CENT = Decimal("0.01")
SOLVED_STATES = (Ticket.Status.SOLVED, Ticket.Status.CLOSED)
# The ladder order of remedy kinds, for tables that list them.
KIND_ORDER = {kind: position for position, kind in enumerate(RemedyKind.values)}


def policy() -> EscalationPolicy:
    """The merchant's escalation policy (created with its defaults the first time)."""
    from escalation.escalations import policy as escalation_policy

    return escalation_policy()


def time_zone() -> ZoneInfo:
    """The merchant's time zone, which draws its days and months; else the site's."""
    name = require_tenant().time_zone or settings.TIME_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.TIME_ZONE)


def percent(part: int | Decimal, whole: int | Decimal) -> Decimal | None:
    """``part`` of ``whole`` in percent with 2 places; None when there is no whole."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(CENT, rounding=ROUND_HALF_UP)


def percent_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def complaint_codes() -> list[str]:
    """The reason codes the merchant counts as complaints."""
    return list(
        ReasonCode.objects.filter(is_complaint=True).order_by("code").values_list("code", flat=True)
    )


def complaint_code_query() -> QuerySet:
    # A subquery, so counting complaint tickets costs one statement, not two.
    return ReasonCode.objects.filter(is_complaint=True).values("code")


def complaint_tickets(*, start: datetime, end: datetime) -> QuerySet[Ticket]:
    """Complaint tickets created in [start, end): the escalation rate's denominator."""
    return Ticket.objects.filter(
        created_at__gte=start, created_at__lt=end, reason_code__in=complaint_code_query()
    )


def _end(end: datetime | None) -> datetime:
    return end if end is not None else timezone.now()


def check_days(days: int) -> int:
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise ValueError(f"days must be a whole number of at least 1, not {days!r}")
    return days


# --- the escalation rate -------------------------------------------------------------------


@dataclass(frozen=True)
class RateFigures:
    """The escalation rate over a window and whether it is above the merchant's threshold
    (strictly above, with at least ``min_complaints`` complaint tickets)."""

    complaints: int
    escalated: int
    rate: Decimal | None
    threshold: Decimal
    min_complaints: int
    above: bool
    days: int = 7

    def as_json(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "complaints": self.complaints,
            "escalated": self.escalated,
            "rate": percent_text(self.rate),
            "threshold": str(self.threshold.quantize(CENT)),
            "min_complaints": self.min_complaints,
            "above": self.above,
        }


def is_above(*, complaints: int, escalated: int, found: EscalationPolicy) -> bool:
    """The alert's condition: strictly above the threshold, counted exactly (not the rounded
    rate), with enough complaint tickets for the figure to mean something."""
    return (
        complaints > 0
        and complaints >= found.min_complaints
        and Decimal(escalated) * 100 > Decimal(found.threshold_percent) * complaints
    )


def escalation_rate(
    *,
    days: int = 7,
    end: datetime | None = None,
    group: Any = None,
    agent: Any = None,
    found_policy: EscalationPolicy | None = None,
) -> RateFigures:
    """The share of complaint tickets created in the ``days`` before ``end`` (default now) that
    were escalated; narrowed to a ticket group or an assignee (instances or ids) when given."""
    days = check_days(days)
    end = _end(end)
    found = found_policy or policy()
    tickets = complaint_tickets(start=end - timedelta(days=days), end=end)
    if group is not None:
        tickets = tickets.filter(group_id=getattr(group, "pk", group))
    if agent is not None:
        tickets = tickets.filter(assignee_id=getattr(agent, "pk", agent))
    counted = tickets.aggregate(
        complaints=Count("pk"), escalated=Count("pk", filter=Q(escalated_at__isnull=False))
    )
    complaints, escalated = counted["complaints"], counted["escalated"]
    return RateFigures(
        complaints=complaints,
        escalated=escalated,
        rate=percent(escalated, complaints),
        threshold=Decimal(found.threshold_percent),
        min_complaints=found.min_complaints,
        above=is_above(complaints=complaints, escalated=escalated, found=found),
        days=days,
    )


def rate_by_group(*, days: int = 7, end: datetime | None = None) -> list[dict[str, Any]]:
    """The rate per ticket group (tickets without a group under ``None``), most complaints
    first: one grouped query."""
    days = check_days(days)
    end = _end(end)
    rows = (
        complaint_tickets(start=end - timedelta(days=days), end=end)
        .values("group_id", "group__name")
        .annotate(
            complaints=Count("pk"), escalated=Count("pk", filter=Q(escalated_at__isnull=False))
        )
        .order_by("-complaints", "group__name")
    )
    return [
        {
            "group": row["group_id"],
            "name": row["group__name"] or "",
            "complaints": row["complaints"],
            "escalated": row["escalated"],
            "rate": percent(row["escalated"], row["complaints"]),
        }
        for row in rows
    ]


def series_bounds(*, days: int, window: int, end: datetime) -> tuple[date, datetime, datetime]:
    """The first day a series of ``days`` points shows, the moment its counting starts (``window
    - 1`` days earlier, so the first point has a whole window) and the start of ``end``'s day,
    all in the merchant's time zone."""
    zone = time_zone()
    last_day = end.astimezone(zone).date()
    first_day = last_day - timedelta(days=days - 1)
    fetch_from = datetime.combine(first_day - timedelta(days=window - 1), datetime.min.time(), zone)
    return first_day, fetch_from, datetime.combine(last_day, datetime.min.time(), zone)


def daily_complaints(*, start: datetime, end: datetime) -> dict[date, tuple[int, int]]:
    """(complaint tickets, escalated) per merchant day for tickets created in [start, end): one
    grouped query."""
    return {
        row["day"]: (row["complaints"], row["escalated"])
        for row in complaint_tickets(start=start, end=end)
        .annotate(day=TruncDate("created_at", tzinfo=time_zone()))
        .values("day")
        .annotate(
            complaints=Count("pk"), escalated=Count("pk", filter=Q(escalated_at__isnull=False))
        )
        .order_by("day")
    }


def rolling_series(
    per_day: dict[date, tuple[int, int]], *, first_day: date, days: int, window: int
) -> list[dict]:
    """One point per day from ``first_day``: the rolling ``window``-day rate ending that day."""
    series = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        span = [per_day.get(day - timedelta(days=back), (0, 0)) for back in range(window)]
        complaints = sum(c for c, _ in span)
        escalated = sum(e for _, e in span)
        series.append(
            {
                "date": day.isoformat(),
                "complaints": complaints,
                "escalated": escalated,
                "rate": percent_text(percent(escalated, complaints)),
            }
        )
    return series


def rate_series(*, days: int = 30, window: int = 7, end: datetime | None = None) -> list[dict]:
    """One point per day of the last ``days`` days (the merchant's days, ending with the day of
    ``end``): the rolling ``window``-day rate ending that day. One grouped query by day."""
    days, window = check_days(days), check_days(window)
    end = _end(end)
    first_day, fetch_from, _today = series_bounds(days=days, window=window, end=end)
    per_day = daily_complaints(start=fetch_from, end=end)
    return rolling_series(per_day, first_day=first_day, days=days, window=window)


def escalation_drivers(
    *, days: int = 7, end: datetime | None = None, limit: int = 3
) -> dict[str, list[dict[str, Any]]]:
    """Among the escalated complaint tickets of the window: the agents, reasons and products
    with the most of them (``limit`` each). Three grouped queries and the reason labels."""
    days = check_days(days)
    end = _end(end)
    escalated = complaint_tickets(start=end - timedelta(days=days), end=end).filter(
        escalated_at__isnull=False
    )
    agents = (
        escalated.filter(assignee__isnull=False)
        .values("assignee_id", "assignee__username")
        .annotate(escalated=Count("pk"))
        .order_by("-escalated", "assignee__username")[:limit]
    )
    names = display_names(row["assignee_id"] for row in agents)
    reasons = (
        escalated.values("reason_code")
        .annotate(escalated=Count("pk"))
        .order_by("-escalated", "reason_code")[:limit]
    )
    labels = _reason_labels()
    products = (
        OrderLine.objects.filter(order__tickets__in=escalated.values("pk"))
        .values("product_name")
        .annotate(escalated=Count("order__tickets", distinct=True))
        .order_by("-escalated", "product_name")[:limit]
    )
    return {
        "agents": [
            {
                "key": row["assignee_id"],
                "label": names.get(row["assignee_id"]) or row["assignee__username"],
                "escalated": row["escalated"],
            }
            for row in agents
        ],
        "reasons": [
            {
                "key": row["reason_code"],
                "label": labels.get(row["reason_code"], row["reason_code"]),
                "escalated": row["escalated"],
            }
            for row in reasons
        ],
        "products": [
            {
                "key": row["product_name"],
                "label": row["product_name"],
                "escalated": row["escalated"],
            }
            for row in products
        ],
    }


def _reason_labels() -> dict[str, str]:
    return dict(ReasonCode.objects.values_list("code", "label"))


# --- agents --------------------------------------------------------------------------------


@dataclass
class AgentRow:
    """One person's month (or ``days``) on tickets: what they handled and how it ended."""

    user: Any
    display_name: str
    role: str
    handled: int = 0
    solved_without_escalation: int = 0
    complaints: int = 0
    escalated: int = 0
    remedies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> Decimal | None:
        return percent(self.escalated, self.complaints)

    @property
    def name(self) -> str:
        return self.display_name or self.user.get_username()


def agent_table(*, days: int = 30, end: datetime | None = None) -> list[AgentRow]:
    """Every member whose role works tickets (those with none included): tickets assigned to
    them that were created in the window, those solved without escalation, their complaint
    tickets and how many of those were escalated, and the remedies they granted in the
    window by kind (count and amount per currency). Three queries."""
    days = check_days(days)
    end = _end(end)
    start = end - timedelta(days=days)
    working_roles = [role for role, rules in RULES.items() if Capability.WORK_TICKETS in rules]
    members = (
        Membership.objects.filter(tenant=require_tenant(), role__in=working_roles)
        .select_related("user")
        .order_by("user__username")
    )
    rows = {
        member.user_id: AgentRow(
            user=member.user, display_name=member.display_name, role=member.role
        )
        for member in members
    }
    complaint = Q(reason_code__in=complaint_code_query())
    counted = (
        Ticket.objects.filter(created_at__gte=start, created_at__lt=end, assignee__in=list(rows))
        .values("assignee_id")
        .annotate(
            handled=Count("pk"),
            solved_without_escalation=Count(
                "pk", filter=Q(status__in=SOLVED_STATES, escalated_at__isnull=True)
            ),
            complaints=Count("pk", filter=complaint),
            escalated=Count("pk", filter=complaint & Q(escalated_at__isnull=False)),
        )
        .order_by()
    )
    for found in counted:
        row = rows[found["assignee_id"]]
        row.handled = found["handled"]
        row.solved_without_escalation = found["solved_without_escalation"]
        row.complaints = found["complaints"]
        row.escalated = found["escalated"]
    granted = (
        Remedy.objects.filter(created_at__gte=start, created_at__lt=end, granted_by__in=list(rows))
        .values("granted_by_id", "kind", "currency")
        .annotate(count=Count("pk"), amount=Sum("amount"))
        .order_by()
    )
    for found in sorted(granted, key=lambda r: (KIND_ORDER.get(r["kind"], 99), r["currency"])):
        rows[found["granted_by_id"]].remedies.append(
            {
                "kind": found["kind"],
                "kind_label": str(RemedyKind(found["kind"]).label),
                "count": found["count"],
                "amount": found["amount"],
                "currency": found["currency"],
            }
        )
    return sorted(rows.values(), key=lambda row: (-row.handled, row.name.lower()))


# --- what remedies cost --------------------------------------------------------------------


def month_bounds(month: date | None = None) -> tuple[date, datetime, datetime]:
    """The calendar month holding ``month`` (default: this month) in the merchant's time zone:
    its first day and [start, end) as moments."""
    zone = time_zone()
    day = month or timezone.now().astimezone(zone).date()
    first = day.replace(day=1)
    following = first + timedelta(days=calendar.monthrange(first.year, first.month)[1])
    start = datetime.combine(first, datetime.min.time(), zone)
    return first, start, datetime.combine(following, datetime.min.time(), zone)


def remedy_spend(
    *, month: date | None = None, found_policy: EscalationPolicy | None = None
) -> list[dict[str, Any]]:
    """What the remedies granted in the calendar month (merchant's time) add up to, per
    currency and kind, against the monthly budget in its currency: ``share`` is the percentage
    of the budget spent. The budget's currency is listed even with nothing spent. Two queries
    (one when the caller read the policy)."""
    _, start, end = month_bounds(month)
    found = found_policy or policy()
    grouped = (
        Remedy.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("currency", "kind")
        .annotate(count=Count("pk"), amount=Sum("amount"))
        .order_by()
    )
    per_currency: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in grouped:
        per_currency[row["currency"]].append(row)
    budget_currency = found.budget_currency if found.monthly_budget_amount is not None else ""
    if budget_currency:
        per_currency.setdefault(budget_currency, [])
    spend = []
    for currency in sorted(per_currency, key=lambda c: (c != budget_currency, c)):
        kinds = sorted(per_currency[currency], key=lambda r: KIND_ORDER.get(r["kind"], 99))
        spent = sum((row["amount"] for row in kinds), Decimal(0))
        budget = found.monthly_budget_amount if currency == budget_currency else None
        spend.append(
            {
                "currency": currency,
                "spent": spent,
                "count": sum(row["count"] for row in kinds),
                "budget": budget,
                "share": percent(spent, budget) if budget else None,
                "by_kind": [
                    {
                        "kind": row["kind"],
                        "kind_label": str(RemedyKind(row["kind"]).label),
                        "count": row["count"],
                        "amount": row["amount"],
                    }
                    for row in kinds
                ],
            }
        )
    return spend


# --- root causes and defect rates ----------------------------------------------------------


def _trend_rows(rows: Any, key: str, label: Any, limit: int) -> list[dict[str, Any]]:
    found = [
        {
            "key": row[key],
            "label": label(row),
            "complaints": row["complaints"],
            "previous": row["previous"],
            "trend": row["complaints"] - row["previous"],
        }
        for row in rows
    ]
    found.sort(key=lambda r: (-r["complaints"], -r["previous"], str(r["key"])))
    return found[:limit]


def _rows(sql: str, params: list[Any]) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = [
            column.name if hasattr(column, "name") else column[0] for column in cursor.description
        ]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def has_grouping_sets() -> bool:
    return connection.vendor == "postgresql"


def _grouped_by_each(
    *, columns: dict[str, str], aggregates: str, source: str, params: list[Any]
) -> list[dict[str, Any]]:
    """Rows of ``source`` (whose order lines are ``line``) grouped by each of ``columns`` in
    turn ({dimension: column}), with ``aggregates``; each row says its ``dimension`` and holds
    its own column (the others empty). ``params`` are the aggregates' then the source's.

    The ORM cannot group by several column sets in one statement: on PostgreSQL this is one
    GROUPING SETS statement (one pass over the rows); elsewhere (SQLite under ``make run``) a
    UNION ALL of one GROUP BY per column. ``source`` is built from ORM querysets
    (``queryset.query.sql_with_params()``), which keep their tenant scoping."""
    if has_grouping_sets():
        dimension = " ".join(
            f"WHEN GROUPING(line.{column}) = 0 THEN '{name}'" for name, column in columns.items()
        )
        values = ", ".join(f"line.{column}" for column in columns.values())
        sets = ", ".join(f"(line.{column})" for column in columns.values())
        return _rows(
            f"SELECT CASE {dimension} END AS dimension, {values}, {aggregates} "
            f"FROM {source} GROUP BY GROUPING SETS ({sets})",
            params,
        )
    parts = []
    for name, grouped in columns.items():
        values = ", ".join(
            f"line.{column}" if column == grouped else f"NULL AS {column}"
            for column in columns.values()
        )
        parts.append(
            f"SELECT '{name}' AS dimension, {values}, {aggregates} "
            f"FROM {source} GROUP BY line.{grouped}"
        )
    return _rows(" UNION ALL ".join(parts), params * len(columns))


# The root causes of complaint tickets by their order's lines: a ticket counts once per product
# (SKU, supplier) however many lines of it its order has, so every dimension is a distinct count
# of its own, and one pass over the lines counts all three.
ROOT_CAUSE_COUNTS = """
    MAX(line.product_name) AS product,
    COUNT(DISTINCT complaint.id) FILTER (WHERE complaint.created_at >= %s) AS complaints,
    COUNT(DISTINCT complaint.id) FILTER (WHERE complaint.created_at < %s) AS previous
"""
DIMENSION_COLUMNS = {"products": "product_name", "skus": "sku", "suppliers": "supplier"}


def root_causes(
    *, days: int = 30, end: datetime | None = None, limit: int = 20
) -> dict[str, list[dict[str, Any]]]:
    """Complaint tickets of the window by reason, and by product, SKU and supplier of their
    order's lines, each beside the equal window before it (``previous``; ``trend`` is the
    difference). Most complaints first, ``limit`` rows each. Three queries: the reason codes,
    the reasons, and the order lines' three dimensions in one grouping-sets statement."""
    days = check_days(days)
    end = _end(end)
    start = end - timedelta(days=days)
    before = start - timedelta(days=days)
    reason_codes = list(ReasonCode.objects.values_list("code", "label", "is_complaint"))
    labels = {code: label for code, label, _ in reason_codes}
    # The codes as a list, not a subquery: the planner then knows how many tickets they match.
    codes = [code for code, _, is_complaint in reason_codes if is_complaint]
    if not codes:
        return {"reasons": [], "products": [], "skus": [], "suppliers": []}
    complaints = Ticket.objects.filter(
        created_at__gte=before, created_at__lt=end, reason_code__in=codes
    )
    reasons = (
        complaints.values("reason_code")
        .annotate(
            complaints=Count("pk", filter=Q(created_at__gte=start)),
            previous=Count("pk", filter=Q(created_at__lt=start)),
        )
        .order_by()
    )
    complaints_sql, complaints_params = complaints.values(
        "id", "order_id", "created_at"
    ).query.sql_with_params()
    lines_sql, lines_params = OrderLine.objects.values(
        "order_id", "sku", "product_name", "supplier"
    ).query.sql_with_params()
    by_dimension: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in _grouped_by_each(
        columns=DIMENSION_COLUMNS,
        aggregates=ROOT_CAUSE_COUNTS,
        source=f"({complaints_sql}) AS complaint "
        f"JOIN ({lines_sql}) AS line ON line.order_id = complaint.order_id",
        params=[start, start, *complaints_params, *lines_params],
    ):
        column = DIMENSION_COLUMNS[row["dimension"]]
        if column == "supplier" and not row["supplier"]:
            continue  # lines without a known supplier say nothing about suppliers
        by_dimension[row["dimension"]].append({**row, "key": row[column]})
    return {
        "reasons": _trend_rows(
            reasons, "reason_code", lambda r: labels.get(r["reason_code"], r["reason_code"]), limit
        ),
        "products": _trend_rows(by_dimension["products"], "key", lambda r: r["product"], limit),
        "skus": _trend_rows(
            by_dimension["skus"], "key", lambda r: f"{r['sku']} {r['product']}", limit
        ),
        "suppliers": _trend_rows(by_dimension["suppliers"], "key", lambda r: r["supplier"], limit),
    }


# Defect rates: per SKU and per supplier, the orders placed in the window with a line of it and
# those of them with a complaint ticket. An order counts once per SKU (supplier) however many
# lines of it it has; whether it has a complaint is asked once per order, not once per line.
DEFECT_COUNTS = """
    MAX(line.product_name) AS product,
    COUNT(DISTINCT placed.id) AS orders,
    COUNT(DISTINCT placed.id) FILTER (WHERE placed.complained) AS complaint_orders
"""
DEFECT_COLUMNS = {"sku": "sku", "supplier": "supplier"}


def defect_rates(
    *, days: int = 30, end: datetime | None = None, found_policy: EscalationPolicy | None = None
) -> list[dict[str, Any]]:
    """Per SKU and per supplier: the orders placed in the window that contain it and how many
    of those have a complaint ticket, in percent; ``above`` when the rate passes the merchant's
    defect limit with at least its minimum of orders. Only those with a complaint are listed,
    the highest rate first. Three queries: the policy, the complaint codes and one
    grouping-sets statement for both dimensions."""
    days = check_days(days)
    end = _end(end)
    found = found_policy or policy()
    codes = complaint_codes()
    if not codes:
        return []  # no complaint tickets, so no rate to list
    orders = (
        Order.objects.filter(placed_at__gte=end - timedelta(days=days), placed_at__lt=end)
        .annotate(
            complained=Exists(Ticket.objects.filter(order_id=OuterRef("pk"), reason_code__in=codes))
        )
        .values("id", "complained")
    )
    orders_sql, orders_params = orders.query.sql_with_params()
    lines_sql, lines_params = OrderLine.objects.values(
        "order_id", "sku", "product_name", "supplier"
    ).query.sql_with_params()
    rows = []
    for row in _grouped_by_each(
        columns=DEFECT_COLUMNS,
        aggregates=DEFECT_COUNTS,
        source=f"({orders_sql}) AS placed JOIN ({lines_sql}) AS line ON line.order_id = placed.id",
        params=[*orders_params, *lines_params],
    ):
        dimension = row["dimension"]
        if not row["complaint_orders"] or (dimension == "supplier" and not row["supplier"]):
            continue
        rate = percent(row["complaint_orders"], row["orders"])
        exact_above = (
            Decimal(row["complaint_orders"]) * 100
            > Decimal(found.defect_rate_percent) * row["orders"]
        )
        rows.append(
            {
                "dimension": dimension,
                "key": row[dimension],
                "label": f"{row['sku']} {row['product']}"
                if dimension == "sku"
                else row["supplier"],
                "orders": row["orders"],
                "complaint_orders": row["complaint_orders"],
                "rate": rate,
                "above": exact_above and row["orders"] >= found.defect_min_orders,
            }
        )
    rows.sort(
        key=lambda r: (
            not r["above"],
            -(r["rate"] or 0),
            -r["orders"],
            r["dimension"],
            str(r["key"]),
        )
    )
    return rows


def what_if(
    *, days: int = 7, end: datetime | None = None, figures: RateFigures | None = None
) -> list[Any]:
    """Per remedy kind and currency of the over-limit escalations in the window: what higher
    per-grant limits would have absorbed, cost and left of the rate (see ``whatif``);
    ``figures``: the rate of that same window, when the caller counted it already."""
    from escalation.whatif import what_if as compute

    return compute(days=days, end=end, figures=figures)
