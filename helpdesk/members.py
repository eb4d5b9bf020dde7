"""Who belongs to a merchant and in which role, as its owners and admins manage it.

Rules, in the merchant's words:
- owners and admins change roles and remove members (``MANAGE_MEMBERS``);
- only an owner makes someone an owner or changes an owner's role (``MANAGE_MERCHANT``);
- a merchant always keeps at least one owner.
Removing a member ends their place in this merchant only: their account, and their places in
other merchants, stay.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from helpdesk.errors import BadInput, PermissionDenied
from helpdesk.models import Membership, Role
from helpdesk.permissions import ActingAgent, Capability, require
from tickets import audit
from tickets.audit import AuditKind


def _record(
    acting_agent: ActingAgent,
    kind: AuditKind,
    membership: Membership,
    changes: dict[str, tuple[Any, Any]],
    details: dict[str, Any] | None = None,
) -> None:
    audit.record(
        actor=acting_agent,
        kind=kind,
        obj=membership,
        changes=changes,
        details={"person": membership.user.get_username(), **(details or {})},
    )


def _lock_owners(acting_agent: ActingAgent) -> list[Membership]:
    """The merchant's owner memberships, locked: two admins demoting the last two owners at once
    cannot both succeed."""
    return list(
        Membership.objects.select_for_update()
        .filter(tenant=acting_agent.tenant, role=Role.OWNER)
        .order_by("pk")
    )


def _refuse_losing_last_owner(owners: list[Membership], membership: Membership) -> None:
    if membership.role == Role.OWNER and [m.pk for m in owners] == [membership.pk]:
        raise PermissionDenied(
            _("%(person)s is the merchant's last owner; make someone else an owner first")
            % {"person": membership.user.get_username()},
            reason="last_owner",
        )


def change_role(*, acting_agent: ActingAgent, membership: Membership, role: str) -> Membership:
    """Give a member another role; only owners make or unmake owners, and the last owner stays."""
    require(acting_agent, Capability.MANAGE_MEMBERS)
    if role not in Role.values:
        raise BadInput(_("Unknown role %(role)s") % {"role": role}, field="role")
    if membership.tenant_id != acting_agent.tenant.pk:
        raise Membership.DoesNotExist("Not a membership of this merchant")
    with transaction.atomic():
        owners = _lock_owners(acting_agent)
        membership.refresh_from_db(from_queryset=Membership.objects.select_for_update())
        if membership.role == role:
            return membership
        if Role.OWNER in (role, membership.role):
            require(acting_agent, Capability.MANAGE_MERCHANT)
        _refuse_losing_last_owner(owners, membership)
        old = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        _record(acting_agent, AuditKind.MEMBER_ROLE_CHANGED, membership, {"role": (old, role)})
    return membership


def deactivate_member(*, acting_agent: ActingAgent, membership: Membership) -> None:
    """Remove someone from the merchant: they leave its groups, their open tickets go back to
    their group's queue, and they can no longer sign in to it."""
    from tickets.models import GroupMember, Ticket

    require(acting_agent, Capability.MANAGE_MEMBERS)
    if membership.tenant_id != acting_agent.tenant.pk:
        raise Membership.DoesNotExist("Not a membership of this merchant")
    with transaction.atomic():
        owners = _lock_owners(acting_agent)
        membership.refresh_from_db(from_queryset=Membership.objects.select_for_update())
        if membership.role == Role.OWNER:
            require(acting_agent, Capability.MANAGE_MERCHANT)
        _refuse_losing_last_owner(owners, membership)
        user = membership.user
        GroupMember.objects.filter(user=user).delete()
        unassigned = (
            Ticket.objects.filter(assignee=user)
            .exclude(status__in=[Ticket.Status.SOLVED, Ticket.Status.CLOSED])
            .update(assignee=None)
        )
        _record(
            acting_agent,
            AuditKind.MEMBER_REMOVED,
            membership,
            {"role": (membership.role, None)},
            {"open_tickets_unassigned": unassigned},
        )
        membership.delete()
