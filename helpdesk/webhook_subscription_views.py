"""Settings → Webhook subscriptions: the URLs told about events, each with its deliveries
(resent from the delivery log's page), and the order feed the merchant's shop posts to.

Owners and admins (those who manage channels). Another merchant's id is 404."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from helpdesk import webhook_subscriptions as subscriptions
from helpdesk.errors import HelpdeskError
from helpdesk.models import OrderEvent, WebhookDelivery, WebhookEvent, WebhookSubscription
from helpdesk.permissions import Capability
from helpdesk.views_settings import acting_with, form_error, render_settings
from tickets import api_order_feed
from tickets.views import tenant_required

PAGE_SIZE = 50
SECTION = "webhook_subscriptions"


class SubscriptionForm(forms.Form):
    url = forms.CharField(label=gettext_lazy("URL"), max_length=subscriptions.MAX_URL_CHARS)
    events = forms.MultipleChoiceField(
        label=gettext_lazy("Events"),
        choices=WebhookEvent.choices,
        widget=forms.CheckboxSelectMultiple,
    )
    description = forms.CharField(label=gettext_lazy("Description"), max_length=200, required=False)
    is_active = forms.BooleanField(label=gettext_lazy("Active"), required=False, initial=True)


@require_http_methods(["GET", "HEAD", "POST"])
@tenant_required
def subscription_list(request: HttpRequest) -> HttpResponse:
    """Every subscription, a form for a new one (its secret shown once), and the order feed."""
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    form = SubscriptionForm(request.POST or None)
    made = None
    if request.method == "POST" and form.is_valid():
        try:
            made = subscriptions.create_subscription(
                acting_agent=acting,
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
                description=form.cleaned_data["description"],
            )
        except HelpdeskError as refused:
            form_error(form, refused)
        else:
            messages.success(request, _("Subscribed. Copy the signing secret now."))
            form = SubscriptionForm()
    feed = api_order_feed.order_feed()
    response = render_settings(
        request,
        acting,
        "settings/webhook_subscriptions.html",
        {
            "form": form,
            "made": made,
            "subscriptions": WebhookSubscription.objects.all(),
            "feed": feed,
            "feed_url": request.build_absolute_uri(
                reverse("api-shop-order-events", args=[request.tenant.slug])
            ),
            "order_events": OrderEvent.objects.select_related("order")
            .defer("body")
            .order_by("-received_at")[:20],
        },
        section=SECTION,
        status=400 if request.method == "POST" and made is None else 200,
    )
    response["Cache-Control"] = "no-store"  # secrets are on the page
    return response


def _subscription(request: HttpRequest, pk: int) -> WebhookSubscription:
    found = WebhookSubscription.objects.filter(pk=pk).first()
    if found is None:
        raise Http404(_("No such webhook subscription"))
    return found


@require_http_methods(["GET", "HEAD", "POST"])
@tenant_required
def subscription_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One subscription: change it, rotate its secret, delete it; and its deliveries."""
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    subscription = _subscription(request, pk)
    action = request.POST.get("action", "save")
    new_secret = ""
    form = SubscriptionForm(
        request.POST if request.method == "POST" and action == "save" else None,
        initial={
            "url": subscription.url,
            "events": subscription.events,
            "description": subscription.description,
            "is_active": subscription.is_active,
        },
    )
    if request.method == "POST":
        if action == "delete":
            subscriptions.delete_subscription(acting_agent=acting, subscription=subscription)
            messages.success(request, _("The subscription was deleted."))
            return redirect("webhook_subscriptions")
        if action == "rotate":
            subscriptions.rotate_secret(acting_agent=acting, subscription=subscription)
            messages.success(request, _("A new signing secret is in use."))
            new_secret = subscription.secret  # shown on this answer only
        elif form.is_valid():
            try:
                subscriptions.change_subscription(
                    acting_agent=acting, subscription=subscription, **form.cleaned_data
                )
            except HelpdeskError as refused:
                form_error(form, refused)
            else:
                messages.success(request, _("Saved."))
                return redirect("webhook_subscription", pk=subscription.pk)
    deliveries = (
        WebhookDelivery.objects.filter(subscription_links__subscription=subscription)
        .defer("body", "last_response", "attempt_log")
        .order_by("-created_at", "-pk")
    )
    page = Paginator(deliveries, PAGE_SIZE).get_page(request.GET.get("page"))
    response = render_settings(
        request,
        acting,
        "settings/webhook_subscription.html",
        {
            "subscription": subscription,
            "form": form,
            "page": page,
            "pager_query": "",
            "new_secret": new_secret,
        },
        section=SECTION,
        status=400 if request.method == "POST" and not new_secret else 200,
    )
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@tenant_required
def order_feed_rotate(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    api_order_feed.rotate_feed_secret(acting_agent=acting)
    messages.success(
        request, _("The order feed has a new secret; the old one works 24 more hours.")
    )
    return redirect("webhook_subscriptions")


@require_POST
@tenant_required
def order_event_retry(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    event = OrderEvent.objects.filter(pk=pk).first()
    if event is None:
        raise Http404(_("No such order event"))
    try:
        api_order_feed.retry_event(acting_agent=acting, event=event)
    except api_order_feed.OrderNotSaved as refused:
        messages.error(request, refused.message)
    else:
        messages.success(request, _("The order event was applied."))
    return redirect("webhook_subscriptions")
