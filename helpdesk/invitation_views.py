"""Invitations: the members page's invite form and pending list (settings), and the page the
emailed link opens (/invitations/<token>/)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from helpdesk import invitations
from helpdesk.errors import BadInput, HelpdeskError
from helpdesk.models import Invitation, Role
from helpdesk.permissions import ActingAgent, Capability
from helpdesk.signup import email_taken, email_unverified
from helpdesk.tenancy import SESSION_KEY
from helpdesk.views_settings import acting_with, form_error, render_settings
from tickets.views import tenant_required


class InviteForm(forms.Form):
    email = forms.EmailField(label=gettext_lazy("Email"))
    role = forms.ChoiceField(label=gettext_lazy("Role"), initial=Role.AGENT)

    def __init__(self, *args: Any, roles: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = roles


def _assignable_roles(acting: ActingAgent) -> list[tuple[str, str]]:
    """The roles this person may hand out: owners only by owners."""
    return [
        (value, str(label))
        for value, label in Role.choices
        if value != Role.OWNER or acting.can(Capability.MANAGE_MERCHANT)
    ]


def render_members(
    request: HttpRequest,
    acting: ActingAgent,
    *,
    invite_form: InviteForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The members page: who belongs, the invite form and the pending invitations."""
    roles = _assignable_roles(acting)
    memberships = request.tenant.memberships.select_related("user").order_by("user__username")
    return render_settings(
        request,
        acting,
        "settings/members.html",
        {
            "memberships": memberships,
            "roles": roles,
            "may_manage_owners": acting.can(Capability.MANAGE_MERCHANT),
            "invite_form": invite_form or InviteForm(roles=roles),
            "invitations": invitations.pending_invitations(request.tenant),
            "may_invite": not email_unverified(request.user),
            "now": timezone.now(),
        },
        section="settings:members",
        status=status,
    )


@require_POST
@tenant_required
def invite(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_MEMBERS)
    form = InviteForm(request.POST, roles=_assignable_roles(acting))
    if form.is_valid():
        try:
            invitation = invitations.invite_member(
                acting_agent=acting,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
            )
        except invitations.InvitationNotSent as exc:
            messages.warning(request, exc.message)
            return redirect("settings:members")
        except BadInput as exc:
            form_error(form, exc)
        else:
            messages.success(
                request, _("Invitation sent to %(email)s.") % {"email": invitation.email}
            )
            return redirect("settings:members")
    return render_members(request, acting, invite_form=form, status=400)


def _pending_of(request: HttpRequest, pk: int) -> Invitation:
    # A platform table: the merchant is named here; another merchant's id is a 404.
    return get_object_or_404(
        Invitation.objects.select_related("tenant"), pk=pk, tenant=request.tenant
    )


@require_POST
@tenant_required
def resend(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_MEMBERS)
    invitation = _pending_of(request, pk)
    try:
        invitations.resend_invitation(acting_agent=acting, invitation=invitation)
    except invitations.InvitationNotSent as exc:
        messages.warning(request, exc.message)
    else:
        messages.success(
            request, _("Invitation sent again to %(email)s.") % {"email": invitation.email}
        )
    return redirect("settings:members")


@require_POST
@tenant_required
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_MEMBERS)
    invitation = _pending_of(request, pk)
    invitations.revoke_invitation(acting_agent=acting, invitation=invitation)
    messages.success(
        request,
        _("The invitation to %(email)s was revoked; its link no longer works.")
        % {"email": invitation.email},
    )
    return redirect("settings:members")


# --- the page the emailed link opens -------------------------------------------------------------


class NewAccountForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Your name"), max_length=150)
    password1 = forms.CharField(
        label=gettext_lazy("Password"),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        strip=False,
    )


def _joined(request: HttpRequest, membership: Any) -> HttpResponse:
    request.session[SESSION_KEY] = membership.tenant_id
    messages.success(
        request,
        _("Welcome to %(merchant)s: you joined as %(role)s.")
        % {"merchant": membership.tenant.name, "role": membership.get_role_display()},
    )
    return redirect("tickets:list")


@never_cache
def accept(request: HttpRequest, token: str) -> HttpResponse:
    """Join a merchant by an invitation link: as the signed-in account, or with a new one."""
    try:
        invitation = invitations.invitation_for_token(token)
    except HelpdeskError as exc:
        return render(request, "invitations/unusable.html", {"error": exc}, status=exc.status)
    context: dict[str, Any] = {"invitation": invitation, "token": token}
    user = request.user
    if user.is_authenticated:
        if request.method == "POST":
            try:
                membership = invitations.accept_invitation(token=token, user=user)
            except HelpdeskError as exc:
                return render(
                    request, "invitations/unusable.html", {"error": exc}, status=exc.status
                )
            return _joined(request, membership)
        other_account = (user.email or "").lower() != invitation.email.lower()
        context["other_account"] = other_account
        return render(
            request, "invitations/accept.html", context, status=403 if other_account else 200
        )
    if email_taken(invitation.email):
        here = reverse("invitation", args=[token])
        context["login_url"] = f"{reverse('login')}?{urlencode({'next': here})}"
        return render(request, "invitations/sign_in_first.html", context)
    form = NewAccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = invitations.accept_invitation_with_new_account(
                token=token,
                name=form.cleaned_data["name"],
                password=form.cleaned_data["password1"],
            )
        except invitations.InvitationUnusable as exc:
            return render(request, "invitations/unusable.html", {"error": exc}, status=exc.status)
        except BadInput as exc:
            form_error(form, exc)
        else:
            login(request, user, backend="allauth.account.auth_backends.AuthenticationBackend")
            membership = user.memberships.select_related("tenant").get(tenant=invitation.tenant)
            return _joined(request, membership)
    context["form"] = form
    return render(
        request,
        "invitations/new_account.html",
        context,
        status=400 if request.method == "POST" else 200,
    )
