"""The one small interface every inbound channel implements.

An adapter turns a channel's raw payload into normalised `InboundMessage`s (``parse``) and
delivers agents' replies (``send``). The pipeline never knows which channel it handles.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from channels_in.models import ChannelAccount
    from tickets.models import Message


class AdapterError(Exception):
    """A channel could not parse or deliver something.

    ``permanent=True`` means retrying cannot help (bad credentials, a payload that is not mail);
    the pipeline then records the error and stops retrying.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


@dataclass
class InboundAttachment:
    filename: str
    content_type: str
    content: bytes
    content_id: str = ""
    inline: bool = False


@dataclass
class InboundMessage:
    """A customer's message, normalised so the pipeline can treat every channel alike."""

    channel: str  # channel kind, e.g. "email"
    external_id: str  # the provider's id for this message (Message-ID for mail)
    sender_kind: str  # identity kind: "email", "phone", "wechat", "chat"
    sender_value: str  # the identity itself, e.g. "li.wei@example.cn"
    sender_name: str = ""
    subject: str = ""
    text: str = ""  # what an agent is shown: quoted history and signature trimmed
    full_text: str = ""  # the whole text as received
    html: str = ""  # sanitised HTML, safe to render
    attachments: list[InboundAttachment] = field(default_factory=list)
    # Threading hints: external ids this message replies to (In-Reply-To, then References,
    # nearest first) and a channel conversation id where the channel has one.
    reply_to_ids: list[str] = field(default_factory=list)
    conversation_id: str = ""
    sent_at: datetime | None = None
    # Auto-replies, bounces and list traffic are stored but never open a ticket.
    automated: bool = False
    automated_reason: str = ""
    recipients: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class OutboundReply:
    """An agent's reply on its way to the customer."""

    message: Message
    to: str
    subject: str
    text: str
    html: str = ""


class Adapter(abc.ABC):
    """One channel. Subclasses live one per module and register in ``channels_in.registry``."""

    kind: str = ""

    def __init__(self, account: ChannelAccount) -> None:
        self.account = account

    @abc.abstractmethod
    def delivery_id(self, payload: bytes) -> str:
        """The provider's id for a payload, cheaply, before it is parsed (for deduplication).

        Raise ``AdapterError(permanent=True)`` when the payload is plainly not of this channel.
        """

    def summarise(self, payload: bytes) -> tuple[str, str]:
        """Who sent a payload and what about (sender, subject), read cheaply when it is stored,
        so an admin can tell stored payloads apart before they are parsed. Best effort."""
        return "", ""

    @abc.abstractmethod
    def parse(self, payload: bytes) -> list[InboundMessage]:
        """Turn one raw payload into the messages it carries; raise AdapterError if it cannot."""

    @abc.abstractmethod
    def send(self, reply: OutboundReply) -> str:
        """Deliver a reply; return the provider's id for it. Raise AdapterError on failure."""
