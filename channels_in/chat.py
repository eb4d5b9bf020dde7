"""The live web chat channel: a visitor writes in the widget on the merchant's store, agents
answer from the workspace.

Visitor messages do not come through the generic webhook: the widget's socket
(``channels_in.chat_consumer``) and upload endpoint (``channels_in.chat_endpoints``) hand each
one to the pipeline as a small JSON document (``chat_payload``), stored raw first and deduplicated
on the message id the widget generated, so a message resent while the socket reconnects is
filed once. This adapter reads those documents back (``parse``) and delivers agents' replies:
to the visitor's socket group on the channel layer, or, when the visitor has left and gave an
email address, by email through the merchant's mailbox.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from channels_in.base import (
    Adapter,
    AdapterError,
    Envelope,
    Identity,
    InboundAttachment,
    InboundEvent,
    InboundMessage,
    Refused,
)
from channels_in.models import ChannelAccount, ChatVisitor
from helpdesk.errors import BadInput
from tickets.models import Channel, CustomerIdentity, IdentityKind, Message

if TYPE_CHECKING:
    from django.db.models import QuerySet

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 5000
SUBJECT_CHARS = 120
KINDS = ("message", "supervisor", "left_message")
REPLY_EVENT = "chat.reply"


def visitor_group(tenant_id: int, account_id: int, visitor_id: str) -> str:
    """The channel-layer group of one visitor's open widgets (every tab of theirs)."""
    return f"chat-{tenant_id}-{account_id}-{visitor_id}"


@dataclass(frozen=True)
class ChatFile:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class ChatPayload:
    """One visitor message as stored: who (the visitor and what they told the pre-chat form),
    the widget's id for it, what kind (a message, the supervisor button, a message left while
    nobody could chat), the text and an optional file."""

    visitor: str
    id: str
    kind: str
    text: str
    sent_at: datetime | None
    profile: dict[str, str]
    page: str = ""
    file: ChatFile | None = None


def chat_payload(
    *,
    visitor: ChatVisitor,
    message_id: str,
    text: str,
    kind: str = "message",
    page: str = "",
    file: ChatFile | None = None,
) -> bytes:
    """The stored document of one visitor message (read back by ``read_payload``)."""
    document: dict[str, Any] = {
        "visitor": visitor.visitor_id,
        "id": message_id,
        "kind": kind,
        "text": text,
        "sent_at": timezone.now().isoformat(),
        "profile": {
            "name": visitor.name,
            "email": visitor.email,
            "phone": visitor.phone,
            "order": visitor.order_number,
            "persona": visitor.persona,
            "language": visitor.language,
        },
    }
    if page:
        document["page"] = page[:500]
    if file is not None:
        document["file"] = {
            "filename": file.filename,
            "content_type": file.content_type,
            "content_base64": base64.b64encode(file.content).decode(),
        }
    return json.dumps(document, ensure_ascii=False).encode()


