"""The "New conversation" page: an agent writes first to a customer by email."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from helpdesk.errors import HelpdeskError
from helpdesk.permissions import Capability, acting_agent_for_request, require
from helpdesk.tenancy import require_tenant
from tickets import composer, outbound_conversations, selectors
from tickets.views import tell_delivery, tenant_required


class NewConversationForm(forms.Form):
    account = forms.ModelChoiceField(
        queryset=None,  # the merchant's email channels, read per request
        label=gettext_lazy("Send from"),
        empty_label=None,
    )
    to = forms.CharField(label=gettext_lazy("To"), max_length=254)
    cc = forms.CharField(label=gettext_lazy("CC"), required=False, max_length=2000)
    bcc = forms.CharField(label=gettext_lazy("BCC"), required=False, max_length=2000)
    subject = forms.CharField(label=gettext_lazy("Subject"), max_length=255)
    text = forms.CharField(label=gettext_lazy("Message"), widget=forms.Textarea(attrs={"rows": 8}))
    status = forms.ChoiceField(
        label=gettext_lazy("Then set the ticket to"),
        choices=[
            ("pending", gettext_lazy("Pending (waiting for the customer)")),
            ("open", gettext_lazy("Open")),
            ("solved", gettext_lazy("Solved")),
        ],
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        account = self.fields["account"]
        account.queryset = outbound_conversations.sending_accounts()
        account.label_from_instance = lambda a: f"{a.name} <{a.mailbox.address}>"


# Errors of the service named by its field; the address it calls "email" is the form's "to".
_FORM_FIELD = {"email": "to", "identity": "to"}


@tenant_required
def new_conversation(request: HttpRequest) -> HttpResponse:
    """GET: the form (``?customer=<pk>`` fills in their address); POST: start it and go to the
    new ticket, or the form again (400) saying what to fix."""
    acting = acting_agent_for_request(request)
    require(acting, Capability.WORK_TICKETS)
    if request.method != "POST":
        initial = {"status": "pending"}
        customer_pk = request.GET.get("customer", "")
        if customer_pk.isdigit():
            customer = selectors.access_customer(agent=acting, pk=int(customer_pk))
            initial["to"] = customer.primary_email
        return render(request, "tickets/new.html", _page(NewConversationForm(initial=initial)))

    form = NewConversationForm(request.POST)
    files = request.FILES.getlist("attachments")
    file_error = ""
    if form.is_valid():
        try:
            message = outbound_conversations.start_conversation(
                acting_agent=acting,
                account=form.cleaned_data["account"],
                to=form.cleaned_data["to"],
                subject=form.cleaned_data["subject"],
                text=form.cleaned_data["text"],
                cc=form.cleaned_data["cc"],
                bcc=form.cleaned_data["bcc"],
                attachments=files,
                status=form.cleaned_data["status"],
            )
        except HelpdeskError as refused:
            field = refused.extra.get("field")
            field = _FORM_FIELD.get(field, field)
            if field == "attachments":
                file_error = refused.message
            else:
                form.add_error(field if field in form.fields else None, refused.message)
        else:
            number = message.ticket.number
            message.refresh_from_db(fields=["delivery_state"])
            if message.delivery_state == message.Delivery.SENT:
                messages.success(
                    request, _("Conversation #%(number)s started and sent.") % {"number": number}
                )
            else:
                messages.success(
                    request, _("Conversation #%(number)s started.") % {"number": number}
                )
                tell_delivery(request, message)
            return redirect(reverse("tickets:detail", args=[message.ticket.number]) + "?sent=new")
    page = _page(form, file_error=file_error, had_files=bool(files))
    return render(request, "tickets/new.html", page, status=400)


def _page(form: NewConversationForm, *, file_error: str = "", had_files: bool = False) -> dict:
    return {
        "form": form,
        "file_error": file_error,
        "had_files": had_files,
        "max_files": composer.MAX_FILES,
        "max_bytes": require_tenant().max_attachment_bytes,
    }
