"""The agent's inbox: named views (mine, unassigned, my groups, ...), their capped counts,
filters, search and keyset pages, newest activity first.

Every read is bounded whatever the number of tickets: a page is one indexed range scan of
(updated_at, id) below or above a cursor (no OFFSET, no COUNT of the whole view), and the counts
of every view are one statement that stops counting at ``COUNT_CAP``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _

from helpdesk.permissions import ActingAgent, tickets_in_reach
from tickets import search
from tickets.models import GroupMember, Ticket

PAGE_SIZE = 50
# Counts past this show as "1,000+": counting a million tickets on every page view would cost
# more than the page.
COUNT_CAP = 1000
# Words are first looked for among this many of the newest tickets (see search_page).
SEARCH_WINDOW = 10_000

Status = Ticket.Status
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNSOLVED = (Status.NEW, Status.OPEN, Status.PENDING, Status.ON_HOLD)


@dataclass(frozen=True)
class View:
    """One of the inbox's named views: whose tickets and which statuses by default."""

    key: str
    label: Any
    statuses: tuple[str, ...] | None  # None: every status

    def narrow(self, tickets: QuerySet[Ticket], agent: ActingAgent) -> QuerySet[Ticket]:
        """``tickets`` (already in reach) as this view shows them, without status."""
        if self.key == "spam":
            return tickets.filter(ignored_at__isnull=False)
        tickets = tickets.filter(ignored_at__isnull=True)
        if self.key == "mine":
            return tickets.filter(assignee=agent.user)
        if self.key == "unassigned":
            return tickets.filter(assignee__isnull=True)
        if self.key == "groups":
            mine = GroupMember.objects.filter(user=agent.user).values("group_id")
            return tickets.filter(group_id__in=mine)
        if self.key == "call_backs":
            from channels_in.phone_calls import with_call_back_due

            return with_call_back_due(tickets, agent.user)
        return tickets


VIEWS = {
    view.key: view
    for view in [
        View("open", _("Unsolved"), UNSOLVED),
        View("mine", _("Mine"), UNSOLVED),
        View("unassigned", _("Unassigned"), UNSOLVED),
        View("groups", _("My groups"), UNSOLVED),
        View("call_backs", _("Call-backs due"), None),
        View("pending", _("Pending"), (Status.PENDING,)),
        View("solved", _("Solved"), (Status.SOLVED, Status.CLOSED)),
        View("all", _("All"), None),
        View("spam", _("Spam"), None),
    ]
}
DEFAULT_VIEW = "open"


@dataclass(frozen=True)
class Filters:
    """What the agent narrowed the view to; empty values filter nothing."""

    status: str = ""  # a status, "all", or "": the view's statuses
    channel: str = ""
    priority: str = ""
    tag: str = ""
    group_id: int | None = None
    assignee: str = ""  # a user id, "me" or "none"
    query: str = ""


def view_tickets(
    *, agent: ActingAgent, view: View, filters: Filters = Filters()
) -> QuerySet[Ticket]:
    """The tickets ``view`` shows ``agent`` with ``filters`` applied, unordered."""
    tickets = view.narrow(tickets_in_reach(agent, Ticket.objects.all()), agent)
    if filters.status == "all":
        pass
    elif filters.status:
        tickets = tickets.filter(status=filters.status)
    elif view.statuses is not None:
        tickets = tickets.filter(status__in=view.statuses)
    if filters.channel:
        tickets = tickets.filter(channel=filters.channel)
    if filters.priority:
        tickets = tickets.filter(priority=filters.priority)
    if filters.tag:
        tickets = tickets.filter(tags__name=filters.tag)
    if filters.group_id is not None:
        tickets = tickets.filter(group_id=filters.group_id)
    if filters.assignee == "me":
        tickets = tickets.filter(assignee=agent.user)
    elif filters.assignee == "none":
        tickets = tickets.filter(assignee__isnull=True)
    elif filters.assignee:
        tickets = tickets.filter(assignee_id=int(filters.assignee))
    if filters.query:
        tickets = search.matching(tickets, filters.query)
    return tickets


# --- counts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Count:
    value: int

    @property
    def capped(self) -> bool:
        return self.value > COUNT_CAP

    @property
    def shown(self) -> int:
        return min(self.value, COUNT_CAP)


def view_counts(*, agent: ActingAgent) -> dict[str, Count]:
    """How many tickets each view holds, each counted up to ``COUNT_CAP`` + 1, in one
    statement (about 20 ms for a merchant with a million tickets). Not cached: the list
    reloads itself after each change, and a count that lags its rows reads as a bug."""
    return {name: Count(value) for name, value in _count_views(agent).items()}


def _count_views(agent: ActingAgent) -> dict[str, int]:
    parts, params = [], []
    for view in VIEWS.values():
        tickets = view_tickets(agent=agent, view=view).order_by().values("pk")[: COUNT_CAP + 1]
        sql, view_params = tickets.query.sql_with_params()
        parts.append(f"(SELECT COUNT(*) FROM ({sql}) AS {view.key}_view)")
        params.extend(view_params)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(parts)}", params)
        row = cursor.fetchone()
    return dict(zip(VIEWS, row, strict=True))


