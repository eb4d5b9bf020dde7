"""A merchant's owners and admins decide what their people may give customers: the rolling
customer period, where remedies are executed, and the limits per role or per person.

Every action takes the acting agent, requires ``MANAGE_EMPOWERMENT`` before it touches anything,
checks its input before it opens a transaction, and writes its audit row (old and new values) in
the same transaction. Changes are serialised on the merchant's policy row, so two admins saving
at the same moment cannot both create the same limit.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from escalation import limits
from escalation.models import EmpowermentPolicy, RemedyKind, RemedyLimit, new_execution_secret
from helpdesk import http
from helpdesk.errors import BadInput
from helpdesk.models import Membership, Role
from helpdesk.money import checked_amount, checked_currency, rounded
from helpdesk.permissions import Actor, Capability, require
from helpdesk.tenancy import require_tenant
from tickets import audit
from tickets.audit import AuditKind

MAX_CUSTOMER_PERIOD_DAYS = 365
MAX_EXECUTION_URL_CHARS = 500
AMOUNT_CAPS = ("per_grant_max_amount", "per_agent_day_max_amount", "per_customer_period_max_amount")
SHARE_CAP = "order_share_max_percent"
# In the order the settings page shows them.
CAPS = (
    "per_grant_max_amount",
    SHARE_CAP,
    "per_agent_day_max_amount",
    "per_customer_period_max_amount",
)


# --- the policy --------------------------------------------------------------------------------


def checked_period_days(days: object) -> int:
    """A whole number of days from 1 to 365; BadInput (``field="customer_period_days"``) else."""
    try:
        value = int(str(days).strip())
    except (TypeError, ValueError):
        value = 0
    if not 1 <= value <= MAX_CUSTOMER_PERIOD_DAYS:
        raise BadInput(
            _("The customer period is a whole number of days from 1 to %(max)s")
            % {"max": MAX_CUSTOMER_PERIOD_DAYS},
            field="customer_period_days",
        )
    return value


def checked_execution_url(url: str) -> str:
    """The execution URL as saved, or BadInput/EgressRefused (``field="execution_url"``) saying
    why the platform will not post there: not http or https, a user name in it, or a host that
    is not a public address on the scheme's usual port. Empty: remedies are executed by hand."""
    return http.checked_merchant_url(
        url,
        field="execution_url",
        max_chars=MAX_EXECUTION_URL_CHARS,
        too_long=_("The execution URL has at most %(limit)s characters")
        % {"limit": MAX_EXECUTION_URL_CHARS},
    )


def _locked_policy() -> EmpowermentPolicy:
    """The merchant's policy, created if need be and locked until the transaction ends."""
    found = limits.policy()
    return EmpowermentPolicy.objects.select_for_update().get(pk=found.pk)


def update_policy(
    *,
    acting_agent: Actor,
    customer_period_days: int | str | None = None,
    execution_url: str | None = None,
    rotate_execution_secret: bool = False,
) -> EmpowermentPolicy:
    """Change the rolling customer period, where remedies are executed, or give the execution
    webhook a new signing secret; None keeps a setting as it is. Audited old and new (the
    secret itself never goes into the log)."""
    require(acting_agent, Capability.MANAGE_EMPOWERMENT)
    days = None if customer_period_days is None else checked_period_days(customer_period_days)
    url = None if execution_url is None else checked_execution_url(execution_url)
    with transaction.atomic():
        policy = _locked_policy()
        changes: dict[str, tuple[Any, Any]] = {}
        if days is not None and days != policy.customer_period_days:
            changes["customer_period_days"] = (policy.customer_period_days, days)
            policy.customer_period_days = days
        if url is not None and url != policy.execution_url:
            changes["execution_url"] = (policy.execution_url, url)
            policy.execution_url = url
        if rotate_execution_secret:
            policy.previous_execution_secret = policy.execution_secret
            policy.previous_secret_valid_until = timezone.now() + timedelta(
                hours=settings.HELPDESK_SECRET_GRACE_HOURS
            )
            policy.execution_secret = new_execution_secret()
        if not changes and not rotate_execution_secret:
            return policy
        policy.save()
        audit.record(
            actor=acting_agent,
            kind=AuditKind.EMPOWERMENT_POLICY_CHANGED,
            obj=policy,
            changes=changes,
            details={"execution_secret": "rotated"} if rotate_execution_secret else None,
        )
    return policy


# --- limits ------------------------------------------------------------------------------------


