"""A merchant's escalation settings: the escalation rate it aims to stay under, which triggers
escalate a ticket, the phrases that mean "get me a supervisor", the monthly remedy budget and
the defect-rate alert.

Only people who decide what agents may give customers change them (``MANAGE_EMPOWERMENT``).
Every value is checked before the transaction opens; the change is written on the locked policy
row with one audit row holding each changed setting, old and new.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from escalation.escalations import policy as current_policy
from escalation.models import EscalationPolicy
from helpdesk.errors import BadInput
from helpdesk.money import checked_amount, checked_currency, rounded
from helpdesk.permissions import Actor, Capability, require
from tickets import audit
from tickets.audit import AuditKind

MAX_PHRASES = 100
MAX_PHRASE_CHARS = 100
# (lowest, highest) of each whole-number setting.
WHOLE_NUMBERS: dict[str, tuple[int, int]] = {
    "min_complaints": (1, 1_000_000),
    "repeat_contacts": (2, 100),
    "repeat_days": (1, 365),
    "defect_min_orders": (1, 1_000_000),
}
PERCENTAGES = ("threshold_percent", "defect_rate_percent")
SWITCHES = (
    "on_over_limit",
    "on_customer_request",
    "on_manual",
    "on_first_response_breach",
    "on_resolution_breach",
    "on_repeat_contact",
)
BUDGET = ("monthly_budget_amount", "budget_currency")
SETTINGS = (*PERCENTAGES, *WHOLE_NUMBERS, *SWITCHES, "supervisor_phrases", *BUDGET)
_CENT = Decimal("0.01")


def checked_percent(value: object, *, field: str) -> Decimal:
    """A percentage from 0 to 100 with at most two decimal places (not a float); BadInput
    naming ``field`` else."""
    refusal = BadInput(
        _("A percentage is a number from 0 to 100, with at most two decimal places"), field=field
    )
    if isinstance(value, float | bool):
        raise refusal
    try:
        share = Decimal(str(value).strip().rstrip("%").strip())
    except (InvalidOperation, ValueError):
        raise refusal from None
    if not share.is_finite() or not 0 <= share <= 100 or share != share.quantize(_CENT):
        raise refusal
    return share.quantize(_CENT)


def checked_whole(value: object, *, field: str) -> int:
    low, high = WHOLE_NUMBERS[field]
    try:
        number = int(str(value).strip()) if not isinstance(value, float | bool) else None
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise BadInput(
            _("Write a whole number from %(low)s to %(high)s") % {"low": low, "high": high},
            field=field,
        )
    return number


def checked_phrases(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """One phrase a line (or a list): trimmed, inner spaces collapsed, empty lines dropped and
    repeats (whatever their case) kept once, in the order given; at most 100 phrases of at
    most 100 characters."""
    lines = value.splitlines() if isinstance(value, str) else list(value)
    phrases: list[str] = []
    seen: set[str] = set()
    for line in lines:
        phrase = " ".join(str(line).split())
        if not phrase or phrase.casefold() in seen:
            continue
        if len(phrase) > MAX_PHRASE_CHARS:
            raise BadInput(
                _("A phrase has at most %(limit)s characters: %(phrase)s…")
                % {"limit": MAX_PHRASE_CHARS, "phrase": phrase[:40]},
                field="supervisor_phrases",
            )
        seen.add(phrase.casefold())
        phrases.append(phrase)
    if len(phrases) > MAX_PHRASES:
        raise BadInput(
            _("At most %(limit)s phrases") % {"limit": MAX_PHRASES}, field="supervisor_phrases"
        )
    return phrases


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def checked_budget(amount: object, currency: object) -> tuple[Decimal | None, str]:
    """A monthly budget: an amount above zero in the currency's places and its currency, or
    neither (no budget)."""
    if _blank(amount) and _blank(currency):
        return None, ""
    if _blank(currency):
        raise BadInput(_("A budget needs its currency"), field="budget_currency")
    if _blank(amount):
        raise BadInput(
            _("Write the budget's amount, or leave the currency empty too for no budget"),
            field="monthly_budget_amount",
        )
    try:
        code = checked_currency(str(currency))
    except BadInput as exc:
        raise BadInput(exc.message, field="budget_currency") from None
    value = checked_amount(amount, code, field="monthly_budget_amount")
    if value <= 0:
        raise BadInput(_("A budget is more than zero"), field="monthly_budget_amount")
    return value, code


def _checked(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(SETTINGS)
    if unknown:
        raise TypeError(f"Not an escalation setting: {', '.join(sorted(unknown))}")
    checked: dict[str, Any] = {}
    for field, value in fields.items():
        if field in PERCENTAGES:
            checked[field] = checked_percent(value, field=field)
        elif field in WHOLE_NUMBERS:
            checked[field] = checked_whole(value, field=field)
        elif field in SWITCHES:
            if not isinstance(value, bool):
                raise BadInput(_("A switch is on or off"), field=field)
            checked[field] = value
        elif field == "supervisor_phrases":
            checked[field] = checked_phrases(value if value is not None else "")
    return checked


def _shown(field: str, value: Any, currency: str) -> Any:
    """A setting as the audit log keeps it: percentages with two places, the budget in its
    currency's places."""
    if value is None:
        return None
    if field in PERCENTAGES:
        return str(Decimal(value).quantize(_CENT))
    if field == "monthly_budget_amount":
        return str(rounded(value, currency))
    return value


def update_escalation_policy(*, acting_agent: Actor, **fields: Any) -> EscalationPolicy:
    """Change the merchant's escalation settings named in ``fields`` (the others stay);
    audited with each changed setting, old and new. The budget's amount and currency are
    both set or both empty."""
    require(acting_agent, Capability.MANAGE_EMPOWERMENT)
    checked = _checked(fields)
    with transaction.atomic():
        row = EscalationPolicy.objects.select_for_update().get(pk=current_policy().pk)
        if any(field in fields for field in BUDGET):
            amount, currency = checked_budget(
                fields.get("monthly_budget_amount", row.monthly_budget_amount),
                fields.get("budget_currency", row.budget_currency),
            )
            checked["monthly_budget_amount"], checked["budget_currency"] = amount, currency
        changes: dict[str, tuple[Any, Any]] = {}
        for field, new in checked.items():
            old = getattr(row, field)
            if old == new:
                continue
            currency_old = row.budget_currency or checked.get("budget_currency", "")
            currency_new = checked.get("budget_currency", row.budget_currency)
            shown_old = _shown(field, old, currency_old or currency_new)
            shown_new = _shown(field, new, currency_new or currency_old)
            if shown_old != shown_new:
                changes[field] = (shown_old, shown_new)
            setattr(row, field, new)
        if not changes:
            return row
        row.save()
        audit.record(
            actor=acting_agent,
            kind=AuditKind.ESCALATION_POLICY_CHANGED,
            obj=row,
            changes=changes,
        )
    return row
