"""The supervisor dashboard (/supervisor/): active alerts, what waits for a supervisor (approval
requests to decide, open escalations to resolve), the escalation rate against its target with
its daily chart, each agent's month, what remedies cost against the budget, and the root causes
of complaints.

Supervisors and up only (agents get the 403 page). Every figure comes from
``escalation.metrics`` (a fixed number of queries each), so the page costs the same number of
queries with ten tickets or a million. The 30-day sections are kept for a short while
(``month_figures``), and so are the chart's days before today (``live_series``); the queue,
the rates and today's point are counted on every view. Each
section is a live section (static/js/live-sections.js) refreshed by the events that change it;
the chart is redrawn from the escalation-rate API by static/js/dashboard.js.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from escalation import alerts, escalations, metrics, selectors
from escalation.models import (
    ApprovalRequest,
    Escalation,
    EscalationPolicy,
    RemedyKind,
    SupervisorAlert,
)
from helpdesk.permissions import Capability, acting_agent_for_request, require
from helpdesk.tenancy import require_tenant
from tickets.views import tenant_required

# The windows the page shows: the alerting window beside a month.
RATE_DAYS = alerts.RATE_DAYS
MONTH_DAYS = 30
# The queue shows this many of its oldest rows.
QUEUE_SHOWN = 50
# Also the template static/js/dashboard.js fills in when the figures change.
RATE_WORDS = gettext_lazy("%(escalated)s of %(complaints)s complaint tickets escalated")


@dataclass(frozen=True)
class AlertCard:
    """An active alert as the page shows it, worded in the reader's language."""

    alert: SupervisorAlert
    title: str
    body: str
    details: dict[str, Any]


def alert_cards() -> list[AlertCard]:
    """The active alerts, newest first, worded again in the reader's language (the stored title
    is in the merchant's, for the email)."""
    cards = []
    for alert in SupervisorAlert.objects.filter(cleared_at__isnull=True).order_by("-created_at"):
        title, body = alert.title, alert.body
        wording = alerts.WORDING.get(alert.kind)
        # Details of an older shape keep the stored words.
        with contextlib.suppress(KeyError, TypeError, ValueError):
            if wording is not None:
                title, body = wording[0](alert.details), wording[1](alert.details)
        details = alert.details
        with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
            # Remedy kinds in the reader's language too, not the merchant's of the moment.
            details = {
                **details,
                "what_if": [
                    {**row, "kind_label": str(RemedyKind(row["kind"]).label)}
                    for row in details.get("what_if", [])
                ],
            }
        cards.append(AlertCard(alert=alert, title=title, body=body, details=details))
    return cards


def other_open_escalations() -> QuerySet[Escalation]:
    """Open escalations other than those waiting on an approval request (the queue lists the
    request itself, with its forms)."""
    return escalations.open_escalations().exclude(
        approval_request__state=ApprovalRequest.State.PENDING
    )


def rate_words(figures: metrics.RateFigures) -> str:
    return str(RATE_WORDS) % {"escalated": figures.escalated, "complaints": figures.complaints}


def spend_rows(found_policy: EscalationPolicy | None = None) -> list[dict[str, Any]]:
    """This month's remedy spend per currency, and how full its budget is."""
    return [
        {
            **row,
            "over_budget": row["budget"] is not None and row["spent"] > row["budget"],
            # A <meter> shows no more than its maximum: a spent-out budget is simply full.
            "meter": min(row["share"], Decimal(100)) if row["share"] is not None else None,
        }
        for row in metrics.remedy_spend(found_policy=found_policy)
    ]


def cause_tables(causes: dict[str, list[dict[str, Any]]]) -> list[tuple[str, list, str]]:
    """The root-cause tables in reading order: (heading, rows, dimension)."""
    headings = {
        "reasons": _("Reason"),
        "products": _("Product"),
        "skus": _("SKU"),
        "suppliers": _("Supplier"),
    }
    return [(heading, causes.get(key, []), key) for key, heading in headings.items()]


@dataclass(frozen=True)
class MonthFigures:
    """The page's 30-day sections (agents, root causes, defect rates) and when they were
    counted."""

    agents: list[metrics.AgentRow]
    causes: dict[str, list[dict[str, Any]]]
    defects: list[dict[str, Any]]
    computed_at: datetime


def month_figures(found_policy: EscalationPolicy) -> MonthFigures:
    """The 30-day sections, kept per merchant for HELPDESK_DASHBOARD_CACHE_SECONDS (0: counted
    on every view). At a million tickets they cost seconds of database time, and a live section
    refreshes the whole page on every ticket event; a month's figures hardly move in a minute,
    and the page says when they were counted. Labels in them are worded in the reader's
    language, and the defect limit decides which rows are flagged, so both are in the key."""
    seconds = settings.HELPDESK_DASHBOARD_CACHE_SECONDS

    def count() -> MonthFigures:
        return MonthFigures(
            agents=metrics.agent_table(days=MONTH_DAYS),
            causes=metrics.root_causes(days=MONTH_DAYS),
            defects=metrics.defect_rates(days=MONTH_DAYS, found_policy=found_policy),
            computed_at=timezone.now(),
        )

    if seconds <= 0:
        return count()
    key = ":".join(
        (
            "supervisor-dashboard-month",
            str(require_tenant().pk),
            get_language() or "",
            str(found_policy.defect_rate_percent),
            str(found_policy.defect_min_orders),
        )
    )
    found = cache.get(key)
    if not isinstance(found, MonthFigures):
        found = count()
        cache.set(key, found, seconds)
    return found


