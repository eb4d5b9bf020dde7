"""Ticket search: the words a ticket is found by (``Ticket.search_text``), kept fresh as messages
arrive, and the query that reads them.

The document is built at write time. Chinese has no word breaks and Debian's PostgreSQL has no
Chinese parser, so Chinese runs are segmented with jieba into space-separated words, the same way
for the document and for the query; the 'simple' text-search configuration then only splits on
spaces. Codes with digits (order, tracking and phone numbers) are kept whole and matched as
substrings through a trigram index, so part of a tracking number finds its ticket and a short
number does not match every ticket that mentions it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import BooleanField, F, Func, Q, QuerySet, TextField, Value
from django.db.models.functions import Concat, Left

if TYPE_CHECKING:
    from tickets.models import Message, Order, Ticket

# A message adds at most this much text to its ticket's document, the whole document at most
# DOCUMENT_CHARS: a pasted log file must not make every search slower.
MESSAGE_CHARS = 8_000
DOCUMENT_CHARS = 64_000
# A query term with a digit and at least this many characters is matched as a substring.
SUBSTRING_MIN = 3
# A bare number this long is also looked for inside documents (a phone, order or tracking
# number); shorter ones only name a ticket.
BARE_NUMBER_SUBSTRING_MIN = 5
# A phone number in a query is looked for by its last digits, whatever country code it has.
PHONE_QUERY_DIGITS = 11
# Ticket numbers are PostgreSQL integers.
LARGEST_NUMBER = 2**31 - 1

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# An ASCII word, or a code such as B0000001-12, SF1234567890, li@example.com.
_ASCII = r"[0-9a-z]+(?:[-_/.@+][0-9a-z]+)*"
_TOKEN = re.compile(rf"(?P<ascii>{_ASCII})|(?P<cjk>[{_CJK}]+)|(?P<other>[^\W_]+)")
# A phone number written with spaces, dashes, dots or brackets: +86 138 0013 8000.
_PHONE = re.compile(r"(?<![0-9a-z])\+?\(?\d[\d\s\-().]{5,}\d(?![0-9a-z])")
_WORD_PARTS = re.compile(rf"[0-9a-z]+|[{_CJK}]+|[^\W_]+")


@cache
def _jieba() -> Any:
    """jieba, loaded once per process on first use (its dictionary takes about a second)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def _phone_digits(text: str, *, last: int | None = None) -> list[str]:
    """The digits of each phone-like number written with separators (only the ``last`` ones:
    a query's +86 138 0013 8000 then finds 13800138000 in a document)."""
    found = []
    for match in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if len(digits) >= 7 and digits != match.group():
            found.append(digits[-last:] if last else digits)
    return found


def words(text: str, *, for_query: bool = False) -> list[str]:
    """The words of ``text`` as search reads them: lower-case, Chinese segmented (every word
    and its parts for a document, the likeliest words for a query), codes kept whole and also
    without their punctuation, phone numbers also as bare digits."""
    text = text.lower()
    out: list[str] = []
    for match in _TOKEN.finditer(text):
        if token := match.group("ascii"):
            bare = re.sub(r"[^0-9a-z]", "", token)
            if bare == token or "@" in token or not any(c.isdigit() for c in token):
                out.append(token)
            elif for_query:
                out.append(bare)  # the document holds both forms
            else:
                out.extend([token, bare])
        elif token := match.group("cjk"):
            jieba = _jieba()
            pieces = jieba.cut(token) if for_query else jieba.cut_for_search(token)
            out.extend(piece for piece in pieces if piece.strip())
        else:
            out.append(match.group("other"))
    for digits in _phone_digits(text):
        out.append(digits)
        if not for_query and len(digits) > PHONE_QUERY_DIGITS:
            out.append(digits[-PHONE_QUERY_DIGITS:])  # +86 138... also as 138...
    return out


def document_words(*parts: str, limit: int = MESSAGE_CHARS) -> str:
    """``parts`` as space-separated search words, each part cut to ``limit`` characters."""
    return " ".join(word for part in parts if part for word in words(part[:limit]))


# --- building and refreshing a ticket's document ---------------------------------------------