# --- keyset pages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A position in the list: the (updated_at, id) of a row, newest first."""

    updated_at: datetime
    pk: int

    def encode(self) -> str:
        micros = (self.updated_at - EPOCH) // timedelta(microseconds=1)
        return f"{micros}.{self.pk}"

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        """The cursor ``text`` stands for, or None for anything that is not one."""
        micros, dot, pk = (text or "").partition(".")
        if not dot or not micros.isdigit() or not pk.isdigit() or len(micros) > 18:
            return None
        if int(pk) > 2**63 - 1:
            return None
        try:
            moment = EPOCH + timedelta(microseconds=int(micros))
        except OverflowError:
            return None
        return cls(updated_at=moment, pk=int(pk))

    @classmethod
    def of(cls, ticket: Ticket) -> Cursor:
        return cls(updated_at=ticket.updated_at, pk=ticket.pk)


@dataclass(frozen=True)
class Page:
    tickets: list[Ticket]
    newer: str = ""  # cursor for the page of newer tickets, "" when this is the first
    older: str = ""  # cursor for the next page of older tickets, "" when this is the last


def search_page(
    tickets: QuerySet[Ticket],
    query: str,
    *,
    older_than: Cursor | None = None,
    newer_than: Cursor | None = None,
) -> Page:
    """One page of the ``tickets`` that ``query`` finds, newest activity first.

    A word many tickets share (破损, refund) would make the full-text index return a large
    share of the merchant's tickets only to sort them for one page; so words are first looked
    for among the newest ``SEARCH_WINDOW`` tickets of the page's range, in index order, and the
    index is asked only when those hold less than a page. Codes (order, tracking, phone
    numbers) are looked up as words, then, when that finds nothing, as parts of words.
    """
    if not query:
        return page_of(tickets, older_than=older_than, newer_than=newer_than)
    if newer_than is None and search.has_words(query) and connection.vendor == "postgresql":
        page = _among_newest(tickets, query, older_than=older_than)
        if page is not None:
            return page
    page = page_of(search.matching(tickets, query), older_than=older_than, newer_than=newer_than)
    if page.tickets or not search.has_codes(query):
        return page
    found = search.matching(tickets, query, inside_words=True)
    return page_of(found, older_than=older_than, newer_than=newer_than)


def _among_newest(
    tickets: QuerySet[Ticket], query: str, *, older_than: Cursor | None
) -> Page | None:
    """The page of matches among the newest ``SEARCH_WINDOW`` tickets past the cursor, read in
    index order and stopping at a page and one: None when they hold less than that."""
    size = PAGE_SIZE
    newest = _older(tickets, older_than).order_by("-updated_at", "-pk")
    newest = newest.values("pk", "updated_at", "search_text")[:SEARCH_WINDOW]
    inner, params = newest.query.sql_with_params()
    condition, condition_params = search.row_condition(query, "newest.search_text")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT newest.pk FROM ({inner}) AS newest WHERE {condition} "
            "ORDER BY newest.updated_at DESC, newest.pk DESC LIMIT %s",
            [*params, *condition_params, size + 1],
        )
        found = [row[0] for row in cursor.fetchall()]
    if len(found) <= size:
        return None
    rows = list(
        tickets.filter(pk__in=found[:size])
        .select_related("customer", "assignee", "group")
        .defer("search_text")  # up to 64 KB a row, never shown
        .order_by("-updated_at", "-pk")
    )
    return Page(
        tickets=rows,
        newer=Cursor.of(rows[0]).encode() if older_than is not None else "",
        older=Cursor.of(rows[-1]).encode(),
    )


def _older(tickets: QuerySet[Ticket], older_than: Cursor | None) -> QuerySet[Ticket]:
    if older_than is None:
        return tickets
    at = older_than.updated_at
    return tickets.filter(updated_at__lte=at).filter(Q(updated_at__lt=at) | Q(pk__lt=older_than.pk))


def page_of(
    tickets: QuerySet[Ticket],
    *,
    older_than: Cursor | None = None,
    newer_than: Cursor | None = None,
    size: int | None = None,
) -> Page:
    """One page of ``tickets``, newest activity first: the first page, the one after
    ``older_than`` or the one before ``newer_than``; each a range of the keyset index, reading
    one row more than it shows to know whether there is more."""
    size = size or PAGE_SIZE
    # search_text: up to 64 KB a row, never shown.
    tickets = tickets.select_related("customer", "assignee", "group").defer("search_text")
    if newer_than is not None:
        at = newer_than.updated_at
        rows = list(
            tickets.filter(updated_at__gte=at)
            .filter(Q(updated_at__gt=at) | Q(pk__gt=newer_than.pk))
            .order_by("updated_at", "pk")[: size + 1]
        )
        more = len(rows) > size
        rows = list(reversed(rows[:size]))
        if not rows:
            return page_of(tickets, size=size)
        return Page(
            tickets=rows,
            newer=Cursor.of(rows[0]).encode() if more else "",
            older=Cursor.of(rows[-1]).encode(),
        )
    tickets = _older(tickets, older_than)
    rows = list(tickets.order_by("-updated_at", "-pk")[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return Page(
        tickets=rows,
        newer=Cursor.of(rows[0]).encode() if rows and older_than is not None else "",
        older=Cursor.of(rows[-1]).encode() if more else "",
    )
