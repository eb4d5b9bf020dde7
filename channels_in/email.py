"""The email channel: raw RFC 822 in (webhook, IMAP, import), SMTP out.

Parsing (charsets, MIME, quotes, auto-replies) lives in ``channels_in.mail``; this module is the
adapter the pipeline sees.
"""

from __future__ import annotations

import hashlib
import logging
import re
import smtplib
import socket
import uuid
from dataclasses import dataclass
from email.utils import formataddr, parseaddr
from io import BytesIO
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import dkim
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SMTPEmailBackend
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError
from django.utils.translation import gettext as _

from channels_in.base import (
    Adapter,
    AdapterError,
    Answer,
    Envelope,
    InboundEvent,
    InboundMessage,
    Refused,
    presented_secret,
    secret_accepted,
)
from channels_in.crypto import decrypt_secret
from channels_in.mail import outgoing, parse_mail
from channels_in.mail.framing import header_block
from channels_in.mail.headers import collapse, decode_header_bytes, parse_from, raw_header
from helpdesk import egress
from helpdesk.errors import BadInput, EgressRefused
from tickets.models import IdentityKind, Message, Ticket

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from channels_in.models import ChannelAccount, Mailbox
    from helpdesk.models import Tenant

logger = logging.getLogger(__name__)


def delivery_id_of_mail(payload: bytes) -> str:
    """Message-ID without brackets, or a digest of the bytes when the mail has none.

    Reads the header block the way parse_mail does (banners and mbox lines before it skipped,
    unindented continuation lines folded), so the endpoint refuses exactly what the parser
    would refuse.
    """
    if not payload or not payload.strip():
        raise AdapterError("The body is empty: post the raw RFC 822 message", permanent=True)
    headers = header_block(payload)
    if headers is None:
        raise AdapterError(
            "The body is not an email message: no header block with From, To, Subject, Date, "
            "Message-ID or MIME headers",
            permanent=True,
        )
    message_id = str(headers.get("message-id") or "").strip().strip("<>").strip()
    if message_id and len(message_id) <= 200 and " " not in message_id:
        return message_id
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def summary_of_mail(payload: bytes) -> tuple[str, str]:
    """(From, Subject) as an admin would read them, from the header block alone; best effort."""
    try:
        headers = header_block(payload)
        if headers is None:
            return "", ""
        sender = decode_header_bytes(raw_header(headers, "from") or b"")
        subject = decode_header_bytes(raw_header(headers, "subject") or b"")
    except Exception:  # a summary must never stop a payload from being stored
        return "", ""
    name, address = parse_from(sender)
    return collapse(address or name or sender), collapse(subject)


def mailbox_smtp_connection(mailbox: Mailbox, *, timeout: int = 30) -> BaseEmailBackend:
    """The SMTP connection a mailbox sends through: its own server behind the egress guard, or
    the platform relay (configured by the operator, so not a merchant's destination and not
    subject to the guard)."""
    if not mailbox.smtp_host:
        return get_connection(fail_silently=False)
    return GuardedEmailBackend(
        host=mailbox.smtp_host,
        port=mailbox.smtp_port,
        username=mailbox.smtp_username or None,
        password=decrypt_secret(mailbox.smtp_password_encrypted) or None,
        use_tls=mailbox.smtp_use_tls and not mailbox.smtp_use_ssl,
        use_ssl=mailbox.smtp_use_ssl,
        timeout=timeout,
        fail_silently=False,
    )


RAW_FIELDS = ("message", "email", "body-mime", "mime")
_FORM_UNSAFE = re.compile(rb"[\s]")


