"""Polling a merchant's support mailbox over IMAP into the inbound pipeline.

The folder is opened read-only (``EXAMINE``) and fetched with ``BODY.PEEK[]``, so polling never
marks mail read, moves or deletes it: the merchant's other mail clients see the mailbox as it was.
Progress is the highest UID handed to the pipeline, saved in the same transaction as the stored
message, so a crash loses nothing and refetches at most one message (which the pipeline's
deduplication turns into a no-op).
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from imapclient import IMAPClient, imap4, tls
from imapclient.exceptions import IMAPClientError, LoginError

from channels_in import pipeline
from channels_in.base import AdapterError, Envelope
from channels_in.crypto import decrypt_secret
from channels_in.models import ChannelAccount, Mailbox, RawInbound
from helpdesk import egress
from helpdesk.errors import EgressRefused

logger = logging.getLogger(__name__)

BATCH_SIZE = 50
TIMEOUT_SECONDS = 30
# BODY.PEEK[] is answered as BODY[]; a few servers answer RFC822 instead.
_PAYLOAD_KEYS = (b"BODY[]", b"RFC822")


def poll(*, mailbox_id: int) -> int:
    """Store the mailbox's mail not fetched before; return how many messages were new.

    Needs the mailbox's tenant to be active (the Celery task base activates it). Raises
    ``AdapterError``: permanent (the account is then paused) when the credentials are refused,
    transient when the server cannot be reached; both are recorded on the channel account.
    """
    mailbox = Mailbox.objects.select_related("account").get(pk=mailbox_id)
    account = mailbox.account
    if not account.is_active or account.paused or not mailbox.polls_imap:
        logger.info("mailbox %s: not polled (switched off, paused or not configured)", mailbox.pk)
        return 0
    try:
        stored = _poll_folder(mailbox)
    except AdapterError as exc:
        _record_failure(account, exc)
        raise
    except Exception as error:
        # Anything else (the database, a bug) is shown on the channel too, and retried.
        exc = AdapterError(f"IMAP polling failed: {type(error).__name__}: {error}")
        _record_failure(account, exc)
        raise exc from error
    now = timezone.now()
    Mailbox.objects.filter(pk=mailbox.pk).update(imap_last_polled_at=now)
    if account.last_error:
        ChannelAccount.objects.filter(pk=account.pk).update(last_error="")
    return stored


def _poll_folder(mailbox: Mailbox) -> int:
    password = decrypt_secret(mailbox.imap_password_encrypted)
    where = f"{mailbox.imap_username}@{mailbox.imap_host}:{mailbox.imap_port}"
    try:
        client = GuardedIMAPClient(
            mailbox.imap_host,
            port=mailbox.imap_port,
            ssl=mailbox.imap_use_ssl,
            timeout=TIMEOUT_SECONDS,
        )
    except EgressRefused as exc:
        # Every poll would be refused alike: pause until an admin fixes the server name.
        raise AdapterError(
            _("IMAP polling failed: %(reason)s") % {"reason": exc.message}, permanent=True
        ) from exc
    except (OSError, IMAPClientError, imaplib.IMAP4.error) as exc:
        # Refused, timed out, or something that is not an IMAP server answered (its greeting
        # would be a banner): all told alike, with a reference to the log.
        raise AdapterError(
            egress.merchant_safe_error(
                exc,
                what=_("the IMAP server %(server)s")
                % {"server": f"{mailbox.imap_host}:{mailbox.imap_port}"},
                destination=f"imap {where}",
            )
        ) from exc
    try:
        try:
            client.login(mailbox.imap_username, password)
        except LoginError as exc:
            raise AdapterError(
                f"The IMAP server {where} refused the username or password: {_describe(exc)}",
                permanent=True,
            ) from exc
        return _fetch_new_mail(client, mailbox)
    except OSError as exc:
        raise AdapterError(
            egress.merchant_safe_error(
                exc,
                what=_("the IMAP server %(server)s")
                % {"server": f"{mailbox.imap_host}:{mailbox.imap_port}"},
                destination=f"imap {where} folder {mailbox.imap_folder!r}",
            )
        ) from exc
    except IMAPClientError as exc:
        # Past the login the server's own words (a missing folder, say) are safe to show.
        raise AdapterError(
            f"IMAP polling of {where} folder {mailbox.imap_folder!r} failed: {_describe(exc)}"
        ) from exc
    finally:
        _close(client)


class _GuardedIMAP4(imap4.IMAP4WithTimeout):
    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return egress.open_connection(
            self.host,
            self.port,
            purpose="imap",
            timeout=timeout if timeout is not None else self._timeout,
        )


class _GuardedIMAP4_TLS(tls.IMAP4_TLS):
    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock = egress.open_connection(
            self.host,
            self.port,
            purpose="imap",
            timeout=timeout if timeout is not None else self._timeout,
        )
        # The certificate is checked against the name the merchant typed, not the address.
        return tls.wrap_socket(sock, self.ssl_context, self.host)


class GuardedIMAPClient(IMAPClient):
    """``IMAPClient`` that connects only where the egress guard allows, to the address it
    vetted at connect time, with TLS still checking the server's name."""

    def _create_IMAP4(self) -> imaplib.IMAP4:
        if self.stream:
            raise ValueError("a command stream is not a server: the egress guard cannot vet it")
        connect_timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _GuardedIMAP4_TLS(self.host, self.port, self.ssl_context, connect_timeout)
        return _GuardedIMAP4(self.host, self.port, connect_timeout)


