"""The shop's order events: ``POST /api/v1/shop/<merchant>/orders/``, signed like every webhook
(helpdesk.signing: HMAC-SHA256 over the timestamp, a full stop and the body) with the
merchant's order feed secret (Settings → Webhooks). The body::

    {"id": "evt_123", "type": "order.created" | "order.updated", "order": {...}}

where ``order`` is what ``POST /api/v1/orders/`` takes. The bytes are stored first
(``OrderEvent``, unique per merchant and ``id``, so a redelivery is a no-op), then the order is
created or updated by its number. Answers: 200 ``{"status": "applied", "order": number}``,
200 ``{"status": "duplicate"}`` for an event already applied, 403 for a bad signature, 422 for an
order that cannot be saved (the event stays ``failed`` with the reason, listed in the settings;
a redelivery tries it again), 404 for an unknown merchant.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from helpdesk import signing, tenancy, throttles
from helpdesk.errors import BadInput, HelpdeskError
from helpdesk.models import OrderEvent, OrderFeed, Tenant
from helpdesk.permissions import ActingAgent, Capability, SystemActor, require
from tickets import audit
from tickets.api_order_sync import OrderInputSerializer, save_order
from tickets.audit import AuditKind

logger = logging.getLogger(__name__)

SHOP = SystemActor(on_behalf_of="shop order feed")
EVENT_TYPES = ("order.created", "order.updated")


class OrderNotSaved(HelpdeskError):
    code = "order_not_saved"
    status = 422


def order_feed() -> OrderFeed:
    """The active merchant's order feed, with its secret made the first time it is asked for."""
    feed = OrderFeed.objects.first()
    if feed is None:
        try:
            with transaction.atomic():
                feed = OrderFeed.objects.create(secret=new_secret())
        except IntegrityError:
            feed = OrderFeed.objects.get()
    return feed


def new_secret() -> str:
    import secrets

    return secrets.token_urlsafe(32)


def rotate_feed_secret(*, acting_agent: ActingAgent) -> OrderFeed:
    """A new secret; the previous one still verifies for ``HELPDESK_SECRET_GRACE_HOURS``."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    with transaction.atomic():
        feed = order_feed()
        feed.refresh_from_db(from_queryset=OrderFeed.objects.select_for_update())
        feed.previous_secret = feed.secret
        feed.previous_secret_expires_at = timezone.now() + timedelta(
            hours=settings.HELPDESK_SECRET_GRACE_HOURS
        )
        feed.secret = new_secret()
        feed.save()
        audit.record(actor=acting_agent, kind=AuditKind.ORDER_FEED_SECRET_ROTATED, obj=feed)
    return feed


def accepted_secrets(feed: OrderFeed) -> list[str]:
    current = [feed.secret]
    if feed.previous_secret and (
        feed.previous_secret_expires_at is None or feed.previous_secret_expires_at > timezone.now()
    ):
        current.append(feed.previous_secret)
    return current


def receive(*, body: bytes, timestamp: str | None, signature: str | None) -> dict[str, Any]:
    """Verify, store, apply one order event of the active merchant (see the module)."""
    feed = order_feed()
    signing.verify(
        secrets=accepted_secrets(feed), body=body, timestamp=timestamp, signature=signature
    )
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    event_id = parsed.get("id") if isinstance(parsed, dict) else None
    if not isinstance(event_id, str | int) or not str(event_id).strip():
        event_id = "sha256:" + hashlib.sha256(body).hexdigest()
    event_id = str(event_id).strip()[:200]
    try:
        with transaction.atomic():
            event = OrderEvent.objects.create(event_id=event_id, body=body)
    except IntegrityError:
        event = OrderEvent.objects.get(event_id=event_id)
        if event.state == OrderEvent.State.APPLIED:
            return {"status": "duplicate", "event": event_id}
    return apply_event(event)


def apply_event(event: OrderEvent) -> dict[str, Any]:
    """Save the order the stored event describes; a refusal marks it failed and raises 422."""
    with transaction.atomic():
        event = OrderEvent.objects.select_for_update().get(pk=event.pk)
        if event.state == OrderEvent.State.APPLIED:
            return {"status": "duplicate", "event": event.event_id}
        try:
            with transaction.atomic():
                order, created = save_order(acting_agent=SHOP, data=_order_of(bytes(event.body)))
        except BadInput as refused:
            event.state = OrderEvent.State.FAILED
            event.error = refused.message
            event.save(update_fields=["state", "error"])
            failure = OrderNotSaved(refused.message, event=event.event_id, **refused.extra)
        else:
            event.state = OrderEvent.State.APPLIED
            event.error = ""
            event.order = order
            event.applied_at = timezone.now()
            event.save(update_fields=["state", "error", "order", "applied_at"])
            return {
                "status": "applied",
                "event": event.event_id,
                "order": order.number,
                "created": created,
            }
    raise failure


def _order_of(body: bytes) -> Any:
    try:
        parsed = json.loads(body)
    except ValueError:
        raise BadInput(_("The body is not JSON")) from None
    if not isinstance(parsed, dict):
        raise BadInput(_("Send the event as a JSON object"))
    kind = parsed.get("type", "order.updated")
    if kind not in EVENT_TYPES:
        raise BadInput(
            _("Unknown event type %(type)s") % {"type": str(kind)[:64]},
            field="type",
            known=list(EVENT_TYPES),
        )
    return parsed.get("order")


def retry_event(*, acting_agent: ActingAgent, event: OrderEvent) -> dict[str, Any]:
    """An admin applies a failed event again (after fixing what it needed, e.g. a customer)."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    return apply_event(event)


class FeedAddressThrottle(BaseThrottle):
    """The shop's events count against the inbound quota per merchant."""

    def allow_request(self, request: Request, view: Any) -> bool:
        self.decision = throttles.take(
            scope="order-feed",
            subject=str(view.kwargs.get("merchant", ""))[:60],
            rate=settings.HELPDESK_INBOUND_RATE,
        )
        return self.decision.allowed

    def wait(self) -> float | None:
        return self.decision.retry_after_seconds


class OrderFeedApi(APIView):
    """POST: one signed order event from the merchant's shop (see the module)."""

    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [FeedAddressThrottle, throttles.ApiClientAddressThrottle]

    @extend_schema(
        operation_id="shop_order_event",
        request=inline_serializer(
            "OrderEvent",
            {
                "id": serializers.CharField(),
                "type": serializers.ChoiceField(choices=EVENT_TYPES),
                "order": OrderInputSerializer(),
            },
        ),
        parameters=[
            OpenApiParameter(signing.TIMESTAMP_HEADER, str, OpenApiParameter.HEADER, required=True),
            OpenApiParameter(signing.SIGNATURE_HEADER, str, OpenApiParameter.HEADER, required=True),
        ],
        responses={
            200: inline_serializer(
                "OrderEventResult",
                {
                    "status": serializers.CharField(),
                    "event": serializers.CharField(),
                    "order": serializers.CharField(required=False),
                    "created": serializers.BooleanField(required=False),
                },
            )
        },
        auth=[],
    )
    def post(self, request: Request, merchant: str) -> Response:
        tenant = Tenant.objects.filter(slug=merchant, is_active=True).first()
        if tenant is None:
            raise Http404(_("No such merchant"))
        body = request.body
        with tenancy.activate(tenant):
            result = receive(
                body=body,
                timestamp=request.headers.get(signing.TIMESTAMP_HEADER),
                signature=request.headers.get(signing.SIGNATURE_HEADER),
            )
        return Response(result)
