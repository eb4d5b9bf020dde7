"""Signed webhooks the helpdesk posts to merchants: queue one, try it once, send it again.

Every webhook is a ``WebhookDelivery`` row holding exactly the bytes that are signed and sent,
so a retry or a resend posts the same body under the same ``X-Helpdesk-Delivery`` id and the
receiver can drop a repeat. Deliveries are signed with ``helpdesk.signing`` and posted through
the guarded client ``helpdesk.http``; each attempt is recorded on the row, which is what the
merchant's delivery log (Settings → Webhooks) shows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from helpdesk import http, signing
from helpdesk.models import WebhookDelivery
from helpdesk.permissions import ActingAgent, Capability, require

ATTEMPT_LOG_LENGTH = 20
CONTENT_TYPE = "application/json; charset=utf-8"


class WebhookFailed(Exception):
    """An attempt that did not deliver. ``message`` is safe to show the merchant;
    ``permanent`` says that trying again cannot help (the row is then ``failed``)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent

    def __reduce__(self) -> tuple[type, tuple[str, bool]]:
        return (type(self), (self.message, self.permanent))  # Celery stores it with a retry


class AttemptSuperseded(Exception):
    """Another attempt of the delivery started since the caller read it (or it was delivered
    meanwhile): nothing was sent."""


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The body of a webhook: compact JSON in UTF-8, non-ASCII characters as they are."""
    return json.dumps(
        payload, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")


def queue(
    *,
    url: str,
    event: str,
    payload: dict[str, Any],
    channel_account: Any = None,
    message: Any = None,
) -> WebhookDelivery:
    """Store a webhook and have it delivered after the caller's transaction commits, retried
    with backoff (``helpdesk.tasks.deliver_webhook``), signed with the channel account's secret.

    For webhooks that have no retry driver of their own; the URL is checked when it is sent,
    so a refused destination shows in the delivery log rather than failing the caller.
    """
    delivery = WebhookDelivery.objects.create(
        url=url,
        event=event,
        body=encode_payload(payload),
        channel_account=channel_account,
        message=message,
    )
    _enqueue(delivery)
    return delivery


def send_signed(
    *,
    delivery: WebhookDelivery,
    secret: str,
    previous_secret: str = "",
    headers: Mapping[str, str] | None = None,
) -> None:
    """Try ``delivery`` once, now, signed with ``secret`` (and with ``previous_secret`` while a
    rotation's grace lasts, so the receiver can switch at its own pace), and record the attempt.

    A 2xx answer marks it delivered. Otherwise it is marked ``retrying`` (the failure may pass)
    or ``failed`` (it cannot: a 4xx, a redirect, a refused destination, no secret) and
    ``WebhookFailed`` is raised; whether and when to try again is the caller's decision.
    ``headers`` are sent too (e.g. ``Idempotency-Key``); they cannot replace the signing,
    delivery or event headers.
    Raises ``AttemptSuperseded``, sending nothing, when another attempt started since
    ``delivery`` was read. Call it outside a transaction: nothing may stay locked while the
    merchant's server takes its time.
    """
    _claim(delivery)
    started_at = timezone.now()
    started = time.monotonic()
    body = bytes(delivery.body)
    if not secret:
        error = _("There is no secret to sign this webhook with: its channel was removed.")
        _record(delivery, started_at=started_at, ms=0, status=None, error=error, permanent=True)
        raise WebhookFailed(error, permanent=True)
    sent_headers = {
        **(headers or {}),
        "Content-Type": CONTENT_TYPE,
        **signing.sign(secret, body, also=(previous_secret,) if previous_secret else ()),
        signing.DELIVERY_HEADER: str(delivery.pk),
        signing.EVENT_HEADER: delivery.event,
    }
    try:
        response = http.post(
            delivery.url,
            body=body,
            headers=sent_headers,
            timeout=settings.HELPDESK_WEBHOOK_TIMEOUT_SECONDS,
        )
    except http.HttpFailure as failure:
        _record(
            delivery,
            started_at=started_at,
            ms=_elapsed_ms(started),
            status=failure.status,
            error=failure.message,
            response=failure.body,
            permanent=failure.permanent,
        )
        raise WebhookFailed(failure.message, permanent=failure.permanent) from failure
    _record(
        delivery,
        started_at=started_at,
        ms=_elapsed_ms(started),
        status=response.status,
        error="",
        response=response.body,
    )


def schedule_retry(*, delivery: WebhookDelivery, countdown: float) -> None:
    """Note when the next attempt of a ``retrying`` delivery is due (the log shows it)."""
    when = timezone.now() + timedelta(seconds=countdown)
    WebhookDelivery.objects.filter(
        pk=delivery.pk, attempts=delivery.attempts, state=WebhookDelivery.State.RETRYING
    ).update(next_attempt_at=when, updated_at=timezone.now())
    delivery.next_attempt_at = when


def give_up(*, delivery: WebhookDelivery) -> None:
    """Mark a ``retrying`` delivery ``failed``: no attempt follows (an admin may resend it)."""
    updated = WebhookDelivery.objects.filter(
        pk=delivery.pk, attempts=delivery.attempts, state=WebhookDelivery.State.RETRYING
    ).update(state=WebhookDelivery.State.FAILED, next_attempt_at=None, updated_at=timezone.now())
    if updated:
        delivery.state = WebhookDelivery.State.FAILED
        delivery.next_attempt_at = None


def resend(*, acting_agent: ActingAgent, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again, whatever became of it: the same bytes under the same delivery id,
    retried like a new one. Needs the right to manage channels; audited."""
    from tickets.audit import AuditKind, record

    require(acting_agent, Capability.MANAGE_CHANNELS)
    with transaction.atomic():
        delivery.refresh_from_db(from_queryset=WebhookDelivery.objects.select_for_update())
        old_state = delivery.state
        delivery.state = WebhookDelivery.State.PENDING
        delivery.next_attempt_at = None
        delivery.save(update_fields=["state", "next_attempt_at", "updated_at"])
        record(
            actor=acting_agent,
            kind=AuditKind.WEBHOOK_RESENT,
            obj=delivery,
            changes={"state": (old_state, delivery.state)} if old_state != delivery.state else None,
            details={"event": delivery.event, "url": delivery.url},
        )
        _enqueue(delivery)
    return delivery


# --- internals -------------------------------------------------------------------------------


def _enqueue(delivery: WebhookDelivery) -> None:
    from helpdesk.tasks import deliver_webhook

    # After commit (the task base's delay_on_commit); a broker that is down leaves the row
    # pending in the log, where an admin sees it and may resend it.
    deliver_webhook.delay_on_commit(
        delivery.tenant_id, delivery.pk, after_attempt=delivery.attempts
    )


def _claim(delivery: WebhookDelivery) -> None:
    """Count this attempt, unless another one started since ``delivery`` was read."""
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts)
        .exclude(state=WebhookDelivery.State.DELIVERED)
        .update(attempts=F("attempts") + 1, updated_at=timezone.now())
    )
    if claimed != 1:
        raise AttemptSuperseded(f"webhook delivery {delivery.pk} was attempted meanwhile")
    delivery.attempts += 1


