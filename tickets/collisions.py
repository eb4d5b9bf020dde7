"""Collision detection for replies: an agent is warned before sending a reply written without
having seen what a colleague said on the ticket since the page was opened.

The reply form carries ``seen``, the id of the newest message on the page when it was rendered.
A reply or internal note by another person after it means the draft may be stale: the reply is
held back until the agent has read it ("send anyway" posts again with the newer id). A customer's
new message after ``seen`` is shown with the warning but does not hold a reply back on its own:
answering while the customer writes again is normal in chat, and the reply is still right more
often than not. Automatic messages (no author, e.g. an out-of-hours notice) never hold it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils.translation import gettext as _

from helpdesk.errors import BadInput
from tickets.models import Message, Ticket

# The warning shows the newest few; a busy ticket does not make the check any slower.
SHOWN_AT_MOST = 5


@dataclass
class StaleReply:
    """Why a reply was held back, with what the agent typed. The page shown with it carries the
    newest message id as the new ``seen``, so posting again sends the reply ("send anyway")."""

    replies: list[Message]  # colleagues' replies and notes after ``seen``, oldest first
    customer_messages: list[Message] = field(default_factory=list)
    text: str = ""
    status: str = ""


def parse_seen(raw: str | None) -> int | None:
    """The ``seen`` message id of a reply form, ``None`` when the form carries none (a client
    that predates the check: nothing is held back), or ``BadInput`` when it is not an id."""
    if raw is None:
        return None
    raw = raw.strip()
    if not raw:
        return 0  # the page showed no message yet
    if not raw.isdigit():
        raise BadInput(_("The reply form is damaged; reload the page."), field="seen")
    return int(raw)


def replies_since(ticket: Ticket, seen_id: int, user: object) -> list[Message]:
    """Replies and internal notes written on ``ticket`` by people other than ``user`` after
    message ``seen_id``: the ones that make a reply written before them stale. Newest
    ``SHOWN_AT_MOST``, oldest first."""
    newest = list(
        ticket.messages.filter(
            pk__gt=seen_id,
            direction__in=[Message.Direction.OUTBOUND, Message.Direction.NOTE],
            author_user__isnull=False,
        )
        .exclude(author_user=user)
        .select_related("author_user")
        .order_by("-pk")[:SHOWN_AT_MOST]
    )
    newest.reverse()
    return newest


def customer_messages_since(ticket: Ticket, seen_id: int) -> list[Message]:
    """The customer's messages on ``ticket`` after ``seen_id``: newest ``SHOWN_AT_MOST``,
    oldest first."""
    newest = list(
        ticket.messages.filter(pk__gt=seen_id, direction=Message.Direction.INBOUND)
        .select_related("author_customer")
        .order_by("-pk")[:SHOWN_AT_MOST]
    )
    newest.reverse()
    return newest


def stale_reply(
    *, ticket: Ticket, seen_id: int | None, user: object, text: str = "", status: str = ""
) -> StaleReply | None:
    """What holds back a reply written when message ``seen_id`` was the newest, or ``None``
    when it may go: nobody else replied or wrote a note since."""
    if seen_id is None:
        return None
    replies = replies_since(ticket, seen_id, user)
    if not replies:
        return None
    return StaleReply(
        replies=replies,
        customer_messages=customer_messages_since(ticket, seen_id),
        text=text,
        status=status,
    )
