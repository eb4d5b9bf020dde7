"""The agent's pages: the ticket list and one ticket's conversation."""

from __future__ import annotations

from dataclasses import replace

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from escalation.selectors import remedy_panel
from helpdesk.errors import HelpdeskError
from helpdesk.permissions import acting_agent_for_request
from tickets import customer_card, inbox, merging, people, queues, selectors, services, spam
from tickets.inbox_forms import InboxForm
from tickets.inbox_rows import inbox_rows
from tickets.models import Group, Message, Ticket
from tickets.templatetags.people import names_for_request


def tenant_required(view):  # type: ignore[no-untyped-def]
    """Signed in and acting for a tenant; a user with no merchant sees why instead of a crash."""

    @login_required
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:  # type: ignore[no-untyped-def]
        if getattr(request, "tenant", None) is None:
            return render(request, "tickets/no_tenant.html", status=403)
        return view(request, *args, **kwargs)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


@tenant_required
def ticket_list(request: HttpRequest) -> HttpResponse:
    """The inbox: a view's tickets with filters and search, newest activity first, a keyset
    page at a time (tickets.inbox)."""
    acting = acting_agent_for_request(request)
    form = InboxForm(
        request.GET, groups=list(Group.objects.order_by("name")), people=people.ticket_workers()
    )
    form.is_valid()
    view, filters = form.chosen_view(), form.filters()
    tickets = inbox.view_tickets(agent=acting, view=view, filters=replace(filters, query=""))
    page = inbox.search_page(
        tickets,
        filters.query,
        older_than=form.value("older", None),
        newer_than=form.value("newer", None),
    )
    kept = {
        name: value
        for name, value in request.GET.items()
        if value and name in form.fields and name not in {"older", "newer", "mine", *form.errors}
    }
    kept["view"] = view.key
    return render(
        request,
        "tickets/list.html",
        {
            "page": page,
            "rows": inbox_rows(page.tickets, names=names_for_request(request)),
            "form": form,
            "view": view,
            "filters": filters,
            # Counted by inbox_counts, which the page loads right after: it does not wait.
            "views": [(v, None) for v in inbox.VIEWS.values()],
            "statuses": Ticket.Status.choices,
            "here": urlencode(kept),
        },
        status=400 if form.errors else 200,
    )


@tenant_required
def inbox_counts(request: HttpRequest) -> HttpResponse:
    """The inbox's views with how many tickets each holds (tickets.inbox.view_counts), for the
    list page to load after itself and after every ticket event."""
    key = request.GET.get("view", "")
    view = inbox.VIEWS.get(key) or inbox.VIEWS[inbox.DEFAULT_VIEW]
    counts = inbox.view_counts(agent=acting_agent_for_request(request))
    return render(
        request,
        "tickets/inbox_views.html",
        {
            "view": view,
            "views": [(v, counts[v.key]) for v in inbox.VIEWS.values()],
            "count_cap": inbox.COUNT_CAP,
            "counted": True,
        },
    )


def reply_to(ticket: Ticket) -> tuple[str, str]:
    """Who a reply would reach, or why no reply can be sent from here: (recipient, reason)."""
    from channels_in.outbound import reply_recipient

    try:
        return reply_recipient(ticket), ""
    except HelpdeskError as exc:
        return "", str(exc)


@tenant_required
def ticket_detail(request: HttpRequest, number: int) -> HttpResponse:
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    conversation = list(selectors.conversation(ticket=ticket))
    card = customer_card.customer_card(ticket=ticket)
    from channels_in.phone_calls import customer_number, prefetch_calls

    prefetch_calls(ticket)  # the Calls panel's call-backs and calls logged
    recipient, blocked = reply_to(ticket)
    return render(
        request,
        "tickets/detail.html",
        {
            "ticket": ticket,
            "conversation": conversation,
            "card": card,
            "call_number": customer_number(ticket, card.identities),
            "spam": spam.spam_panel(ticket, identities=card.identities, loaded=conversation),
            "customer_tickets": selectors.customer_history(agent=acting, ticket=ticket),
            "statuses": Ticket.Status.choices,
            "priorities": Ticket.Priority.choices,
            "allowed_statuses": services.ALLOWED_TRANSITIONS[ticket.status],
            "reply_to": recipient,
            "reply_blocked": blocked,
            "remedy_panel": remedy_panel(acting_agent=acting, ticket=ticket),
            "queue_wait": queues.queue_wait(ticket),
        },
    )


