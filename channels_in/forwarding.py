"""Forwarding addresses: where a merchant's mail host forwards their support mail.

Each email channel has one address, ``<merchant slug>+<token>@HELPDESK_INBOUND_DOMAIN``; the
SMTP service (channels_in.smtp_server) receives mail for it. The slug makes the address
readable and finds the merchant with one indexed platform lookup, before any tenant is active;
the token (random, never the id) finds the channel among the merchant's and keeps strangers
from writing to it. A replaced address keeps working for ``HELPDESK_SECRET_GRACE_HOURS``.

When a merchant turns forwarding on, Gmail, QQ Mail and Tencent Exmail first send a mail with a
confirmation code or link to the new address. Such a mail is stored like any other but opens
no ticket: it is marked ignored with a note, and the channel's page shows its code and link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from channels_in import pipeline
from channels_in.base import AdapterError, Envelope
from channels_in.email import summary_of_mail
from channels_in.mail import parse_mail
from channels_in.models import ChannelAccount, RawInbound, new_forwarding_token
from helpdesk import tenancy
from helpdesk.models import Tenant
from helpdesk.permissions import ActingAgent, Capability, require
from tickets import audit
from tickets.audit import AuditKind
from tickets.models import Channel

# The note on a stored confirmation mail; the channel's page finds them by it.
CONFIRMATION_NOTE = "forwarding confirmation from "


# --- the address ------------------------------------------------------------------------------


def forwarding_address(account: ChannelAccount) -> str:
    """The address the merchant's mail host forwards this channel's mail to."""
    return _address(account.tenant.slug, account.forwarding_token)


def previous_forwarding_address(account: ChannelAccount) -> tuple[str, datetime] | None:
    """The replaced address and until when it still works, while it does."""
    until = account.previous_forwarding_valid_until
    if account.previous_forwarding_token and until and until > timezone.now():
        return _address(account.tenant.slug, account.previous_forwarding_token), until
    return None


def _address(slug: str, token: str) -> str:
    return f"{slug}+{token}@{settings.HELPDESK_INBOUND_DOMAIN}"


def split_address(address: str) -> tuple[str, str] | None:
    """(merchant slug, token) of an address at the inbound domain; None for any other."""
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at or domain.lower().rstrip(".") != settings.HELPDESK_INBOUND_DOMAIN:
        return None
    slug, plus, token = local.lower().partition("+")
    if not (plus and slug and re.fullmatch(r"[0-9a-f]{8,32}", token)):
        return None
    return slug, token


def find_channel(address: str) -> ChannelAccount | None:
    """The email channel an address at the inbound domain names, with its merchant; None when
    it names none (a wrong token, another merchant's slug, a merchant switched off).

    Platform code: the merchant comes from its unique slug, then its channel is read with that
    merchant active (the token's index, row-level security as everywhere).
    """
    parts = split_address(address)
    if parts is None:
        return None
    slug, token = parts
    tenant = Tenant.objects.filter(slug=slug, is_active=True).first()
    if tenant is None:
        return None
    with tenancy.activate(tenant):
        account = (
            ChannelAccount.objects.filter(kind=Channel.EMAIL)
            .filter(
                Q(forwarding_token=token)
                | Q(
                    previous_forwarding_token=token,
                    previous_forwarding_valid_until__gt=timezone.now(),
                )
            )
            .first()
        )
    if account is not None:
        account.tenant = tenant
    return account


def new_forwarding_address(*, acting_agent: ActingAgent, account: ChannelAccount) -> ChannelAccount:
    """Give the channel a new forwarding address; the old one keeps working for
    ``HELPDESK_SECRET_GRACE_HOURS`` so mail arrives while the mail host is updated."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    with transaction.atomic():
        account.refresh_from_db(from_queryset=ChannelAccount.objects.select_for_update())
        valid_until = timezone.now() + timedelta(hours=settings.HELPDESK_SECRET_GRACE_HOURS)
        account.previous_forwarding_token = account.forwarding_token
        account.previous_forwarding_valid_until = valid_until
        account.forwarding_token = new_forwarding_token()
        account.save(
            update_fields=[
                "forwarding_token",
                "previous_forwarding_token",
                "previous_forwarding_valid_until",
            ]
        )
        # The address stays out of the log: anyone reading it could send mail to the channel.
        audit.record(
            actor=acting_agent,
            kind=AuditKind.CHANNEL_SECRET_ROTATED,
            obj=account,
            details={"secret": "forwarding_address", "previous_valid_until": valid_until},
        )
    return account


# --- receiving --------------------------------------------------------------------------------


def receive_forwarded(
    *, account: ChannelAccount, payload: bytes, smtp_envelope: dict[str, str]
) -> tuple[RawInbound, bool]:
    """Store one mail the SMTP service accepted for ``account`` (its merchant active) through
    the pipeline, as the webhook does: raw first, once per Message-ID, processed by a worker.
    A mail host's forwarding confirmation is kept in the same transaction as ignored, so it
    never opens a ticket.

    ``smtp_envelope``: MAIL FROM, RCPT TO, the client's address and greeting, kept with the
    payload for whoever reads it later. Raises AdapterError when it is not mail at all.
    """
    provider = confirmation_provider(payload)
    envelope = Envelope(body=payload, method="SMTP", headers=smtp_envelope)
    with transaction.atomic():
        raw, created = pipeline.receive(
            account=account, envelope=envelope, source=RawInbound.Source.SMTP
        )
        if created and provider:
            # The worker queued after commit finds it no longer received and leaves it.
            RawInbound.objects.filter(pk=raw.pk, state=RawInbound.State.RECEIVED).update(
                state=RawInbound.State.IGNORED,
                note=f"{CONFIRMATION_NOTE}{provider}",
                state_changed_at=timezone.now(),
            )
            raw.state = RawInbound.State.IGNORED
    return raw, created


# --- confirmation mails -----------------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    name: str
    # Sender domains (and their subdomains) the confirmation comes from; its link must point
    # into one of ``link_domains``, anything else is not shown.
    sender_domains: tuple[str, ...]
    link_domains: tuple[str, ...]


PROVIDERS = (
    Provider("Gmail", ("google.com", "gmail.com", "googlemail.com"), ("google.com",)),
    Provider("Tencent Exmail", ("exmail.qq.com",), ("qq.com",)),
    Provider("QQ Mail", ("qq.com", "foxmail.com", "tencent.com"), ("qq.com",)),
    Provider(
        "Outlook",
        ("microsoft.com", "outlook.com", "hotmail.com", "live.com"),
        ("microsoft.com", "live.com", "outlook.com"),
    ),
)

_FORWARD_WORDS = re.compile(r"forward|转发|轉寄|转寄|自动转发", re.IGNORECASE)
_CONFIRM_WORDS = re.compile(r"confirm|verif|确认|驗證|验证|確認", re.IGNORECASE)
_EXMAIL_WORDS = re.compile(r"exmail|企业邮", re.IGNORECASE)
# Gmail's "(#123456789) Gmail Forwarding Confirmation - ..."; others' "验证码：834211".
_SUBJECT_CODE = re.compile(r"\(#\s*(\d{4,12})\)")
_BODY_CODE = re.compile(
    r"(?:confirmation code|verification code|验证码|確認碼|确认码|驗證碼)\s*[:：为是]?\s*"
    r"([A-Za-z0-9]{4,12})\b",
    re.IGNORECASE,
)
_URL = re.compile(r"https://[^\s<>\"'）)】]+")
_REQUESTER = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _domain_matches(host: str, domains: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == domain or host.endswith("." + domain) for domain in domains)


def _provider_of(sender: str, subject: str) -> Provider | None:
    if not (_FORWARD_WORDS.search(subject) and _CONFIRM_WORDS.search(subject)):
        return None
    domain = sender.rpartition("@")[2]
    for provider in PROVIDERS:
        if _domain_matches(domain, provider.sender_domains):
            if provider.name == "QQ Mail" and _EXMAIL_WORDS.search(subject):
                return next(p for p in PROVIDERS if p.name == "Tencent Exmail")
            return provider
    return None


def confirmation_provider(payload: bytes) -> str:
    """The mail host whose forwarding confirmation this mail is ("Gmail"), or "" if it is not
    one: its sender's domain is the host's and its subject speaks of forwarding and confirming.
    Read from the header block alone, so it is cheap enough to ask of every mail."""
    sender, subject = summary_of_mail(payload)
    provider = _provider_of(sender, subject)
    return provider.name if provider else ""


@dataclass(frozen=True)
class ForwardingConfirmation:
    """What a merchant needs from a confirmation mail to finish turning forwarding on."""

    raw_id: int
    provider: str
    received_at: datetime
    code: str
    link: str
    requested_by: str  # the mailbox that asked to forward here


def read_confirmation(raw: RawInbound) -> ForwardingConfirmation | None:
    """The code and link of a stored confirmation mail. The link is only ever shown as text,
    never fetched, and only when it points into the provider's own domain."""
    payload = bytes(raw.payload)
    sender, subject = summary_of_mail(payload)
    provider = _provider_of(sender, subject)
    if provider is None:
        return None
    try:
        mail = parse_mail(payload, max_attachment_bytes=0)
    except AdapterError:
        text = ""
    else:
        text = mail.full_text or ""
    code_match = _SUBJECT_CODE.search(subject) or _BODY_CODE.search(text)
    link = next(
        (
            url.rstrip(".,;")
            for url in _URL.findall(text)
            if _domain_matches(urlsplit(url).hostname or "", provider.link_domains)
        ),
        "",
    )
    requester = next(
        (
            address
            for address in _REQUESTER.findall(f"{subject}\n{text}")
            if address.lower() != sender.lower()
            and not address.lower().endswith("@" + settings.HELPDESK_INBOUND_DOMAIN)
        ),
        "",
    )
    return ForwardingConfirmation(
        raw_id=raw.pk,
        provider=provider.name,
        received_at=raw.received_at,
        code=code_match.group(1) if code_match else "",
        link=link,
        requested_by=requester,
    )


def latest_confirmations(
    account: ChannelAccount, *, limit: int = 5
) -> list[ForwardingConfirmation]:
    """The channel's latest forwarding confirmation mails, newest first (its merchant active)."""
    rows = RawInbound.objects.filter(
        account=account, source=RawInbound.Source.SMTP, note__startswith=CONFIRMATION_NOTE
    ).order_by("-received_at", "-pk")[:limit]
    return [found for raw in rows if (found := read_confirmation(raw)) is not None]
