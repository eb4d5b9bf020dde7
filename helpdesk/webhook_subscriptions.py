"""A merchant's webhook subscriptions: URLs told about ticket, message, remedy and escalation
events, each delivery signed with the subscription's own secret (helpdesk.signing), retried
with backoff and logged like every other webhook (helpdesk.webhooks, Settings → Webhooks).

The body of every event::

    {"id": "<delivery id>", "event": "ticket.updated", "created_at": "2026-12-01T09:00:00Z",
     "merchant": "acme", "data": {...the object as the API shows it...},
     "changes": {"status": ["open", "solved"]}}

``changes`` is there for ``ticket.updated`` (each changed field, old then new). The same body
goes out again, byte for byte, on every retry and resend, under the same
``X-Helpdesk-Delivery``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from helpdesk import http, tenancy, webhooks
from helpdesk.errors import BadInput, NotFound
from helpdesk.models import (
    SubscriptionDelivery,
    Tenant,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from helpdesk.permissions import ActingAgent, Capability, require
from tickets.audit import AuditKind

logger = logging.getLogger(__name__)

MAX_URL_CHARS = 2000
MAX_SUBSCRIPTIONS = 20


def checked_events(events: Any) -> list[str]:
    """The events asked for, in the order of ``WebhookEvent`` (400 for an unknown one)."""
    if not isinstance(events, list | tuple) or not events:
        raise BadInput(_("Choose at least one event"), field="events")
    unknown = [str(event) for event in events if event not in WebhookEvent.values]
    if unknown:
        raise BadInput(
            _("Unknown event %(event)s") % {"event": unknown[0][:64]},
            field="events",
            known=list(WebhookEvent.values),
        )
    return [event for event in WebhookEvent.values if event in events]


def checked_url(url: Any) -> str:
    """A public http(s) URL the platform may post to (helpdesk.egress), else 400."""
    if not isinstance(url, str):
        raise BadInput(_("Enter the URL to post events to"), field="url")
    checked = http.checked_merchant_url(
        url,
        field="url",
        max_chars=MAX_URL_CHARS,
        too_long=_("The URL is longer than %(most)s characters") % {"most": MAX_URL_CHARS},
    )
    if not checked:
        raise BadInput(_("Enter the URL to post events to"), field="url")
    return checked


def create_subscription(
    *, acting_agent: ActingAgent, url: str, events: list[str], description: str = ""
) -> WebhookSubscription:
    """An admin subscribes a URL to events; the URL must be a public address (checked again at
    every delivery). The secret that signs the deliveries is made here."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    checked = checked_url(url)
    chosen = checked_events(events)
    if WebhookSubscription.objects.count() >= MAX_SUBSCRIPTIONS:
        raise BadInput(
            _("A merchant has at most %(most)s webhook subscriptions") % {"most": MAX_SUBSCRIPTIONS}
        )
    with transaction.atomic():
        made = WebhookSubscription.objects.create(
            url=checked,
            events=chosen,
            description=(description or "").strip()[:200],
            secret=WebhookSubscription.new_secret(),
            created_by=acting_agent.user,
        )
        _audit(
            acting_agent,
            AuditKind.WEBHOOK_SUBSCRIBED,
            made,
            {"url": (None, made.url), "events": (None, made.events)},
        )
    return made


def change_subscription(
    *, acting_agent: ActingAgent, subscription: WebhookSubscription, **changes: Any
) -> WebhookSubscription:
    """Change a subscription's ``url``, ``events``, ``description`` or ``is_active``."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    with transaction.atomic():
        subscription.refresh_from_db(from_queryset=WebhookSubscription.objects.select_for_update())
        before = {field: getattr(subscription, field) for field in AUDITED_FIELDS}
        if "url" in changes:
            subscription.url = checked_url(changes["url"])
        if "events" in changes:
            subscription.events = checked_events(changes["events"])
        if "description" in changes:
            subscription.description = str(changes["description"] or "").strip()[:200]
        if "is_active" in changes:
            if not isinstance(changes["is_active"], bool):
                raise BadInput(_("is_active is true or false"), field="is_active")
            subscription.is_active = changes["is_active"]
        changed = {
            field: (before[field], getattr(subscription, field))
            for field in AUDITED_FIELDS
            if before[field] != getattr(subscription, field)
        }
        if not changed:
            return subscription
        subscription.save()
        _audit(acting_agent, AuditKind.WEBHOOK_SUBSCRIPTION_CHANGED, subscription, changed)
    return subscription


def rotate_secret(
    *, acting_agent: ActingAgent, subscription: WebhookSubscription
) -> WebhookSubscription:
    """A new signing secret; deliveries from now on (and resends) are signed with it."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    with transaction.atomic():
        subscription.secret = WebhookSubscription.new_secret()
        subscription.save(update_fields=["secret", "updated_at"])
        _audit(acting_agent, AuditKind.WEBHOOK_SECRET_ROTATED, subscription, None)
    return subscription