def refresh_ticket(ticket: Ticket) -> None:
    """Rebuild ``ticket``'s document from scratch: after its subject or customer changed, or a
    merge moved messages onto it."""
    rebuild_documents([ticket.pk])


def new_ticket_document(ticket: Ticket, words_so_far: str = "") -> str:
    """A new ticket's document: its subject, customer name, order, then ``words_so_far`` (the
    first message and its sender, already segmented) or else the customer's identities."""
    from tickets.models import CustomerIdentity

    parts = [ticket.subject, ticket.customer.name if ticket.customer_id else ""]
    if not words_so_far and ticket.customer_id:
        # Opened by an agent, not by a message: the customer's addresses, one query.
        identities = CustomerIdentity.objects.filter(customer_id=ticket.customer_id)
        parts.extend(identities.values_list("value", flat=True))
    if ticket.order is not None:
        parts.extend([ticket.order.number, ticket.order.tracking_number])
    return f"{document_words(*parts)} {words_so_far}".strip()[:DOCUMENT_CHARS]


def appended(text: str) -> Any:
    """An expression for ``search_text`` with ``text``'s words added, for the UPDATE that
    files a message anyway: no reread of the other messages, no extra statement."""
    added = document_words(text)
    if not added:
        return F("search_text")
    return Left(Concat("search_text", Value(" " + added)), DOCUMENT_CHARS)


def note_message(ticket: Ticket, message: Message) -> None:
    """Append ``message``'s words to ``ticket``'s document (one UPDATE): for code that files a
    message without updating the ticket otherwise."""
    from tickets.models import Ticket

    Ticket.objects.filter(pk=ticket.pk).update(search_text=appended(message.body_text))


def note_order(ticket: Ticket, order: Order) -> None:
    """Make ``ticket`` findable by the order just linked: its number and tracking number."""
    from tickets.models import Ticket

    Ticket.objects.filter(pk=ticket.pk).update(
        search_text=appended(f"{order.number} {order.tracking_number}")
    )


def rebuild_documents(ticket_ids: list[int]) -> int:
    """Rebuild the documents of these tickets of the active merchant from their rows: four
    queries and one UPDATE per call, whatever the number of tickets (``rebuild_search``)."""
    from collections import defaultdict

    from tickets.models import CustomerIdentity, Message, Ticket

    tickets = list(
        Ticket.objects.filter(pk__in=ticket_ids).select_related("customer", "order").order_by("pk")
    )
    identities = defaultdict(list)
    rows = CustomerIdentity.objects.filter(customer_id__in={t.customer_id for t in tickets})
    for customer_id, value in rows.values_list("customer_id", "value"):
        identities[customer_id].append(value)
    bodies = defaultdict(list)
    messages = Message.objects.filter(ticket_id__in=ticket_ids).order_by("created_at", "pk")
    for ticket_id, body in messages.values_list("ticket_id", "body_text").iterator(2000):
        bodies[ticket_id].append(body)
    for ticket in tickets:
        parts = [ticket.subject, ticket.customer.name, *identities[ticket.customer_id]]
        if ticket.order is not None:
            parts.extend([ticket.order.number, ticket.order.tracking_number])
        document = document_words(*parts)
        for body in bodies[ticket.pk]:
            if len(document) >= DOCUMENT_CHARS:
                break
            document = f"{document} {document_words(body)}".strip()
        ticket.search_text = document[:DOCUMENT_CHARS]
    Ticket.objects.bulk_update(tickets, ["search_text"])
    return len(tickets)


# --- the query -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedQuery:
    """A search box's text, split into what the indexes answer."""

    number: int | None  # "#123" or a bare number: that ticket
    terms: tuple[str, ...]  # words, ANDed
    codes: tuple[str, ...]  # order, tracking and phone numbers, addresses: whole or in part

    @property
    def empty(self) -> bool:
        return self.number is None and not self.terms and not self.codes


