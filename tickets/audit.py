"""The merchant's audit log: one enum of what can happen, one way to write a row, one place that
turns rows into words.

A row's ``changes`` JSON holds ``{"field": [old, new]}`` for each field that changed and, under
``"details"``, the context that is not a change (``{"details": {"channel": "email"}}``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any

import django.dispatch
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import models
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.dates import WEEKDAYS_ABBR
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from helpdesk.models import ApiKey, Membership, Role
from helpdesk.permissions import ActingAgent, SystemActor
from helpdesk.tenancy import require_tenant
from tickets.models import (
    AgentPresence,
    AuditEvent,
    Customer,
    Group,
    IdentityKind,
    Message,
    RoutingStrategy,
    Ticket,
)
from tickets.models.workspace import IgnoredReason

DETAILS_KEY = "details"


class AuditKind(models.TextChoices):
    """Everything the audit log records, as a merchant's admin reads it."""

    TICKET_OPENED = "ticket.opened", _("Ticket opened")
    TICKET_STATUS_CHANGED = "ticket.status_changed", _("Ticket status changed")
    TICKET_ASSIGNED = "ticket.assigned", _("Ticket assigned")
    TICKET_TAGGED = "ticket.tagged", _("Ticket tagged")
    TICKET_UNTAGGED = "ticket.untagged", _("Tag removed from a ticket")
    TICKET_ORDER_LINKED = "ticket.order_linked", _("Order linked to a ticket")
    TICKET_ORDER_UNLINKED = "ticket.order_unlinked", _("Order unlinked from a ticket")
    TICKET_MERGED = "ticket.merged", _("Tickets merged")
    CUSTOMER_MERGED = "customer.merged", _("Customers merged")
    TICKET_ROUTED = "ticket.routed", _("Ticket routed to a group")
    TICKET_AUTO_ASSIGNED = "ticket.auto_assigned", _("Ticket assigned by routing")
    TICKET_RETURNED_TO_QUEUE = "ticket.returned_to_queue", _("Ticket returned to the queue")
    TICKET_PRIORITY_CHANGED = "ticket.priority_changed", _("Ticket priority changed")
    TICKET_TARGET_MISSED = "ticket.target_missed", _("Service-level target missed")
    AGENT_PRESENCE_CHANGED = "agent.presence_changed", _("Agent presence changed")
    REMEDY_GRANTED = "remedy.granted", _("Remedy granted")
    REMEDY_EXECUTED = "remedy.executed", _("Remedy executed")
    REMEDY_EXECUTION_FAILED = "remedy.execution_failed", _("Remedy execution failed")
    REMEDY_EXECUTED_BY_HAND = "remedy.executed_by_hand", _("Remedy executed by hand")
    PRICE_DROP_RECORDED = "price_drop.recorded", _("Price cut recorded")
    REMEDY_EXECUTION_RETRIED = "remedy.execution_retried", _("Remedy execution retried")
    APPROVAL_REQUESTED = "approval.requested", _("Approval of a remedy requested")
    APPROVAL_APPROVED = "approval.approved", _("Remedy approved")
    APPROVAL_COUNTERED = "approval.countered", _("Remedy approved with another amount")
    APPROVAL_DENIED = "approval.denied", _("Remedy denied")
    EMPOWERMENT_POLICY_CHANGED = "empowerment.policy_changed", _("Empowerment policy changed")
    EMPOWERMENT_LIMIT_SET = "empowerment.limit_set", _("Remedy limit set")
    EMPOWERMENT_LIMIT_REMOVED = "empowerment.limit_removed", _("Remedy limit removed")
    IDENTITY_ADDED = "identity.added", _("Customer contact added")
    CUSTOMER_IDENTITY_LEARNED = (
        "customer.identity_learned",
        _("Customer contact learned from a message"),
    )
    MESSAGE_NOTE_ADDED = "message.note_added", _("Internal note added")
    MESSAGE_REPLY_QUEUED = "message.reply_queued", _("Reply to the customer queued")
    MESSAGE_RESENT = "message.resent", _("Reply sent again")
    MESSAGE_SENT_NOW = "message.sent_now", _("Waiting reply sent now")
    INBOUND_RETRIED = "inbound.retried", _("Inbound message retried")
    INBOUND_DISCARDED = "inbound.discarded", _("Inbound message discarded")
    INBOUND_FILED_BY_HAND = "inbound.filed_by_hand", _("Inbound message filed by hand")
    CHANNEL_CREATED = "channel.created", _("Channel connected")
    CHANNEL_UPDATED = "channel.updated", _("Channel settings changed")
    CHANNEL_PAUSED = "channel.paused", _("Channel paused")
    CHANNEL_RESUMED = "channel.resumed", _("Channel resumed")
    CHANNEL_SECRET_ROTATED = "channel.secret_rotated", _("Channel inbound secret rotated")
    CHANNEL_CONNECTION_TESTED = "channel.connection_tested", _("Channel connection tested")
    CHANNEL_TEST_MAIL_SENT = "channel.test_mail_sent", _("Test mail sent")
    MAILBOX_PASSWORD_CHANGED = "mailbox.password_changed", _("Mailbox password changed")
    MERCHANT_ATTACHMENT_LIMIT_CHANGED = (
        "merchant.attachment_limit_changed",
        _("Attachment size limit changed"),
    )
    GROUP_CREATED = "group.created", _("Group created")
    GROUP_RENAMED = "group.renamed", _("Group renamed")
    GROUP_DEFAULT_SET = "group.default_set", _("Default group changed")
    GROUP_MEMBER_ADDED = "group.member_added", _("Group member added")
    GROUP_MEMBER_REMOVED = "group.member_removed", _("Group member removed")
    GROUP_ROUTING_CHANGED = "group.routing_changed", _("Group routing changed")
    GROUP_HOURS_CHANGED = "group.hours_changed", _("Group business hours changed")
    GROUP_HOLIDAY_ADDED = "group.holiday_added", _("Group holiday added")
    GROUP_HOLIDAY_REMOVED = "group.holiday_removed", _("Group holiday removed")
    GROUP_MEMBER_CAPACITY_CHANGED = (
        "group.member_capacity_changed",
        _("Group member capacity changed"),
    )
    SERVICE_TARGET_SET = "service_target.set", _("Service-level target set")
    MEMBER_ROLE_CHANGED = "member.role_changed", _("Member role changed")
    MEMBER_REMOVED = "member.removed", _("Member removed from the merchant")
    MEMBER_PROFILE_CHANGED = "member.profile_changed", _("Profile changed")
    API_KEY_CREATED = "api_key.created", _("API key created")
    API_KEY_REVOKED = "api_key.revoked", _("API key revoked")
    SUPPORT_ACCESS_STARTED = "support.access_started", _("Platform support access started")
    WEBHOOK_RESENT = "webhook.resent", _("Webhook resent")
    WEBHOOK_SUBSCRIBED = "webhook.subscribed", _("Webhook subscription created")
    WEBHOOK_SUBSCRIPTION_CHANGED = "webhook.subscription_changed", _("Webhook subscription changed")
    WEBHOOK_UNSUBSCRIBED = "webhook.unsubscribed", _("Webhook subscription deleted")
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated", _("Webhook signing secret rotated")
    ORDER_FEED_SECRET_ROTATED = "order_feed.secret_rotated", _("Order feed secret rotated")
    TICKET_REASON_CHANGED = "ticket.reason_changed", _("Ticket reason code changed")
    REASON_CODE_SAVED = "reason_code.saved", _("Reason code saved")
    MACRO_SAVED = "macro.saved", _("Macro saved")
    MACRO_RETIRED = "macro.retired", _("Macro retired")
    MACRO_RESTORED = "macro.restored", _("Macro offered again")
    TICKET_MARKED_SPAM = "ticket.marked_spam", _("Ticket marked as spam")
    TICKET_NOT_SPAM = "ticket.not_spam", _("Ticket marked as not spam")
    TICKET_IGNORED = "ticket.ignored", _("Ticket set aside: blocked sender")
    SENDER_BLOCKED = "sender.blocked", _("Sender blocked")
    SENDER_BLOCK_LIFTED = "sender.block_lifted", _("Sender block lifted")
    ESCALATION_RAISED = "escalation.raised", _("Ticket escalated")
    ESCALATION_RESOLVED = "escalation.resolved", _("Escalation resolved")
    ESCALATION_POLICY_CHANGED = "escalation.policy_changed", _("Escalation settings changed")
    SUPERVISOR_ALERT_RAISED = "alert.raised", _("Supervisor alert raised")
    PRICE_DROP_BATCH_REQUESTED = (
        "price_drop.batch_requested",
        _("Approval of a price-protection batch requested"),
    )
    CALL_LOGGED = "call.logged", _("Call logged")
    CALL_BACK_SCHEDULED = "call_back.scheduled", _("Call-back scheduled")
    CALL_BACK_CANCELLED = "call_back.cancelled", _("Call-back cancelled")
    DATA_IMPORTED = "data.imported", _("Customers or orders imported from a file")
    MERCHANT_SETTINGS_CHANGED = "merchant.settings_changed", _("Account settings changed")
    MERCHANT_LOGO_CHANGED = "merchant.logo_changed", _("Logo changed")
    EXPORT_REQUESTED = "export.requested", _("Data export requested")
    EXPORT_DOWNLOADED = "export.downloaded", _("Data export downloaded")
    DELETION_REQUESTED = "merchant.deletion_requested", _("Deletion of the merchant requested")
    DELETION_CANCELLED = "merchant.deletion_cancelled", _("Deletion of the merchant cancelled")
    MERCHANT_CREATED = "merchant.created", _("Merchant created")
    INVITATION_SENT = "invitation.sent", _("Invitation sent")
    INVITATION_RESENT = "invitation.resent", _("Invitation sent again")
    INVITATION_REVOKED = "invitation.revoked", _("Invitation revoked")
    INVITATION_ACCEPTED = "invitation.accepted", _("Invitation accepted")
    ONBOARDING_STEP_SKIPPED = "onboarding.step_skipped", _("Getting-started step skipped")
    ONBOARDING_STEP_RESUMED = "onboarding.step_resumed", _("Getting-started step taken up again")


