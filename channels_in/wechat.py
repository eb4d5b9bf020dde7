"""The WeChat Official Account channel: customers write to a merchant's Official Account and
are answered there (``/inbound/<merchant>/wechat/<channel id>/`` is the server URL the merchant
pastes into WeChat).

In: WeChat verifies the URL with a GET (``echostr``), then posts each message and event as XML,
signed with the channel's token (and, in safe mode, encrypted with its EncodingAESKey: the
signature then covers the body). The endpoint verifies, stores the body as it arrived, queues
it and answers ``success`` at once, well within WeChat's 5 seconds; WeChat retries a push three
times, and the stored delivery is unique on its MsgId (events: sender, time and event), so a
retry is a no-op. A worker then reads the push (``parse``) and downloads the customer's media.

Out: agents' replies are Customer Service Messages (text, and images the agent attaches),
possible within 48 hours of the customer's last message (``wechat_api``).

Signatures and AES live in ``wechat_crypto``, XML in ``wechat_push``, the API in
``wechat_api``; README.md ("Connecting a WeChat Official Account") is the merchant's guide.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Max
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from channels_in.base import (
    Adapter,
    AdapterError,
    Answer,
    Envelope,
    InboundAttachment,
    InboundEvent,
    InboundMessage,
    Refused,
)
from channels_in.crypto import decrypt_secret
from channels_in.models import ChannelAccount, WeChatAccount
from channels_in.wechat_api import OUT_OF_WINDOW, WeChatApi, WeChatApiError
from channels_in.wechat_crypto import MessageCipher, signature_matches
from channels_in.wechat_push import (
    MAX_PUSH_BYTES,
    Push,
    PushRefused,
    media_extension,
    read_push,
    read_xml,
    subject_of,
    text_of,
)
from helpdesk.errors import BadInput
from tickets.models import CustomerEvent, CustomerIdentity, IdentityKind, Message

if TYPE_CHECKING:
    from datetime import datetime

    from django.db.models import QuerySet

    from channels_in.models import RawInbound

# WeChat lets an Official Account answer a customer this long after their last message.
REPLY_WINDOW = timedelta(hours=48)
# Images WeChat takes as Customer Service Messages.
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif"})
IMAGE_MAX_BYTES = 10 * 1024 * 1024
MEDIA_TYPES = ("image", "voice", "video", "shortvideo")
# Events that land on the customer's timeline; the others (menu clicks, scans, location
# reports, agent hand-overs) are stored and shown in the Inbound log only.
EVENT_KINDS = {
    "subscribe": CustomerEvent.Kind.SUBSCRIBED,
    "unsubscribe": CustomerEvent.Kind.UNSUBSCRIBED,
    "kf_create_session": CustomerEvent.Kind.CONVERSATION_STARTED,
    "kf_close_session": CustomerEvent.Kind.CONVERSATION_ENDED,
}


class WeChatAdapter(Adapter):
    kind = "wechat"
    max_body_bytes = MAX_PUSH_BYTES
    carries_files = True  # images; other files are refused when the reply is sent

    def __init__(self, account: ChannelAccount) -> None:
        super().__init__(account)
        self._wechat: WeChatAccount | None = None
        self._read: tuple[bytes, Push] | None = None

    def wechat(self) -> WeChatAccount:
        if self._wechat is None:
            self._wechat = WeChatAccount.objects.filter(account=self.account).first()
            if self._wechat is None:
                raise AdapterError(
                    _("The WeChat channel %(channel)s is not set up") % {"channel": self.account},
                    permanent=True,
                )
        return self._wechat

    def cipher(self) -> MessageCipher | None:
        key = decrypt_secret(self.wechat().encoding_aes_key_encrypted)
        return MessageCipher(key, self.wechat().app_id) if key else None

    # --- the request ---

    def _settings_or_404(self) -> WeChatAccount:
        try:
            return self.wechat()
        except AdapterError:
            raise Refused(404, "not_set_up", "This WeChat channel is not set up") from None

    @staticmethod
    def _check_signature(request: HttpRequest, wechat: WeChatAccount, *extra: str) -> None:
        """The query's ``signature`` (or, with ``extra``, the ``msg_signature`` of safe mode)
        must be WeChat's, made with the channel's token."""
        query = request.GET
        name = "msg_signature" if extra else "signature"
        if not signature_matches(
            query.get(name, ""),
            wechat.token,
            query.get("timestamp", ""),
            query.get("nonce", ""),
            *extra,
        ):
            raise Refused(403, "bad_signature", f"The {name} is not the channel's")

    def handshake(self, request: HttpRequest) -> Answer | None:
        """WeChat's check of the server URL: echo ``echostr`` if the signature is right."""
        try:
            wechat = self._settings_or_404()
            self._check_signature(request, wechat)
        except Refused as refused:
            return Answer.error(refused.status, refused.code, refused.message)
        WeChatAccount.objects.filter(pk=wechat.pk).update(verified_at=timezone.now())
        return Answer(200, request.GET.get("echostr", "").encode(), "text/plain; charset=utf-8")

    def verify(self, request: HttpRequest) -> None:
        """The token's signature; in safe mode the body's (``msg_signature``) too, and the body
        must decrypt for this AppID. A channel with an EncodingAESKey takes only encrypted
        pushes: in plain mode the signature does not cover the body."""
        wechat = self._settings_or_404()
        encrypted = request.GET.get("encrypt_type", "").lower() == "aes"
        # Tencent's own sample signs safe-mode pushes with msg_signature alone.
        if request.GET.get("signature") or not encrypted:
            self._check_signature(request, wechat)
        try:
            cipher = self.cipher()
            if encrypted:
                encrypt = read_xml(request.body).get("Encrypt", "")
                self._check_signature(request, wechat, encrypt)
            elif cipher is not None:
                raise Refused(
                    403,
                    "encryption_required",
                    "This channel takes only safe-mode (encrypted) pushes",
                )
            push = read_push(request.body, encrypted=encrypted, cipher=cipher)
        except PushRefused as refused:
            raise Refused(refused.status, refused.code, refused.message) from None
        except AdapterError as broken:  # the stored EncodingAESKey cannot be decrypted
            raise Refused(403, "not_configured", broken.message) from None
        self._read = (request.body, push)

    def answer(self, raw: RawInbound, created: bool) -> Answer:
        # WeChat wants "success" (or an empty body) within 5 seconds, a redelivery too.
        return Answer(200, b"success", "text/plain; charset=utf-8")

    # --- the stored delivery ---

    def read(self, envelope: Envelope) -> Push:
        if self._read is not None and self._read[0] == envelope.body:
            return self._read[1]
        encrypted = (envelope.query.get("encrypt_type") or [""])[0].lower() == "aes"
        push = read_push(envelope.body, encrypted=encrypted, cipher=self.cipher())
        self._read = (envelope.body, push)
        return push

    def delivery_id(self, envelope: Envelope) -> str:
        return self.stored_id(self.read(envelope).delivery_key)

    def stored_id(self, key: str) -> str:
        # One merchant's two Official Accounts must not shadow each other's ids.
        return f"{self.account.pk}:{key}"

    def summarise(self, envelope: Envelope) -> tuple[str, str]:
        try:
            push = self.read(envelope)
        except AdapterError:
            return "", ""
        if push.msg_type == "event":
            return push.openid, " ".join(
                part for part in ("event:", push.event, push.get("EventKey")) if part
            )
        return push.openid, subject_of(text_of(push)) or push.msg_type

    def parse(self, envelope: Envelope) -> list[InboundMessage | InboundEvent]:
        push = self.read(envelope)
        if push.msg_type == "event":
            return self.events(push)
        text = text_of(push)
        return [
            InboundMessage(
                channel=self.kind,
                external_id=self.stored_id(push.delivery_key),
                sender_kind=IdentityKind.WECHAT,
                sender_value=push.openid,
                subject=subject_of(text) or _("WeChat %(type)s") % {"type": push.msg_type},
                text=text,
                full_text=text,
                sent_at=push.created_at,
                attachments=self.media(push),
                metadata={"wechat": push.fields},
            )
        ]

    def events(self, push: Push) -> list[InboundMessage | InboundEvent]:
        kind = EVENT_KINDS.get(push.event.lower())
        if kind is None:
            return []  # stored, shown in the Inbound log; nothing for the timeline
        data = {
            name: value
            for name, value in push.fields.items()
            if name not in ("ToUserName", "FromUserName", "CreateTime", "MsgType")
        }
        event_key = push.get("EventKey")
        if event_key.startswith("qrscene_"):
            # Followed by scanning a QR code with a scene: which campaign brought them.
            data["scene"] = event_key.removeprefix("qrscene_")
        return [
            InboundEvent(
                channel=self.kind,
                external_id=self.stored_id(push.delivery_key),
                kind=kind,
                sender_kind=IdentityKind.WECHAT,
                sender_value=push.openid,
                occurred_at=push.created_at,
                data=data,
            )
        ]

    def media(self, push: Push) -> list[InboundAttachment]:
        """The customer's image, voice or video, downloaded from WeChat (media ids last three
        days). One that cannot be had is listed as missing, with why, and the message kept."""
        media_id = push.get("MediaId")
        if push.msg_type not in MEDIA_TYPES or not media_id:
            return []
        limit = self.account.tenant.max_attachment_bytes
        name = f"wechat-{push.msg_type}-{push.delivery_key[:40]}"
        try:
            fetched = WeChatApi(self.wechat()).download_media(
                media_id,
                max_bytes=limit,
                timeout=settings.HELPDESK_ATTACHMENT_FETCH_TIMEOUT_SECONDS,
            )
        except AdapterError as failure:
            return [
                InboundAttachment(
                    filename=name,
                    content_type="application/octet-stream",
                    content=b"",
                    missing_reason=_("Not downloaded from WeChat: %(reason)s")
                    % {"reason": failure.message},
                )
            ]
        filename = fetched.filename if "." in fetched.filename else name + media_extension(push)
        return [InboundAttachment(filename, fetched.content_type, fetched.content)]

    # --- replies ---

    @classmethod
    def reply_accounts(cls, accounts: QuerySet[ChannelAccount]) -> QuerySet[ChannelAccount]:
        return accounts.filter(wechat__isnull=False).exclude(wechat__app_secret_encrypted="")

    def prepare_reply(self, message: Message) -> None:
        """Address a reply to the customer's openid, within WeChat's 48-hour window."""
        ticket = message.ticket
        identity = (
            CustomerIdentity.objects.filter(
                customer_id=ticket.customer_id, kind=IdentityKind.WECHAT, account=self.account
            )
            .order_by("pk")
            .first()
        )
        if identity is None:
            raise BadInput(
                _(
                    "The customer has not written to the WeChat account %(channel)s, so a reply "
                    "cannot reach them there"
                )
                % {"channel": self.account.name}
            )
        last = last_heard(customer_id=ticket.customer_id, account=self.account)
        if last is not None and timezone.now() - last > REPLY_WINDOW:
            raise BadInput(window_closed(ticket.customer_id, last), field="text")
        message.external_id = uuid.uuid4().hex
        message.subject = ticket.subject[:255]
        message.metadata = {**message.metadata, "to": identity.value}

    def send(self, message: Message) -> str:
        """The text, then each image, as Customer Service Messages. What went out is noted on
        the message, so a retry after a failure part-way sends only the rest."""
        attachments = list(message.attachments.all())
        for attachment in attachments:
            if attachment.content_type not in IMAGE_TYPES or attachment.size > IMAGE_MAX_BYTES:
                raise AdapterError(
                    _(
                        "WeChat replies can carry images (JPG, PNG or GIF up to 10 MB) only: "
                        "%(file)s is not one. Send the reply again without it, or a link."
                    )
                    % {"file": attachment.filename},
                    permanent=True,
                )
        api = WeChatApi(self.wechat())
        openid = message.metadata.get("to", "")
        sent = list(message.metadata.get("wechat_sent", []))
        try:
            if message.body_text.strip() and "text" not in sent:
                api.send_text(openid, message.body_text)
                sent = _note_sent(message, sent, "text")
            for attachment in attachments:
                if f"attachment:{attachment.pk}" in sent:
                    continue
                with attachment.file.open("rb") as stored:
                    content = stored.read()
                media_id = api.upload_image(content=content, content_type=attachment.content_type)
                api.send_image(openid, media_id)
                sent = _note_sent(message, sent, f"attachment:{attachment.pk}")
        except WeChatApiError as error:
            if error.errcode == OUT_OF_WINDOW:
                raise AdapterError(
                    f"{error.message} {window_closed(message.ticket.customer_id, None)}",
                    permanent=True,
                ) from error
            raise
        return message.external_id


