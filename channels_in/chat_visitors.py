"""What a chat visitor does, as services: be recognised by their token, fill the pre-chat form,
send a message (stored raw first, once per widget message id, within the rate limit), read the
conversation so far, ask for a supervisor.

Synchronous, and called with the widget's merchant active (``tenancy.activate``); the socket
consumer runs them in a thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _

from channels_in import pipeline
from channels_in.base import Envelope
from channels_in.chat import (
    KINDS,
    MAX_TEXT_CHARS,
    ChatAdapter,
    ChatFile,
    chat_payload,
    reply_document,
)
from channels_in.chat_widget import (
    Widget,
    new_visitor_id,
    page_language,
    someone_can_answer,
    take_message_quota,
    token_for,
    visitor_of_token,
)
from channels_in.models import ChatVisitor, RawInbound, WebChat
from helpdesk.errors import BadInput
from tickets.models import Customer, Group, IdentityKind, Message, Ticket
from tickets.people import display_names
from tickets.services import normalise_identity

HISTORY_MESSAGES = 100
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class RateLimited(Exception):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"rate limited for {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class Sent:
    status: str  # "accepted" or "duplicate"
    raw_id: int
    ticket_number: int | None


def visitor_of(widget: Widget, token: str) -> tuple[str, str]:
    """The visitor id a token names and the token, or a new visitor id with a new token when
    the token is missing or not this channel's. No database work."""
    visitor_id = visitor_of_token(widget.webchat, token)
    if visitor_id is None:
        visitor_id = new_visitor_id()
        token = token_for(widget.webchat, visitor_id)
    return visitor_id, token


def identify(widget: Widget, *, visitor_id: str, language: str) -> tuple[ChatVisitor, bool]:
    """The visitor of ``visitor_id`` (from ``visitor_of``), seen now; created on first sight
    (then True)."""
    webchat = widget.webchat
    language = page_language(language)
    now = timezone.now()
    try:
        with transaction.atomic():
            visitor, created = ChatVisitor.objects.get_or_create(
                account=webchat.account,
                visitor_id=visitor_id,
                defaults={"language": language, "last_seen_at": now},
            )
    except IntegrityError:  # the visitor's other tab created it a moment earlier
        visitor = ChatVisitor.objects.get(account=webchat.account, visitor_id=visitor_id)
        created = False
    if not created:
        ChatVisitor.objects.filter(pk=visitor.pk).update(last_seen_at=now, language=language)
        visitor.last_seen_at, visitor.language = now, language
    return visitor, created


def greeting(widget: Widget, visitor: ChatVisitor, *, new: bool) -> dict[str, Any]:
    """What a visitor's widget is told when it connects: their profile, the conversation so
    far, their latest ticket and whether anyone can answer now (a new visitor has no past)."""
    customer = None if new else customer_of(visitor)
    return {
        "visitor": visitor.visitor_id,
        "profile": profile_of(visitor),
        "history": history(visitor, customer=customer) if customer else [],
        "ticket": current_ticket_number(visitor, customer=customer) if customer else None,
        "available": someone_can_answer(widget.webchat),
        "agent_read_at": visitor.agent_read_at.isoformat() if visitor.agent_read_at else None,
    }


def persona_choices(webchat: WebChat) -> list[dict[str, str]]:
    return [
        {"slug": group.persona, "name": group.name, "description": group.persona_description}
        for group in Group.objects.filter(pk__in=webchat.persona_group_ids)
        .exclude(persona="")
        .order_by("name")
    ]


def save_profile(widget: Widget, visitor: ChatVisitor, form: dict[str, Any]) -> ChatVisitor:
    """Keep what the visitor gave in the pre-chat (or leave-a-message) form; ``BadInput`` with
    the field at fault for an address that is not one, a required field left empty or a
    service style the channel does not offer."""
    webchat = widget.webchat
    # What the form did not ask (the leave-a-message form has no order number, say) is kept.
    known = profile_of(visitor)
    values = {
        key: str(form[key] or "").strip() if key in form else known[key]
        for key in ("name", "email", "phone", "order")
    }
    persona = (
        str(form.get("persona") or "").strip().lower() if "persona" in form else known["persona"]
    )
    for key in webchat.prechat_required:
        if key in form and not values.get(key):
            raise BadInput(_("Please fill in this field."), field=key)
    if values["email"]:
        try:
            validate_email(values["email"])
        except ValidationError:
            raise BadInput(_("This is not an email address."), field="email") from None
    if values["phone"]:
        try:
            normalise_identity(
                kind=IdentityKind.PHONE, value=values["phone"], region=widget.tenant.phone_region
            )
        except BadInput:
            raise BadInput(_("This is not a phone number."), field="phone") from None
    if (
        "persona" in form
        and persona
        and persona not in {choice["slug"] for choice in persona_choices(webchat)}
    ):
        raise BadInput(_("Choose one of the service styles offered."), field="persona")
    visitor.name = values["name"][:200]
    visitor.email = values["email"][:254]
    visitor.phone = values["phone"][:32]
    visitor.order_number = values["order"][:64]
    visitor.persona = persona
    visitor.save(update_fields=["name", "email", "phone", "order_number", "persona"])
    return visitor


def profile_of(visitor: ChatVisitor) -> dict[str, str]:
    return {
        "name": visitor.name,
        "email": visitor.email,
        "phone": visitor.phone,
        "order": visitor.order_number,
        "persona": visitor.persona,
    }