def raw_mail_from(request: HttpRequest) -> bytes:
    """The raw message: the request body whatever its Content-Type says, unless the body really
    is a form (Mailgun, SendGrid) carrying one of the raw-MIME fields.

    ``curl --data-binary`` labels a piped mail ``application/x-www-form-urlencoded``; reading
    that as a form would find no fields and lose the mail.
    """
    body = request.body
    if request.content_type == "multipart/form-data":
        try:
            fields, files = request.parse_file_upload(request.META, BytesIO(body))
        except MultiPartParserError:
            return body
        for field in RAW_FIELDS:
            if field in files:
                return files[field].read()
        for field in RAW_FIELDS:
            if fields.get(field):
                # Form fields arrive decoded as UTF-8: 8-bit GBK may already be damaged.
                return fields[field].encode("utf-8", "surrogateescape")
        return body
    if request.content_type == "application/x-www-form-urlencoded" and not _FORM_UNSAFE.search(
        body
    ):
        # A real form body has no raw spaces or line breaks; a mail always has them. Values are
        # kept as bytes, so 8-bit mail survives percent-encoding.
        form = dict(pair.partition(b"=")[::2] for pair in body.split(b"&"))
        for field in RAW_FIELDS:
            value = form.get(field.encode())
            if value:
                return unquote_to_bytes(value.replace(b"+", b" "))
    return body


def last_customer_message(ticket: Ticket) -> Message | None:
    """The customer's latest message on the ticket (not a third party's who joined in)."""
    return (
        ticket.messages.filter(
            direction=Message.Direction.INBOUND, author_customer_id=ticket.customer_id
        )
        .select_related("author_customer")
        .order_by("-created_at")
        .first()
    )


def reply_address(ticket: Ticket) -> str:
    """Where a reply goes: the address the ticket's customer last wrote from, else theirs on
    file. Never a third party who joined the thread."""
    last_from_customer = last_customer_message(ticket)
    if last_from_customer and last_from_customer.metadata.get("from"):
        return last_from_customer.metadata["from"]
    identity = ticket.customer.identities.filter(kind=IdentityKind.EMAIL).first()
    if identity is None:
        raise BadInput(_("The customer has no email address to reply to"))
    return identity.value


def reply_subject(ticket: Ticket, *, starts_conversation: bool = False) -> str:
    subject = ticket.subject
    if not starts_conversation and not subject.lower().startswith(("re:", "回复:", "回复：")):
        subject = f"Re: {subject}"
    return f"{subject} [#{ticket.number}]"


