"""The inbound SMTP service: receives mail for the channels' forwarding addresses
(channels_in.forwarding) and stores it through the pipeline, exactly as the webhook does.

What a sending server hears:
- RCPT TO an address that names no channel: 550 with the reason; a channel switched off: 550;
  past the channel's quota (``HELPDESK_INBOUND_RATE``, shared with its webhook): 450, try later.
  A paused channel still takes its mail, as its webhook does: pausing stops polling and replies,
  and forwarded mail is stored so nothing is lost meanwhile.
- A message past ``HELPDESK_INBOUND_MAX_BYTES``: 552 (aiosmtpd's own size check, also announced
  in EHLO's SIZE and applied to MAIL FROM's SIZE=).
- DATA: one raw copy per channel among the recipients, all stored in one transaction, and only
  then 250. If storing fails, 451: the sender keeps the mail and tries again, and a message
  already stored is recognised by its Message-ID, so a retry never files it twice.

Database work runs in a small thread pool so a slow query never stalls the event loop, with
``close_old_connections`` around each unit of work as Django's request cycle does.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from django.conf import settings
from django.db import close_old_connections, transaction

from channels_in import forwarding
from channels_in.base import AdapterError
from channels_in.models import ChannelAccount
from helpdesk import tenancy, throttles

logger = structlog.get_logger(__name__)

T = TypeVar("T")

# Real mail breaks RFC 5321's 1,000-octet line limit (unwrapped HTML, long base64 lines from
# broken mailers); refusing it would bounce a customer's mail, so lines may be this long.
LINE_LENGTH_LIMIT = 64 * 1024
DATABASE_THREADS = 4


@dataclass
class RecipientCheck:
    """What RCPT TO answers, and the channel the address names when it is accepted."""

    reply: str
    account: ChannelAccount | None = None


@dataclass
class Delivery:
    """The channels one SMTP transaction delivers to, and which of its recipients named each."""

    accounts: dict[int, ChannelAccount] = field(default_factory=dict)
    recipients: dict[int, list[str]] = field(default_factory=dict)

    def add(self, account: ChannelAccount, address: str) -> None:
        self.accounts.setdefault(account.pk, account)
        self.recipients.setdefault(account.pk, []).append(address)


class NotStored(Exception):
    """The message could not be stored for a reason retrying will not change."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def check_recipient(address: str) -> RecipientCheck:
    """Whether mail to ``address`` can be taken (sync: runs in the database thread pool)."""
    if forwarding.split_address(address) is None:
        return RecipientCheck(
            f"550 5.7.1 <{address}>: relaying denied; this server only takes mail for "
            f"forwarding addresses at {settings.HELPDESK_INBOUND_DOMAIN}"
        )
    account = forwarding.find_channel(address)
    if account is None:
        return RecipientCheck(
            f"550 5.1.1 <{address}>: no such forwarding address; copy it again from the "
            "channel's settings page"
        )
    if not account.is_active:
        return RecipientCheck(f"550 5.2.1 <{address}>: this channel is switched off")
    quota = throttles.take(
        scope="inbound",
        subject=f"{account.tenant.slug}:{account.pk}",
        rate=settings.HELPDESK_INBOUND_RATE,
    )
    if not quota.allowed:
        return RecipientCheck(
            f"450 4.7.1 <{address}>: too many messages for this channel; try again in "
            f"{quota.retry_after_seconds} seconds"
        )
    return RecipientCheck("250 2.1.5 OK", account)


def store_delivery(delivery: Delivery, payload: bytes, session_meta: dict[str, str]) -> list[int]:
    """Store ``payload`` once for each channel of ``delivery``, all or nothing (sync: runs in
    the database thread pool). Returns the stored payloads' ids."""
    stored: list[int] = []
    with transaction.atomic():
        for account_id, account in delivery.accounts.items():
            meta = {**session_meta, "smtp-rcpt-to": ", ".join(delivery.recipients[account_id])}
            with tenancy.activate(account.tenant):
                try:
                    raw, created = forwarding.receive_forwarded(
                        account=account, payload=payload, smtp_envelope=meta
                    )
                except AdapterError as exc:
                    if exc.permanent:
                        raise NotStored(f"554 5.6.0 Not an email message: {exc.message}") from exc
                    raise
            logger.info(
                "smtp message stored",
                tenant=account.tenant.slug,
                channel=account.pk,
                raw_inbound_id=raw.pk,
                duplicate=not created,
                state=raw.state,
            )
            stored.append(raw.pk)
    return stored