def _record(
    delivery: WebhookDelivery,
    *,
    started_at: Any,
    ms: int,
    status: int | None,
    error: str,
    response: bytes = b"",
    permanent: bool = False,
) -> None:
    """Write the attempt's outcome on the row (and on ``delivery``)."""
    if not error:
        state = WebhookDelivery.State.DELIVERED
    else:
        state = WebhookDelivery.State.FAILED if permanent else WebhookDelivery.State.RETRYING
    entry = {"at": started_at.isoformat(), "status": status, "error": error, "ms": ms}
    with transaction.atomic():
        current = (
            WebhookDelivery.objects.select_for_update()
            .filter(pk=delivery.pk)
            .values_list("attempt_log", flat=True)
            .get()
        )
        delivery.attempt_log = [*(current or []), entry][-ATTEMPT_LOG_LENGTH:]
        delivery.state = state
        delivery.last_status_code = status
        delivery.last_error = error
        # PostgreSQL text cannot hold NUL; the answer is an excerpt for people to read anyway.
        delivery.last_response = response.decode("utf-8", "replace").replace("\x00", "")
        delivery.next_attempt_at = None
        if state == WebhookDelivery.State.DELIVERED:
            delivery.delivered_at = timezone.now()
        delivery.save(
            update_fields=[
                "attempt_log",
                "state",
                "last_status_code",
                "last_error",
                "last_response",
                "next_attempt_at",
                "delivered_at",
                "updated_at",
            ]
        )


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