def parse_query(text: str) -> ParsedQuery:
    """What ``text`` asks for: a ticket number alone, or words and codes that must all occur."""
    text = text.strip()
    bare = text.lstrip("#").strip()
    if bare.isdigit() and bare.isascii():
        codes = (bare,) if len(bare) >= BARE_NUMBER_SUBSTRING_MIN else ()
        number = int(bare) if int(bare) <= LARGEST_NUMBER else None
        return ParsedQuery(number=number, terms=(), codes=codes)
    phones = _phone_digits(text.lower(), last=PHONE_QUERY_DIGITS)
    if phones:
        # A number written "+86 138 0013 8000" is looked for as its digits only.
        text = _PHONE.sub(" ", text)
    terms: list[str] = []
    codes: list[str] = list(phones)
    for word in words(text, for_query=True):
        codelike = any(c.isdigit() for c in word) or "@" in word
        if codelike and len(word) >= SUBSTRING_MIN:
            codes.append(word)
            continue
        terms.extend(_WORD_PARTS.findall(word))
    return ParsedQuery(
        number=None, terms=tuple(dict.fromkeys(terms)), codes=tuple(dict.fromkeys(codes))
    )


def _tsquery(terms: tuple[str, ...], codes: tuple[str, ...]) -> str:
    """Words and codes ANDed, each also as the start of a longer word (refund finds refunded,
    an order number's first digits find it); a short bare number only as itself."""
    parts = [f"'{t}'" if t.isdigit() and len(t) < SUBSTRING_MIN else f"'{t}':*" for t in terms]
    parts += [f"'{code}':*" for code in codes]
    return " & ".join(part for part in parts if "\\" not in part)


def _matches_words(tsquery: str) -> Func:
    """``to_tsvector('simple', search_text) @@ to_tsquery('simple', tsquery)``: the vector
    spelled exactly as ticket_search_words_idx (migration 0010) so the index answers."""
    vector = Func(
        F("search_text"),
        template="to_tsvector('simple'::regconfig, %(expressions)s)",
        output_field=TextField(),
    )
    wanted = Func(
        Value(tsquery),
        template="to_tsquery('simple'::regconfig, %(expressions)s)",
        output_field=TextField(),
    )
    return Func(
        vector, wanted, template="(%(expressions)s)", arg_joiner=" @@ ", output_field=BooleanField()
    )


def matching(
    tickets: QuerySet[Ticket], text: str, *, inside_words: bool = False
) -> QuerySet[Ticket]:
    """The tickets of ``tickets`` that ``text`` finds (see ``parse_query``). Codes match the
    start of a word through the full-text index; ``inside_words`` matches them anywhere in the
    text instead (the trigram index: the last four digits of a tracking number), slower, for
    when the first way found nothing."""
    query = parse_query(text)
    if query.empty:
        return tickets.none()
    found = Q()
    codes = () if inside_words else query.codes
    if connection.vendor == "postgresql":
        if query.terms or codes:
            found &= Q(_matches_words(_tsquery(query.terms, codes)))
    else:  # SQLite (make run): substrings of the segmented text
        for term in query.terms + codes:
            found &= Q(search_text__icontains=term)
    if inside_words:
        for code in query.codes:
            found &= Q(search_text__contains=code)
    if query.number is not None:
        by_number = Q(number=query.number)
        found = by_number | found if query.codes else by_number
    return tickets.filter(found)


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def row_condition(text: str, column: str) -> tuple[str, list[str]]:
    """SQL that tells, row by row and without an index, what the full-text query tells:
    each word or code starts a word of ``column`` (a short bare number is a whole word).
    Cheaper per row than to_tsvector, for scanning the newest tickets (tickets.inbox)."""
    query = parse_query(text)
    conditions, params = [], []
    for term in query.terms + query.codes:
        if term.isdigit() and len(term) < SUBSTRING_MIN:
            conditions.append(f"(' ' || {column} || ' ') LIKE %s")
            params.append(f"% {_like(term)} %")
        else:
            conditions.append(f"(' ' || {column}) LIKE %s")
            params.append(f"% {_like(term)}%")
    return " AND ".join(conditions) or "FALSE", params


def has_words(text: str) -> bool:
    return bool(parse_query(text).terms)


def has_codes(text: str) -> bool:
    return bool(parse_query(text).codes)
