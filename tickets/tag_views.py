"""The ticket page's tags: add some (comma-separated) or take one off."""

from __future__ import annotations

import re

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from helpdesk.errors import BadInput
from helpdesk.permissions import acting_agent_for_request
from tickets import selectors, services
from tickets.views import tenant_required

# Commas as typed in English and Chinese, and the Chinese enumeration comma.
SEPARATORS = re.compile(r"[,，、]")


@require_POST
@tenant_required
def ticket_tags(request: HttpRequest, number: int) -> HttpResponse:
    acting = acting_agent_for_request(request)
    ticket = selectors.access_ticket(agent=acting, number=number)
    if "remove" in request.POST:
        name = request.POST["remove"]
        if services.untag_ticket(acting_agent=acting, ticket=ticket, name=name):
            messages.success(request, _("Tag %(tag)s removed.") % {"tag": name})
        return redirect("tickets:detail", number=ticket.number)
    names = [name for name in SEPARATORS.split(request.POST.get("tags", "")) if name.strip()]
    if not names:
        raise BadInput(_("Type a tag to add"), field="tags")
    if any(len(name.strip()) > 60 for name in names):
        raise BadInput(_("A tag is at most 60 characters"), field="tags")
    added = services.tag_ticket(acting_agent=acting, ticket=ticket, names=names)
    if added:
        messages.success(request, _("Tagged %(tags)s.") % {"tags": ", ".join(added)})
    return redirect("tickets:detail", number=ticket.number)
