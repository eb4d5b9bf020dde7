"""The phone channel's pages: a phone line's settings with the URLs to paste into Twilio and
the PBX (owners and admins), and the ticket page's call log and call-backs (agents)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from channels_in import phone_calls, phone_lines
from channels_in.models import CallBack, PhoneLine
from channels_in.phone_forms import CallBackForm, CallLogForm, PhoneLineForm, greeting_field
from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, Capability, acting_agent_for_request
from helpdesk.views_settings import acting_with, form_error, render_settings
from tickets import selectors
from tickets.models import Channel
from tickets.views import tenant_required

SECTION = "settings:channels"


@tenant_required
def phone_channel_new(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_CHANNELS)
    form = PhoneLineForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            line = phone_lines.create_phone_line(
                acting_agent=acting,
                name=form.cleaned_data["name"],
                number=form.cleaned_data["number"],
                auth_token=form.cleaned_data["auth_token"],
                greetings=form.greetings(),
                group=form.cleaned_data["group"],
                ring_seconds=form.cleaned_data["ring_seconds"],
            )
        except BadInput as exc:
            form_error(form, exc)
        else:
            messages.success(
                request,
                _("The phone line %(name)s is connected. Paste its URLs into Twilio.")
                % {"name": line.account.name},
            )
            return redirect("settings:channel", pk=line.account_id)
    return render_settings(
        request,
        acting,
        "settings/phone_channel_form.html",
        {"form": form, "line": None},
        section=SECTION,
        status=400 if form.is_bound else 200,
    )


def phone_channel_edit(request: HttpRequest, acting: ActingAgent, pk: int) -> HttpResponse:
    """A phone line's page: its webhook URLs and secret, and its settings to edit."""
    line = get_object_or_404(PhoneLine.objects.select_related("account"), account_id=pk)
    account = line.account
    if request.method != "POST":
        initial = {
            "name": account.name,
            "number": line.number,
            "group": line.group_id,
            "ring_seconds": line.ring_seconds,
        }
        for code, text in (line.greetings or {}).items():
            initial[greeting_field(code)] = text
        return _phone_page(request, acting, line, form=PhoneLineForm(initial=initial))
    form = PhoneLineForm(request.POST)
    if form.is_valid():
        try:
            phone_lines.update_phone_line(
                acting_agent=acting,
                line=line,
                name=form.cleaned_data["name"],
                number=form.cleaned_data["number"],
                auth_token=form.cleaned_data["auth_token"],
                greetings=form.greetings(),
                group=form.cleaned_data["group"],
                ring_seconds=form.cleaned_data["ring_seconds"],
            )
        except BadInput as exc:
            form_error(form, exc)
        else:
            messages.success(request, _("The channel settings are saved."))
            return redirect("settings:channel", pk=account.pk)
    line.refresh_from_db()
    return _phone_page(request, acting, line, form=form, status=400)


def _phone_page(
    request: HttpRequest,
    acting: ActingAgent,
    line: PhoneLine,
    *,
    form: PhoneLineForm,
    status: int = 200,
) -> HttpResponse:
    from channels_in.views_settings import _grace_end

    account = line.account
    endpoint = request.build_absolute_uri(
        reverse("channels_in:inbound", args=[request.tenant.slug, Channel.PHONE, account.pk])
    )
    return render_settings(
        request,
        acting,
        "settings/phone_channel_form.html",
        {
            "form": form,
            "line": line,
            "account": account,
            "voice_url": f"{endpoint}?event=voice",
            "status_url": f"{endpoint}?event=status",
            "pbx_url": f"{endpoint}?event=pbx",
            "has_token": bool(line.auth_token_encrypted),
            "duty": phone_lines.on_duty(line),
            "previous_secret_until": _grace_end(account),
        },
        section=SECTION,
        status=status,
    )


# --- the ticket page ---------------------------------------------------------------------------


@require_POST
@tenant_required
def log_call(request: HttpRequest, number: int) -> HttpResponse:
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    form = CallLogForm(request.POST)
    if not form.is_valid():
        raise BadInput(_("Fill in the call: %(errors)s") % {"errors": _errors(form)})
    call_back = None
    if form.cleaned_data["call_back"]:
        call_back = get_object_or_404(CallBack, pk=form.cleaned_data["call_back"], ticket=ticket)
    phone_calls.log_call(
        acting_agent=acting,
        ticket=ticket,
        direction=form.cleaned_data["direction"],
        number=form.cleaned_data["number"],
        outcome=form.cleaned_data["outcome"],
        duration_seconds=form.duration_seconds(),
        notes=form.cleaned_data["notes"],
        call_back=call_back,
    )
    messages.success(request, _("The call is logged."))
    return redirect(reverse("tickets:detail", args=[ticket.number]) + "#calls")


@require_POST
@tenant_required
def schedule_call_back(request: HttpRequest, number: int) -> HttpResponse:
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    form = CallBackForm(request.POST)
    if not form.is_valid():
        raise BadInput(_("Fill in the call-back: %(errors)s") % {"errors": _errors(form)})
    call_back = phone_calls.schedule_call_back(
        acting_agent=acting,
        ticket=ticket,
        due_at=form.due(),
        number=form.cleaned_data["number"],
        note=form.cleaned_data["note"],
    )
    messages.success(
        request,
        _("Call-back scheduled: it shows under “Call-backs due” from %(when)s.")
        % {"when": timezone.localtime(call_back.due_at).strftime("%Y-%m-%d %H:%M")},
    )
    return redirect(reverse("tickets:detail", args=[ticket.number]) + "#calls")


@require_POST
@tenant_required
def cancel_call_back(request: HttpRequest, pk: int) -> HttpResponse:
    acting = acting_agent_for_request(request)
    call_back = get_object_or_404(CallBack.objects.select_related("ticket"), pk=pk)
    ticket = selectors.access_ticket(agent=acting, number=call_back.ticket.number)
    phone_calls.cancel_call_back(acting_agent=acting, call_back=call_back)
    messages.success(request, _("The call-back is cancelled."))
    return redirect(reverse("tickets:detail", args=[ticket.number]) + "#calls")


def _errors(form: CallLogForm | CallBackForm) -> str:
    return "; ".join(
        f"{form.fields[name].label if name in form.fields else name}: {' '.join(errors)}"
        for name, errors in form.errors.items()
    )
