"""The JSON message API channel: a merchant's own systems post their customers' messages and
events, signed with the channel's secret, and agents' replies are posted back, signed alike, to
the channel's callback URL (like Chatwoot's "API channel").

The body format lives in ``channels_in.api_payload``; signing in ``helpdesk.signing``; the
guarded HTTP client in ``helpdesk.http``; the delivery log of replies in ``helpdesk.webhooks``.
docs/channels.md is the merchant's reference.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from channels_in.api_payload import ApiAttachment, ApiPayload, PayloadRefused, read_payload
from channels_in.base import (
    Adapter,
    AdapterError,
    Answer,
    Envelope,
    Identity,
    InboundAttachment,
    InboundEvent,
    InboundMessage,
    Refused,
    accepted_secrets,
)
from channels_in.mail import html_to_text, sanitise_html
from channels_in.models import ApiChannel
from helpdesk import http, signing, webhooks
from helpdesk.errors import BadInput
from helpdesk.models import WebhookDelivery
from tickets.models import CustomerIdentity, IdentityKind, Message

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from channels_in.models import ChannelAccount

logger = logging.getLogger(__name__)

# All of a message's downloads share a budget of this many per-file time limits.
FETCH_BUDGET_FILES = 3
REPLY_EVENT = "message.created"
SUBJECT_CHARS = 120


class CallbackRefused(AdapterError):
    """The channel's callback URL is one the platform will not post to (an internal address,
    not http or https): every reply would fail alike, so the channel pauses until an admin
    fixes the URL and resumes it."""

    pauses_channel = True

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class JsonApiAdapter(Adapter):
    """Signed JSON in (``/inbound/<merchant>/api/<channel id>/``), signed JSON out."""

    kind = "api"

    def __init__(self, account: ChannelAccount) -> None:
        super().__init__(account)
        self._read: tuple[bytes, ApiPayload] | None = None

    # --- the request ---

    def verify(self, request: HttpRequest) -> None:
        try:
            signing.verify(
                secrets=accepted_secrets(self.account),
                body=request.body,
                timestamp=request.headers.get(signing.TIMESTAMP_HEADER),
                signature=request.headers.get(signing.SIGNATURE_HEADER),
            )
        except signing.SignatureRefused as refused:
            raise Refused(401, refused.code, refused.message) from None

    def envelope(self, request: HttpRequest) -> Envelope:
        # The signature is stored with the body, so the record shows what arrived and how it
        # was signed.
        return Envelope.from_request(
            request, headers=(signing.TIMESTAMP_HEADER, signing.SIGNATURE_HEADER)
        )

    def refuse_payload(self, error: AdapterError) -> Answer:
        if not isinstance(error, PayloadRefused):
            return Answer.error(400, "bad_request", error.message)
        extra = {"field": error.field} if error.field else {}
        return Answer.json(400, {"message": error.message, "code": error.code, "extra": extra})

    # --- the stored delivery ---

    def read(self, envelope: Envelope) -> ApiPayload:
        """The checked body; read once per envelope (``delivery_id`` and ``summarise`` both
        need it when it is stored, and base64 files are decoded in the reading)."""
        if self._read is not None and self._read[0] is envelope.body:
            return self._read[1]
        payload = read_payload(envelope.body, phone_region=self.account.tenant.phone_region)
        self._read = (envelope.body, payload)
        return payload

    def delivery_id(self, envelope: Envelope) -> str:
        return self.read(envelope).delivery_id

    def summarise(self, envelope: Envelope) -> tuple[str, str]:
        try:
            payload = self.read(envelope)
        except AdapterError:
            return "", ""
        # The customer's id, as the pipeline records the sender once the payload is processed.
        sender = payload.customer.id
        if payload.message is not None:
            return sender, subject_of(payload)
        assert payload.event is not None
        return sender, payload.event.type

    def parse(self, envelope: Envelope) -> list[InboundMessage | InboundEvent]:
        payload = self.read(envelope)
        customer = payload.customer
        others = [
            Identity(IdentityKind.EMAIL, customer.email),
            Identity(IdentityKind.PHONE, customer.phone),
        ]
        others = [identity for identity in others if identity.value]
        if payload.event is not None:
            event = payload.event
            return [
                InboundEvent(
                    channel=self.kind,
                    external_id=self.stored_id(event.id),
                    kind=event.type,
                    sender_kind=IdentityKind.EXTERNAL,
                    sender_value=customer.id,
                    sender_name=customer.name,
                    other_identities=others,
                    conversation_id=event.conversation_id,
                    occurred_at=event.occurred_at,
                    data=event.data,
                )
            ]
        message = payload.message
        assert message is not None
        html = sanitise_html(message.html)
        text = message.text.strip() or (html_to_text(html) if html else "")
        return [
            InboundMessage(
                channel=self.kind,
                external_id=self.stored_id(message.id),
                sender_kind=IdentityKind.EXTERNAL,
                sender_value=customer.id,
                sender_name=customer.name,
                other_identities=others,
                conversation_id=message.conversation_id,
                subject=subject_of(payload),
                text=text,
                full_text=text,
                html=html,
                order_number=message.order_number,
                sent_at=message.sent_at,
                attachments=self.attachments(message.attachments),
                metadata={"api_message_id": message.id},
                category=message.category,
                priority=message.priority,
                customer_locale=customer.locale,
                customer_vip=customer.vip,
                persona=customer.persona,
            )
        ]

    def stored_id(self, provider_id: str) -> str:
        """The id a message or event is filed under: the merchant's id within this channel.

        Messages and events are unique per merchant and channel kind; two API channels of one
        merchant (a shop and an app, say) may both send "m-1", and neither may shadow the other.
        """
        return f"{self.account.pk}:{provider_id}"

    def attachments(self, items: list[ApiAttachment]) -> list[InboundAttachment]:
        """The message's files, downloads within one time budget: parsing runs while the
        delivery is claimed, so twenty slow URLs must not hold it for minutes."""
        per_file = settings.HELPDESK_ATTACHMENT_FETCH_TIMEOUT_SECONDS
        deadline = time.monotonic() + FETCH_BUDGET_FILES * per_file
        return [
            self.attachment(item, timeout=min(per_file, deadline - time.monotonic()))
            for item in items
        ]

    def attachment(self, item: ApiAttachment, *, timeout: float) -> InboundAttachment:
        """A file sent along, downloaded when sent by URL; one that cannot be had (refused,
        not found, too large, too slow) is listed as missing with why, and the message kept."""
        limit = self.account.tenant.max_attachment_bytes
        if item.content is not None:
            content_type = item.content_type or "application/octet-stream"
            if len(item.content) > limit:
                return InboundAttachment(
                    filename=item.filename,
                    content_type=content_type,
                    content=b"",
                    missing_reason=too_large(limit),
                    size=len(item.content),
                )
            return InboundAttachment(item.filename, content_type, item.content)
        if timeout <= 0:
            return InboundAttachment(
                filename=item.filename or url_filename(item.url),
                content_type=item.content_type or "application/octet-stream",
                content=b"",
                missing_reason=_(
                    "Not downloaded: the time allowed for this message's attachments ran out"
                ),
            )
        try:
            fetched = http.fetch(item.url, max_bytes=limit, timeout=timeout)
        except http.HttpFailure as failure:
            logger.info("attachment %s not downloaded: %s", item.url[:200], failure.message)
            return InboundAttachment(
                filename=item.filename or url_filename(item.url),
                content_type=item.content_type or "application/octet-stream",
                content=b"",
                missing_reason=_("Not downloaded: %(reason)s") % {"reason": failure.message},
            )
        return InboundAttachment(
            filename=item.filename or fetched.filename,
            content_type=item.content_type or fetched.content_type,
            content=fetched.content,
        )

    # --- replies ---

    @classmethod
    def reply_accounts(cls, accounts: QuerySet[ChannelAccount]) -> QuerySet[ChannelAccount]:
        return accounts.filter(api__isnull=False).exclude(api__callback_url="")

    def prepare_reply(self, message: Message) -> None:
        """Address a reply to the customer's id in the merchant's system, with an id of ours
        the merchant's system can deduplicate by."""
        self.callback_url()
        ticket = message.ticket
        identity = (
            CustomerIdentity.objects.filter(
                customer_id=ticket.customer_id, kind=IdentityKind.EXTERNAL, account=self.account
            )
            .order_by("pk")
            .first()
        )
        if identity is None:
            raise BadInput(
                _(
                    "The customer has no id in the system behind the channel %(channel)s, so "
                    "a reply cannot be addressed there"
                )
                % {"channel": self.account.name}
            )
        message.external_id = uuid.uuid4().hex
        subject = ticket.subject.strip()
        if subject and not subject.lower().startswith("re:"):
            subject = f"Re: {subject}"
        message.subject = subject[:255]
        message.metadata = {**message.metadata, "to": identity.value}

    def send(self, message: Message) -> str:
        url = self.callback_url()
        try:
            http.check_url(url)
        except BadInput as refused:  # EgressRefused included
            raise CallbackRefused(
                _("The callback URL %(url)s cannot be used: %(reason)s")
                % {"url": url, "reason": refused.message}
            ) from refused
        delivery = self.delivery_for(message, url=url)
        try:
            secrets = accepted_secrets(self.account)
            webhooks.send_signed(
                delivery=delivery,
                secret=secrets[0],
                previous_secret=secrets[1] if len(secrets) > 1 else "",
            )
        except webhooks.WebhookFailed as failed:
            raise AdapterError(failed.message, permanent=failed.permanent) from failed
        except webhooks.AttemptSuperseded as superseded:
            # Another try of this very delivery is under way: this one stands down.
            raise AdapterError(
                _("Another attempt to deliver this reply is under way"), permanent=False
            ) from superseded
        return message.external_id

    def reply_failed(self, message: Message) -> None:
        # The delivery log must not show "retrying" for a reply nobody will try again.
        delivery = WebhookDelivery.objects.filter(message=message, event=REPLY_EVENT).first()
        if delivery is not None:
            webhooks.give_up(delivery=delivery)

    def callback_url(self) -> str:
        api = ApiChannel.objects.filter(account=self.account).first()
        if api is None or not api.callback_url:
            raise BadInput(
                _(
                    "The API channel %(channel)s has no callback URL: set one in its settings "
                    "so replies can be delivered"
                )
                % {"channel": self.account.name}
            )
        return api.callback_url

    def delivery_for(self, message: Message, *, url: str) -> WebhookDelivery:
        """The reply's one delivery record: every try (and an agent's resend) posts the same
        signed body under the same delivery id, so the receiver can drop a repeat."""
        delivery = (
            WebhookDelivery.objects.filter(message=message, event=REPLY_EVENT)
            .order_by("pk")
            .first()
        )
        if delivery is None:
            return WebhookDelivery.objects.create(
                url=url,
                event=REPLY_EVENT,
                body=reply_body(message),
                channel_account=self.account,
                message=message,
            )
        if delivery.url != url:
            # The admin corrected the callback URL since the last try: send there now.
            delivery.url = url
            delivery.save(update_fields=["url", "updated_at"])
        return delivery


