"""The merchant's groups (teams tickets are routed to), as owners and admins arrange them.

Every action requires ``MANAGE_GROUPS`` and is audited in its own transaction. The default
group is where ``tickets.assignment`` puts new tickets; there is at most one, and once a
merchant has chosen one there is always exactly one. A group's routing (strategy, skills,
persona), business hours, holidays and members' capacity are set here too.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from helpdesk.errors import BadInput
from helpdesk.permissions import ActingAgent, Capability, require
from tickets import audit, tasks
from tickets.audit import AuditKind
from tickets.business_hours import read_weekly_hours
from tickets.models import Channel, Group, GroupHoliday, GroupMember, RoutingStrategy

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
            # The newcomer may take what is waiting in the group.
            tasks.hand_out_queued.delay_on_commit(acting_agent.tenant.pk, [group.pk])
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


# --- routing ---------------------------------------------------------------------------------

MAX_LANGUAGES = 20
MAX_CATEGORIES = 30
MAX_CATEGORY_LENGTH = 100
MAX_PERSONA_LENGTH = Group._meta.get_field("persona").max_length
MAX_PERSONA_DESCRIPTION_LENGTH = Group._meta.get_field("persona_description").max_length
# What a group may be skilled in: every channel a customer writes on (internal notes are not one).
ROUTABLE_CHANNELS = tuple(c.value for c in Channel if c != Channel.INTERNAL)

_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})*")
_PERSONA = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")


def _clean_languages(languages: Iterable[str]) -> list[str]:
    cleaned: list[str] = []
    for raw in languages:
        code = str(raw).strip().lower().replace("_", "-")
        if not code:
            continue
        if not _LANGUAGE_CODE.fullmatch(code):
            raise BadInput(
                _("Languages: “%(code)s” is not a language code such as zh, zh-hans or en")
                % {"code": str(raw).strip()},
                field="languages",
            )
        if code not in cleaned:
            cleaned.append(code)
    if len(cleaned) > MAX_LANGUAGES:
        raise BadInput(
            _("A group speaks at most %(count)s languages") % {"count": MAX_LANGUAGES},
            field="languages",
        )
    return cleaned


def _clean_channels(channels: Iterable[str]) -> list[str]:
    wanted = {str(c).strip() for c in channels} - {""}
    unknown = sorted(wanted - set(ROUTABLE_CHANNELS))
    if unknown:
        raise BadInput(
            _("Channels: “%(channel)s” is not a channel customers write on")
            % {"channel": unknown[0]},
            field="channels",
        )
    return [c for c in ROUTABLE_CHANNELS if c in wanted]  # one order, whatever the input's


def _clean_categories(categories: Iterable[str]) -> list[str]:
    cleaned: list[str] = []
    seen: set[str] = set()
    for raw in categories:
        category = " ".join(str(raw).split())
        if not category:
            continue
        if len(category) > MAX_CATEGORY_LENGTH:
            raise BadInput(
                _("Product categories: “%(category)s…” is longer than %(count)s characters")
                % {"category": category[:20], "count": MAX_CATEGORY_LENGTH},
                field="categories",
            )
        # Routing compares categories without case, so "Phones" and "phones" are one.
        if category.casefold() not in seen:
            seen.add(category.casefold())
            cleaned.append(category)
    if len(cleaned) > MAX_CATEGORIES:
        raise BadInput(
            _("A group covers at most %(count)s product categories") % {"count": MAX_CATEGORIES},
            field="categories",
        )
    return cleaned


def _clean_persona(persona: str, description: str) -> tuple[str, str]:
    persona = (persona or "").strip().lower()
    description = " ".join((description or "").split())
    if persona and (len(persona) > MAX_PERSONA_LENGTH or not _PERSONA.fullmatch(persona)):
        raise BadInput(
            _(
                "Persona: use at most %(count)s lower-case letters, digits and hyphens, "
                "such as friendly or expert"
            )
            % {"count": MAX_PERSONA_LENGTH},
            field="persona",
        )
    if len(description) > MAX_PERSONA_DESCRIPTION_LENGTH:
        raise BadInput(
            _("A persona description has at most %(count)s characters")
            % {"count": MAX_PERSONA_DESCRIPTION_LENGTH},
            field="persona_description",
        )
    if description and not persona:
        raise BadInput(
            _("A persona description needs a persona: name the persona or clear the description"),
            field="persona_description",
        )
    return persona, description


def _persona_taken(persona: str) -> BadInput:
    return BadInput(
        _("Another group already has the persona %(persona)s") % {"persona": persona},
        field="persona",
    )


def _changes(group: Group, wanted: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{field: (old, new)}`` for each field of ``group`` that ``wanted`` changes."""
    return {
        field: (getattr(group, field), new)
        for field, new in wanted.items()
        if getattr(group, field) != new
    }


