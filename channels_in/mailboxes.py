"""A merchant's owners and admins connect and look after their support mailboxes.

Every action takes the acting agent, requires ``MANAGE_CHANNELS`` before it touches anything,
and writes its audit row in the same transaction. Passwords are write-only: they are stored
Fernet-encrypted and never returned, logged or audited.
"""

from __future__ import annotations

import contextlib
import imaplib
import smtplib
import ssl
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Literal

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from imapclient.exceptions import IMAPClientError, LoginError

from channels_in import services as channel_services
from channels_in.base import AdapterError
from channels_in.crypto import decrypt_secret, encrypt_secret
from channels_in.email import (
    DkimSignedEmail,
    GuardedSMTP,
    GuardedSMTP_SSL,
    mailbox_smtp_connection,
    reply_sender,
    smtp_failure,
    validate_mailbox_hosts,
)
from channels_in.imap import GuardedIMAPClient
from channels_in.models import ChannelAccount, Mailbox, new_inbound_secret
from helpdesk import egress
from helpdesk.errors import BadInput, HelpdeskError
from helpdesk.models import Tenant
from helpdesk.permissions import ActingAgent, Capability, require
from tickets import audit
from tickets.audit import AuditKind
from tickets.models import Channel

CONNECT_TIMEOUT_SECONDS = 10
MAX_ATTACHMENT_MEGABYTES = 100


@dataclass(frozen=True)
class MailboxSettings:
    """What an admin may set on a mailbox (passwords apart: see ``set_mailbox_password``)."""

    name: str
    address: str
    from_name: str = ""
    imap_host: str = ""
    imap_port: int = 993
    imap_use_ssl: bool = True
    imap_username: str = ""
    imap_folder: str = "INBOX"
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_use_tls: bool = True
    smtp_use_ssl: bool = False

    def check(self) -> None:
        if not self.name.strip():
            raise BadInput(_("A channel needs a name"), field="name")
        if "@" not in self.address:
            raise BadInput(_("A mailbox needs an email address"), field="address")
        if self.smtp_use_tls and self.smtp_use_ssl:
            raise BadInput(_("Choose STARTTLS or SSL for SMTP, not both"), field="smtp_use_ssl")


_MAILBOX_FIELDS = [name for name in MailboxSettings.__dataclass_fields__ if name != "name"]


def settings_of(mailbox: Mailbox) -> MailboxSettings:
    """The mailbox's current settings, as the edit form starts from them."""
    values = {name: getattr(mailbox, name) for name in _MAILBOX_FIELDS}
    return MailboxSettings(name=mailbox.account.name, **values)


def create_mailbox(
    *,
    acting_agent: ActingAgent,
    mailbox_settings: MailboxSettings,
    imap_password: str = "",
    smtp_password: str = "",
) -> Mailbox:
    """Connect a new support mailbox: an email channel with its own inbound secret."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    mailbox_settings.check()
    values = asdict(mailbox_settings)
    name = values.pop("name").strip()
    # A server name must point at a public mail server, never inside the platform's network.
    validate_mailbox_hosts(Mailbox(**values))
    with transaction.atomic():
        account = ChannelAccount.objects.create(kind=Channel.EMAIL, name=name)
        mailbox = Mailbox.objects.create(
            account=account,
            imap_password_encrypted=encrypt_secret(imap_password),
            smtp_password_encrypted=encrypt_secret(smtp_password),
            **values,
        )
        audit.record(
            actor=acting_agent,
            kind=AuditKind.CHANNEL_CREATED,
            obj=account,
            changes={
                field: (None, value)
                for field, value in {"name": name, **values}.items()
                if value not in ("", None)
            },
        )
    return mailbox


def update_mailbox(
    *, acting_agent: ActingAgent, mailbox: Mailbox, mailbox_settings: MailboxSettings
) -> Mailbox:
    """Change a mailbox's address, From name, servers and usernames; audited old and new."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    mailbox_settings.check()
    with transaction.atomic():
        mailbox.refresh_from_db(from_queryset=Mailbox.objects.select_for_update())
        account = mailbox.account
        before = settings_of(mailbox)
        old = {k: v for k, v in asdict(before).items() if v != getattr(mailbox_settings, k)}
        if not old:
            return mailbox
        new = {k: getattr(mailbox_settings, k) for k in old}
        if "name" in new:
            account.name = new["name"].strip()
            account.save(update_fields=["name"])
        changed_fields = [k for k in new if k != "name"]
        for field in changed_fields:
            setattr(mailbox, field, new[field])
        validate_mailbox_hosts(mailbox)
        if {"imap_host", "imap_username", "imap_folder"} & set(changed_fields):
            # Another folder or server numbers its mail differently: start counting afresh.
            mailbox.imap_uidvalidity = None
            mailbox.imap_last_uid = 0
            changed_fields += ["imap_uidvalidity", "imap_last_uid"]
        if changed_fields:
            mailbox.save(update_fields=changed_fields)
        audit.record(
            actor=acting_agent,
            kind=AuditKind.CHANNEL_UPDATED,
            obj=account,
            changes={field: (old[field], new[field]) for field in old},
        )
    return mailbox


