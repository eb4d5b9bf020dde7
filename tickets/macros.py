"""Macros: the merchant's canned replies, with variables filled in for the ticket they are used on.

A macro's text may name ``{{ customer.name }}``, ``{{ order.number }}`` and the other variables
of ``VARIABLES``; nothing else between double braces is accepted when it is saved. Filling in
is a plain substitution from that list, never the template engine on a merchant's text, so a
macro can show only what its variables name. A variable with no value on a ticket (no linked
order) is left empty, and the agent is told why.

Supervisors and up keep the list (``SUPERVISE``: the team's shared wording is theirs to set);
every agent who may work a ticket may use the active macros on it. Saving, retiring and
restoring are audited.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from helpdesk.errors import BadInput
from helpdesk.permissions import (
    ActingAgent,
    Actor,
    Capability,
    require,
    require_ticket_in_reach,
)
from tickets import audit, people
from tickets.audit import AuditKind
from tickets.models import IdentityKind, Macro, Ticket

MAX_NAME_CHARS = 120
MAX_BODY_CHARS = 10_000

# Anything between double braces: a variable, known or not.
_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.DOTALL)


def _customer_email(ticket: Ticket, agent: ActingAgent) -> str:
    return (
        ticket.customer.identities.filter(kind=IdentityKind.EMAIL)
        .order_by("created_at", "pk")
        .values_list("value", flat=True)
        .first()
        or ""
    )


def _agent_name(ticket: Ticket, agent: ActingAgent) -> str:
    return people.name_of(agent.user, people.display_names([agent.user.pk]))


def _order_field(name: str) -> Callable[[Ticket, ActingAgent], str]:
    def value(ticket: Ticket, agent: ActingAgent) -> str:
        return str(getattr(ticket.order, name) or "") if ticket.order is not None else ""

    return value


# The variables a macro may use, what each means for the merchant, and where its value comes from.
VARIABLES: dict[str, tuple[Any, Callable[[Ticket, ActingAgent], str]]] = {
    "customer.name": (gettext_lazy("the customer's name"), lambda t, a: t.customer.name),
    "customer.email": (gettext_lazy("the customer's email address"), _customer_email),
    "ticket.number": (gettext_lazy("the ticket's number"), lambda t, a: str(t.number)),
    "ticket.subject": (gettext_lazy("the ticket's subject"), lambda t, a: t.subject),
    "order.number": (gettext_lazy("the linked order's number"), _order_field("number")),
    "order.tracking_number": (
        gettext_lazy("the linked order's tracking number"),
        _order_field("tracking_number"),
    ),
    "order.carrier": (gettext_lazy("the linked order's carrier"), _order_field("carrier")),
    "agent.name": (gettext_lazy("your name, as colleagues see it"), _agent_name),
}


def variables_used(body: str) -> list[str]:
    """The names between double braces in ``body``, in order, each once."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(body or "")))


def known_variables_text() -> str:
    return ", ".join(f"{{{{ {name} }}}}" for name in VARIABLES)


def checked_body(body: str) -> str:
    """A macro's text as it is stored; BadInput (``field="body"``) for an empty or too long text
    or an unknown variable, naming the known ones."""
    value = (body or "").replace("\r\n", "\n").strip()
    if not value:
        raise BadInput(_("A macro needs some text"), field="body")
    if len(value) > MAX_BODY_CHARS:
        raise BadInput(
            _("A macro has at most %(limit)s characters") % {"limit": MAX_BODY_CHARS},
            field="body",
        )
    unknown = [name for name in variables_used(value) if name not in VARIABLES]
    if unknown:
        raise BadInput(
            _("Unknown variable %(unknown)s. The variables are: %(known)s")
            % {
                "unknown": ", ".join(f"{{{{ {name} }}}}" for name in unknown),
                "known": known_variables_text(),
            },
            field="body",
            unknown=unknown,
        )
    return value


def checked_name(name: str) -> str:
    value = " ".join((name or "").split())
    if not value:
        raise BadInput(_("A macro needs a name"), field="name")
    if len(value) > MAX_NAME_CHARS:
        raise BadInput(
            _("A name has at most %(limit)s characters") % {"limit": MAX_NAME_CHARS},
            field="name",
        )
    return value


# --- keeping the list ----------------------------------------------------------------------------