class EmailAdapter(Adapter):
    """Raw RFC 822 mail: posted by the merchant's MTA or a mail provider (authenticated by the
    channel secret), polled over IMAP, or imported; replies go out over SMTP."""

    kind = "email"
    # Agents' replies may carry files and go to further people in CC and BCC.
    carries_files = True
    carries_copies = True

    # --- the request ---

    def verify(self, request: HttpRequest) -> None:
        if not secret_accepted(self.account, presented_secret(request)):
            # 403, as this endpoint has always answered: forwarders configured against it
            # treat it as "fix the secret", not "retry".
            raise Refused(403, "bad_secret", "The channel secret is missing or wrong")

    def envelope(self, request: HttpRequest) -> Envelope:
        # The mail is the whole payload; nothing else of the request is needed to parse it.
        return Envelope.of(raw_mail_from(request))

    def refuse_payload(self, error: AdapterError) -> Answer:
        return Answer.error(400, "not_mail", error.message)

    # --- the stored delivery ---

    def delivery_id(self, envelope: Envelope) -> str:
        return delivery_id_of_mail(envelope.body)

    def summarise(self, envelope: Envelope) -> tuple[str, str]:
        return summary_of_mail(envelope.body)

    def parse(self, envelope: Envelope) -> list[InboundMessage | InboundEvent]:
        return [
            parse_mail(envelope.body, max_attachment_bytes=self.account.tenant.max_attachment_bytes)
        ]

    # --- replies ---

    @classmethod
    def reply_accounts(cls, accounts: QuerySet[ChannelAccount]) -> QuerySet[ChannelAccount]:
        return accounts.filter(mailbox__isnull=False)

    def prepare_reply(self, message: Message) -> None:
        """Address a reply: to the address the customer last wrote from (or, starting a
        conversation, the one the agent gave), with a Message-ID of the merchant's domain, the
        ``[#n]`` subject token and the thread's References. A person's reply also gets the
        text the customer receives (``full_text``): their signature and the quoted history."""
        ticket = message.ticket
        starts = bool(message.metadata.get("starts_conversation"))
        domain = self.account.mailbox.address.rsplit("@", 1)[-1]
        thread = list(
            ticket.messages.exclude(external_id="")
            .exclude(direction=Message.Direction.NOTE)
            .order_by("created_at")
            .values_list("external_id", flat=True)
        )
        message.external_id = f"{uuid.uuid4().hex}.{ticket.number}@{domain}"
        message.subject = reply_subject(ticket, starts_conversation=starts)
        message.metadata = {
            **message.metadata,
            "to": message.metadata.get("to") or reply_address(ticket),
            "references": [ref for ref in thread if not ref.startswith("sha256:")][-20:],
        }
        if message.author_user_id is not None:  # the helpdesk's own notices stay as written
            message.full_text = self.text_as_sent(message, quote=not starts)

    def text_as_sent(self, message: Message, *, quote: bool) -> str:
        """What the customer reads: the agent's text, their signature in this merchant, and
        their previous message quoted. Kept on the reply, so a retry hours later sends the
        same words even if the signature changed since."""
        from helpdesk.models import Membership

        tenant = self.account.tenant
        signature = (
            Membership.objects.filter(tenant=tenant, user_id=message.author_user_id)
            .values_list("signature", flat=True)
            .first()
            or ""
        )
        previous = last_customer_message(message.ticket) if quote else None
        quote_text = ""
        if previous is not None:
            quote_text = outgoing.quoted(
                text=previous.body_text,
                sender_name=previous.author_customer.name if previous.author_customer else "",
                sender_address=str(previous.metadata.get("from", "")),
                written_at=previous.sent_at or previous.created_at,
                time_zone=tenant.time_zone,
                language=tenant.locale,
            )
        return outgoing.reply_text(text=message.body_text, signature=signature, quote=quote_text)

    def send(self, message: Message) -> str:
        mailbox = self.account.mailbox
        headers = {"Message-ID": f"<{message.external_id}>"}
        thread = message.metadata.get("references") or []
        if thread:
            headers["In-Reply-To"] = f"<{thread[-1]}>"
            headers["References"] = " ".join(f"<{ref}>" for ref in thread)
        headers["X-Helpdesk-Ticket"] = str(message.ticket.number)
        sender = reply_sender(mailbox=mailbox, tenant=self.account.tenant)
        email = DkimSignedEmail(
            subject=message.subject,
            body=message.full_text or message.body_text,
            from_email=sender.from_email,
            to=[message.metadata["to"]],
            # Cc is a header; Bcc only joins the envelope's recipients, never a header.
            cc=list(message.cc or []),
            bcc=list(message.bcc or []),
            reply_to=[sender.reply_to] if sender.reply_to else None,
            headers=headers,
            connection=self._connection(),
            dkim_domain=sender.dkim_domain,
        )
        if message.body_html:
            email.attach_alternative(message.body_html, "text/html")
        for name, content, content_type in files_of(message):
            email.attach(name, content, content_type)
        try:
            email.send(fail_silently=False)
        except EgressRefused as exc:
            # The merchant's server name points somewhere the platform must not go: every
            # reply would be refused alike, so the channel pauses until an admin fixes it.
            raise ChannelRefused(
                _("SMTP delivery failed: %(reason)s") % {"reason": exc.message}
            ) from exc
        except dkim.DKIMException as exc:
            raise AdapterError(
                _(
                    "SMTP delivery failed: the helpdesk could not sign the reply for "
                    "%(domain)s; the platform operator can look up reference %(reference)s"
                )
                % {"domain": sender.dkim_domain, "reference": _log_dkim_failure(exc)},
                permanent=True,
            ) from exc
        except (OSError, ValueError) as exc:  # smtplib's errors are OSErrors
            raise smtp_failure(exc, server=self._server()) from exc
        return message.external_id

    def _server(self) -> str:
        """The SMTP server a reply goes to, as the agent reads it in an error."""
        mailbox = self.account.mailbox
        if mailbox.smtp_host:
            return f"{mailbox.smtp_host}:{mailbox.smtp_port}"
        return f"{settings.EMAIL_HOST}:{settings.EMAIL_PORT}"

    def _connection(self) -> BaseEmailBackend:
        return mailbox_smtp_connection(self.account.mailbox)