def set_mailbox_password(
    *,
    acting_agent: ActingAgent,
    mailbox: Mailbox,
    server: Literal["imap", "smtp"],
    password: str,
) -> Mailbox:
    """Store a new IMAP or SMTP password (encrypted; an empty one clears it). It is never shown
    back, and the audit row says only that it changed."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    if server not in ("imap", "smtp"):
        raise BadInput(_("Unknown mail server %(server)s") % {"server": server}, field="server")
    field = f"{server}_password_encrypted"
    with transaction.atomic():
        mailbox.refresh_from_db(from_queryset=Mailbox.objects.select_for_update())
        setattr(mailbox, field, encrypt_secret(password))
        mailbox.save(update_fields=[field])
        audit.record(
            actor=acting_agent,
            kind=AuditKind.MAILBOX_PASSWORD_CHANGED,
            obj=mailbox.account,
            details={"server": server, "cleared": not password},
        )
    return mailbox


def pause_channel(*, acting_agent: ActingAgent, account: ChannelAccount) -> ChannelAccount:
    """Stop polling and sending on a channel until someone resumes it; forwarded mail is still
    stored, so nothing is lost while it is paused."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    with transaction.atomic():
        account.refresh_from_db(from_queryset=ChannelAccount.objects.select_for_update())
        if account.paused:
            return account
        reason = _("Paused by %(person)s") % {"person": acting_agent.user.get_username()}
        account.paused = True
        account.last_error = reason
        account.last_error_at = timezone.now()
        account.save(update_fields=["paused", "last_error", "last_error_at"])
        audit.record(
            actor=acting_agent,
            kind=AuditKind.CHANNEL_PAUSED,
            obj=account,
            changes={"paused": (False, True)},
        )
    return account


def resume_channel(*, acting_agent: ActingAgent, account: ChannelAccount) -> ChannelAccount:
    """Resume a paused channel (paused by hand or by a failure someone has since fixed)."""
    return channel_services.resume_channel(acting_agent=acting_agent, account=account)


def rotate_inbound_secret(*, acting_agent: ActingAgent, account: ChannelAccount) -> ChannelAccount:
    """Give the channel a new inbound secret; the old one keeps working for
    ``HELPDESK_SECRET_GRACE_HOURS`` so mail arrives while the forwarder is updated."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    with transaction.atomic():
        account.refresh_from_db(from_queryset=ChannelAccount.objects.select_for_update())
        valid_until = timezone.now() + timedelta(hours=settings.HELPDESK_SECRET_GRACE_HOURS)
        account.previous_inbound_secret = account.inbound_secret
        account.previous_secret_valid_until = valid_until
        account.inbound_secret = new_inbound_secret()
        account.save(
            update_fields=[
                "inbound_secret",
                "previous_inbound_secret",
                "previous_secret_valid_until",
            ]
        )
        # The secrets themselves stay out of the log: anyone reading it could post mail.
        audit.record(
            actor=acting_agent,
            kind=AuditKind.CHANNEL_SECRET_ROTATED,
            obj=account,
            details={"previous_valid_until": valid_until},
        )
    return account


def set_attachment_limit(*, acting_agent: ActingAgent, megabytes: int) -> Tenant:
    """Set the largest attachment kept from customers' mail, for all the merchant's channels."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    if not 1 <= megabytes <= MAX_ATTACHMENT_MEGABYTES:
        raise BadInput(
            _("The attachment limit must be between 1 and %(max)s MB")
            % {"max": MAX_ATTACHMENT_MEGABYTES},
            field="megabytes",
        )
    new_bytes = megabytes * 1024 * 1024
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=acting_agent.tenant.pk)
        if tenant.max_attachment_bytes == new_bytes:
            return tenant
        old_bytes = tenant.max_attachment_bytes
        tenant.max_attachment_bytes = new_bytes
        tenant.save(update_fields=["max_attachment_bytes"])
        audit.record(
            actor=acting_agent,
            kind=AuditKind.MERCHANT_ATTACHMENT_LIMIT_CHANGED,
            obj=tenant,
            changes={"max_attachment_bytes": (old_bytes, new_bytes)},
        )
    return tenant