def save_macro(
    *,
    acting_agent: Actor,
    name: str,
    body: str,
    macro: Macro | None = None,
) -> Macro:
    """Add a macro (its name unique in the merchant) or change one's name and text: supervisors
    and up. Unknown variables are refused. Audited old and new."""
    require(acting_agent, Capability.SUPERVISE)
    name = checked_name(name)
    body = checked_body(body)
    taken = BadInput(
        _("There is already a macro named %(name)s") % {"name": name}, field="name", name=name
    )
    if Macro.objects.filter(name=name).exclude(pk=macro.pk if macro else None).exists():
        raise taken
    user = acting_agent.user if isinstance(acting_agent, ActingAgent) else None
    try:
        with transaction.atomic():
            if macro is None:
                row = Macro.objects.create(name=name, body=body, created_by=user)
                audit.record(
                    actor=acting_agent,
                    kind=AuditKind.MACRO_SAVED,
                    obj=row,
                    changes={"name": (None, name), "body": (None, body)},
                )
                return row
            row = Macro.objects.select_for_update().get(pk=macro.pk)
            changes = {
                key: (getattr(row, key), value)
                for key, value in (("name", name), ("body", body))
                if getattr(row, key) != value
            }
            if not changes:
                return row
            for key, (_old, new) in changes.items():
                setattr(row, key, new)
            row.save(update_fields=[*changes, "updated_at"])
            audit.record(actor=acting_agent, kind=AuditKind.MACRO_SAVED, obj=row, changes=changes)
            return row
    except IntegrityError:  # the same name saved by a colleague a moment ago
        raise taken from None


def _set_active(acting_agent: Actor, macro: Macro, active: bool) -> Macro:
    require(acting_agent, Capability.SUPERVISE)
    with transaction.atomic():
        row = Macro.objects.select_for_update().get(pk=macro.pk)
        if row.active == active:
            return row
        row.active = active
        row.save(update_fields=["active", "updated_at"])
        audit.record(
            actor=acting_agent,
            kind=AuditKind.MACRO_RESTORED if active else AuditKind.MACRO_RETIRED,
            obj=row,
            changes={"active": (not active, active)},
            details={"name": row.name},
        )
    return row


def retire_macro(*, acting_agent: Actor, macro: Macro) -> Macro:
    """Stop offering a macro to agents (supervisors and up); it stays listed and can return."""
    return _set_active(acting_agent, macro, False)


def restore_macro(*, acting_agent: Actor, macro: Macro) -> Macro:
    """Offer a retired macro to agents again (supervisors and up)."""
    return _set_active(acting_agent, macro, True)


def active_macros() -> QuerySet[Macro]:
    """The macros the active merchant's agents are offered, by name."""
    return Macro.objects.filter(active=True).order_by("name", "pk")


def all_macros() -> QuerySet[Macro]:
    """Every macro of the active merchant, offered ones first, each by name."""
    return Macro.objects.select_related("created_by").order_by("-active", "name", "pk")


# --- using one ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedMacro:
    text: str
    # Variables this ticket has no value for, and what the agent is told about them.
    empty: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def render_macro(*, acting_agent: ActingAgent, macro: Macro, ticket: Ticket) -> RenderedMacro:
    """A macro's text filled in for a ticket in reach (anyone who works it); a variable without a
    value here is left empty and named. Counts one use of the macro."""
    require_ticket_in_reach(acting_agent, ticket)
    if not macro.active:
        raise BadInput(_("This macro is retired"), field="macro")
    values: dict[str, str] = {}
    for name in variables_used(macro.body):
        if name in VARIABLES:
            values[name] = VARIABLES[name][1](ticket, acting_agent) or ""

    def fill(match: re.Match[str]) -> str:
        # A variable added to the text by hand since it was saved is left as written.
        return values.get(match.group(1), match.group(0))

    text = _PLACEHOLDER.sub(fill, macro.body)
    empty = [name for name, value in values.items() if not value]
    warnings = []
    if ticket.order_id is None and any(name.startswith("order.") for name in empty):
        warnings.append(_("This ticket has no order: the order's details are left empty."))
    others = [n for n in empty if ticket.order_id is not None or not n.startswith("order.")]
    if others:
        warnings.append(
            _("No value on this ticket for %(names)s: left empty.")
            % {"names": ", ".join(f"{{{{ {name} }}}}" for name in others)}
        )
    Macro.objects.filter(pk=macro.pk).update(usage_count=F("usage_count") + 1)
    return RenderedMacro(text=text, empty=empty, warnings=warnings)