def files_of(message: Message) -> list[tuple[str, bytes, str]]:
    """The reply's attachments as MIME parts need them; a file gone from storage fails the
    reply for good (sending it without would tell the customer something else)."""
    files = []
    for attachment in message.attachments.all():
        try:
            with attachment.file.open("rb") as stored:
                content = stored.read()
        except (FileNotFoundError, ValueError) as exc:
            raise AdapterError(
                _("The attachment %(name)s is missing from storage")
                % {"name": attachment.filename},
                permanent=True,
            ) from exc
        files.append((attachment.filename, content, attachment.content_type))
    return files


def validate_mailbox_hosts(mailbox: Mailbox) -> None:
    """Refuse, with ``EgressRefused``, a mailbox whose IMAP or SMTP server is not a public
    address on a mail port; the settings pages call this before saving. ``extra["field"]``
    names the mailbox field at fault."""
    for purpose, host, port in (
        ("imap", mailbox.imap_host, mailbox.imap_port),
        ("smtp", mailbox.smtp_host, mailbox.smtp_port),
    ):
        if not host:
            continue
        try:
            egress.check_destination(host, port, purpose=purpose)
        except EgressRefused as exc:
            exc.extra["field"] = f"{purpose}_{exc.extra.get('field', 'host')}"
            raise


# Sending through the merchant's server ------------------------------------------------------