def _note_sent(message: Message, sent: list[str], part: str) -> list[str]:
    sent = [*sent, part]
    message.metadata = {**message.metadata, "wechat_sent": sent}
    Message.objects.filter(pk=message.pk).update(metadata=message.metadata)
    return sent


def last_heard(*, customer_id: int, account: ChannelAccount) -> datetime | None:
    """When the customer last wrote to the Official Account (or followed it), or None."""
    wrote = Message.objects.filter(
        ticket__customer_id=customer_id,
        channel_account=account,
        direction=Message.Direction.INBOUND,
    ).aggregate(at=Max(Coalesce("sent_at", "created_at")))["at"]
    followed = CustomerEvent.objects.filter(
        customer_id=customer_id, channel_account=account
    ).aggregate(at=Max("occurred_at"))["at"]
    moments = [moment for moment in (wrote, followed) if moment is not None]
    return max(moments) if moments else None


def window_closed(customer_id: int, last: datetime | None) -> str:
    """What the agent is told when WeChat's 48 hours are over: when the customer last wrote
    and the other ways to reach them."""
    from tickets.models import Customer

    said = (
        _(
            "WeChat only lets replies through within 48 hours of the customer's last message "
            "(theirs was on %(when)s)."
        )
        % {"when": formats.date_format(timezone.localtime(last), "DATETIME_FORMAT")}
        if last is not None
        else ""
    )
    customer = Customer.objects.filter(pk=customer_id).first()
    others = (
        [
            f"{identity.get_kind_display()} {identity.value}"
            for identity in customer.identities.exclude(kind=IdentityKind.WECHAT).order_by("pk")
        ]
        if customer
        else []
    )
    if others:
        offer = _(
            "Answer on another channel the customer has: %(channels)s (start a new "
            "conversation: %(url)s)."
        ) % {
            "channels": ", ".join(others),
            "url": f"{reverse('tickets:new')}?customer={customer_id}",
        }
    else:
        offer = _(
            "The customer has no other channel on file: they can be answered when they write again."
        )
    return f"{said} {offer}".strip()