@dataclass(frozen=True)
class ConnectionCheck:
    """One server's answer to "test connection", in words an admin can act on."""

    server: str  # "IMAP" or "SMTP"
    ok: bool
    detail: str


def test_connection(*, acting_agent: ActingAgent, mailbox: Mailbox) -> list[ConnectionCheck]:
    """Sign in to the mailbox's IMAP and SMTP servers with its saved settings and say how it
    went. Nothing about the mailbox changes; the attempt is audited."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    checks = [_check_imap(mailbox), _check_smtp(mailbox)]
    with transaction.atomic():
        audit.record(
            actor=acting_agent,
            kind=AuditKind.CHANNEL_CONNECTION_TESTED,
            obj=mailbox.account,
            details={check.server.lower(): check.ok for check in checks},
        )
    return checks


test_connection.__test__ = False  # type: ignore[attr-defined]  # pytest: not a test


def _check_imap(mailbox: Mailbox) -> ConnectionCheck:
    if not mailbox.imap_host:
        return ConnectionCheck(
            "IMAP", True, _("No IMAP server set: mail arrives only by forwarding.")
        )
    where = f"{mailbox.imap_host}:{mailbox.imap_port}"
    try:
        egress.check_destination(mailbox.imap_host, mailbox.imap_port, purpose="imap")
        password = decrypt_secret(mailbox.imap_password_encrypted)
        client = GuardedIMAPClient(
            mailbox.imap_host,
            port=mailbox.imap_port,
            ssl=mailbox.imap_use_ssl,
            timeout=CONNECT_TIMEOUT_SECONDS,
        )
    except HelpdeskError as exc:
        return ConnectionCheck("IMAP", False, exc.message)
    except AdapterError as exc:
        return ConnectionCheck("IMAP", False, exc.message)
    except (OSError, IMAPClientError, imaplib.IMAP4.error) as exc:
        # Refused, timed out or not an IMAP server: told alike (see helpdesk.egress).
        return ConnectionCheck(
            "IMAP",
            False,
            egress.merchant_safe_error(
                exc, what=_("the IMAP server %(server)s") % {"server": where}, destination=where
            ),
        )
    try:
        client.login(mailbox.imap_username, password)
        folder = client.select_folder(mailbox.imap_folder, readonly=True)
        count = int(folder.get(b"EXISTS", 0))
    except LoginError as exc:
        return ConnectionCheck(
            "IMAP",
            False,
            _("%(server)s refused the username or password: %(reason)s")
            % {"server": where, "reason": _why(exc)},
        )
    except (OSError, IMAPClientError, imaplib.IMAP4.error) as exc:
        return ConnectionCheck(
            "IMAP",
            False,
            _("Signed in to %(server)s, but the folder %(folder)s cannot be opened: %(reason)s")
            % {"server": where, "folder": mailbox.imap_folder, "reason": _why(exc)},
        )
    finally:
        # The answer is already known; a rude goodbye changes nothing.
        with contextlib.suppress(OSError, IMAPClientError, imaplib.IMAP4.error):
            client.logout()
    return ConnectionCheck(
        "IMAP",
        True,
        _("Signed in to %(server)s as %(user)s; %(folder)s holds %(count)s messages.")
        % {
            "server": where,
            "user": mailbox.imap_username,
            "folder": mailbox.imap_folder,
            "count": count,
        },
    )


def _check_smtp(mailbox: Mailbox) -> ConnectionCheck:
    if not mailbox.smtp_host:
        return ConnectionCheck(
            "SMTP", True, _("No SMTP server set: replies go out through the helpdesk's own.")
        )
    where = f"{mailbox.smtp_host}:{mailbox.smtp_port}"
    try:
        egress.check_destination(mailbox.smtp_host, mailbox.smtp_port, purpose="smtp")
        password = decrypt_secret(mailbox.smtp_password_encrypted)
    except HelpdeskError as exc:
        return ConnectionCheck("SMTP", False, exc.message)
    except AdapterError as exc:
        return ConnectionCheck("SMTP", False, exc.message)
    smtp_class = GuardedSMTP_SSL if mailbox.smtp_use_ssl else GuardedSMTP
    signed_in = False
    try:
        with smtp_class(
            mailbox.smtp_host, mailbox.smtp_port, timeout=CONNECT_TIMEOUT_SECONDS
        ) as client:
            client.ehlo()
            if mailbox.smtp_use_tls and not mailbox.smtp_use_ssl:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if mailbox.smtp_username:
                client.login(mailbox.smtp_username, password)
                signed_in = True
    except smtplib.SMTPAuthenticationError as exc:
        return ConnectionCheck(
            "SMTP",
            False,
            _("%(server)s refused the username or password: %(reason)s")
            % {"server": where, "reason": _why(exc)},
        )
    except smtplib.SMTPNotSupportedError as exc:
        return ConnectionCheck(
            "SMTP",
            False,
            _("%(server)s does not offer what these settings ask for: %(reason)s")
            % {"server": where, "reason": _why(exc)},
        )
    except HelpdeskError as exc:  # the guard refused the address at connect time
        return ConnectionCheck("SMTP", False, exc.message)
    except (OSError, smtplib.SMTPException) as exc:
        # Refused, timed out or not an SMTP server: told alike (see helpdesk.egress).
        return ConnectionCheck(
            "SMTP",
            False,
            egress.merchant_safe_error(
                exc, what=_("the SMTP server %(server)s") % {"server": where}, destination=where
            ),
        )
    if signed_in:
        detail = _("Connected to %(server)s and signed in as %(user)s.") % {
            "server": where,
            "user": mailbox.smtp_username,
        }
    else:
        detail = _("Connected to %(server)s (no username set, so no sign-in).") % {"server": where}
    return ConnectionCheck("SMTP", True, detail)


def _why(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return f"{exc.smtp_code} {' '.join(text.split())}"
    text = exc.args[0] if exc.args else ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text)
    if text[:2] in ("b'", 'b"') and text[-1:] == text[1]:
        # imapclient words a refused login as the repr of the server's bytes.
        text = text[2:-1]
    return text or type(exc).__name__


def send_test_mail(*, acting_agent: ActingAgent, mailbox: Mailbox) -> str:
    """Send a test mail to the mailbox's own address through its SMTP server (or the helpdesk's
    default); return the address. It is marked automated, so if it comes back in it is kept
    under Inbound but opens no ticket."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    if mailbox.smtp_host:
        egress.check_destination(mailbox.smtp_host, mailbox.smtp_port, purpose="smtp")
    tenant = acting_agent.tenant
    sender = reply_sender(mailbox=mailbox, tenant=tenant)
    try:
        connection = _smtp_connection(mailbox)
    except AdapterError as exc:  # a stored password that no key decrypts
        raise TestMailFailed(exc.message) from exc
    message = DkimSignedEmail(
        subject=_("Helpdesk test mail for %(address)s") % {"address": mailbox.address},
        body=_(
            "This test mail was sent by %(person)s from the helpdesk's channel settings. "
            "If it reached %(address)s, replies from this mailbox can be delivered."
        )
        % {"person": acting_agent.user.get_username(), "address": mailbox.address},
        from_email=sender.from_email,
        reply_to=[sender.reply_to] if sender.reply_to else None,
        to=[mailbox.address],
        headers={
            "Auto-Submitted": "auto-generated",
            "Message-ID": f"<test.{uuid.uuid4().hex}@{mailbox.address.rsplit('@', 1)[-1]}>",
        },
        connection=connection,
        dkim_domain=sender.dkim_domain,
    )
    try:
        message.send(fail_silently=False)
    except HelpdeskError:
        raise  # the egress guard refused the server at connect time: its message says why
    except (OSError, ValueError) as exc:  # smtplib's errors are OSErrors
        server = (
            f"{mailbox.smtp_host}:{mailbox.smtp_port}"
            if mailbox.smtp_host
            else f"{settings.EMAIL_HOST}:{settings.EMAIL_PORT}"
        )
        failure = smtp_failure(exc, server=server)
        raise TestMailFailed(failure.message) from exc
    with transaction.atomic():
        audit.record(
            actor=acting_agent,
            kind=AuditKind.CHANNEL_TEST_MAIL_SENT,
            obj=mailbox.account,
            details={"to": mailbox.address},
        )
    return mailbox.address


class TestMailFailed(HelpdeskError):
    """The mail server would not take the test mail; the message says why."""

    __test__ = False  # pytest: not a test class
    code = "test_mail_failed"
    status = 502


def _smtp_connection(mailbox: Mailbox) -> BaseEmailBackend:
    return mailbox_smtp_connection(mailbox, timeout=CONNECT_TIMEOUT_SECONDS)
