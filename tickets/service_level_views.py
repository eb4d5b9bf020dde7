"""The settings page of service-level targets: per priority, how many business hours and minutes
the merchant allows for a first response and for a resolution. Needs ``MANAGE_GROUPS``."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _

from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, Capability
from helpdesk.views_settings import acting_with, render_settings
from tickets import service_levels
from tickets.models import ServiceTarget, Ticket
from tickets.views import tenant_required

SECTION = "settings:service_levels"
TARGETS = ("first_response", "resolution")


@dataclass
class TargetInput:
    """One target as the form shows it: business hours and minutes, as typed."""

    name: str  # the form field prefix, e.g. "urgent-first_response"
    hours: str
    minutes: str


@dataclass
class PriorityRow:
    priority: str
    label: str
    first_response: TargetInput
    resolution: TargetInput


def _as_inputs(name: str, total: int | None) -> TargetInput:
    if total is None:
        return TargetInput(name=name, hours="", minutes="")
    return TargetInput(name=name, hours=str(total // 60), minutes=str(total % 60))


def _saved_rows() -> list[PriorityRow]:
    saved = {target.priority: target for target in ServiceTarget.objects.all()}
    rows = []
    for priority, label in reversed(Ticket.Priority.choices):  # urgent first
        target = saved.get(priority)
        rows.append(
            PriorityRow(
                priority=priority,
                label=str(label),
                first_response=_as_inputs(
                    f"{priority}-first_response", target and target.first_response_minutes
                ),
                resolution=_as_inputs(
                    f"{priority}-resolution", target and target.resolution_minutes
                ),
            )
        )
    return rows


def _posted_rows(request: HttpRequest) -> list[PriorityRow]:
    rows = []
    for priority, label in reversed(Ticket.Priority.choices):
        inputs = {}
        for target in TARGETS:
            name = f"{priority}-{target}"
            inputs[target] = TargetInput(
                name=name,
                hours=request.POST.get(f"{name}-hours", "").strip(),
                minutes=request.POST.get(f"{name}-minutes", "").strip(),
            )
        rows.append(PriorityRow(priority=priority, label=str(label), **inputs))
    return rows


def _minutes_of(typed: TargetInput, *, row: PriorityRow) -> int | None:
    """Hours and minutes as typed, in minutes; both empty is no target."""
    if not typed.hours and not typed.minutes:
        return None
    parts = [typed.hours or "0", typed.minutes or "0"]
    if not all(part.isascii() and part.isdigit() for part in parts):
        raise BadInput(
            _("%(priority)s: write whole hours and minutes") % {"priority": row.label},
            field=typed.name,
        )
    return int(parts[0]) * 60 + int(parts[1])


def _save(acting: ActingAgent, rows: list[PriorityRow]) -> None:
    """Every priority's targets, all or none."""
    with transaction.atomic():
        for row in rows:
            minutes = {target: _minutes_of(getattr(row, target), row=row) for target in TARGETS}
            try:
                service_levels.set_service_target(
                    acting_agent=acting,
                    priority=row.priority,
                    first_response_minutes=minutes["first_response"],
                    resolution_minutes=minutes["resolution"],
                )
            except BadInput as exc:
                raise BadInput(f"{row.label}: {exc.message}", **exc.extra) from exc


@tenant_required
def service_level_settings(request: HttpRequest) -> HttpResponse:
    acting = acting_with(request, Capability.MANAGE_GROUPS)
    rows = _saved_rows()
    status = 200
    if request.method == "POST":
        rows = _posted_rows(request)
        try:
            _save(acting, rows)
        except BadInput as exc:
            messages.error(request, exc.message)
            status = 400
        else:
            messages.success(request, _("The service-level targets are saved."))
            return redirect(SECTION)
    return render_settings(
        request,
        acting,
        "settings/service_levels.html",
        {"rows": rows},
        section=SECTION,
        status=status,
    )