def read_payload(body: bytes) -> ChatPayload:
    """The stored document, checked; ``AdapterError(permanent=True)`` saying what is wrong."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise AdapterError("A chat message must be a JSON object", permanent=True) from None
    if not isinstance(document, dict):
        raise AdapterError("A chat message must be a JSON object", permanent=True)
    visitor, message_id = document.get("visitor"), document.get("id")
    if not isinstance(visitor, str) or not visitor or not isinstance(message_id, str):
        raise AdapterError("A chat message needs its visitor and id", permanent=True)
    kind = document.get("kind", "message")
    if kind not in KINDS:
        raise AdapterError(f"Unknown chat message kind {kind!r}", permanent=True)
    text = document.get("text") or ""
    if not isinstance(text, str):
        raise AdapterError("A chat message's text must be a string", permanent=True)
    profile = document.get("profile") or {}
    if not isinstance(profile, dict):
        profile = {}
    sent_at = None
    if isinstance(document.get("sent_at"), str):
        try:
            sent_at = datetime.fromisoformat(document["sent_at"])
        except ValueError:
            sent_at = None
    file = None
    raw_file = document.get("file")
    if isinstance(raw_file, dict):
        try:
            content = base64.b64decode(raw_file.get("content_base64") or "", validate=True)
        except (binascii.Error, ValueError):
            raise AdapterError("The chat file is not valid base64", permanent=True) from None
        file = ChatFile(
            filename=str(raw_file.get("filename") or "file")[:255],
            content_type=str(raw_file.get("content_type") or "application/octet-stream")[:127],
            content=content,
        )
    if not text.strip() and file is None:
        raise AdapterError("A chat message needs text or a file", permanent=True)
    return ChatPayload(
        visitor=visitor,
        id=message_id,
        kind=kind,
        text=text[:MAX_TEXT_CHARS],
        sent_at=sent_at,
        profile={key: str(value)[:254] for key, value in profile.items() if value},
        page=str(document.get("page") or ""),
        file=file,
    )


class ChatAdapter(Adapter):
    """Visitor messages from the widget in; agents' replies out to the visitor's socket."""

    kind = "chat"
    carries_files = False

    def __init__(self, account: ChannelAccount) -> None:
        super().__init__(account)
        self._read: tuple[bytes, ChatPayload] | None = None

    def read(self, envelope: Envelope) -> ChatPayload:
        """The stored message, read once per envelope: ``delivery_id`` and ``summarise`` both
        need it when it is stored, and a file comes base64-encoded in it."""
        if self._read is not None and self._read[0] is envelope.body:
            return self._read[1]
        payload = read_payload(envelope.body)
        self._read = (envelope.body, payload)
        return payload

    # --- the request: chat has no webhook ---

    def verify(self, request: HttpRequest) -> None:
        raise Refused(
            404,
            "not_a_webhook",
            "Live chat messages arrive over the widget's WebSocket, not this endpoint",
        )

    # --- the stored delivery ---

    def delivery_id(self, envelope: Envelope) -> str:
        payload = self.read(envelope)
        return self.message_id(payload.visitor, payload.id)

    def message_id(self, visitor: str, client_id: str) -> str:
        """The id a visitor message is filed under: the widget's own id, within the visitor
        and this channel, so a resend is recognised and no other widget can shadow it."""
        return f"{self.account.pk}:{visitor}:{client_id}"

    def summarise(self, envelope: Envelope) -> tuple[str, str]:
        try:
            payload = self.read(envelope)
        except AdapterError:
            return "", ""
        return payload.profile.get("name") or payload.visitor, subject_of(payload)

    def parse(self, envelope: Envelope) -> list[InboundMessage | InboundEvent]:
        payload = self.read(envelope)
        profile = payload.profile
        others = [
            Identity(IdentityKind.EMAIL, profile.get("email", "")),
            Identity(IdentityKind.PHONE, profile.get("phone", "")),
        ]
        attachments = []
        if payload.file is not None:
            attachments.append(self.attachment(payload.file))
        return [
            InboundMessage(
                channel=self.kind,
                external_id=self.message_id(payload.visitor, payload.id),
                sender_kind=IdentityKind.CHAT,
                sender_value=payload.visitor,
                sender_name=profile.get("name", ""),
                other_identities=[identity for identity in others if identity.value],
                conversation_id=payload.visitor,
                subject=subject_of(payload),
                text=payload.text,
                full_text=payload.text,
                order_number=profile.get("order", ""),
                sent_at=payload.sent_at,
                attachments=attachments,
                metadata={"chat_kind": payload.kind, "page": payload.page},
                customer_locale=profile.get("language", ""),
                persona=profile.get("persona", ""),
            )
        ]

    def attachment(self, file: ChatFile) -> InboundAttachment:
        limit = min(
            self.account.tenant.max_attachment_bytes, settings.HELPDESK_CHAT_UPLOAD_MAX_BYTES
        )
        if len(file.content) > limit:
            return InboundAttachment(
                filename=file.filename,
                content_type=file.content_type,
                content=b"",
                missing_reason=_("The file is larger than this helpdesk keeps."),
                size=len(file.content),
            )
        return InboundAttachment(file.filename, file.content_type, file.content)

    # --- replies ---

    @classmethod
    def reply_accounts(cls, accounts: QuerySet[ChannelAccount]) -> QuerySet[ChannelAccount]:
        return accounts.filter(webchat__isnull=False)

    def visitor_of(self, message: Message) -> ChatVisitor | None:
        """The widget a reply goes to: the visitor who wrote the ticket's last chat message
        (its conversation, set by ``outbound.prepare_reply``), else the customer's most recent
        visitor. Another person who typed the customer's email into a pre-chat form gets no
        reply meant for the ticket's own visitor."""
        if message.conversation_id:
            own = ChatVisitor.objects.filter(
                account=self.account, visitor_id=message.conversation_id
            ).first()
            if own is not None:
                return own
        visitor_ids = CustomerIdentity.objects.filter(
            customer_id=message.ticket.customer_id, kind=IdentityKind.CHAT, account=self.account
        ).values("value")
        return (
            ChatVisitor.objects.filter(account=self.account, visitor_id__in=visitor_ids)
            .order_by("-last_seen_at", "-pk")
            .first()
        )

    def prepare_reply(self, message: Message) -> None:
        """Address a reply to the visitor's widget, or by email when the visitor has left the
        chat and gave an address (the merchant needs an email channel for that)."""
        visitor = self.visitor_of(message)
        if visitor is None:
            raise BadInput(
                _("The customer has no chat visitor on %(channel)s, so a reply cannot reach them")
                % {"channel": self.account.name}
            )
        if visitor_is_gone(visitor) and visitor.email:
            email_account = self.email_account()
            if email_account is not None:
                self.prepare_by_email(message, visitor=visitor, account=email_account)
                return
        message.external_id = uuid.uuid4().hex
        message.subject = ""
        message.metadata = {
            **message.metadata,
            "to": visitor.name or _("chat visitor"),
            "visitor": visitor.visitor_id,
        }

    def email_account(self) -> ChannelAccount | None:
        from channels_in import registry

        accounts = registry.adapter_class(Channel.EMAIL).reply_accounts(
            ChannelAccount.objects.filter(kind=Channel.EMAIL, is_active=True)
        )
        return accounts.order_by("pk").first()

    def prepare_by_email(
        self, message: Message, *, visitor: ChatVisitor, account: ChannelAccount
    ) -> None:
        from channels_in import registry

        message.channel = Channel.EMAIL
        message.channel_account = account
        message.conversation_id = ""
        message.metadata = {**message.metadata, "to": visitor.email, "chat_visitor_gone": True}
        registry.adapter_for(account).prepare_reply(message)

    def send(self, message: Message) -> str:
        visitor_id = message.metadata.get("visitor")
        if not visitor_id:
            raise AdapterError(_("The reply names no chat visitor"), permanent=True)
        layer = get_channel_layer()
        if layer is None:
            raise AdapterError(_("Live chat needs a channel layer"), permanent=True)
        try:
            async_to_sync(layer.group_send)(
                visitor_group(message.tenant_id, self.account.pk, visitor_id),
                {
                    "type": REPLY_EVENT,
                    "message": reply_document(message),
                    "ticket": message.ticket.number,
                },
            )
        except Exception as error:  # Redis down: the reply waits and is tried again
            raise AdapterError(
                _("The chat server could not be reached: %(error)s") % {"error": error}
            ) from error
        return message.external_id


