"""The header's presence switch: an agent chooses to be online, away or offline."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from helpdesk.permissions import acting_agent_for_request
from tickets import presence
from tickets.views import tenant_required


def _page_to_return_to(request: HttpRequest) -> str:
    """Where the switch was used: the form's ``next``, else the referring page, if either is
    on this site; else the ticket list."""
    for candidate in (request.POST.get("next", ""), request.headers.get("Referer", "")):
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return candidate
    return reverse("tickets:list")


@require_POST
@tenant_required
def set_my_presence(request: HttpRequest) -> HttpResponse:
    presence.set_presence(
        acting_agent=acting_agent_for_request(request), status=request.POST.get("status", "")
    )
    return redirect(_page_to_return_to(request))