# --- who acted ---------------------------------------------------------------------------------


def person_of(actor: Any) -> Any:
    """The user behind an actor: a person, an ActingAgent, or the system (None)."""
    if isinstance(actor, ActingAgent | SystemActor):
        return actor.user
    return actor


def actor_label(actor: Any) -> str:
    """How the log names who acted: their username, a command's name, or "system"."""
    person = person_of(actor)
    if person is None:
        return "system"
    return getattr(person, "get_username", lambda: str(person))()


# --- writing -----------------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """``value`` as JSON can hold it: Decimal as text, dates in ISO 8601, model rows by pk."""
    if isinstance(value, Enum):
        return json_safe(value.value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Promise):
        return str(value)
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, models.Model):
        return json_safe(value.pk)
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((json_safe(item) for item in value), key=str)
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    raise TypeError(f"{type(value).__name__} cannot go into the audit log")


def record(
    *,
    actor: Any,
    kind: AuditKind,
    obj: Any,
    changes: Mapping[str, tuple[Any, Any]] | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append who did what to the tenant's audit log (call inside the action's transaction).

    ``actor`` is the acting agent, the person, a command's name, or ``SYSTEM``/None for the
    helpdesk itself. ``changes`` maps each changed field to ``(old, new)``; ``details`` holds
    the context that is not a change. An unknown kind, or a "change" whose old and new values
    are equal, is refused with ValueError.
    """
    event = entry(actor=actor, kind=kind, obj=obj, changes=changes, details=details)
    event.save()
    recorded.send(sender=AuditEvent, event=event, batch=[event])
    return event


def record_all(events: list[AuditEvent]) -> list[AuditEvent]:
    """Append several ``entry()`` rows in one statement (a hot path: filing a new ticket)."""
    tenant_id = require_tenant().pk
    for event in events:
        event.tenant_id = tenant_id  # bulk_create skips TenantOwned.save
    written = AuditEvent.objects.bulk_create(events)
    for event in written:
        recorded.send(sender=AuditEvent, event=event, batch=written)
    return written


# Sent for every row ``record`` and ``record_all`` write, inside the action's transaction, with
# ``event`` and ``batch`` (the rows written with it): what listens (outgoing webhooks) acts
# after commit. ``bulk_create`` sends no
# post_save, so this is the one signal for both.
recorded = django.dispatch.Signal()


def entry(
    *,
    actor: Any,
    kind: AuditKind,
    obj: Any,
    changes: Mapping[str, tuple[Any, Any]] | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """An audit row, checked as ``record`` checks it, not yet written."""
    kind = AuditKind(kind)
    stored: dict[str, Any] = {}
    for field, pair in (changes or {}).items():
        if field == DETAILS_KEY:
            raise ValueError(f'"{DETAILS_KEY}" is not a field: pass it as details=')
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ValueError(f"{kind.value}: {field} must be (old, new), not {pair!r}")
        old, new = json_safe(pair[0]), json_safe(pair[1])
        if pair[0] == pair[1] or old == new:
            raise ValueError(f"{kind.value}: {field} did not change ({old!r})")
        stored[str(field)] = [old, new]
    if details:
        stored[DETAILS_KEY] = json_safe(details)
    person = person_of(actor)
    return AuditEvent(
        actor=person if getattr(person, "is_authenticated", False) else None,
        actor_label=actor_label(person),
        action=kind.value,
        object_type=type(obj).__name__.lower(),
        object_id=str(obj.pk),
        changes=stored,
    )


# --- reading -----------------------------------------------------------------------------------


def kind_label(action: str) -> str:
    """An action in the reader's language; an action no longer in the enum reads as stored."""
    try:
        return str(AuditKind(action).label)
    except ValueError:
        return action