class _ToVettedAddress:
    """For smtplib's clients: open the socket to the address the egress guard vetted, just now,
    while ``self._host`` keeps the name for STARTTLS/SSL's server name and certificate check."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        address = egress.connect_address(host, port, purpose="smtp")
        return super()._get_socket(address, port, timeout)  # type: ignore[misc]


class GuardedSMTP(_ToVettedAddress, smtplib.SMTP):
    """``smtplib.SMTP`` that connects only where the egress guard allows."""


class GuardedSMTP_SSL(_ToVettedAddress, smtplib.SMTP_SSL):
    """``smtplib.SMTP_SSL`` that connects only where the egress guard allows."""


class GuardedEmailBackend(SMTPEmailBackend):
    """Django's SMTP backend for a merchant's own server, through the egress guard."""

    @property
    def connection_class(self) -> type[smtplib.SMTP]:
        return GuardedSMTP_SSL if self.use_ssl else GuardedSMTP


# Who a reply is From --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplySender:
    from_email: str
    reply_to: str = ""
    # Set when the platform relay signs the reply for the merchant's domain.
    dkim_domain: str = ""


def reply_sender(*, mailbox: Mailbox, tenant: Tenant) -> ReplySender:
    """Who a reply is From: the merchant's address only where the mail will pass DMARC for it.

    Through the merchant's own SMTP server (it authenticates the sender), or through the
    platform relay for a domain whose DKIM key the relay signs with and the merchant has
    published. Otherwise From the platform's address in the merchant's name, with Reply-To the
    merchant's address, so the customer's answer still reaches the merchant.
    """
    name = mailbox.from_name or tenant.name
    merchant = formataddr((name, mailbox.address))
    if mailbox.smtp_host:
        return ReplySender(from_email=merchant)
    domain = mailbox.address.rsplit("@", 1)[-1].lower()
    if domain in settings.HELPDESK_RELAY_DKIM_DOMAINS:
        return ReplySender(from_email=merchant, dkim_domain=domain)
    platform_name, platform_address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    platform = platform_name or platform_address.rsplit("@", 1)[-1]
    # "X via Y", as mailing lists and Google Groups show a sender they cannot send as.
    return ReplySender(
        from_email=formataddr((f"{name} via {platform}", platform_address)), reply_to=merchant
    )


class DkimSignedEmail(EmailMultiAlternatives):
    """A mail that, given ``dkim_domain``, carries the platform relay's DKIM signature for that
    domain; without one it is an ordinary mail."""

    def __init__(self, *args: Any, dkim_domain: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dkim_domain = dkim_domain

    def message(self, *args: Any, **kwargs: Any) -> Any:
        mime = super().message(*args, **kwargs)
        if not self.dkim_domain:
            return mime
        signature = dkim.sign(
            mime.as_bytes(linesep="\r\n"),
            settings.HELPDESK_RELAY_DKIM_SELECTOR.encode("ascii"),
            self.dkim_domain.encode("ascii"),
            settings.HELPDESK_RELAY_DKIM_PRIVATE_KEY.encode("ascii"),
            # Relaxed: the backend serialises the mail again and may fold headers differently.
            canonicalize=(b"relaxed", b"relaxed"),
        )
        name, _colon, value = signature.decode("ascii").partition(":")
        # Django refuses line breaks in a header; unfolding is invisible to relaxed checking.
        mime[name] = " ".join(value.split())
        return mime


def _log_dkim_failure(exc: Exception) -> str:
    reference = egress.new_reference()
    logger.error("DKIM %s: signing a reply failed: %s", reference, exc)
    return reference


class ChannelRefused(AdapterError):
    """The mail server refused the channel itself (its login, or a feature its settings ask
    for), not one reply: every reply on the channel fails the same way until an admin fixes it.
    """

    # Outbound delivery pauses the channel account on an error that says so.
    pauses_channel = True

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


def smtp_failure(error: Exception, *, server: str) -> AdapterError:
    """What a failed SMTP send means for the reply.

    A 5xx answer or a recipient refused with 5xx is permanent: the reply fails at once with the
    server's reason. A refused login pauses the channel. A 4xx answer and network trouble may
    pass (greylisting, a full mailbox, a restarting server), so the reply is tried again later.
    """
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refusals = list(error.recipients.items())
        reason = "; ".join(
            f"{address} ({code} {_smtp_text(text)})" for address, (code, text) in refusals
        )
        return AdapterError(
            _("SMTP delivery failed: the mail server %(server)s refused the recipient %(reason)s")
            % {"server": server, "reason": reason},
            # Greylisting answers RCPT with 450: only a 5xx refusal is final.
            permanent=not refusals or any(_is_permanent(code) for _to, (code, _t) in refusals),
        )
    if isinstance(error, smtplib.SMTPAuthenticationError) and not _is_temporary(error.smtp_code):
        return ChannelRefused(
            _(
                "SMTP delivery failed: the mail server %(server)s refused the channel's "
                "username or password: %(reason)s"
            )
            % {"server": server, "reason": _smtp_reason(error.smtp_code, error.smtp_error)}
        )
    if isinstance(error, smtplib.SMTPNotSupportedError):
        # STARTTLS or AUTH asked for by the channel's settings but not offered by the server.
        return ChannelRefused(
            _(
                "SMTP delivery failed: the mail server %(server)s does not offer what the "
                "channel's settings ask for: %(reason)s"
            )
            % {"server": server, "reason": error}
        )
    if isinstance(error, smtplib.SMTPResponseException) and not isinstance(
        # A greeting that is not 220 may be whatever else listens there (a banner): not shown.
        error,
        smtplib.SMTPConnectError,
    ):
        reason = _smtp_reason(error.smtp_code, error.smtp_error)
        if _is_permanent(error.smtp_code):
            return AdapterError(
                _("SMTP delivery failed: the mail server %(server)s refused the reply: %(reason)s")
                % {"server": server, "reason": reason},
                permanent=True,
            )
        return AdapterError(
            _("SMTP delivery failed: the mail server %(server)s deferred the reply: %(reason)s")
            % {"server": server, "reason": reason}
        )
    if isinstance(error, ValueError):
        # Django refuses a header it cannot encode safely; sending again changes nothing.
        return AdapterError(
            _("SMTP delivery failed: the reply is not a valid email: %(reason)s")
            % {"reason": error},
            permanent=True,
        )
    # Connection refused, a timeout, a dropped connection, a TLS handshake that broke off: told
    # alike, with a reference to the log, so the errors cannot map what listens where.
    return AdapterError(
        _("SMTP delivery failed: %(reason)s")
        % {
            "reason": egress.merchant_safe_error(
                error,
                what=_("the mail server %(server)s") % {"server": server},
                destination=f"smtp {server}",
            )
        }
    )


def _is_permanent(code: int) -> bool:
    return 500 <= code < 600


def _is_temporary(code: int) -> bool:
    return 400 <= code < 500


def _smtp_text(text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(text.split())


def _smtp_reason(code: int, text: bytes | str) -> str:
    return f"{code} {_smtp_text(text)}".strip()