@require_POST
@tenant_required
def ticket_status(request: HttpRequest, number: int) -> HttpResponse:
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    services.change_ticket_status(
        acting_agent=acting, ticket=ticket, status=request.POST.get("status", "")
    )
    messages.success(
        request,
        _("Ticket #%(number)s is now %(status)s.")
        % {"number": ticket.number, "status": ticket.get_status_display()},
    )
    return redirect("tickets:detail", number=ticket.number)


@require_POST
@tenant_required
def ticket_priority(request: HttpRequest, number: int) -> HttpResponse:
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    services.change_ticket_priority(
        acting_agent=acting, ticket=ticket, priority=request.POST.get("priority", "")
    )
    messages.success(
        request,
        _("Ticket #%(number)s is now %(priority)s priority.")
        % {"number": ticket.number, "priority": ticket.get_priority_display().lower()},
    )
    return redirect("tickets:detail", number=ticket.number)


@require_POST
@tenant_required
def ticket_note(request: HttpRequest, number: int) -> HttpResponse:
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    try:
        services.add_note(
            acting_agent=acting,
            ticket=ticket,
            text=request.POST.get("text", ""),
            attachments=request.FILES.getlist("attachments"),
        )
    except HelpdeskError as refused:
        return composer_refused(request, number, refused, form="note")
    messages.success(request, _("Note added."))
    return redirect(reverse("tickets:detail", args=[ticket.number]) + "?sent=note")


@require_POST
@tenant_required
def ticket_reply(request: HttpRequest, number: int) -> HttpResponse:
    """Send a reply, unless a colleague answered since the agent's page was rendered: then the
    page comes back (409) with their reply, the typed text and a "send anyway" button."""
    from tickets import collisions

    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    text = request.POST.get("text", "")
    status = request.POST.get("status", Ticket.Status.PENDING)
    seen_id = collisions.parse_seen(request.POST.get("seen"))
    stale = collisions.stale_reply(
        ticket=ticket, seen_id=seen_id, user=acting.user, text=text, status=status
    )
    if stale is not None:
        # The ticket page reads it from the request (templates/tickets/detail.html, composer).
        request.stale_reply = stale
        response = ticket_detail(request, number)
        response.status_code = 409
        return response
    customer_wrote = seen_id is not None and collisions.customer_messages_since(ticket, seen_id)
    try:
        reply = services.reply_to_customer(
            acting_agent=acting,
            ticket=ticket,
            text=text,
            status=status,
            attachments=request.FILES.getlist("attachments"),
            cc=request.POST.get("cc", ""),
            bcc=request.POST.get("bcc", ""),
        )
    except HelpdeskError as refused:
        return composer_refused(request, number, refused, form="reply")
    tell_delivery(request, reply)
    if customer_wrote:
        messages.info(
            request, _("The customer wrote again while you were typing: see above your reply.")
        )
    # The marker tells static/js/drafts.js that the reply draft went out and may be forgotten.
    return redirect(reverse("tickets:detail", args=[ticket.number]) + "?sent=reply")


# What the composer's forms hold: an error about one of them is shown on the form itself.
COMPOSER_FIELDS = {"text", "attachments", "cc", "bcc", "status"}


