"""Reason codes in the agent's pages: the settings page under /settings/reason-codes/ where a
merchant's admins list, add and edit them (``MANAGE_EMPOWERMENT``; another merchant's code is
404), and the ticket page's reason select (anyone who may work the ticket)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, Capability, acting_agent_for_request
from helpdesk.views_settings import acting_with, form_error, render_settings
from tickets import reasons, selectors
from tickets.models import ReasonCode
from tickets.views import tenant_required

SECTION = "settings:reason_codes"


class ReasonCodeForm(forms.Form):
    """A code's label, complaint flag, whether agents are offered it and its place in the list;
    the code itself only when adding (``tickets.reasons`` checks all of them)."""

    code = forms.CharField(
        label=gettext_lazy("Code"),
        max_length=reasons.MAX_CODE_CHARS,
        help_text=gettext_lazy(
            "One word that never changes, e.g. damaged or wrong_item: the API and reports use it."
        ),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    label = forms.CharField(
        label=gettext_lazy("Label"),
        max_length=reasons.MAX_LABEL_CHARS,
        help_text=gettext_lazy("What agents read, e.g. Arrived damaged 到货破损."),
    )
    is_complaint = forms.BooleanField(
        label=gettext_lazy("A complaint (counts in the escalation rate)"), required=False
    )
    active = forms.BooleanField(
        label=gettext_lazy("Offered to agents"), required=False, initial=True
    )
    position = forms.IntegerField(
        label=gettext_lazy("Position in the list"),
        min_value=0,
        max_value=reasons.MAX_POSITION,
        required=False,
        help_text=gettext_lazy("Lower comes first. Empty: after the last one."),
    )

    def __init__(self, *args: Any, adding: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not adding:
            del self.fields["code"]
            self.fields["position"].help_text = gettext_lazy("Lower comes first.")


def _reason_code(pk: int) -> ReasonCode:
    """The active merchant's reason code ``pk``; another merchant's id is 404."""
    return get_object_or_404(ReasonCode, pk=pk)


def _list_page(
    request: HttpRequest, acting: ActingAgent, *, form: ReasonCodeForm | None = None
) -> HttpResponse:
    return render_settings(
        request,
        acting,
        "settings/reason_codes.html",
        {
            "rows": reasons.reason_codes_with_use(),
            "form": form or ReasonCodeForm(initial={"active": True}),
        },
        section=SECTION,
        status=200 if form is None else 400,
    )


@tenant_required
def reason_code_list(request: HttpRequest) -> HttpResponse:
    """The merchant's reason codes, how many tickets each has, and a form to add one."""
    acting = acting_with(request, Capability.MANAGE_EMPOWERMENT)
    if request.method != "POST":
        return _list_page(request, acting)
    form = ReasonCodeForm(request.POST)
    if form.is_valid():
        try:
            row = reasons.save_reason_code(acting_agent=acting, **form.cleaned_data)
        except BadInput as exc:
            form_error(form, exc)
        else:
            messages.success(request, _("The reason code %(code)s is added.") % {"code": row.code})
            return redirect(SECTION)
    return _list_page(request, acting, form=form)


@tenant_required
def reason_code_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """One reason code's page: its label, complaint flag, whether it is offered, its place."""
    acting = acting_with(request, Capability.MANAGE_EMPOWERMENT)
    row = _reason_code(pk)
    status = 200
    if request.method != "POST":
        form = ReasonCodeForm(
            adding=False,
            initial={
                "label": row.label,
                "is_complaint": row.is_complaint,
                "active": row.active,
                "position": row.position,
            },
        )
    else:
        form = ReasonCodeForm(request.POST, adding=False)
        if form.is_valid():
            try:
                reasons.save_reason_code(
                    acting_agent=acting, reason_code=row, code=row.code, **form.cleaned_data
                )
            except BadInput as exc:
                form_error(form, exc)
            else:
                messages.success(
                    request, _("The reason code %(code)s is saved.") % {"code": row.code}
                )
                return redirect(SECTION)
        status = 400
    return render_settings(
        request,
        acting,
        "settings/reason_code.html",
        {"reason_code": row, "form": form},
        section=SECTION,
        status=status,
    )


@require_POST
@tenant_required
def ticket_reason(request: HttpRequest, number: int) -> HttpResponse:
    """The ticket page's reason select: file the ticket under another reason, or none."""
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    reasons.change_ticket_reason(
        acting_agent=acting, ticket=ticket, code=request.POST.get("reason_code", "")
    )
    if ticket.reason_code:
        label = dict(reasons.reason_choices(ticket)).get(ticket.reason_code, ticket.reason_code)
        messages.success(
            request,
            _("Ticket #%(number)s is filed under %(reason)s.")
            % {"number": ticket.number, "reason": label},
        )
    else:
        messages.success(
            request, _("Ticket #%(number)s has no reason code now.") % {"number": ticket.number}
        )
    return redirect("tickets:detail", number=ticket.number)