FIELD_LABELS: dict[str, Any] = {
    "status": _("Status"),
    "execution": _("Execution"),
    "kind": _("Kind"),
    "currency": _("Currency"),
    "amount": _("Amount"),
    "granted_amount": _("Amount granted"),
    "per_grant_max_amount": _("Most per grant"),
    "order_share_max_percent": _("Most share of the order (%)"),
    "per_agent_day_max_amount": _("Most per person per day"),
    "per_customer_period_max_amount": _("Most per customer per period"),
    "customer_period_days": _("Customer period (days)"),
    "execution_url": _("Execution URL"),
    "callback_url": _("Callback URL"),
    "assignee": _("Assignee"),
    "order": _("Order"),
    "ticket": _("Ticket"),
    "merged_into": _("Merged into"),
    "merged_from": _("Merged from"),
    "messages_moved": _("Messages moved"),
    "identities_moved": _("Contacts moved"),
    "tickets_moved": _("Tickets moved"),
    "orders_moved": _("Orders moved"),
    "events_moved": _("Events moved"),
    "group": _("Group"),
    "state": _("State"),
    "channel": _("Channel"),
    "name": _("Name"),
    "address": _("Address"),
    "from_name": _("From name"),
    "imap_host": _("IMAP server"),
    "imap_port": _("IMAP port"),
    "imap_use_ssl": _("IMAP over SSL"),
    "imap_username": _("IMAP username"),
    "imap_folder": _("IMAP folder"),
    "smtp_host": _("SMTP server"),
    "smtp_port": _("SMTP port"),
    "smtp_use_tls": _("SMTP with STARTTLS"),
    "smtp_use_ssl": _("SMTP over SSL"),
    "smtp_username": _("SMTP username"),
    "paused": _("Paused"),
    "last_error": _("Last error"),
    "to": _("To"),
    "person": _("Person"),
    "role": _("Role"),
    "display_name": _("Display name"),
    "language": _("Interface language"),
    "signature": _("Email signature"),
    "default_group": _("Default group"),
    "max_attachment_bytes": _("Attachment size limit"),
    "prefix": _("Prefix"),
    "acts_as": _("Acts as"),
    "expires_at": _("Expires"),
    "revoked_at": _("Revoked"),
    "scopes": _("What it may do"),
    "server": _("Server"),
    "cleared": _("Password cleared"),
    "previous_valid_until": _("Old secret accepted until"),
    "open_tickets_unassigned": _("Open tickets unassigned"),
    "operator": _("Operator"),
    "imap": "IMAP",
    "smtp": "SMTP",
    "rule": _("Rule"),
    "reason": _("Reason"),
    "strategy": _("Assignment"),
    "sticky": _("Returning customers keep their agent"),
    "languages": _("Languages"),
    "channels": _("Channels"),
    "categories": _("Product categories"),
    "persona": _("Persona"),
    "always_open": _("Open around the clock"),
    "weekly_hours": _("Weekly hours"),
    "out_of_hours_reply": _("Out-of-hours reply"),
    "persona_description": _("Persona description"),
    "date": _("Date"),
    "chat_capacity": _("Live conversations at once"),
    "ticket_capacity": _("Open tickets at once"),
    "priority": _("Priority"),
    "first_response_minutes": _("First response (business minutes)"),
    "resolution_minutes": _("Resolution (business minutes)"),
    "target": _("Target"),
    "due_at": _("Due"),
    "presence": _("Presence"),
    "waited_seconds": _("Waited"),
    "reason_code": _("Reason"),
    "code": _("Code"),
    "label": _("Label"),
    "is_complaint": _("Complaint"),
    "active": _("Offered"),
    "position": _("Position"),
    "trigger": _("Trigger"),
    "resolution": _("Resolution"),
    "threshold_percent": _("Escalation threshold (%)"),
    "min_complaints": _("Fewest complaints before alerting"),
    "on_over_limit": _("Escalate remedies above a limit"),
    "on_customer_request": _("Escalate when the customer asks for a supervisor"),
    "supervisor_phrases": _("Phrases asking for a supervisor"),
    "on_manual": _("Agents may escalate by hand"),
    "on_first_response_breach": _("Escalate a missed first-response target"),
    "on_resolution_breach": _("Escalate a missed resolution target"),
    "on_repeat_contact": _("Escalate repeated contact"),
    "repeat_contacts": _("Contacts that count as repeated"),
    "repeat_days": _("Within days"),
    "monthly_budget_amount": _("Monthly remedy budget"),
    "budget_currency": _("Budget currency"),
    "defect_rate_percent": _("Defect-rate alert (%)"),
    "defect_min_orders": _("Fewest orders for a defect rate"),
    "body": _("Text"),
    "ignored_reason": _("Set aside as"),
    "sender": _("Sender"),
    "identity_kind": _("Kind of contact"),
    "file": _("File"),
    "rows": _("Rows"),
    "created": _("Created"),
    "updated": _("Updated"),
    "unchanged": _("Unchanged"),
    "failed": _("Rows with errors"),
    "default_currency": _("Default currency"),
    "time_zone": _("Time zone"),
    "locale": _("Default language"),
    "customer_languages": _("Languages offered to customers"),
    "logo": _("Logo"),
    "deletion_due_at": _("Deletion date"),
    "slug": _("Shop address"),
    "email": _("Email"),
    "step": _("Step"),
}