def live_series(end: datetime) -> list[dict[str, Any]]:
    """The chart's points (``metrics.rate_series`` over ``MONTH_DAYS`` with the ``RATE_DAYS``
    window): today's tickets counted on every view, the days before kept per merchant for
    HELPDESK_DASHBOARD_CACHE_SECONDS. A closed day's counts change only when one of its
    tickets is escalated later, and the chart is a trend; reading 36 days of a large merchant's
    tickets on every view was the page's slowest statement."""
    first_day, fetch_from, today = metrics.series_bounds(days=MONTH_DAYS, window=RATE_DAYS, end=end)
    seconds = settings.HELPDESK_DASHBOARD_CACHE_SECONDS
    key = f"supervisor-dashboard-days:{require_tenant().pk}:{fetch_from.isoformat()}"
    closed = cache.get(key) if seconds > 0 else None
    if not isinstance(closed, dict):
        closed = metrics.daily_complaints(start=fetch_from, end=today)
        if seconds > 0:
            cache.set(key, closed, seconds)
    per_day = closed | metrics.daily_complaints(start=today, end=end)
    return metrics.rolling_series(per_day, first_day=first_day, days=MONTH_DAYS, window=RATE_DAYS)


def chart_data(series: list[dict[str, Any]], threshold: Decimal) -> dict[str, Any]:
    """What the chart draws (static/js/dashboard.js reads it from a json_script tag): the daily
    rolling rate and the target as a flat line."""
    # A policy created a moment ago still holds its default as an int.
    return {"series": series, "threshold": str(Decimal(threshold).quantize(metrics.CENT))}


# What the queue's rows show besides the ticket and its customer: read by one query per
# relation rather than joined. PostgreSQL plans an eight-table join under row-level security
# in 15-20 ms, against well under 1 ms to run it for 50 rows.
PENDING_SHOWS = ("requested_by", "order", "price_drop")
ESCALATION_SHOWS = ("agent", "group")


def lean(rows: QuerySet, shows: tuple[str, ...]) -> QuerySet:
    return rows.select_related(None).select_related("ticket__customer").prefetch_related(*shows)


def oldest_first(name: str, rows: QuerySet) -> dict[str, Any]:
    """The oldest ``QUEUE_SHOWN`` rows of a queue and how many wait in all, so that a backlog
    of thousands does not make the page slow (the approvals page and the API list them all)."""
    shown = list(rows[:QUEUE_SHOWN])
    total = len(shown) if len(shown) < QUEUE_SHOWN else rows.count()
    return {name: shown, f"{name}_total": total}


@require_GET
@tenant_required
def dashboard(request: HttpRequest) -> HttpResponse:
    require(acting_agent_for_request(request), Capability.SUPERVISE)
    found_policy = metrics.policy()
    now = timezone.now()
    week = metrics.escalation_rate(days=RATE_DAYS, end=now, found_policy=found_policy)
    month_rate = metrics.escalation_rate(days=MONTH_DAYS, end=now, found_policy=found_policy)
    series = live_series(now)
    month = month_figures(found_policy)
    return render(
        request,
        "escalation/dashboard.html",
        {
            "alerts": alert_cards(),
            **oldest_first("pending", lean(selectors.pending_approval_requests(), PENDING_SHOWS)),
            **oldest_first("open_escalations", lean(other_open_escalations(), ESCALATION_SHOWS)),
            "week": week,
            "rate_figures": [
                (_("Last %(days)s days") % {"days": RATE_DAYS}, week, rate_words(week), "week"),
                (
                    _("Last %(days)s days") % {"days": MONTH_DAYS},
                    month_rate,
                    rate_words(month_rate),
                    "month",
                ),
            ],
            "rate_words": RATE_WORDS,
            "threshold": alerts.percent_words(found_policy.threshold_percent),
            "defect_limit": alerts.percent_words(found_policy.defect_rate_percent),
            "rate_days": RATE_DAYS,
            "month_days": MONTH_DAYS,
            "series": series,
            "chart": chart_data(series, found_policy.threshold_percent),
            "groups": metrics.rate_by_group(days=RATE_DAYS, end=now),
            "what_if": metrics.what_if(days=RATE_DAYS, end=now, figures=week),
            "agents": month.agents,
            "spend": spend_rows(found_policy),
            "cause_tables": cause_tables(month.causes),
            "defects": month.defects,
            "month_as_of": month.computed_at.astimezone(metrics.time_zone()).strftime("%H:%M"),
            # The month sections' HTML is kept as long as their figures (the cache tag adds
            # the merchant, the reader's language and the defect limit to the figures' time).
            "month_seconds": settings.HELPDESK_DASHBOARD_CACHE_SECONDS,
            "month_key": ":".join(
                (
                    str(require_tenant().pk),
                    get_language() or "",
                    str(found_policy.defect_rate_percent),
                    month.computed_at.isoformat(),
                )
            ),
        },
    )