def _fetch_new_mail(client: IMAPClient, mailbox: Mailbox) -> int:
    folder = client.select_folder(mailbox.imap_folder, readonly=True)
    uidvalidity = folder.get(b"UIDVALIDITY")
    first_poll = mailbox.imap_uidvalidity is None
    if uidvalidity is not None and int(uidvalidity) != mailbox.imap_uidvalidity:
        # The server renumbered the folder (or this is the first poll): our last UID means
        # nothing now. Fetch everything again; the pipeline drops what it already has.
        if mailbox.imap_uidvalidity is not None:
            logger.warning(
                "mailbox %s: UIDVALIDITY changed %s -> %s, refetching the folder",
                mailbox.pk,
                mailbox.imap_uidvalidity,
                uidvalidity,
            )
        mailbox.imap_uidvalidity = int(uidvalidity)
        mailbox.imap_last_uid = 0
        Mailbox.objects.filter(pk=mailbox.pk).update(
            imap_uidvalidity=mailbox.imap_uidvalidity, imap_last_uid=0
        )

    last_uid = mailbox.imap_last_uid
    if first_poll:
        # A newly connected mailbox may hold years of mail: take the recent days only (older
        # mail comes in with import_mail), and start counting after the newest message.
        since = (timezone.now() - timedelta(days=settings.HELPDESK_IMAP_FIRST_SYNC_DAYS)).date()
        new_uids = sorted(client.search(["SINCE", since]))
        everything = client.search(["ALL"])
        newest = max(everything, default=0)
    else:
        # "n:*" always matches the newest message, even when its UID is below n.
        new_uids = sorted(
            uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid
        )
        newest = 0
    outcomes = {"stored": 0, "already stored": 0, "not mail": 0, "vanished": 0}
    for batch in _batches(new_uids, BATCH_SIZE):
        response = client.fetch(batch, ["BODY.PEEK[]"])
        for uid in batch:
            payload = _payload_of(response.get(uid) or {})
            if payload is None:
                # Expunged between SEARCH and FETCH: UIDs are never reused, so move on.
                logger.warning("mailbox %s: UID %s vanished before it was fetched", mailbox.pk, uid)
                _advance(mailbox, uid)
                outcomes["vanished"] += 1
            else:
                outcomes[_store(mailbox, uid, payload)] += 1
    if newest:
        _advance(mailbox, newest)
    logger.info(
        "mailbox %s: %s; last UID %s",
        mailbox.pk,
        ", ".join(f"{count} {outcome}" for outcome, count in outcomes.items()),
        mailbox.imap_last_uid,
    )
    return outcomes["stored"]


def _store(mailbox: Mailbox, uid: int, payload: bytes) -> str:
    """Hand one message to the pipeline and move the mailbox past it, atomically.

    Returns what became of it: "stored", "already stored" (a redelivery) or "not mail".
    """
    outcome = "not mail"
    with transaction.atomic():
        try:
            with transaction.atomic():
                _raw, created = pipeline.receive(
                    account=mailbox.account,
                    envelope=Envelope.of(payload),
                    source=RawInbound.Source.IMAP,
                )
            outcome = "stored" if created else "already stored"
        except AdapterError as exc:
            if not exc.permanent:
                raise
            # Bytes that are not mail will never become mail: keep them as a failed record an
            # admin sees, and move on, so one bad message cannot stall the mailbox.
            logger.warning(
                "mailbox %s: UID %s (%d bytes) is not mail: %s", mailbox.pk, uid, len(payload), exc
            )
            pipeline.store_undeliverable(
                account=mailbox.account,
                payload=payload,
                source=RawInbound.Source.IMAP,
                error=f"IMAP UID {uid}: {exc.message}",
            )
        _advance(mailbox, uid)
    return outcome


def _advance(mailbox: Mailbox, uid: int) -> None:
    # Conditional so a slower, concurrent poll of the same mailbox never moves it backwards.
    Mailbox.objects.filter(
        pk=mailbox.pk, imap_uidvalidity=mailbox.imap_uidvalidity, imap_last_uid__lt=uid
    ).update(imap_last_uid=uid)
    mailbox.imap_last_uid = max(mailbox.imap_last_uid, uid)


def _payload_of(item: dict[bytes, object]) -> bytes | None:
    for key in _PAYLOAD_KEYS:
        value = item.get(key)
        if isinstance(value, bytes):
            return value
    return None


def _batches(uids: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(uids), size):
        yield uids[start : start + size]


def _record_failure(account: ChannelAccount, exc: AdapterError) -> None:
    """Show the admin why polling failed; a permanent failure pauses the channel."""
    changes: dict[str, object] = {"last_error": exc.message[:4000], "last_error_at": timezone.now()}
    if exc.permanent:
        changes["paused"] = True
        logger.error("channel account %s paused: %s", account.pk, exc.message)
    else:
        logger.warning("channel account %s: %s", account.pk, exc.message)
    ChannelAccount.objects.filter(pk=account.pk).update(**changes)
    for field, value in changes.items():
        setattr(account, field, value)


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except (OSError, IMAPClientError):
        # Already broken: drop the socket rather than mask the error we are raising.
        with contextlib.suppress(OSError):
            client.shutdown()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return text or type(exc).__name__