def reply_body(message: Message) -> bytes:
    """The callback's JSON: the reply, its ticket and author, and the customer it is for."""
    author = message.author_user
    author_name = ""
    if author is not None:
        author_name = author.get_full_name().strip() or author.get_username()
    document = {
        "type": REPLY_EVENT,
        "message": {
            "id": message.external_id,
            "conversation_id": message.conversation_id,
            "text": message.body_text,
            "created_at": message.created_at.isoformat().replace("+00:00", "Z"),
            "ticket": message.ticket.number,
            "author": {"name": author_name},
        },
        "customer": {"id": message.metadata.get("to", "")},
    }
    return json.dumps(document, ensure_ascii=False).encode()


def subject_of(payload: ApiPayload) -> str:
    """The message's subject, else its first line of text (at most 120 characters), else the
    first file's name."""
    message = payload.message
    if message is None:
        return ""
    if message.subject:
        return message.subject
    text = message.text.strip() or html_to_text(sanitise_html(message.html)).strip()
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first_line:
        return first_line[:SUBJECT_CHARS].rstrip()
    return next((item.filename for item in message.attachments if item.filename), "")


def too_large(limit: int) -> str:
    return _("The file is larger than this helpdesk keeps (%(limit)s).") % {
        "limit": filesizeformat(limit)
    }


def url_filename(url: str) -> str:
    name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return name[:255] or "download"
