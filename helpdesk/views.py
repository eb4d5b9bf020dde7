"""Platform pages: health check, home redirect and switching the tenant one acts for."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from helpdesk.permissions import acting_agent_for, note_support_access
from helpdesk.tenancy import SESSION_KEY, tenants_of


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("tickets:list")
    return redirect("login")


@require_POST
@login_required
def switch_tenant(request: HttpRequest) -> HttpResponse:
    tenant = tenants_of(request.user).filter(slug=request.POST.get("tenant", "")).first()
    if tenant is None:
        raise Http404("No such merchant")
    request.session[SESSION_KEY] = tenant.pk
    # A platform operator switching into a merchant they do not belong to (from the top bar or
    # the admin's "Acting for merchant") is support access: the merchant's owners see it.
    note_support_access(request, acting_agent_for(request.user, tenant), always=True)
    next_url = request.POST.get("next", "")
    if next_url.startswith("/admin/") and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}
    ):
        return redirect(next_url)
    return redirect("tickets:list")
