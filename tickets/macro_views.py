"""Macros in the agent's pages: the settings page under /settings/macros/ where supervisors and
up list, add, edit, retire and restore them (another merchant's macro is 404), and the reply
composer's picker, which fetches a macro filled in for the ticket (anyone who may work it)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, Capability, acting_agent_for_request
from helpdesk.views_settings import acting_with, form_error, render_settings
from tickets import macros, selectors
from tickets.models import Macro
from tickets.views import tenant_required

SECTION = "settings:macros"


class MacroForm(forms.Form):
    """A macro's name and text; ``tickets.macros`` checks the variables."""

    name = forms.CharField(
        label=gettext_lazy("Name"),
        max_length=macros.MAX_NAME_CHARS,
        help_text=gettext_lazy("What agents pick in the reply box, e.g. Where is my parcel."),
    )
    body = forms.CharField(
        label=gettext_lazy("Text"),
        max_length=macros.MAX_BODY_CHARS,
        widget=forms.Textarea(attrs={"rows": 8}),
    )


def _macro(pk: int) -> Macro:
    """The active merchant's macro ``pk``; another merchant's id is 404."""
    return get_object_or_404(Macro, pk=pk)


def _variables() -> list[tuple[str, str]]:
    return [(f"{{{{ {name} }}}}", str(meaning)) for name, (meaning, _v) in macros.VARIABLES.items()]


def _list_page(
    request: HttpRequest, acting: ActingAgent, *, form: MacroForm | None = None
) -> HttpResponse:
    return render_settings(
        request,
        acting,
        "settings/macros.html",
        {
            "macros": macros.all_macros(),
            "form": form or MacroForm(),
            "variables": _variables(),
        },
        section=SECTION,
        status=200 if form is None else 400,
    )


@tenant_required
def macro_list(request: HttpRequest) -> HttpResponse:
    """The merchant's macros, how often each was used, and a form to add one."""
    acting = acting_with(request, Capability.SUPERVISE)
    if request.method != "POST":
        return _list_page(request, acting)
    form = MacroForm(request.POST)
    if form.is_valid():
        try:
            row = macros.save_macro(acting_agent=acting, **form.cleaned_data)
        except BadInput as exc:
            form_error(form, exc)
        else:
            messages.success(request, _("The macro %(name)s is added.") % {"name": row.name})
            return redirect(SECTION)
    return _list_page(request, acting, form=form)


@tenant_required
def macro_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """One macro's page: its name and text."""
    acting = acting_with(request, Capability.SUPERVISE)
    row = _macro(pk)
    status = 200
    if request.method != "POST":
        form = MacroForm(initial={"name": row.name, "body": row.body})
    else:
        form = MacroForm(request.POST)
        if form.is_valid():
            try:
                macros.save_macro(acting_agent=acting, macro=row, **form.cleaned_data)
            except BadInput as exc:
                form_error(form, exc)
            else:
                messages.success(request, _("The macro %(name)s is saved.") % {"name": row.name})
                return redirect(SECTION)
        status = 400
    return render_settings(
        request,
        acting,
        "settings/macros.html",
        {"macro": row, "form": form, "variables": _variables()},
        section=SECTION,
        status=status,
    )


@require_POST
@tenant_required
def macro_retire(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.SUPERVISE)
    row = macros.retire_macro(acting_agent=acting, macro=_macro(pk))
    messages.success(request, _("The macro %(name)s is no longer offered.") % {"name": row.name})
    return redirect(SECTION)


@require_POST
@tenant_required
def macro_restore(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_with(request, Capability.SUPERVISE)
    row = macros.restore_macro(acting_agent=acting, macro=_macro(pk))
    messages.success(request, _("The macro %(name)s is offered again.") % {"name": row.name})
    return redirect(SECTION)


@require_POST
@tenant_required
def ticket_macro(request: HttpRequest, number: int, pk: int) -> HttpResponse:
    """The picker's request: the macro filled in for this ticket, as JSON ``{"text", "warnings"}``.
    A ticket the person may not work, another merchant's, or a retired macro is 404."""
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    row = get_object_or_404(Macro, pk=pk, active=True)
    rendered = macros.render_macro(acting_agent=acting, macro=row, ticket=ticket)
    body: dict[str, Any] = {
        "name": row.name,
        "text": rendered.text,
        "empty": rendered.empty,
        "warnings": rendered.warnings,
    }
    return JsonResponse(body)
