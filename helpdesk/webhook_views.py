"""Settings → Webhooks: the log of every signed webhook posted to the merchant, and Resend.

For those who manage channels (owners and admins). Another merchant's delivery is a 404: every
lookup goes through the active merchant.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.dateparse import parse_datetime
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from helpdesk import signing, webhooks
from helpdesk.models import WebhookDelivery
from helpdesk.permissions import Capability
from helpdesk.views_settings import acting_with, render_settings
from tickets.views import tenant_required

PAGE_SIZE = 50


@require_http_methods(["GET", "HEAD"])
@tenant_required
def webhook_list(request: HttpRequest) -> HttpResponse:
    """The merchant's webhook deliveries, newest first, optionally of one state."""
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    state = request.GET.get("state", "")
    if state not in WebhookDelivery.State.values:
        state = ""
    deliveries = (
        WebhookDelivery.objects.select_related("message__ticket")
        .defer("body", "last_response", "attempt_log")
        .order_by("-created_at", "-pk")
    )
    if state:
        deliveries = deliveries.filter(state=state)
    page = Paginator(deliveries, PAGE_SIZE).get_page(request.GET.get("page"))
    return render_settings(
        request,
        acting,
        "settings/webhooks.html",
        {
            "page": page,
            "states": WebhookDelivery.State.choices,
            "state": state,
            "pager_query": urlencode({"state": state} if state else {}),
        },
        section="webhooks",
    )


@require_http_methods(["GET", "HEAD", "POST"])
@tenant_required
def webhook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One delivery: what was sent, every attempt, and Resend (POST)."""
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    delivery = get_object_or_404(WebhookDelivery.objects.select_related("message__ticket"), pk=pk)
    if request.method == "POST":
        webhooks.resend(acting_agent=acting, delivery=delivery)
        messages.success(request, _("The webhook is being sent again."))
        return redirect("webhook", pk=delivery.pk)
    return render_settings(
        request,
        acting,
        "settings/webhook_detail.html",
        {
            "delivery": delivery,
            "body": _readable_body(bytes(delivery.body)),
            "attempts": [
                {**attempt, "at": parse_datetime(attempt.get("at") or "")}
                for attempt in reversed(delivery.attempt_log or [])
            ],
            "headers": {
                signing.DELIVERY_HEADER: str(delivery.pk),
                signing.EVENT_HEADER: delivery.event,
                "Content-Type": webhooks.CONTENT_TYPE,
            },
        },
        section="webhooks",
    )


def _readable_body(body: bytes) -> str:
    """The body as people read it: JSON indented, anything else as text."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body.decode("utf-8", "replace")