def set_group_routing(
    *,
    acting_agent: ActingAgent,
    group: Group,
    strategy: str,
    sticky: bool,
    languages: Iterable[str],
    channels: Iterable[str],
    categories: Iterable[str],
    persona: str,
    persona_description: str,
) -> Group:
    """Set how a group's tickets reach it (skills, persona) and how it hands them to its members
    (strategy, returning customers to their agent); a persona belongs to one group only."""
    require(acting_agent, Capability.MANAGE_GROUPS)
    try:
        strategy = RoutingStrategy(strategy).value
    except ValueError as exc:
        raise BadInput(
            _("“%(strategy)s” is not a way of handing out tickets") % {"strategy": strategy},
            field="strategy",
        ) from exc
    persona, persona_description = _clean_persona(persona, persona_description)
    wanted = {
        "strategy": strategy,
        "sticky": bool(sticky),
        "languages": _clean_languages(languages),
        "channels": _clean_channels(channels),
        "categories": _clean_categories(categories),
        "persona": persona,
        "persona_description": persona_description,
    }
    try:
        with transaction.atomic():
            group.refresh_from_db(from_queryset=Group.objects.select_for_update())
            changes = _changes(group, wanted)
            if not changes:
                return group
            if (
                "persona" in changes
                and persona
                and Group.objects.filter(persona=persona).exclude(pk=group.pk).exists()
            ):
                raise _persona_taken(persona)
            for field, (_old, new) in changes.items():
                setattr(group, field, new)
            group.save(update_fields=list(changes))
            audit.record(
                actor=acting_agent, kind=AuditKind.GROUP_ROUTING_CHANGED, obj=group, changes=changes
            )
    except IntegrityError as exc:  # another admin gave the persona to a group just now
        group.refresh_from_db()
        raise _persona_taken(persona) from exc
    return group


# --- business hours --------------------------------------------------------------------------

MAX_OUT_OF_HOURS_REPLY_LENGTH = 1000
OPENS_AT = "{opens_at}"
_PLACEHOLDER = re.compile(r"\{\w+\}")


def _clean_out_of_hours_reply(reply: str) -> str:
    reply = (reply or "").strip()
    if len(reply) > MAX_OUT_OF_HOURS_REPLY_LENGTH:
        raise BadInput(
            _("An out-of-hours reply has at most %(count)s characters")
            % {"count": MAX_OUT_OF_HOURS_REPLY_LENGTH},
            field="out_of_hours_reply",
        )
    # A mistyped placeholder would reach the customer as it is written.
    unknown = [p for p in _PLACEHOLDER.findall(reply) if p != OPENS_AT]
    if unknown:
        raise BadInput(
            _("Out-of-hours reply: %(placeholder)s is not known; the one placeholder is %(known)s")
            % {"placeholder": unknown[0], "known": OPENS_AT},
            field="out_of_hours_reply",
        )
    return reply


def set_group_hours(
    *,
    acting_agent: ActingAgent,
    group: Group,
    always_open: bool,
    weekly_hours: object,
    out_of_hours_reply: str,
) -> Group:
    """Set when a group works (around the clock, or its weekly hours in the merchant's time
    zone) and what customers who write while it is closed are told."""
    require(acting_agent, Capability.MANAGE_GROUPS)
    hours = read_weekly_hours(weekly_hours)
    if not always_open and not any(hours):
        raise BadInput(
            _("A group that is not open around the clock needs opening hours"),
            field="weekly_hours",
        )
    wanted = {
        "always_open": bool(always_open),
        "weekly_hours": hours,
        "out_of_hours_reply": _clean_out_of_hours_reply(out_of_hours_reply),
    }
    with transaction.atomic():
        group.refresh_from_db(from_queryset=Group.objects.select_for_update())
        changes = _changes(group, wanted)
        if not changes:
            return group
        for field, (_old, new) in changes.items():
            setattr(group, field, new)
        group.save(update_fields=list(changes))
        audit.record(
            actor=acting_agent, kind=AuditKind.GROUP_HOURS_CHANGED, obj=group, changes=changes
        )
    return group


