"""Settings pages for what the merchant's people may give customers, under
/settings/empowerment/: the policy (customer period, execution URL and its signing secret) and
the remedy limits per role and per person. Every view needs ``MANAGE_EMPOWERMENT``; another
merchant's limit id is 404."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from escalation import limits, policies
from escalation.forms import LimitCapsForm, LimitForm, PolicyForm
from escalation.models import RemedyKind, RemedyLimit
from helpdesk.errors import BadInput
from helpdesk.models import Membership, Role
from helpdesk.money import rounded
from helpdesk.permissions import ActingAgent, Capability
from helpdesk.views_settings import acting_with, form_error, render_settings
from tickets.views import tenant_required

SECTION = "settings:empowerment"
# Agents first: theirs are the limits a merchant sets most often.
_ROLE_ORDER = [Role.AGENT, Role.SUPERVISOR, Role.ADMIN, Role.OWNER]


def _limit(pk: int) -> RemedyLimit:
    """The active merchant's limit ``pk``; another merchant's id is 404."""
    return get_object_or_404(RemedyLimit.objects.select_related("user"), pk=pk)


def _memberships(request: HttpRequest) -> list[Membership]:
    return list(
        request.tenant.memberships.select_related("user").order_by("display_name", "user__username")
    )


def _sorted_limits() -> tuple[list[RemedyLimit], list[RemedyLimit]]:
    """The role limits and the personal ones, each in ladder order of the remedies."""
    kinds = list(RemedyKind.values)
    rows = list(RemedyLimit.objects.select_related("user"))
    by_role = sorted(
        (row for row in rows if row.role),
        key=lambda row: (_ROLE_ORDER.index(row.role), kinds.index(row.kind), row.currency),
    )
    personal = sorted(
        (row for row in rows if not row.role),
        key=lambda row: (row.user.get_username(), kinds.index(row.kind), row.currency),
    )
    return by_role, personal


def _page(
    request: HttpRequest,
    acting: ActingAgent,
    *,
    policy_form: PolicyForm | None = None,
    limit_form: LimitForm | None = None,
    status: int = 200,
) -> HttpResponse:
    policy = limits.policy()
    memberships = _memberships(request)
    if policy_form is None:
        policy_form = PolicyForm(
            initial={
                "customer_period_days": policy.customer_period_days,
                "execution_url": policy.execution_url,
            }
        )
    if limit_form is None:
        limit_form = LimitForm(
            memberships=memberships,
            initial={"who": f"role:{Role.AGENT}", "currency": request.tenant.default_currency},
        )
    by_role, personal = _sorted_limits()
    roles = {m.user_id: m.get_role_display() for m in memberships}
    return render_settings(
        request,
        acting,
        "settings/empowerment.html",
        {
            "policy": policy,
            "policy_form": policy_form,
            "limit_form": limit_form,
            "role_limits": by_role,
            "personal_limits": [(row, roles.get(row.user_id, "")) for row in personal],
        },
        section=SECTION,
        status=status,
    )


@tenant_required
def empowerment(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_EMPOWERMENT)
    return _page(request, acting)


@require_POST
@tenant_required
def empowerment_policy(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_EMPOWERMENT)
    form = PolicyForm(request.POST)
    if form.is_valid():
        try:
            policies.update_policy(
                acting_agent=acting,
                customer_period_days=form.cleaned_data["customer_period_days"],
                execution_url=form.cleaned_data["execution_url"],
            )
        except BadInput as exc:  # EgressRefused included
            form_error(form, exc)
        else:
            messages.success(request, _("The remedy policy is saved."))
            return redirect(SECTION)
    return _page(request, acting, policy_form=form, status=400)


@require_POST
@tenant_required
def empowerment_rotate(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_EMPOWERMENT)
    policies.update_policy(acting_agent=acting, rotate_execution_secret=True)
    messages.success(
        request,
        _(
            "The execution webhook has a new secret: every remedy is signed with it from now "
            "on, retries included. Update your order system now."
        ),
    )
    return redirect(SECTION)


@require_POST
@tenant_required
def empowerment_limit_new(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_EMPOWERMENT)
    form = LimitForm(request.POST, memberships=_memberships(request))
    if form.is_valid():
        role, user = form.holder()
        try:
            row = policies.set_limit(
                acting_agent=acting,
                kind=form.cleaned_data["kind"],
                currency=form.cleaned_data["currency"],
                role=role,
                user=user,
                **form.caps(),
            )
        except BadInput as exc:
            form_error(form, exc)
        else:
            messages.success(
                request,
                _("The limit for %(kind)s in %(currency)s is saved.")
                % {"kind": row.get_kind_display(), "currency": row.currency},
            )
            return redirect(SECTION)
    return _page(request, acting, limit_form=form, status=400)


def _as_text(value: Decimal | None, currency: str, *, share: bool = False) -> str:
    """A cap as its field shows it: the currency's decimal places, a share without zeros."""
    if value is None:
        return ""
    if share:
        text = f"{value:f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(rounded(value, currency))


def _limit_page(
    request: HttpRequest,
    acting: ActingAgent,
    row: RemedyLimit,
    *,
    form: LimitCapsForm,
    status: int = 200,
) -> HttpResponse:
    holder_role = ""
    if row.user_id is not None:
        membership = request.tenant.memberships.filter(user_id=row.user_id).first()
        holder_role = membership.get_role_display() if membership else ""
    return render_settings(
        request,
        acting,
        "settings/empowerment_limit.html",
        {"limit": row, "form": form, "holder_role": holder_role},
        section=SECTION,
        status=status,
    )


@tenant_required
def empowerment_limit(request: HttpRequest, pk: int) -> HttpResponse:
    """One limit's page: its caps to change."""
    acting = acting_with(request, Capability.MANAGE_EMPOWERMENT)
    row = _limit(pk)
    if request.method != "POST":
        form = LimitCapsForm(
            initial={
                field: _as_text(
                    getattr(row, field), row.currency, share=field == policies.SHARE_CAP
                )
                for field in policies.CAPS
            }
        )
        return _limit_page(request, acting, row, form=form)
    form = LimitCapsForm(request.POST)
    if form.is_valid():
        try:
            policies.set_limit(
                acting_agent=acting,
                kind=row.kind,
                currency=row.currency,
                role=row.role,
                user=row.user,
                **form.caps(),
            )
        except BadInput as exc:
            form_error(form, exc)
        else:
            messages.success(
                request,
                _("The limit for %(kind)s in %(currency)s is saved.")
                % {"kind": row.get_kind_display(), "currency": row.currency},
            )
            return redirect(SECTION)
    return _limit_page(request, acting, row, form=form, status=400)


@require_POST
@tenant_required
def empowerment_limit_remove(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_EMPOWERMENT)
    row = _limit(pk)
    policies.remove_limit(acting_agent=acting, limit=row)
    messages.success(
        request,
        _("The limit for %(kind)s in %(currency)s is removed.")
        % {"kind": row.get_kind_display(), "currency": row.currency},
    )
    return redirect(SECTION)
