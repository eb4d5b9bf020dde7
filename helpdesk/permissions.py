"""What each role may do inside a merchant: the rule table, and the checks services call.

Every service that changes a merchant's data takes ``acting_agent`` (an ``ActingAgent``: the
person, the merchant and their membership there) and calls ``require(acting_agent, ...)``
(and, for a ticket, ``require_ticket_in_reach``) before it writes anything. A refusal raises
``helpdesk.errors.PermissionDenied`` (403 with a reason), so nothing is written.

The rules, in the merchant's words:
- agents work the tickets of their groups, unrouted ones and those assigned to them, and any
  ticket when the merchant allows it (``Tenant.agents_work_all_groups``); they may take an
  unassigned ticket for themselves;
- supervisors also see every group and reassign tickets, and watch escalations;
- admins also manage channels, groups, members and API keys, what agents may give customers
  (remedy limits), and read the audit log;
- owners also manage the merchant itself (billing-like settings, closing the account).

A platform operator (superuser) acting inside a merchant where they have no membership is
support access: they may do what an owner may, and acting there leaves an audit row the
merchant's owners can read (``note_support_access``).

The helpdesk's own work (the pipeline filing a customer's mail, a scheduled task) acts as
``SYSTEM``: not a person, with no role to check. Only code that runs without a person passes
it, and it is easy to grep for.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from helpdesk.errors import PermissionDenied
from helpdesk.models import Membership, Role

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest

    from helpdesk.models import Tenant
    from tickets.models import Ticket


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
    MANAGE_EMPOWERMENT = "manage_empowerment"  # remedy limits and where remedies are executed
    MANAGE_MERCHANT = "manage_merchant"  # billing-like settings, closing the merchant
    IMPORT_DATA = "import_data"  # bring customers and orders in from CSV and XLSX files


# What a refusal names, in the agent's language.
CAPABILITY_LABELS = {
    Capability.WORK_TICKETS: gettext_lazy("work on tickets"),
    Capability.WORK_ALL_GROUPS: gettext_lazy("work on every group's tickets"),
    Capability.REASSIGN: gettext_lazy("reassign tickets"),
    Capability.SUPERVISE: gettext_lazy("supervise"),
    Capability.MANAGE_CHANNELS: gettext_lazy("manage channels"),
    Capability.MANAGE_GROUPS: gettext_lazy("manage groups"),
    Capability.MANAGE_MEMBERS: gettext_lazy("manage members"),
    Capability.MANAGE_API_KEYS: gettext_lazy("manage API keys"),
    Capability.READ_AUDIT_LOG: gettext_lazy("read the audit log"),
    Capability.MANAGE_EMPOWERMENT: gettext_lazy("manage what agents may give customers"),
    Capability.MANAGE_MERCHANT: gettext_lazy("manage the merchant"),
    Capability.IMPORT_DATA: gettext_lazy("import customers and orders"),
}

_AGENT = frozenset({Capability.WORK_TICKETS})
_SUPERVISOR = _AGENT | {Capability.WORK_ALL_GROUPS, Capability.REASSIGN, Capability.SUPERVISE}
_ADMIN = _SUPERVISOR | {
    Capability.MANAGE_CHANNELS,
    Capability.MANAGE_GROUPS,
    Capability.MANAGE_MEMBERS,
    Capability.MANAGE_API_KEYS,
    Capability.READ_AUDIT_LOG,
    Capability.MANAGE_EMPOWERMENT,
    Capability.IMPORT_DATA,
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

    @property
    def is_support_access(self) -> bool:
        """A platform operator acting in a merchant they do not belong to."""
        return self.membership is None and self.is_operator

    def can(self, capability: Capability) -> bool:
        return capability in RULES.get(self.role, frozenset())


@dataclass(frozen=True)
class SystemActor:
    """The helpdesk itself acting, not a person: filing a customer's mail, a Celery task.

    ``on_behalf_of`` names the person whose earlier, checked decision the system carries out
    (the status an agent chose with a reply, applied once it is sent), so the audit log still
    says who decided.
    """

    on_behalf_of: Any = None

    @property
    def user(self) -> Any:
        return self.on_behalf_of

    def can(self, capability: Capability) -> bool:
        return True


SYSTEM = SystemActor()

# What a service that the helpdesk also runs on its own accepts.
Actor = ActingAgent | SystemActor


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


_REQUEST_ATTRIBUTE = "_acting_agent"


def bind_acting_agent(request: HttpRequest, acting_agent: ActingAgent) -> None:
    """Remember who acts for this request (API authentication, where the person is the key's
    owner rather than a session's)."""
    setattr(getattr(request, "_request", request), _REQUEST_ATTRIBUTE, acting_agent)


def acting_agent_for_request(request: HttpRequest) -> ActingAgent:
    """The signed-in person acting for the request's merchant, built once per request.

    A platform operator without a membership there is on support access, which is audited.
    """
    from helpdesk.tenancy import membership_of

    http_request = getattr(request, "_request", request)  # a DRF Request wraps Django's
    cached = getattr(http_request, _REQUEST_ATTRIBUTE, None)
    if cached is not None:
        return cached
    tenant = getattr(http_request, "tenant", None)
    if tenant is None or not http_request.user.is_authenticated:
        raise PermissionDenied(_("You are not a member of this merchant"))
    acting = ActingAgent(
        user=http_request.user, tenant=tenant, membership=membership_of(http_request)
    )
    if acting.membership is None and not acting.is_operator:
        raise PermissionDenied(_("You are not a member of this merchant"))
    if acting.is_support_access:
        note_support_access(http_request, acting)
    setattr(http_request, _REQUEST_ATTRIBUTE, acting)
    return acting


def _refuse_other_merchant(acting_agent: ActingAgent) -> None:
    from helpdesk.tenancy import current_tenant

    active = current_tenant()
    if active is not None and active.pk != acting_agent.tenant.pk:
        # A bug, not a user's doing: one merchant's role never acts in another.
        raise PermissionDenied(_("You are not a member of this merchant"))


def require(acting_agent: Actor, capability: Capability) -> None:
    """Refuse (403, nothing written) unless the acting person's role allows ``capability``."""
    if isinstance(acting_agent, SystemActor):
        return
    _refuse_other_merchant(acting_agent)
    if not acting_agent.can(capability):
        raise PermissionDenied(
            _("Your role does not allow you to %(capability)s")
            % {"capability": CAPABILITY_LABELS[capability]},
            capability=capability.value,
            role=acting_agent.role,
        )


# --- which tickets a person works ------------------------------------------------------------


def works_every_group(acting_agent: ActingAgent) -> bool:
    return acting_agent.can(Capability.WORK_ALL_GROUPS) or (
        acting_agent.can(Capability.WORK_TICKETS) and acting_agent.tenant.agents_work_all_groups
    )


def can_work_ticket(acting_agent: Actor, ticket: Ticket) -> bool:
    """Whether this person may open and work this ticket: every ticket for supervisors and up
    (and for agents when the merchant allows it), else those of their groups, unrouted ones
    and those assigned to them."""
    if isinstance(acting_agent, SystemActor):
        return True
    if ticket.tenant_id != acting_agent.tenant.pk or not acting_agent.can(Capability.WORK_TICKETS):
        return False
    if works_every_group(acting_agent):
        return True
    if ticket.group_id is None or ticket.assignee_id == acting_agent.user.pk:
        return True
    # One look per ticket row and person: a page checks the same ticket several times (its
    # view, then each panel's form), and a loaded row lives no longer than its request or task.
    seen = ticket.__dict__.setdefault("_group_members_seen", {})
    key = (ticket.group_id, acting_agent.user.pk)
    if key not in seen:
        from tickets.models import GroupMember

        seen[key] = GroupMember.objects.filter(
            group_id=ticket.group_id, user=acting_agent.user
        ).exists()
    return seen[key]


def tickets_in_reach(acting_agent: ActingAgent, tickets: QuerySet[Ticket]) -> QuerySet[Ticket]:
    """``tickets`` narrowed to those ``can_work_ticket`` allows: the same rule, as a query."""
    from django.db.models import Q

    from tickets.models import GroupMember

    if not acting_agent.can(Capability.WORK_TICKETS):
        return tickets.none()
    if works_every_group(acting_agent):
        return tickets
    my_groups = GroupMember.objects.filter(user=acting_agent.user).values("group_id")
    return tickets.filter(
        Q(group__isnull=True) | Q(assignee=acting_agent.user) | Q(group_id__in=my_groups)
    )


def require_ticket_in_reach(acting_agent: Actor, ticket: Ticket) -> None:
    """Refuse (403, nothing written) unless the person works tickets and this one is in reach."""
    require(acting_agent, Capability.WORK_TICKETS)
    if not can_work_ticket(acting_agent, ticket):
        raise PermissionDenied(
            _("This ticket belongs to a group you do not work in"),
            capability=Capability.WORK_TICKETS.value,
            ticket=ticket.number,
        )


# --- support access by platform operators -----------------------------------------------------

SUPPORT_SESSION_KEY = "support_access_tenant_ids"


def note_support_access(
    request: HttpRequest, acting_agent: ActingAgent, *, always: bool = False
) -> None:
    """Write "support.access_started" in the merchant's audit log when a platform operator
    starts acting there, so its owners see who looked: at every switch (``always``), and once
    per sign-in when an operator lands in a merchant without switching."""
    if not acting_agent.is_support_access:
        return
    session = getattr(request, "session", None)
    noted = list(session.get(SUPPORT_SESSION_KEY, [])) if session is not None else []
    if acting_agent.tenant.pk in noted and not always:
        return
    from helpdesk import tenancy
    from tickets import audit

    with tenancy.activate(acting_agent.tenant):
        audit.record(
            actor=acting_agent,
            kind=audit.AuditKind.SUPPORT_ACCESS_STARTED,
            obj=acting_agent.tenant,
            details={"operator": acting_agent.user.get_username()},
        )
    if session is not None and acting_agent.tenant.pk not in noted:
        session[SUPPORT_SESSION_KEY] = [*noted, acting_agent.tenant.pk]