# How routing chose (``rule`` in a routing event's details), in the reader's words.
RULE_WORDS: dict[str, Any] = {
    "least_loaded": _("least loaded"),
    "round_robin": _("round robin"),
    "sticky": _("the customer's last agent"),
    "persona chosen by the customer": _("the persona the customer chose"),
    "skills": _("skills"),
    "default group": _("default group"),
    "moved by hand": _("moved by hand"),
}


def field_label(field: str) -> str:
    return str(FIELD_LABELS.get(field, field))


def _choice_label(choices: type[models.TextChoices], value: Any) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return str(value)


# Fields whose values are user ids: shown by username.
PERSON_FIELDS = {"assignee"}


def value_words(field: str, value: Any, people: Mapping[int, str] | None = None) -> str:
    """One stored value as the reader reads it: labels for statuses and roles, people by name,
    sizes in MB, "—" for nothing."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return str(_("yes") if value else _("no"))
    if isinstance(value, list):
        return ", ".join(value_words(field, item, people) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{field_label(k)}: {value_words(k, v, people)}" for k, v in value.items())
    if field == "status":
        return _choice_label(Ticket.Status, value)
    if field == "role":
        return _choice_label(Role, value)
    if field in {"language", "locale"} and isinstance(value, str):
        return language_words(value)
    if field == "priority":
        return _choice_label(Ticket.Priority, value)
    if field == "presence":
        return _choice_label(AgentPresence.Status, value)
    if field == "ignored_reason":
        return _choice_label(IgnoredReason, value)
    if field == "identity_kind":
        return _choice_label(IdentityKind, value)
    if field == "strategy":
        return _choice_label(RoutingStrategy, value)
    if field == "rule" and isinstance(value, str):
        return str(RULE_WORDS.get(value, value))
    if field == "waited_seconds" and isinstance(value, int):
        from datetime import timedelta

        from tickets.service_levels import duration_words

        return duration_words(timedelta(seconds=value))
    if field == "weekly_hours" and isinstance(value, list):
        return weekly_hours_words(value)
    if field in PERSON_FIELDS and isinstance(value, int) and people:
        return people.get(value, str(value))
    if field == "max_attachment_bytes" and isinstance(value, int):
        return str(filesizeformat(value))
    return str(value)


def language_words(code: str) -> str:
    """An interface language by its own name ("简体中文"), or the merchant's default for ""."""
    from django.utils.translation import get_language_info

    if not code:
        return str(_("The merchant's default"))
    try:
        return str(get_language_info(code)["name_local"])
    except KeyError:
        return code