def checked_share(value: object) -> Decimal:
    """A percentage from 0 to 100 with at most two decimal places; BadInput else."""
    refusal = BadInput(
        _("A share of the order is a percentage from 0 to 100, with at most two decimal places"),
        field=SHARE_CAP,
    )
    if isinstance(value, float):
        raise refusal
    try:
        share = Decimal(str(value).strip().rstrip("%").strip())
    except (InvalidOperation, ValueError):
        raise refusal from None
    if not share.is_finite() or not 0 <= share <= 100 or share != share.quantize(Decimal("0.01")):
        raise refusal
    return share.quantize(Decimal("0.01"))


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _checked_caps(
    *, kind: str, currency: str, caps: dict[str, object]
) -> dict[str, Decimal | None]:
    checked: dict[str, Decimal | None] = {}
    for field in AMOUNT_CAPS:
        value = caps[field]
        checked[field] = None if _blank(value) else checked_amount(value, currency, field=field)
    share = caps[SHARE_CAP]
    checked[SHARE_CAP] = None if _blank(share) else checked_share(share)
    if kind == RemedyKind.FREE_ORDER and checked[SHARE_CAP] is not None:
        # A free order gives back all that is left of the order: a share below 100% forbids it.
        raise BadInput(
            _("A free order gives back the whole order: leave its share of the order empty"),
            field=SHARE_CAP,
        )
    return checked


def _checked_holder(*, role: str, user: Any) -> tuple[str, Any]:
    """A role, or a member of the merchant, never both; BadInput (``field="who"``) else."""
    if (role and user is not None) or (not role and user is None):
        raise BadInput(_("A limit is for one role or for one person"), field="who")
    if role:
        if role not in Role.values:
            raise BadInput(_("Unknown role %(role)s") % {"role": role}, field="who")
        return role, None
    if not Membership.objects.filter(tenant=require_tenant(), user=user).exists():
        raise BadInput(_("That person is not a member of this merchant"), field="who")
    return "", user


def _shown(field: str, value: Decimal | None, currency: str) -> str | None:
    """A cap as the audit log keeps it: the currency's decimal places, a share in percent."""
    if value is None:
        return None
    if field == SHARE_CAP:
        return f"{value.quantize(Decimal('0.01'))}%"
    return str(rounded(value, currency))


def _holder_details(row: RemedyLimit) -> dict[str, Any]:
    who: dict[str, Any] = {"role": row.role} if row.role else {"person": row.user.get_username()}
    return {**who, "kind": row.kind, "currency": row.currency}


def set_limit(
    *,
    acting_agent: Actor,
    kind: str,
    currency: str,
    role: str = "",
    user: Any = None,
    per_grant_max_amount: Decimal | str | None = None,
    order_share_max_percent: Decimal | str | None = None,
    per_agent_day_max_amount: Decimal | str | None = None,
    per_customer_period_max_amount: Decimal | str | None = None,
) -> RemedyLimit:
    """Let a role (or one member, overriding their role) give ``kind`` in ``currency`` up to
    these caps without approval; an empty cap is no cap of that sort. Creates the limit or
    replaces its caps; audited with each cap's old and new value."""
    require(acting_agent, Capability.MANAGE_EMPOWERMENT)
    if kind not in RemedyKind.values:
        raise BadInput(_("Unknown remedy %(kind)s") % {"kind": kind}, field="kind")
    currency = checked_currency(currency)
    role, user = _checked_holder(role=role, user=user)
    caps = _checked_caps(
        kind=kind,
        currency=currency,
        caps={
            "per_grant_max_amount": per_grant_max_amount,
            SHARE_CAP: order_share_max_percent,
            "per_agent_day_max_amount": per_agent_day_max_amount,
            "per_customer_period_max_amount": per_customer_period_max_amount,
        },
    )
    with transaction.atomic():
        _locked_policy()
        holder = {"role": role, "user__isnull": True} if role else {"user": user}
        row = (
            RemedyLimit.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(kind=kind, currency=currency, **holder)
            .first()
        )
        created = row is None
        if row is None:
            row = RemedyLimit(role=role, user=user, kind=kind, currency=currency)
        changes: dict[str, tuple[Any, Any]] = {}
        for field in CAPS:
            old, new = getattr(row, field), caps[field]
            if old != new:
                changes[field] = (_shown(field, old, currency), _shown(field, new, currency))
                setattr(row, field, new)
        if not created and not changes:
            return row
        row.save()
        audit.record(
            actor=acting_agent,
            kind=AuditKind.EMPOWERMENT_LIMIT_SET,
            obj=row,
            changes=changes,
            details=_holder_details(row),
        )
    return row


def remove_limit(*, acting_agent: Actor, limit: RemedyLimit) -> None:
    """Take a limit away: its role or person may give nothing more of the kind in the
    currency without approval (a person falls back to their role's limit). Audited with the
    caps it had."""
    require(acting_agent, Capability.MANAGE_EMPOWERMENT)
    with transaction.atomic():
        _locked_policy()
        row = (
            RemedyLimit.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(pk=limit.pk)
            .first()
        )
        if row is None:  # removed meanwhile
            return
        changes = {
            field: (_shown(field, getattr(row, field), row.currency), None)
            for field in CAPS
            if getattr(row, field) is not None
        }
        audit.record(
            actor=acting_agent,
            kind=AuditKind.EMPOWERMENT_LIMIT_REMOVED,
            obj=row,
            changes=changes,
            details=_holder_details(row),
        )
        row.delete()
