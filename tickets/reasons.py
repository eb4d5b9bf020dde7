"""Reason codes: why customers contact the merchant, which of those reasons are complaints, and
filing a ticket under one.

A merchant's admins keep the list (``MANAGE_EMPOWERMENT``: the complaint flag decides what the
escalation rate counts, so whoever sets the rate's threshold also says what a complaint is). A
code never changes once tickets may be filed under it; a code no longer wanted is retired
(``active=False``): tickets keep it, agents are no longer offered it. Agents set a ticket's
reason from the active codes of their own merchant.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Max, QuerySet
from django.utils.translation import gettext as _

from helpdesk import realtime
from helpdesk.errors import BadInput
from helpdesk.permissions import Actor, Capability, require, require_ticket_in_reach
from tickets import audit
from tickets.audit import AuditKind
from tickets.models import ReasonCode, Ticket

MAX_CODE_CHARS = 60
MAX_LABEL_CHARS = 100
MAX_POSITION = 9999
# Letters (any script), digits, "_" and "-": what a slug allows, as ``ReasonCode.code`` does.
_CODE = re.compile(r"^[-\w]+\Z")
# Where a new code goes when no position is given: after the last one, with room in between.
POSITION_STEP = 10


def checked_code(code: str) -> str:
    """A code as it is stored: trimmed, lower case, a slug of at most 60 characters; BadInput
    (``field="code"``) else."""
    value = (code or "").strip().lower()
    if not value:
        raise BadInput(_("A reason code needs a code"), field="code")
    if len(value) > MAX_CODE_CHARS:
        raise BadInput(
            _("A code has at most %(limit)s characters") % {"limit": MAX_CODE_CHARS},
            field="code",
        )
    if not _CODE.match(value):
        raise BadInput(
            _("A code is one word: letters, digits, underscores or hyphens, no spaces"),
            field="code",
        )
    return value


def checked_label(label: str) -> str:
    value = " ".join((label or "").split())
    if not value:
        raise BadInput(_("A reason code needs a label"), field="label")
    if len(value) > MAX_LABEL_CHARS:
        raise BadInput(
            _("A label has at most %(limit)s characters") % {"limit": MAX_LABEL_CHARS},
            field="label",
        )
    return value


def checked_position(position: object) -> int:
    try:
        value = int(str(position).strip())
    except (TypeError, ValueError):
        value = -1
    if not 0 <= value <= MAX_POSITION:
        raise BadInput(
            _("The position is a whole number from 0 to %(max)s") % {"max": MAX_POSITION},
            field="position",
        )
    return value


def _next_position() -> int:
    last = ReasonCode.objects.aggregate(last=Max("position"))["last"]
    return 0 if last is None else min(last + POSITION_STEP, MAX_POSITION)


def save_reason_code(
    *,
    acting_agent: Actor,
    code: str,
    label: str,
    is_complaint: bool = False,
    active: bool = True,
    position: int | str | None = None,
    reason_code: ReasonCode | None = None,
) -> ReasonCode:
    """Add a reason code (its code unique in the merchant), or change an existing one's label,
    complaint flag, whether it is offered and its place in the list; the code itself stays, as
    tickets are filed under it. Audited old and new."""
    require(acting_agent, Capability.MANAGE_EMPOWERMENT)
    code = checked_code(code)
    label = checked_label(label)
    if reason_code is not None and code != reason_code.code:
        raise BadInput(
            _("A code cannot change: tickets are filed under it. Add a new code instead."),
            field="code",
        )
    wanted: dict[str, Any] = {
        "label": label,
        "is_complaint": bool(is_complaint),
        "active": bool(active),
    }
    if position is not None and not (isinstance(position, str) and not position.strip()):
        wanted["position"] = checked_position(position)
    if reason_code is None:
        return _add(acting_agent, code=code, wanted=wanted)
    with transaction.atomic():
        row = ReasonCode.objects.select_for_update().get(pk=reason_code.pk)
        changes = {
            field: (getattr(row, field), value)
            for field, value in wanted.items()
            if getattr(row, field) != value
        }
        if not changes:
            return row
        for field, (_old, new) in changes.items():
            setattr(row, field, new)
        row.save(update_fields=list(changes))
        audit.record(
            actor=acting_agent,
            kind=AuditKind.REASON_CODE_SAVED,
            obj=row,
            changes=changes,
            details={"code": row.code},
        )
    return row


def _add(acting_agent: Actor, *, code: str, wanted: dict[str, Any]) -> ReasonCode:
    taken = BadInput(
        _("There is already a reason code %(code)s") % {"code": code}, field="code", code=code
    )
    if ReasonCode.objects.filter(code=code).exists():
        raise taken
    wanted.setdefault("position", _next_position())
    try:
        with transaction.atomic():
            row = ReasonCode.objects.create(code=code, **wanted)
            audit.record(
                actor=acting_agent,
                kind=AuditKind.REASON_CODE_SAVED,
                obj=row,
                changes={field: (None, value) for field, value in wanted.items()},
                details={"code": code},
            )
    except IntegrityError:  # someone added the same code a moment ago
        raise taken from None
    return row


def offered_reason_codes() -> QuerySet[ReasonCode]:
    """The active merchant's codes agents may file a ticket under, in the merchant's order."""
    return ReasonCode.objects.filter(active=True).order_by("position", "label", "pk")


def reason_codes_with_use() -> list[tuple[ReasonCode, int]]:
    """Every code of the active merchant (retired ones too) and how many tickets are filed
    under it, in two queries."""
    used = dict(
        Ticket.objects.exclude(reason_code="")
        .order_by()
        .values("reason_code")
        .annotate(tickets=Count("pk"))
        .values_list("reason_code", "tickets")
    )
    rows = ReasonCode.objects.order_by("position", "label", "pk")
    return [(row, used.get(row.code, 0)) for row in rows]


def reason_choices(ticket: Ticket) -> list[tuple[str, str]]:
    """What the ticket's reason select offers: the active codes, and the ticket's own code even
    when it was retired (or never existed), so showing the page never changes it."""
    choices = [(row.code, row.label) for row in offered_reason_codes()]
    if ticket.reason_code and ticket.reason_code not in {code for code, _label in choices}:
        kept = ReasonCode.objects.filter(code=ticket.reason_code).first()
        choices.append((ticket.reason_code, kept.label if kept else ticket.reason_code))
    return choices


def change_ticket_reason(*, acting_agent: Actor, ticket: Ticket, code: str) -> Ticket:
    """File a ticket in reach under one of the merchant's active reason codes ("" clears it);
    a retired code or another merchant's is refused."""
    require_ticket_in_reach(acting_agent, ticket)
    code = (code or "").strip().lower()
    with transaction.atomic():
        ticket.refresh_from_db(from_queryset=Ticket.objects.select_for_update())
        old = ticket.reason_code
        if old == code:
            return ticket
        if code and not offered_reason_codes().filter(code=code).exists():
            raise BadInput(
                _("%(code)s is not a reason code agents may choose here") % {"code": code},
                field="reason_code",
                code=code,
            )
        ticket.reason_code = code
        ticket.save(update_fields=["reason_code", "updated_at"])
        audit.record(
            actor=acting_agent,
            kind=AuditKind.TICKET_REASON_CHANGED,
            obj=ticket,
            changes={"reason_code": (old, code)},
        )
        realtime.publish_after_commit(
            ticket.tenant_id,
            "ticket.updated",
            {"ticket": ticket.number, "reason_code": code},
            ticket=ticket,
        )
    return ticket
