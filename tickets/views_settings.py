"""Settings pages for the merchant's groups: create, rename, choose the default, members, and
each group's routing, business hours, holidays and members' capacity.
Every view needs ``MANAGE_GROUPS``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.datastructures import MultiValueDict
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from helpdesk.errors import BadInput
from helpdesk.permissions import Capability
from helpdesk.views_settings import acting_with, render_settings
from tickets import groups
from tickets.group_forms import (
    DAY_FIELDS,
    CapacityForm,
    FirstErrorForm,
    HolidayForm,
    HoursForm,
    RoutingForm,
)
from tickets.models import Group, GroupHoliday, GroupMember
from tickets.views import tenant_required

SECTION = "settings:groups"
# What the admin typed into a form the last request refused, shown again beside the error.
DRAFT_KEY = "settings:group_draft"


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


def _keep_draft(request: HttpRequest, group: Group, form_id: str, exc: BadInput) -> None:
    request.session[DRAFT_KEY] = {
        "group": group.pk,
        "form": form_id,
        "data": {k: request.POST.getlist(k) for k in request.POST if k != "csrfmiddlewaretoken"},
        "field": exc.extra.get("field"),
        "message": exc.message,
    }


def _shown_form(
    form_class: type[FirstErrorForm],
    form_id: str,
    draft: Mapping[str, Any] | None,
    initial: dict[str, Any],
    **kwargs: Any,
) -> FirstErrorForm:
    """The form with the group's values, or, when it was just refused, with what was typed and
    the reason beside the field."""
    if not draft or draft.get("form") != form_id:
        return form_class(initial=initial, **kwargs)
    form = form_class(MultiValueDict(draft["data"]), **kwargs)
    if not form.errors:  # the form read it; the service refused it
        field = draft.get("field")
        form.add_error(field if field in form.fields else None, draft["message"])
    return form


@tenant_required
def group_detail(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_GROUPS)
    group = get_object_or_404(Group, pk=pk)
    draft = request.session.pop(DRAFT_KEY, None)
    if draft and draft.get("group") != group.pk:
        draft = None
    members = list(
        GroupMember.objects.filter(group=group).select_related("user").order_by("user__username")
    )
    member_ids = {m.user_id for m in members}
    people = (
        get_user_model().objects.filter(memberships__tenant=request.tenant).order_by("username")
    )
    hours_form = _shown_form(HoursForm, "hours", draft, HoursForm.initial_of(group))
    return render_settings(
        request,
        acting,
        "settings/group.html",
        {
            "group": group,
            "members": [
                (
                    m,
                    _shown_form(
                        CapacityForm,
                        f"capacity-{m.user_id}",
                        draft,
                        CapacityForm.initial_of(m),
                        auto_id=f"capacity-{m.user_id}-%s",
                    ),
                )
                for m in members
            ],
            "others": [p for p in people if p.pk not in member_ids],
            "routing_form": _shown_form(
                RoutingForm, "routing", draft, RoutingForm.initial_of(group)
            ),
            "hours_form": hours_form,
            "hours_days": [hours_form[name] for name in DAY_FIELDS],
            "time_zone": request.tenant.time_zone,
            "holidays": list(group.holidays.all()),
            "holiday_form": _shown_form(HolidayForm, "holiday", draft, {}),
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


def _save_form(
    request: HttpRequest,
    group: Group,
    form: FirstErrorForm,
    form_id: str,
    save: Callable[[dict[str, Any]], str],
) -> HttpResponse:
    """Read the posted form and save it; a refusal goes back to the page as a message, with
    what was typed kept in the form (``_shown_form``)."""
    try:
        if not form.is_valid():
            raise form.first_error()
        done = save(form.cleaned_data)
    except BadInput as exc:
        _keep_draft(request, group, form_id, exc)
        raise
    messages.success(request, done)
    return redirect(f"{reverse('settings:group', args=[group.pk])}#{form_id}")


@require_POST
@tenant_required
def group_routing(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_GROUPS)
    group = get_object_or_404(Group, pk=pk)

    def save(data: dict[str, Any]) -> str:
        groups.set_group_routing(
            acting_agent=acting,
            group=group,
            strategy=data["strategy"],
            sticky=data["sticky"],
            languages=data["languages"],
            channels=data["channels"],
            categories=data["categories"],
            persona=data["persona"],
            persona_description=data["persona_description"],
        )
        return _("The routing of %(group)s is saved.") % {"group": group.name}

    return _save_form(request, group, RoutingForm(request.POST), "routing", save)


@require_POST
@tenant_required
def group_hours(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_GROUPS)
    group = get_object_or_404(Group, pk=pk)

    def save(data: dict[str, Any]) -> str:
        groups.set_group_hours(
            acting_agent=acting,
            group=group,
            always_open=data["always_open"],
            weekly_hours=data["weekly_hours"],
            out_of_hours_reply=data["out_of_hours_reply"],
        )
        return _("The business hours of %(group)s are saved.") % {"group": group.name}

    return _save_form(request, group, HoursForm(request.POST), "hours", save)


@require_POST
@tenant_required
def group_holiday_add(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_GROUPS)
    group = get_object_or_404(Group, pk=pk)

    def save(data: dict[str, Any]) -> str:
        holiday = groups.add_group_holiday(
            acting_agent=acting, group=group, date=data["date"], name=data["name"]
        )
        return _("%(group)s is closed on %(date)s.") % {
            "group": group.name,
            "date": date_format(holiday.date),
        }

    return _save_form(request, group, HolidayForm(request.POST), "holiday", save)


@require_POST
@tenant_required
def group_holiday_remove(request: HttpRequest, pk: int, holiday_id: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_GROUPS)
    group = get_object_or_404(Group, pk=pk)
    holiday = get_object_or_404(GroupHoliday, pk=holiday_id, group=group)
    groups.remove_group_holiday(acting_agent=acting, group=group, holiday=holiday)
    messages.success(
        request,
        _("%(group)s is no longer closed on %(date)s.")
        % {"group": group.name, "date": date_format(holiday.date)},
    )
    return redirect(f"{reverse('settings:group', args=[group.pk])}#holidays")


@require_POST
@tenant_required
def group_member_capacity(request: HttpRequest, pk: int, user_id: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_GROUPS)
    group = get_object_or_404(Group, pk=pk)
    member = get_object_or_404(
        GroupMember.objects.select_related("user"), group=group, user=user_id
    )

    def save(data: dict[str, Any]) -> str:
        groups.set_member_capacity(
            acting_agent=acting,
            group=group,
            user=member.user,
            chat_capacity=data["chat_capacity"],
            ticket_capacity=data["ticket_capacity"],
        )
        return _(
            "%(person)s now takes up to %(chats)s live conversations and %(tickets)s open "
            "tickets at once."
        ) % {
            "person": member.user.get_username(),
            "chats": data["chat_capacity"],
            "tickets": data["ticket_capacity"],
        }

    return _save_form(
        request, group, CapacityForm(request.POST), f"capacity-{member.user_id}", save
    )