def weekly_hours_words(week: list[Any]) -> str:
    """A week of opening hours as "Mon 09:00-18:00; …; Sun closed"."""
    from tickets.business_hours import day_hours_text

    return "; ".join(
        f"{WEEKDAYS_ABBR[day]} {day_hours_text(openings or []) or _('closed')}"
        for day, openings in enumerate(week[:7])
    )


@dataclass(frozen=True)
class ShownChange:
    """One changed field: ``field`` is "" for the single ``{"old", "new"}`` of older rows."""

    field: str
    old: str
    new: str


@dataclass(frozen=True)
class ShownDetail:
    field: str
    value: str


# Older rows whose two-item lists were not (old, new) pairs.
_LEGACY_LISTS = {("ticket.tagged", "added")}


def _is_pair(event: AuditEvent, field: str, value: Any) -> bool:
    return (
        isinstance(value, list) and len(value) == 2 and (event.action, field) not in _LEGACY_LISTS
    )


def changes_shown(
    event: AuditEvent, people: Mapping[int, str] | None = None
) -> tuple[list[ShownChange], list[ShownDetail]]:
    """An event's changes and details in words; rows written before ``record`` read too."""
    stored = dict(event.changes or {})
    changes: list[ShownChange] = []
    details: list[ShownDetail] = []
    if "old" in stored or "new" in stored:
        old, new = stored.pop("old", None), stored.pop("new", None)
        changes.append(ShownChange("", value_words("", old), value_words("", new)))
    context = stored.pop(DETAILS_KEY, None)
    for field, value in stored.items():
        if _is_pair(event, field, value):
            old, new = (value_words(field, v, people) for v in value)
            changes.append(ShownChange(field_label(field), old, new))
        else:
            details.append(ShownDetail(field_label(field), value_words(field, value, people)))
    if isinstance(context, dict):
        details.extend(
            ShownDetail(field_label(k), value_words(k, v, people)) for k, v in context.items()
        )
    elif context is not None:
        details.append(ShownDetail(field_label(DETAILS_KEY), value_words("", context)))
    return changes, details


