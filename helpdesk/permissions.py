"""What each role may do inside a merchant: the rule table, and the one check services call.

Every service that changes a merchant's data takes ``acting_agent`` (an ``ActingAgent``: the
person, the merchant and their membership there) and calls ``require(acting_agent, ...)``
before it writes anything. A refusal raises ``helpdesk.errors.PermissionDenied`` (403 with a
reason), so nothing is written.

The rules, in the merchant's words:
- agents work the tickets of their groups (and unrouted ones), and any ticket when the merchant
  allows it;
- supervisors also see every group, reassign tickets and watch escalations;
- admins also manage channels, groups, members and API keys, and read the audit log;
- owners also manage the merchant itself (billing-like settings, closing the account).

A platform operator (superuser) acting inside a merchant is support access: they may do what an
owner may, and switching in leaves an audit row the merchant's owners can read.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext as _

from helpdesk.errors import PermissionDenied
from helpdesk.models import Membership, Role

if TYPE_CHECKING:
    from helpdesk.models import Tenant


class Capability(StrEnum):
    WORK_TICKETS = "work_tickets"  # read, answer, note and set the status of tickets in reach
    WORK_ALL_GROUPS = "work_all_groups"  # every group's tickets, whatever the merchant allows
    REASSIGN = "reassign"  # give a ticket to someone else or move it to another group
    SUPERVISE = "supervise"  # escalation queue, dashboard, remedies granted by others
    MANAGE_CHANNELS = "manage_channels"  # mailboxes, inbound log, retry and discard inbound
    MANAGE_GROUPS = "manage_groups"
    MANAGE_MEMBERS = "manage_members"  # who belongs and with which role
    MANAGE_API_KEYS = "manage_api_keys"
    READ_AUDIT_LOG = "read_audit_log"
    MANAGE_MERCHANT = "manage_merchant"  # billing-like settings, closing the merchant


_AGENT = frozenset({Capability.WORK_TICKETS})
_SUPERVISOR = _AGENT | {Capability.WORK_ALL_GROUPS, Capability.REASSIGN, Capability.SUPERVISE}
_ADMIN = _SUPERVISOR | {
    Capability.MANAGE_CHANNELS,
    Capability.MANAGE_GROUPS,
    Capability.MANAGE_MEMBERS,
    Capability.MANAGE_API_KEYS,
    Capability.READ_AUDIT_LOG,
}
_OWNER = _ADMIN | {Capability.MANAGE_MERCHANT}

RULES: dict[str, frozenset[Capability]] = {
    Role.AGENT: _AGENT,
    Role.SUPERVISOR: frozenset(_SUPERVISOR),
    Role.ADMIN: frozenset(_ADMIN),
    Role.OWNER: frozenset(_OWNER),
}


@dataclass(frozen=True)
class ActingAgent:
    """Who is acting, for which merchant, in which role. ``membership`` is None only for a
    platform operator acting as support."""

    user: Any
    tenant: Tenant
    membership: Membership | None

    @property
    def role(self) -> str:
        if self.membership is not None:
            return self.membership.role
        return Role.OWNER if self.is_operator else ""

    @property
    def is_operator(self) -> bool:
        return bool(getattr(self.user, "is_superuser", False) and self.user.is_active)

    def can(self, capability: Capability) -> bool:
        return capability in RULES.get(self.role, frozenset())


def acting_agent_for(user: Any, tenant: Tenant) -> ActingAgent:
    """The acting agent of a person in a merchant; refused if they have no place there."""
    membership = (
        Membership.objects.filter(tenant=tenant, user=user).first()
        if getattr(user, "is_authenticated", False)
        else None
    )
    acting = ActingAgent(user=user, tenant=tenant, membership=membership)
    if membership is None and not acting.is_operator:
        raise PermissionDenied(_("You are not a member of this merchant"))
    return acting


def require(acting_agent: ActingAgent, capability: Capability) -> None:
    """Refuse (403, nothing written) unless the acting person's role allows ``capability``."""
    if not acting_agent.can(capability):
        raise PermissionDenied(
            _("Your role does not allow this (%(capability)s)")
            % {"capability": capability.value.replace("_", " ")},
            capability=capability.value,
            role=acting_agent.role,
        )
