"""The merchant's groups (teams tickets are routed to), as owners and admins arrange them.

Every action requires ``MANAGE_GROUPS`` and is audited in its own transaction. The default
group is where ``tickets.assignment`` puts new tickets; there is at most one, and once a
merchant has chosen one there is always exactly one.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, Capability, require
from tickets import audit
from tickets.audit import AuditKind
from tickets.models import Group, GroupMember

MAX_NAME_LENGTH = Group._meta.get_field("name").max_length


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise BadInput(_("A group needs a name"), field="name")
    if len(name) > MAX_NAME_LENGTH:
        raise BadInput(
            _("A group name has at most %(count)s characters") % {"count": MAX_NAME_LENGTH},
            field="name",
        )
    return name


def _name_taken(name: str) -> BadInput:
    return BadInput(_("There is already a group called %(name)s") % {"name": name}, field="name")


def create_group(*, acting_agent: ActingAgent, name: str) -> Group:
    """Create a group; names are unique within the merchant."""
    require(acting_agent, Capability.MANAGE_GROUPS)
    name = _clean_name(name)
    try:
        with transaction.atomic():
            group = Group.objects.create(name=name)
            audit.record(
                actor=acting_agent,
                kind=AuditKind.GROUP_CREATED,
                obj=group,
                changes={"name": (None, name)},
            )
    except IntegrityError as exc:
        raise _name_taken(name) from exc
    return group


def rename_group(*, acting_agent: ActingAgent, group: Group, name: str) -> Group:
    """Rename a group; its tickets and members stay."""
    require(acting_agent, Capability.MANAGE_GROUPS)
    name = _clean_name(name)
    try:
        with transaction.atomic():
            group.refresh_from_db(from_queryset=Group.objects.select_for_update())
            if group.name == name:
                return group
            old = group.name
            group.name = name
            group.save(update_fields=["name"])
            audit.record(
                actor=acting_agent,
                kind=AuditKind.GROUP_RENAMED,
                obj=group,
                changes={"name": (old, name)},
            )
    except IntegrityError as exc:
        group.refresh_from_db()
        raise _name_taken(name) from exc
    return group


def set_default_group(*, acting_agent: ActingAgent, group: Group) -> Group:
    """Make ``group`` the one where new tickets land; the previous default stops being it."""
    require(acting_agent, Capability.MANAGE_GROUPS)
    with transaction.atomic():
        # Locking every group of the merchant serialises two admins choosing different
        # defaults at once, so exactly one stays the default.
        groups = list(Group.objects.select_for_update().order_by("pk"))
        target = next((g for g in groups if g.pk == group.pk), None)
        if target is None:
            raise Group.DoesNotExist(f"No group {group.pk} of this merchant")
        previous = [g for g in groups if g.is_default and g.pk != group.pk]
        if target.is_default and not previous:
            group.is_default = True
            return group
        Group.objects.filter(pk__in=[g.pk for g in previous]).update(is_default=False)
        Group.objects.filter(pk=group.pk).update(is_default=True)
        group.is_default = True
        audit.record(
            actor=acting_agent,
            kind=AuditKind.GROUP_DEFAULT_SET,
            obj=group,
            changes={"default_group": (", ".join(g.name for g in previous) or None, group.name)},
        )
    return group


def add_group_member(*, acting_agent: ActingAgent, group: Group, user: Any) -> GroupMember:
    """Put a member of the merchant into a group; they then work its tickets."""
    require(acting_agent, Capability.MANAGE_GROUPS)
    if not acting_agent.tenant.memberships.filter(user=user).exists():
        raise BadInput(
            _("%(person)s is not a member of this merchant") % {"person": user.get_username()},
            field="user",
        )
    with transaction.atomic():
        member, created = GroupMember.objects.get_or_create(group=group, user=user)
        if created:
            audit.record(
                actor=acting_agent,
                kind=AuditKind.GROUP_MEMBER_ADDED,
                obj=group,
                details={"person": user.get_username()},
            )
    return member


def remove_group_member(*, acting_agent: ActingAgent, group: Group, user: Any) -> None:
    """Take someone out of a group; their membership of the merchant stays."""
    require(acting_agent, Capability.MANAGE_GROUPS)
    with transaction.atomic():
        removed, _counts = GroupMember.objects.filter(group=group, user=user).delete()
        if removed:
            audit.record(
                actor=acting_agent,
                kind=AuditKind.GROUP_MEMBER_REMOVED,
                obj=group,
                details={"person": user.get_username()},
            )