# --- holidays --------------------------------------------------------------------------------

MAX_HOLIDAY_NAME_LENGTH = GroupHoliday._meta.get_field("name").max_length


def _holiday_taken(date: datetime.date) -> BadInput:
    return BadInput(
        _("There is already a holiday on %(date)s") % {"date": date.isoformat()}, field="date"
    )


def add_group_holiday(
    *, acting_agent: ActingAgent, group: Group, date: datetime.date, name: str
) -> GroupHoliday:
    """Close a group for a whole day (in the merchant's time zone); one holiday per date."""
    require(acting_agent, Capability.MANAGE_GROUPS)
    if not isinstance(date, datetime.date) or isinstance(date, datetime.datetime):
        raise BadInput(_("A holiday needs a date"), field="date")
    name = " ".join((name or "").split())
    if len(name) > MAX_HOLIDAY_NAME_LENGTH:
        raise BadInput(
            _("A holiday's name has at most %(count)s characters")
            % {"count": MAX_HOLIDAY_NAME_LENGTH},
            field="name",
        )
    try:
        with transaction.atomic():
            group.refresh_from_db(from_queryset=Group.objects.select_for_update())
            if GroupHoliday.objects.filter(group=group, date=date).exists():
                raise _holiday_taken(date)
            holiday = GroupHoliday.objects.create(group=group, date=date, name=name)
            audit.record(
                actor=acting_agent,
                kind=AuditKind.GROUP_HOLIDAY_ADDED,
                obj=group,
                details={"date": date, "name": name},
            )
    except IntegrityError as exc:
        raise _holiday_taken(date) from exc
    return holiday


def remove_group_holiday(*, acting_agent: ActingAgent, group: Group, holiday: GroupHoliday) -> None:
    """Open a group again on a day it had off (a holiday already removed changes nothing)."""
    require(acting_agent, Capability.MANAGE_GROUPS)
    with transaction.atomic():
        locked = GroupHoliday.objects.select_for_update().filter(pk=holiday.pk, group=group).first()
        if locked is None:
            return
        locked.delete()
        audit.record(
            actor=acting_agent,
            kind=AuditKind.GROUP_HOLIDAY_REMOVED,
            obj=group,
            details={"date": locked.date, "name": locked.name},
        )


# --- members' capacity -----------------------------------------------------------------------

MAX_CHAT_CAPACITY = 50
MAX_TICKET_CAPACITY = 500


def _capacity(value: object, *, field: str, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise BadInput(
            _("%(what)s: a whole number from 0 to %(most)s")
            % {"what": audit.field_label(field), "most": most},
            field=field,
        )
    return value


def set_member_capacity(
    *,
    acting_agent: ActingAgent,
    group: Group,
    user: Any,
    chat_capacity: int,
    ticket_capacity: int,
) -> GroupMember:
    """Set how many live conversations and open tickets routing gives a group member at once
    (0: none); work waiting in the group is then handed out again."""
    require(acting_agent, Capability.MANAGE_GROUPS)
    wanted = {
        "chat_capacity": _capacity(chat_capacity, field="chat_capacity", most=MAX_CHAT_CAPACITY),
        "ticket_capacity": _capacity(
            ticket_capacity, field="ticket_capacity", most=MAX_TICKET_CAPACITY
        ),
    }
    with transaction.atomic():
        member = GroupMember.objects.select_for_update().filter(group=group, user=user).first()
        if member is None:
            raise BadInput(
                _("%(person)s is not in %(group)s")
                % {"person": user.get_username(), "group": group.name},
                field="user",
            )
        changes = {
            field: (getattr(member, field), new)
            for field, new in wanted.items()
            if getattr(member, field) != new
        }
        if not changes:
            return member
        for field, (_old, new) in changes.items():
            setattr(member, field, new)
        member.save(update_fields=list(changes))
        audit.record(
            actor=acting_agent,
            kind=AuditKind.GROUP_MEMBER_CAPACITY_CHANGED,
            obj=group,
            changes=changes,
            details={"person": user.get_username()},
        )
        # More room may let waiting work through at once.
        tasks.hand_out_queued.delay_on_commit(acting_agent.tenant.pk, [group.pk])
    return member