def send_message(
    widget: Widget,
    visitor: ChatVisitor,
    *,
    message_id: str,
    text: str,
    kind: str = "message",
    page: str = "",
    file: ChatFile | None = None,
) -> Sent:
    """Store one visitor message raw and hand it to the pipeline; a message id already stored
    (the widget resending after a reconnect) is answered "duplicate" and filed once. Raises
    ``BadInput`` for an empty or overlong message and ``RateLimited`` past the visitor's rate
    (nothing is stored then; what was stored before stays)."""
    if not _CLIENT_ID.fullmatch(message_id or ""):
        raise BadInput(_("The message has no valid id"), field="id")
    if kind not in KINDS:
        raise BadInput(_("Unknown kind of message"), field="kind")
    text = (text or "").strip()
    if not text and file is None:
        raise BadInput(_("Write a message first."), field="text")
    if len(text) > MAX_TEXT_CHARS:
        raise BadInput(
            _("A message has at most %(limit)s characters.") % {"limit": MAX_TEXT_CHARS},
            field="text",
        )
    account = widget.webchat.account
    adapter = ChatAdapter(account)
    stored = (
        RawInbound.objects.filter(
            account=account, external_id=adapter.message_id(visitor.visitor_id, message_id)
        )
        .values_list("pk", flat=True)
        .first()
    )
    if stored is not None:  # a resend: not counted against the rate, not stored again
        return Sent("duplicate", stored, current_ticket_number(visitor))
    quota = take_message_quota(account.pk, visitor.visitor_id)
    if not quota.allowed:
        raise RateLimited(quota.retry_after_seconds)
    body = chat_payload(
        visitor=visitor, message_id=message_id, text=text, kind=kind, page=page, file=file
    )
    raw, created = pipeline.receive(
        account=account, envelope=Envelope(body=body), source=RawInbound.Source.WEBHOOK
    )
    return Sent("accepted" if created else "duplicate", raw.pk, current_ticket_number(visitor))


def customer_of(visitor: ChatVisitor) -> Customer | None:
    """The customer the visitor's messages are filed under (after a merge, the one it went
    into)."""
    customer = Customer.objects.filter(
        identities__kind=IdentityKind.CHAT,
        identities__value=visitor.visitor_id,
        identities__account_id=visitor.account_id,
    ).first()
    for _hop in range(5):
        if customer is None or customer.merged_into_id is None:
            break
        customer = Customer.objects.filter(pk=customer.merged_into_id).first()
    return customer


_LOOK_UP: Any = object()


def chat_tickets(visitor: ChatVisitor, customer: Customer | None = _LOOK_UP) -> Any:
    if customer is _LOOK_UP:
        customer = customer_of(visitor)
    if customer is None:
        return Ticket.objects.none()
    # Only the tickets this visitor wrote on: a pre-chat email is not proof of identity, so a
    # visitor matched to a customer by it never sees the customer's other chats.
    wrote_here = Message.objects.filter(
        ticket=OuterRef("pk"),
        direction=Message.Direction.INBOUND,
        channel_account_id=visitor.account_id,
        conversation_id=visitor.visitor_id,
    )
    return Ticket.objects.filter(
        Exists(wrote_here),
        customer=customer,
        channel="chat",
        merged_into__isnull=True,
        ignored_at__isnull=True,
    )


def current_ticket_number(visitor: ChatVisitor, customer: Customer | None = _LOOK_UP) -> int | None:
    """The visitor's latest chat ticket (open or not), as agents know it."""
    return (
        chat_tickets(visitor, customer)
        .exclude(number__isnull=True)
        .order_by("-created_at")
        .values_list("number", flat=True)
        .first()
    )


def history(visitor: ChatVisitor, customer: Customer | None = _LOOK_UP) -> list[dict[str, Any]]:
    """The visitor's conversation so far, oldest first: their messages and the agents' answers
    on their chat tickets (replies sent by email included), never internal notes."""
    messages = list(
        Message.objects.filter(ticket__in=chat_tickets(visitor, customer))
        .exclude(direction=Message.Direction.NOTE)
        .exclude(direction=Message.Direction.OUTBOUND, delivery_state=Message.Delivery.FAILED)
        .select_related("author_user", "ticket__tenant")
        .prefetch_related("attachments")
        .order_by("-created_at", "-pk")[:HISTORY_MESSAGES]
    )
    messages.reverse()
    names = display_names({m.author_user_id for m in messages if m.author_user_id})
    shown: list[dict[str, Any]] = []
    prefix = f"{visitor.account_id}:{visitor.visitor_id}:"
    for message in messages:
        if message.direction == Message.Direction.INBOUND:
            client_id = message.external_id.removeprefix(prefix)
            item = {
                "id": client_id,
                "from": "visitor",
                "text": message.body_text,
                "at": message.created_at.isoformat(),
                "files": [attachment.filename for attachment in message.attachments.all()],
            }
        else:
            item = reply_document(message, names)
        shown.append(item)
    return shown


def mark_seen(visitor: ChatVisitor, *, left: bool = False) -> None:
    """The visitor's widget is open (a ping), or was closed (``left``)."""
    field = "left_at" if left else "last_seen_at"
    ChatVisitor.objects.filter(pk=visitor.pk).update(**{field: timezone.now()})


def mark_read(visitor: ChatVisitor, *, by_agent: bool) -> str:
    """Record that the visitor read the agents' messages (or an agent the visitor's) up to
    now; the moment, as ISO text."""
    now = timezone.now()
    field = "agent_read_at" if by_agent else "visitor_read_at"
    ChatVisitor.objects.filter(pk=visitor.pk).update(**{field: now})
    return now.isoformat()
