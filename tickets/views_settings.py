"""Settings pages for the merchant's groups: create, rename, choose the default, members.
Every view needs ``MANAGE_GROUPS``."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from helpdesk.permissions import Capability
from helpdesk.views_settings import acting_with, render_settings
from tickets import groups
from tickets.models import Group
from tickets.views import tenant_required

SECTION = "settings:groups"


@tenant_required
def group_list(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_GROUPS)
    rows = Group.objects.annotate(member_count=Count("groupmember", distinct=True)).order_by("name")
    return render_settings(
        request, acting, "settings/groups.html", {"groups": rows}, section=SECTION
    )


@require_POST
@tenant_required
def group_create(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_GROUPS)
    group = groups.create_group(acting_agent=acting, name=request.POST.get("name", ""))
    messages.success(request, _("The group %(name)s is created.") % {"name": group.name})
    return redirect("settings:group", pk=group.pk)


@tenant_required
def group_detail(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_GROUPS)
    group = get_object_or_404(Group, pk=pk)
    member_ids = set(group.members.values_list("pk", flat=True))
    people = (
        get_user_model().objects.filter(memberships__tenant=request.tenant).order_by("username")
    )
    return render_settings(
        request,
        acting,
        "settings/group.html",
        {
            "group": group,
            "members": [p for p in people if p.pk in member_ids],
            "others": [p for p in people if p.pk not in member_ids],
        },
        section=SECTION,
    )


@require_POST
@tenant_required
def group_rename(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_GROUPS)
    group = get_object_or_404(Group, pk=pk)
    groups.rename_group(acting_agent=acting, group=group, name=request.POST.get("name", ""))
    messages.success(request, _("The group is now called %(name)s.") % {"name": group.name})
    return redirect("settings:group", pk=group.pk)


@require_POST
@tenant_required
def group_default(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_GROUPS)
    group = get_object_or_404(Group, pk=pk)
    groups.set_default_group(acting_agent=acting, group=group)
    messages.success(request, _("New tickets now go to %(name)s.") % {"name": group.name})
    if request.POST.get("back") == "list":
        return redirect(SECTION)
    return redirect("settings:group", pk=group.pk)


def _member_of_merchant(request: HttpRequest, user_id: str | int) -> Any:
    """A person of the active merchant; anyone else (another merchant's people) is 404."""
    if not str(user_id).isdigit():
        raise Http404("No such person")
    return get_object_or_404(get_user_model(), pk=int(user_id), memberships__tenant=request.tenant)


@require_POST
@tenant_required
def group_member_add(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_GROUPS)
    group = get_object_or_404(Group, pk=pk)
    user = _member_of_merchant(request, request.POST.get("user", ""))
    groups.add_group_member(acting_agent=acting, group=group, user=user)
    messages.success(
        request,
        _("%(person)s is now in %(group)s.") % {"person": user.get_username(), "group": group.name},
    )
    return redirect("settings:group", pk=group.pk)


@require_POST
@tenant_required
def group_member_remove(request: HttpRequest, pk: int, user_id: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_GROUPS)
    group = get_object_or_404(Group, pk=pk)
    user = _member_of_merchant(request, user_id)
    groups.remove_group_member(acting_agent=acting, group=group, user=user)
    messages.success(
        request,
        _("%(person)s is no longer in %(group)s.")
        % {"person": user.get_username(), "group": group.name},
    )
    return redirect("settings:group", pk=group.pk)
