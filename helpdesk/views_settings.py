"""The merchant's settings area: its small nav, members and roles, and the audit log.

Every view asks ``helpdesk.permissions`` for the capability it needs before it reads anything;
another merchant's ids answer 404 because every lookup goes through the active merchant.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from helpdesk import members
from helpdesk.errors import HelpdeskError, PermissionDenied
from helpdesk.permissions import ActingAgent, Capability, acting_agent_for_request, require
from tickets.views import tenant_required

SECTIONS = [
    ("settings:channels", gettext_lazy("Channels"), Capability.MANAGE_CHANNELS),
    ("settings:groups", gettext_lazy("Groups"), Capability.MANAGE_GROUPS),
    ("settings:service_levels", gettext_lazy("Service levels"), Capability.MANAGE_GROUPS),
    ("settings:members", gettext_lazy("Members"), Capability.MANAGE_MEMBERS),
    ("settings:empowerment", gettext_lazy("Remedy limits"), Capability.MANAGE_EMPOWERMENT),
    ("settings:reason_codes", gettext_lazy("Reason codes"), Capability.MANAGE_EMPOWERMENT),
    ("settings:macros", gettext_lazy("Macros"), Capability.SUPERVISE),
    ("settings:blocks", gettext_lazy("Blocked senders"), Capability.SUPERVISE),
    ("settings:escalation", gettext_lazy("Escalation"), Capability.MANAGE_EMPOWERMENT),
    ("webhook_subscriptions", gettext_lazy("Webhook subscriptions"), Capability.MANAGE_CHANNELS),
    ("webhooks", gettext_lazy("Webhook deliveries"), Capability.MANAGE_CHANNELS),
    ("settings:imports", gettext_lazy("Import"), Capability.IMPORT_DATA),
    ("settings:audit", gettext_lazy("Audit log"), Capability.READ_AUDIT_LOG),
    # The API keys page lives beside this area (helpdesk/api_key_views.py).
    ("api_keys", gettext_lazy("API keys"), Capability.MANAGE_API_KEYS),
    # The merchant's profile (helpdesk.account): admins and owners; export and deletion: owners.
    ("settings:account", gettext_lazy("Account"), Capability.MANAGE_MEMBERS),
    ("settings:exports", gettext_lazy("Data export"), Capability.MANAGE_MERCHANT),
    ("settings:deletion", gettext_lazy("Delete merchant"), Capability.MANAGE_MERCHANT),
    # The new merchant's checklist (helpdesk.onboarding), at /onboarding/.
    ("onboarding", gettext_lazy("Getting started"), Capability.MANAGE_MEMBERS),
]
AUDIT_PAGE_SIZE = 50


def acting_with(request: HttpRequest, capability: Capability) -> ActingAgent:
    """The signed-in person acting for the active merchant, refused (403) without ``capability``."""
    acting = acting_agent_for_request(request)
    require(acting, capability)
    return acting


def form_error(form: Any, exc: HelpdeskError) -> None:
    """Show a service's refusal on the form: on the field it names when the form has one, else
    above the form."""
    field = exc.extra.get("field")
    form.add_error(field if field in form.fields else None, exc.message)


def render_settings(
    request: HttpRequest,
    acting: ActingAgent,
    template: str,
    context: dict[str, Any],
    *,
    section: str,
    status: int = 200,
) -> HttpResponse:
    """A settings page with the nav of the sections this person's role opens."""
    nav = [(name, label) for name, label, capability in SECTIONS if acting.can(capability)]
    return render(
        request,
        template,
        {"settings_nav": nav, "settings_section": section, "acting": acting, **context},
        status=status,
    )


@tenant_required
def settings_home(request: HttpRequest) -> HttpResponse:
    """The first settings section this person may open."""
    acting = acting_agent_for_request(request)
    for name, _label, capability in SECTIONS:
        if acting.can(capability):
            return redirect(name)
    raise PermissionDenied(_("Your role does not allow changing this merchant's settings"))


# --- members ---------------------------------------------------------------------------------


@tenant_required
def member_list(request: HttpRequest) -> HttpResponse:
    """Who belongs, with the invite form and pending invitations (helpdesk.invitation_views)."""
    from helpdesk.invitation_views import render_members

    return render_members(request, acting_with(request, Capability.MANAGE_MEMBERS))


@require_POST
@tenant_required
def member_role(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_MEMBERS)
    membership = get_object_or_404(request.tenant.memberships.select_related("user"), pk=pk)
    role = request.POST.get("role", "")
    members.change_role(acting_agent=acting, membership=membership, role=role)
    messages.success(
        request,
        _("%(person)s is now %(role)s.")
        % {"person": membership.user.get_username(), "role": membership.get_role_display()},
    )
    return redirect("settings:members")


@require_POST
@tenant_required
def member_remove(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_MEMBERS)
    membership = get_object_or_404(request.tenant.memberships.select_related("user"), pk=pk)
    person = membership.user.get_username()
    members.deactivate_member(acting_agent=acting, membership=membership)
    messages.success(
        request, _("%(person)s no longer belongs to this merchant.") % {"person": person}
    )
    if membership.user_id == request.user.pk:
        return redirect("home")
    return redirect("settings:members")


# --- audit log -------------------------------------------------------------------------------


@tenant_required
def audit_log(request: HttpRequest) -> HttpResponse:
    """The merchant's audit log, newest first, by kind and by person."""
    from tickets import audit
    from tickets.models import AuditEvent

    acting = acting_with(request, Capability.READ_AUDIT_LOG)
    kind = request.GET.get("kind", "")
    person = request.GET.get("person", "")
    events = AuditEvent.objects.select_related("actor").order_by("-created_at", "-pk")
    if kind:
        events = events.filter(action=kind)
    if person == "system":
        events = events.filter(actor__isnull=True)
    elif person.isdigit():
        events = events.filter(actor_id=int(person))
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    kinds = sorted(
        AuditEvent.objects.values_list("action", flat=True).distinct().order_by(),
        key=audit.kind_label,
    )
    actor_ids = AuditEvent.objects.exclude(actor__isnull=True).values("actor_id").distinct()
    people = get_user_model().objects.filter(pk__in=actor_ids).order_by("username")
    return render_settings(
        request,
        acting,
        "settings/audit.html",
        {
            "page": page,
            "lines": audit.audit_lines(page),
            "kinds": [(action, audit.kind_label(action)) for action in kinds],
            "kind": kind,
            "people": people,
            "person": person,
            "pager_query": urlencode({k: v for k, v in (("kind", kind), ("person", person)) if v}),
        },
        section="settings:audit",
    )
