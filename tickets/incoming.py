"""What a customer sent, normalised: the shape every channel hands to the ticket services.

Channels (``channels_in``) build these from their providers' payloads; ``tickets.services``
files them (``record_customer_message``, ``record_customer_event``) without knowing the channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class InboundAttachment:
    filename: str
    content_type: str
    content: bytes
    content_id: str = ""
    inline: bool = False
    # Set when the file could not be had (a URL that failed to download, a file over the
    # merchant's limit): the message is kept and the attachment is listed as missing, with why.
    missing_reason: str = ""
    size: int | None = None  # the announced size when the content is missing


@dataclass(frozen=True)
class Identity:
    """One way to reach a customer: an ``IdentityKind`` and its value. Kinds that only mean
    something on one channel account (a WeChat openid, the merchant's own customer id) are
    matched within that account; email and phone are matched across the merchant."""

    kind: str
    value: str


@dataclass
class InboundMessage:
    """A customer's message, normalised so the pipeline can treat every channel alike."""

    channel: str  # channel kind, e.g. "email"
    external_id: str  # the provider's id for this message (Message-ID for mail)
    sender_kind: str  # identity kind: "email", "phone", "wechat", "chat", "external"
    sender_value: str  # the identity itself, e.g. "li.wei@example.cn"
    sender_name: str = ""
    # Further identities the channel knows for the sender (the JSON API's email and phone):
    # matched after the sender's own, and learned for the customer when nobody else has them.
    other_identities: list[Identity] = field(default_factory=list)
    subject: str = ""
    text: str = ""  # what an agent is shown: quoted history and signature trimmed
    full_text: str = ""  # the whole text as received
    html: str = ""  # sanitised HTML, safe to render
    attachments: list[InboundAttachment] = field(default_factory=list)
    # Threading hints: external ids this message replies to (In-Reply-To, then References,
    # nearest first) and a channel conversation id where the channel has one.
    reply_to_ids: list[str] = field(default_factory=list)
    conversation_id: str = ""
    # An order number the channel states outright (the JSON API's ``order_number``); otherwise
    # the text is searched for one of the customer's orders.
    order_number: str = ""
    sent_at: datetime | None = None
    # Auto-replies, bounces and list traffic are stored but never open a ticket.
    automated: bool = False
    automated_reason: str = ""
    recipients: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    # Routing hints a channel may state (the JSON API does): the product category, the ticket's
    # priority, and what the merchant's system knows of the customer: their language, whether
    # they are a VIP (None: not said), the persona group they chose (its slug).
    category: str = ""
    priority: str = ""
    customer_locale: str = ""
    customer_vip: bool | None = None
    persona: str = ""

    @property
    def identities(self) -> list[Identity]:
        """The sender's identities, strongest first."""
        own = [Identity(self.sender_kind, self.sender_value)] if self.sender_value else []
        return own + [i for i in self.other_identities if i.value]


@dataclass
class InboundEvent:
    """Something a customer did that is not a message: subscribed, unsubscribed, started or
    ended a call, joined a chat. It lands on the customer's timeline, never opens a ticket."""

    channel: str
    external_id: str  # the provider's id for the event, for deduplication
    kind: str  # a ``tickets.models.CustomerEvent.Kind`` value
    sender_kind: str
    sender_value: str
    sender_name: str = ""
    other_identities: list[Identity] = field(default_factory=list)
    conversation_id: str = ""
    occurred_at: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)  # shown to agents as details

    @property
    def identities(self) -> list[Identity]:
        own = [Identity(self.sender_kind, self.sender_value)] if self.sender_value else []
        return own + [i for i in self.other_identities if i.value]