def visitor_is_gone(visitor: ChatVisitor) -> bool:
    """Whether the visitor's widget went quiet: no ping within
    ``HELPDESK_CHAT_VISITOR_GONE_SECONDS``, or closed after its last ping."""
    if visitor.last_seen_at is None:
        return True
    if visitor.left_at is not None and visitor.left_at >= visitor.last_seen_at:
        return True
    quiet = timedelta(seconds=settings.HELPDESK_CHAT_VISITOR_GONE_SECONDS)
    return visitor.last_seen_at < timezone.now() - quiet


def author_of(message: Message, names: dict[int, str] | None = None) -> dict[str, str]:
    """The agent as the visitor sees them: their name in the merchant and initials for the
    avatar; the helpdesk's own notices are the merchant's."""
    from tickets.people import display_names, name_of

    author = message.author_user
    if author is None:
        name = message.ticket.tenant.name
    else:
        name = name_of(author, names if names is not None else display_names([author.pk]))
    initials = "".join(part[:1] for part in name.split()[:2]).upper() or name[:1]
    return {"name": name, "initials": initials}


def reply_document(message: Message, names: dict[int, str] | None = None) -> dict[str, Any]:
    """An agent's message as the widget shows it."""
    return {
        "id": message.external_id or f"m{message.pk}",
        "from": "agent",
        "text": message.body_text,
        "at": (message.created_at or timezone.now()).isoformat(),
        "author": author_of(message, names),
    }


def subject_of(payload: ChatPayload) -> str:
    """A chat message's subject: its first line (or file name), marked when left offline."""
    first_line = next((line.strip() for line in payload.text.splitlines() if line.strip()), "")
    subject = first_line[:SUBJECT_CHARS].rstrip() or (payload.file.filename if payload.file else "")
    if payload.kind == "left_message":
        return _("Message left in the chat: %(subject)s") % {"subject": subject}
    return subject