def _people_named(events: list[AuditEvent]) -> dict[int, str]:
    """Usernames of the people the events' changes name by id, in one query."""
    ids = {
        v
        for event in events
        for field, value in (event.changes or {}).items()
        if field in PERSON_FIELDS and _is_pair(event, field, value)
        for v in value
        if isinstance(v, int)
    }
    if not ids:
        return {}
    user_model = get_user_model()
    rows = user_model.objects.filter(pk__in=ids).values_list("pk", user_model.USERNAME_FIELD)
    return dict(rows)


@dataclass(frozen=True)
class ShownObject:
    """What an event was about: "#123" linking to the ticket, a group's name, …"""

    kind: str
    name: str
    url: str = ""


@dataclass(frozen=True)
class AuditLine:
    event: AuditEvent
    label: str
    on: ShownObject
    changes: list[ShownChange]
    details: list[ShownDetail]


OBJECT_LABELS: dict[str, Any] = {
    "ticket": _("Ticket"),
    "message": _("Message"),
    "customer": _("Customer"),
    "group": _("Group"),
    "channelaccount": _("Channel"),
    "rawinbound": _("Inbound message"),
    "membership": _("Person"),
    "apikey": _("API key"),
    "tenant": _("Merchant"),
    "webhookdelivery": _("Webhook"),
    "remedy": _("Remedy"),
    "remedylimit": _("Remedy limit"),
    "approvalrequest": _("Approval request"),
    "empowermentpolicy": _("Empowerment policy"),
    "pricedrop": _("Price cut"),
    "agentpresence": _("Agent presence"),
    "servicetarget": _("Service-level target"),
    "macro": _("Macro"),
    "block": _("Blocked sender"),
    "importjob": _("Import"),
    "invitation": _("Invitation"),
    "onboardingprogress": _("Getting started"),
}


def _ticket_link(number: int | None) -> tuple[str, str]:
    if number is None:
        return "", ""
    return f"#{number}", reverse("tickets:detail", args=[number])


