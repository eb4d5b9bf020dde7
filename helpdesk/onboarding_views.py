"""The getting-started checklist page (/onboarding/), for a merchant's owners and admins."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from helpdesk import onboarding
from helpdesk.permissions import Capability, acting_agent_for_request
from helpdesk.views_settings import acting_with, render_settings
from tickets.views import tenant_required


def _chat_snippets(request: HttpRequest) -> list[tuple[str, str]]:
    """(channel name, the tag to paste) of each live chat channel, for the widget step."""
    from channels_in.models import WebChat
    from channels_in.views_chat import snippet

    return [
        (webchat.account.name, snippet(request, webchat))
        for webchat in WebChat.objects.select_related("account").filter(account__is_active=True)
    ]


def _forwarding(request: HttpRequest) -> list[tuple[object, str, object]]:
    """(channel, forwarding address, its newest confirmation mail or None) of each active email
    channel, for the email step: the code a mail host sends to finish forwarding is right there."""
    from channels_in import forwarding
    from channels_in.models import ChannelAccount

    accounts = ChannelAccount.objects.filter(kind="email", is_active=True).order_by("pk")[:5]
    found = []
    for account in accounts:
        account.tenant = request.tenant
        latest = forwarding.latest_confirmations(account, limit=1)
        found.append(
            (account, forwarding.forwarding_address(account), latest[0] if latest else None)
        )
    return found


@tenant_required
def checklist(request: HttpRequest) -> HttpResponse:
    """The steps with their state; agents and supervisors go to their tickets instead."""
    acting = acting_agent_for_request(request)
    if not onboarding.may_see_checklist(acting):
        return redirect("tickets:list")
    return render_settings(
        request,
        acting,
        "onboarding/checklist.html",
        {
            "checklist": onboarding.checklist(request.tenant),
            "may_skip": acting.can(Capability.MANAGE_MERCHANT),
            "chat_snippets": _chat_snippets(request),
            "forwarding": _forwarding(request),
        },
        section="onboarding",
    )


@require_POST
@tenant_required
def skip(request: HttpRequest, step: str) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_MERCHANT)
    onboarding.skip_step(acting_agent=acting, step=step, skip=request.POST.get("skip", "1") != "0")
    return redirect("onboarding")


@require_POST
@tenant_required
def dismiss(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_MEMBERS)
    dismissed = request.POST.get("dismissed", "1") != "0"
    onboarding.dismiss_reminder(acting_agent=acting, dismissed=dismissed)
    if dismissed:
        messages.success(
            request,
            _("The reminder is hidden; the checklist stays under Settings, Getting started."),
        )
        return redirect("tickets:list")
    return redirect("onboarding")