def delete_subscription(*, acting_agent: ActingAgent, subscription: WebhookSubscription) -> None:
    """Stop telling the URL anything; the log of what was sent stays."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    with transaction.atomic():
        _audit(
            acting_agent,
            AuditKind.WEBHOOK_UNSUBSCRIBED,
            subscription,
            {"url": (subscription.url, None), "events": (subscription.events, None)},
        )
        subscription.delete()


AUDITED_FIELDS = ("url", "events", "description", "is_active")


def _audit(
    acting_agent: ActingAgent, kind: Any, subscription: WebhookSubscription, changes: Any
) -> None:
    """The audit row of a change to a subscription (never its secret)."""
    from tickets import audit

    audit.record(actor=acting_agent, kind=kind, obj=subscription, changes=changes)


def access_subscription(*, acting_agent: ActingAgent, pk: Any) -> WebhookSubscription:
    """The active merchant's subscription, for those who manage channels; else 404/403."""
    require(acting_agent, Capability.MANAGE_CHANNELS)
    found = WebhookSubscription.objects.filter(pk=pk).first() if str(pk).isdigit() else None
    if found is None:
        raise NotFound(_("No such webhook subscription"))
    return found


def signing_secret(delivery: WebhookDelivery) -> str:
    """The secret a subscription's delivery is signed with ("" when it was deleted)."""
    link = (
        SubscriptionDelivery.objects.select_related("subscription")
        .filter(delivery_id=delivery.pk)
        .order_by("pk")
        .first()
    )
    return link.subscription.secret if link is not None else ""


# --- events ----------------------------------------------------------------------------------


def emit_after_commit(event: str, build: Callable[[], dict[str, Any] | None]) -> None:
    """Tell the active merchant's subscribers of ``event`` once the transaction commits.

    ``build`` makes the event's ``data`` then (``changes`` too, as ``{"data", "changes"}``
    when it returns that); it runs only when someone subscribed, so an event nobody listens to
    costs one small query. A failure here is logged, never the caller's error: the action it
    reports has committed.
    """
    tenant = tenancy.current_tenant()
    if tenant is None:
        return
    transaction.on_commit(lambda: _fan_out(tenant, event, build))


def subscribed_events(tenant_id: int) -> list[str]:
    """The events the merchant's active subscriptions want, read from the subscriptions."""
    events = {
        event
        for listed in WebhookSubscription.all_tenants.filter(
            tenant_id=tenant_id, is_active=True
        ).values_list("events", flat=True)
        for event in listed
    }
    return [event for event in WebhookEvent.values if event in events]


def note_subscribed_events(tenant_id: int) -> None:
    """Keep ``Tenant.webhook_events`` in step with the subscriptions (after each change)."""
    events = subscribed_events(tenant_id)
    Tenant.objects.filter(pk=tenant_id).update(webhook_events=events)
    active = tenancy.current_tenant()
    if active is not None and active.pk == tenant_id:
        active.webhook_events = events


def _fan_out(tenant: Tenant, event: str, build: Callable[[], dict[str, Any] | None]) -> None:
    try:
        # Read with the tenant (helpdesk.webhook_events keeps it): no query for an event
        # nobody subscribed to, which is most events of most merchants.
        if event not in (tenant.webhook_events or []):
            return
        with tenancy.activate(tenant):
            subscribers = [
                subscription
                for subscription in WebhookSubscription.objects.filter(is_active=True)
                if event in subscription.events
            ]
            if not subscribers:
                return
            built = build()
            if built is None:
                return
            for subscription in subscribers:
                queue_event(subscription=subscription, event=event, built=built, tenant=tenant)
    except Exception:
        logger.exception("webhook event %s of merchant %s not queued", event, tenant.pk)


def queue_event(
    *, subscription: WebhookSubscription, event: str, built: dict[str, Any], tenant: Tenant
) -> WebhookDelivery:
    """Store one signed delivery of ``event`` to ``subscription`` and have it sent."""
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(url=subscription.url, event=event, body=b"{}")
        payload = {
            "id": str(delivery.pk),
            "event": event,
            "created_at": timezone.now(),
            "merchant": tenant.slug,
            **built,
        }
        delivery.body = webhooks.encode_payload(payload)
        delivery.save(update_fields=["body"])
        SubscriptionDelivery.objects.create(delivery=delivery, subscription=subscription)
        from helpdesk.tasks import deliver_webhook

        deliver_webhook.delay_on_commit(tenant.pk, delivery.pk, after_attempt=0)
    return delivery