def _names_of(object_type: str, ids: list[int]) -> dict[int, tuple[str, str]]:
    """``{pk: (name, url)}`` for one type's objects, in one query; unknown types give {}."""
    tenant = require_tenant()
    if object_type == "ticket":
        rows = Ticket.objects.filter(pk__in=ids)
        return {pk: _ticket_link(n) for pk, n in rows.values_list("pk", "number")}
    if object_type == "message":
        rows = Message.objects.filter(pk__in=ids)
        return {pk: _ticket_link(n) for pk, n in rows.values_list("pk", "ticket__number")}
    if object_type == "rawinbound":
        rows = apps.get_model("channels_in", "RawInbound").objects.filter(pk__in=ids)
        return {pk: (subject, "") for pk, subject in rows.values_list("pk", "subject")}
    if object_type in {"customer", "group"}:
        rows = (Customer if object_type == "customer" else Group).objects.filter(pk__in=ids)
        return {pk: (name, "") for pk, name in rows.values_list("pk", "name")}
    if object_type == "channelaccount":
        rows = apps.get_model("channels_in", "ChannelAccount").objects.filter(pk__in=ids)
        return {
            pk: (name, reverse("settings:channel", args=[pk]))
            for pk, name in rows.values_list("pk", "name")
        }
    if object_type == "membership":
        rows = Membership.objects.filter(tenant=tenant, pk__in=ids)
        return {pk: (name, "") for pk, name in rows.values_list("pk", "user__username")}
    if object_type == "apikey":
        rows = ApiKey.objects.filter(tenant=tenant, pk__in=ids)
        return {
            pk: (f"{name} ({prefix}…)", "")
            for pk, name, prefix in rows.values_list("pk", "name", "prefix")
        }
    if object_type == "tenant":
        return {tenant.pk: (tenant.name, "")} if tenant.pk in ids else {}
    if object_type == "agentpresence":
        rows = AgentPresence.objects.filter(pk__in=ids)
        return {pk: (name, "") for pk, name in rows.values_list("pk", "user__username")}
    if object_type == "macro":
        rows = apps.get_model("tickets", "Macro").objects.filter(pk__in=ids)
        return {
            pk: (name, reverse("settings:macro", args=[pk]))
            for pk, name in rows.values_list("pk", "name")
        }
    if object_type == "block":
        rows = apps.get_model("tickets", "Block").objects.filter(pk__in=ids)
        return {
            pk: (value, reverse("settings:blocks")) for pk, value in rows.values_list("pk", "value")
        }
    if object_type == "importjob":
        rows = apps.get_model("tickets", "ImportJob").objects.filter(pk__in=ids)
        return {
            pk: (name, reverse("settings:import", args=[pk]))
            for pk, name in rows.values_list("pk", "original_name")
        }
    if object_type == "invitation":
        rows = apps.get_model("helpdesk", "Invitation").objects.filter(tenant=tenant, pk__in=ids)
        return {
            pk: (email, reverse("settings:members"))
            for pk, email in rows.values_list("pk", "email")
        }
    if object_type == "servicetarget":
        rows = apps.get_model("tickets", "ServiceTarget").objects.filter(pk__in=ids)
        return {
            pk: (_choice_label(Ticket.Priority, priority), reverse("settings:service_levels"))
            for pk, priority in rows.values_list("pk", "priority")
        }
    return {}


def audit_lines(events: Iterable[AuditEvent]) -> list[AuditLine]:
    """Events as the audit page shows them, with one query per kind of object on the page."""
    events = list(events)
    ids_by_type: dict[str, set[int]] = defaultdict(set)
    for event in events:
        if event.object_id.isdigit():
            ids_by_type[event.object_type].add(int(event.object_id))
    names = {
        object_type: _names_of(object_type, sorted(ids)) for object_type, ids in ids_by_type.items()
    }
    people = _people_named(events)
    lines = []
    for event in events:
        kind = str(OBJECT_LABELS.get(event.object_type, event.object_type))
        found = (
            names.get(event.object_type, {}).get(int(event.object_id))
            if event.object_id.isdigit()
            else None
        )
        name, url = found if found and found[0] else (event.object_id, "")
        changes, details = changes_shown(event, people)
        lines.append(
            AuditLine(
                event, kind_label(event.action), ShownObject(kind, name, url), changes, details
            )
        )
    return lines
