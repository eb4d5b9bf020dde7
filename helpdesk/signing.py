"""The one signing scheme of every signed webhook, in both directions.

Merchants sign what they post to us with it, and we sign what we post to them, the same way.

Headers::

    X-Helpdesk-Timestamp: 1767225600
    X-Helpdesk-Signature: sha256=5c1f0e...(64 lowercase hex digits)

and, on what we post, also ``X-Helpdesk-Delivery: <delivery id>`` (the same id on every retry and
resend of one delivery, so a receiver can drop a repeat) and ``X-Helpdesk-Event: <event>``
(e.g. ``message.created``).

The signature is HMAC-SHA256, keyed with the shared secret (its UTF-8 bytes), over the
timestamp header's ASCII digits exactly as sent, a full stop, then the raw body bytes exactly
as sent (not re-encoded JSON)::

    signed = timestamp.encode("ascii") + b"." + body
    signature = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()

The timestamp is Unix time in whole seconds. A receiver refuses a request whose timestamp is
more than ``HELPDESK_WEBHOOK_TOLERANCE_SECONDS`` (300 by default) from its own clock, in either
direction, so a captured request cannot be replayed later; it compares in constant time, against
every secret it currently accepts (after a rotation: the new one and, for a grace period, the
previous one). The signature header may carry several comma-separated values
(``sha256=<hex>,sha256=<hex>``), one per secret while a sender rotates; one match is enough.
Values of another scheme than ``sha256`` are ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from django.conf import settings
from django.utils.translation import gettext as _

from helpdesk.errors import HelpdeskError

TIMESTAMP_HEADER = "X-Helpdesk-Timestamp"
SIGNATURE_HEADER = "X-Helpdesk-Signature"
DELIVERY_HEADER = "X-Helpdesk-Delivery"
EVENT_HEADER = "X-Helpdesk-Event"
SCHEME = "sha256"

# Unix seconds as ASCII digits; 15 digits reach far past any clock this code will see.
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class SignatureRefused(HelpdeskError):
    """A signed request that must not be believed. ``code`` says why: ``missing_signature``,
    ``bad_timestamp``, ``stale_timestamp`` or ``bad_signature``."""

    status = 403

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def hex_signature(secret: str, body: bytes, *, timestamp: str) -> str:
    """The lowercase hex HMAC-SHA256 of ``timestamp`` + "." + ``body`` under ``secret``."""
    signed = timestamp.encode("ascii") + b"." + bytes(body)
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(
    secret: str, body: bytes, *, timestamp: int | None = None, also: tuple[str, ...] = ()
) -> dict[str, str]:
    """The timestamp and signature headers for posting ``body`` signed with ``secret``, now (or
    at ``timestamp``). ``also`` adds signatures with further secrets, comma-separated: during a
    secret rotation the receiver still holding the old secret keeps verifying."""
    if not secret:
        raise ValueError("refusing to sign with an empty secret")
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    signatures = [
        f"{SCHEME}={hex_signature(key, body, timestamp=ts)}" for key in (secret, *also) if key
    ]
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: ", ".join(signatures)}


def verify(
    *,
    secrets: list[str],
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now: float | None = None,
) -> None:
    """Return if ``signature`` signs ``body`` at ``timestamp`` with one of ``secrets`` and the
    timestamp is within the tolerance of ``now``; else raise ``SignatureRefused``.

    Empty secrets are never accepted (an unset previous secret must not sign anything).
    """
    timestamp = (timestamp or "").strip()
    signature = (signature or "").strip()
    if not timestamp or not signature:
        raise SignatureRefused(
            "missing_signature",
            _("The request is not signed: it needs the %(timestamp)s and %(signature)s headers.")
            % {"timestamp": TIMESTAMP_HEADER, "signature": SIGNATURE_HEADER},
        )
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureRefused(
            "bad_timestamp",
            _("%(header)s must be Unix time in whole seconds.") % {"header": TIMESTAMP_HEADER},
        )
    tolerance = settings.HELPDESK_WEBHOOK_TOLERANCE_SECONDS
    clock = time.time() if now is None else now
    if abs(clock - int(timestamp)) > tolerance:
        raise SignatureRefused(
            "stale_timestamp",
            _(
                "The request's timestamp is more than %(seconds)s seconds away from the "
                "helpdesk's clock: sign each request when it is sent, and check the sender's clock."
            )
            % {"seconds": tolerance},
        )
    offered = _offered_digests(signature)
    matched = False
    # Every secret against every offered value, without stopping at a match: how long this
    # takes says nothing about which secret, or whether any, matched.
    for secret in secrets:
        if not secret:
            continue
        expected = hex_signature(secret, body, timestamp=timestamp)
        for candidate in offered:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureRefused(
            "bad_signature",
            _(
                "The signature does not match the body: sign the exact bytes sent, with the "
                "channel's current secret."
            ),
        )


def _offered_digests(header: str) -> list[str]:
    """The ``sha256=`` values of a signature header, lowercased; malformed ones are dropped."""
    digests = []
    for part in header.split(","):
        scheme, separator, value = part.strip().partition("=")
        value = value.strip().lower()
        if separator and scheme.strip().lower() == SCHEME and _HEX_DIGEST.fullmatch(value):
            digests.append(value)
    return digests