def _in_database_thread(work: Callable[..., T], *args: Any) -> T:
    """Run ``work`` as Django runs a request: stale connections closed before and after."""
    close_old_connections()
    try:
        return work(*args)
    finally:
        close_old_connections()


class ForwardingHandler:
    """aiosmtpd handler: recipients are forwarding addresses, messages go into the pipeline."""

    def __init__(self, executor: Executor | None = None) -> None:
        self.executor = executor or ThreadPoolExecutor(
            max_workers=DATABASE_THREADS, thread_name_prefix="smtp-db"
        )

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, functools.partial(_in_database_thread, work, *args)
        )

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        # Nobody signs in here (mail is only taken for our own addresses): no AUTH line.
        return [line for line in responses if not line[4:].upper().startswith("AUTH")]

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        try:
            check = await self._run(check_recipient, address)
        except Exception:
            logger.exception("smtp recipient lookup failed", recipient=_masked(address))
            return "451 4.3.0 Temporary failure looking up the recipient; try again later"
        if check.account is None:
            logger.info("smtp recipient refused", recipient=_masked(address), reply=check.reply[:3])
            return check.reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        _delivery_of(envelope).add(check.account, address)
        return check.reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        delivery = _delivery_of(envelope)
        if not delivery.accounts:
            return "554 5.5.1 No valid recipients"
        payload = envelope.original_content or b""
        session_meta = {
            "smtp-mail-from": str(envelope.mail_from or ""),
            "smtp-peer": str(session.peer[0]) if session.peer else "",
            "smtp-helo": str(session.host_name or ""),
        }
        try:
            stored = await self._run(store_delivery, delivery, payload, session_meta)
        except NotStored as refused:
            logger.warning("smtp message refused", reply=refused.reply)
            return refused.reply
        except Exception:
            # Nothing was kept (one transaction): the sender holds the mail and retries.
            logger.exception("smtp message not stored", channels=list(delivery.accounts))
            return "451 4.3.0 The message could not be stored; try again later"
        return f"250 2.0.0 Message accepted ({len(stored)} stored)"

    def close(self) -> None:
        if isinstance(self.executor, ThreadPoolExecutor):
            self.executor.shutdown(wait=True)


def _masked(address: str) -> str:
    """An address as logs show it: a forwarding address's token is a secret."""
    local, at, domain = address.rpartition("@")
    slug, plus, _token = local.partition("+")
    return f"{slug}{plus}{'…' if plus else ''}{at}{domain}"


def _delivery_of(envelope: Envelope) -> Delivery:
    # aiosmtpd makes a fresh Envelope for every transaction (MAIL FROM, RSET): ours goes with it.
    delivery = getattr(envelope, "helpdesk_delivery", None)
    if delivery is None:
        delivery = Delivery()
        envelope.helpdesk_delivery = delivery  # type: ignore[attr-defined]
    return delivery


class HelpdeskSMTP(SMTP):
    line_length_limit = LINE_LENGTH_LIMIT


def tls_context() -> ssl.SSLContext | None:
    """The STARTTLS context from HELPDESK_SMTP_TLS_CERT and _KEY, or None without them."""
    if not settings.HELPDESK_SMTP_TLS_CERT:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.HELPDESK_SMTP_TLS_CERT, settings.HELPDESK_SMTP_TLS_KEY)
    return context


class ForwardingController(Controller):
    """The SMTP service on its own event loop thread: ``start()``, then ``stop()``."""

    def __init__(self, *, host: str, port: int, handler: ForwardingHandler | None = None) -> None:
        self.forwarding_handler = handler or ForwardingHandler()
        context = tls_context()
        super().__init__(
            self.forwarding_handler,
            hostname=host,
            port=port,
            # The name the server greets with; a sending server sees it in our banner.
            server_hostname=settings.HELPDESK_INBOUND_DOMAIN,
            data_size_limit=settings.HELPDESK_INBOUND_MAX_BYTES,
            enable_SMTPUTF8=True,
            ident="Helpdesk ESMTP",
            tls_context=context,
            require_starttls=False,
            auth_exclude_mechanism=["LOGIN", "PLAIN"],
        )
        # aiosmtpd logs every command at INFO, RCPT TO's forwarding addresses included: they
        # are secrets (anyone reading them could send mail to the channel).
        logging.getLogger("mail.log").setLevel(logging.WARNING)

    def factory(self) -> SMTP:
        return HelpdeskSMTP(self.handler, **self.SMTP_kwargs)

    def stop(self, no_assert: bool = False) -> None:
        super().stop(no_assert=no_assert)
        self.forwarding_handler.close()
