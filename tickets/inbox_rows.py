"""The inbox table's rows, prepared in Python: a list of fifty tickets would otherwise cost
fifty times a URL reversal, three choice labels, a date format, a relative time and the
service-level badge's own template (about half of the page's time at a million tickets)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from django.contrib.humanize.templatetags.humanize import naturaltime
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from tickets import people
from tickets.business_hours import Calendar, calendar_for
from tickets.models import Ticket
from tickets.service_levels import ServiceClock, clock_of

# A ticket number no merchant reaches, reversed once and replaced by each row's number.
_PLACEHOLDER = 987654321


@dataclass(frozen=True)
class Row:
    """One ticket as the inbox table shows it."""

    ticket: Ticket
    detail_url: str
    take_url: str
    choose_label: str
    channel: str
    status: str
    priority: str
    clock: ServiceClock | None
    assignee: str
    updated_exact: str
    updated_ago: str
    # The whole <tr>, drawn here: fifty rows of a dozen template variables each were still
    # about half of the page's rendering time.
    html: str = ""


ROW = (
    '<tr class="status-{}" data-nav-row data-ticket="{}">'
    '<td><input type="checkbox" name="tickets" value="{}" aria-label="{}"></td>'
    '<td>{}</td><td><a href="{}" data-nav-open>{}</a></td><td>{}</td><td>{}</td>'
    '<td><span class="badge {}">{}</span></td><td>{}</td><td>{}</td><td>{}</td>'
    '<td title="{}">{}</td></tr>'
)


def _clock_html(clock: ServiceClock | None) -> SafeString | str:
    if clock is None:
        return ""
    state = f" {clock.state}" if clock.state else ""
    return format_html(
        '<span class="sla{}" data-target="{}" title="{}">{}</span>',
        state,
        clock.target,
        clock.title,
        clock.label,
    )


def _html(row: Row, take_label: str) -> SafeString:
    ticket = row.ticket
    if ticket.assignee_id:
        assignee: SafeString | str = row.assignee
    else:
        assignee = format_html(
            '<button type="submit" formaction="{}" class="take">{}</button>',
            row.take_url,
            take_label,
        )
    number = str(ticket.number)
    return format_html(
        ROW,
        ticket.status,
        number,
        number,
        row.choose_label,
        number,
        row.detail_url,
        ticket.subject,
        str(ticket.customer) if ticket.customer_id else "",
        row.channel,
        ticket.status,
        row.status,
        row.priority,
        _clock_html(row.clock),
        assignee,
        row.updated_exact,
        row.updated_ago,
    )


def _url_pattern(name: str) -> str:
    return reverse(name, args=[_PLACEHOLDER]).replace(str(_PLACEHOLDER), "{number}")


def _labels(field: str) -> dict[str, str]:
    """A choice field's labels in the reader's language, translated once per page."""
    return {value: str(label) for value, label in Ticket._meta.get_field(field).choices}


def inbox_rows(tickets: Iterable[Ticket], *, names: dict[int, str]) -> list[Row]:
    """``tickets`` (customer, assignee and group selected) as rows, in the reader's language
    and the merchant's time zone; ``names``: members' display names by user id."""
    detail, take = _url_pattern("tickets:detail"), _url_pattern("tickets:take")
    channels, statuses, priorities = (_labels(name) for name in ("channel", "status", "priority"))
    choose = _("Choose ticket #%(number)s")
    take_label = _("Take")
    calendars: dict[int | None, Calendar] = {}
    now = timezone.now()
    rows = []
    for ticket in tickets:
        clock = None
        if ticket.is_open and (ticket.first_response_due_at or ticket.resolution_due_at):
            if ticket.group_id not in calendars:
                calendars[ticket.group_id] = calendar_for(ticket.group)
            clock = clock_of(ticket, now, calendar=calendars[ticket.group_id])
        row = Row(
            ticket=ticket,
            detail_url=detail.format(number=ticket.number),
            take_url=take.format(number=ticket.number),
            choose_label=choose % {"number": ticket.number},
            channel=channels.get(ticket.channel, ticket.channel),
            status=statuses.get(ticket.status, ticket.status),
            priority=priorities.get(ticket.priority, ticket.priority),
            clock=clock,
            assignee=people.name_of(ticket.assignee, names) if ticket.assignee_id else "",
            updated_exact=timezone.localtime(ticket.updated_at).strftime("%Y-%m-%d %H:%M"),
            updated_ago=str(naturaltime(ticket.updated_at)),
        )
        rows.append(replace(row, html=_html(row, take_label)))
    return rows