def composer_refused(
    request: HttpRequest, number: int, refused: HelpdeskError, *, form: str
) -> HttpResponse:
    """The ticket page again (400) with the error on the reply or note form and what the agent
    typed still in it; an error about anything else goes the usual way (a message)."""
    if refused.extra.get("field") not in COMPOSER_FIELDS:
        raise refused
    # The composer reads it from the request (templates/tickets/ticket/composer.html).
    typed = {name: request.POST.get(name, "") for name in ("text", "cc", "bcc", "status")}
    request.composer_error = {**typed, **refused.extra, "form": form, "message": refused.message}
    response = ticket_detail(request, number)
    response.status_code = refused.status
    return response


def tell_delivery(request: HttpRequest, reply: Message) -> None:
    """Tell the agent what became of a reply (sent at once where Celery runs inline)."""
    reply.refresh_from_db(fields=["delivery_state", "delivery_error", "delivery_next_attempt_at"])
    if reply.delivery_state == reply.Delivery.SENT:
        messages.success(request, _("Reply sent."))
    elif reply.delivery_state == reply.Delivery.FAILED:
        messages.error(
            request, _("The reply could not be sent: %(error)s") % {"error": reply.delivery_error}
        )
    elif reply.is_retrying:
        messages.warning(
            request,
            _("The reply is not sent yet and will be tried again: %(error)s")
            % {"error": reply.delivery_error},
        )
    else:
        messages.success(request, _("Reply queued for delivery."))


@require_POST
@tenant_required
def message_resend(request: HttpRequest, number: int, pk: int) -> HttpResponse:
    from channels_in.outbound import resend

    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    message = ticket.messages.filter(pk=pk).first()
    if message is None:
        raise Http404("No such message")
    resend(acting_agent=acting, message=message)
    tell_delivery(request, message)
    return redirect("tickets:detail", number=ticket.number)


@require_POST
@tenant_required
def message_send_now(request: HttpRequest, number: int, pk: int) -> HttpResponse:
    """A retrying reply goes now instead of at its next scheduled try."""
    from channels_in.outbound import send_now

    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    message = ticket.messages.filter(pk=pk).first()
    if message is None:
        raise Http404("No such message")
    send_now(acting_agent=acting, message=message)
    tell_delivery(request, message)
    return redirect("tickets:detail", number=ticket.number)


@tenant_required
def attachment_download(request: HttpRequest, pk: int) -> FileResponse:
    """Attachments are served only to agents who may work the ticket that holds them."""
    attachment = selectors.access_attachment(agent=acting_agent_for_request(request), pk=pk)
    inline = (
        attachment.content_type.startswith("image/")
        and attachment.content_type != "image/svg+xml"  # SVG can carry script
        and request.GET.get("inline") == "1"
    )
    if attachment.missing_reason or not attachment.file:
        raise Http404(attachment.missing_reason or "This attachment was never received")
    try:
        stored = attachment.file.open("rb")
    except FileNotFoundError:
        raise Http404("The file of this attachment is missing from storage") from None
    response = FileResponse(
        stored,
        as_attachment=not inline,
        filename=attachment.filename,
        content_type=attachment.content_type,
    )
    response["Content-Security-Policy"] = "default-src 'none'"
    return response


@tenant_required
def customer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One customer across channels: who they are, their tickets in reach and their timeline."""
    acting = acting_agent_for_request(request)
    if (merged_into := merging.merged_customer_target(agent=acting, pk=pk)) is not None:
        return redirect("tickets:customer", pk=merged_into)  # one person's page since the merge
    customer = selectors.access_customer(agent=acting, pk=pk)
    return render(
        request,
        "tickets/customer.html",
        {
            "customer": customer,
            "identities": customer.identities.select_related("account").order_by("kind", "pk"),
            "tickets": selectors.customer_tickets(agent=acting, customer=customer),
            "hidden_tickets": selectors.tickets_out_of_reach(agent=acting, customer=customer),
            "timeline": selectors.customer_timeline(agent=acting, customer=customer),
            "timeline_limit": selectors.TIMELINE_LIMIT,
        },
    )
