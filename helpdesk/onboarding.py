"""The getting-started checklist of a new merchant: seven steps, each done or not by what the
merchant's data shows, and the steps its owner chose to skip.

A step is done when (read from the data, never stored):
- connect email: an active email channel exists;
- install the chat widget: a live chat channel exists and its widget has been opened on the
  store (a visitor was seen: the widget only reaches us from an allowed origin);
- connect WeChat / a phone number: an active channel of that kind exists;
- invite the team: someone else belongs to the merchant or has a pending invitation;
- set remedy limits and escalation: a remedy limit exists, or the escalation settings were
  saved;
- import customers and orders: an import finished (tickets.imports).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from helpdesk.errors import BadInput
from helpdesk.models import Invitation, Membership, OnboardingProgress, Tenant
from helpdesk.permissions import ActingAgent, Capability, require

STEPS: list[tuple[str, Promise, Promise, str]] = [
    (
        "email",
        gettext_lazy("Connect your support email"),
        gettext_lazy(
            "Forward your support mailbox to the helpdesk, or let it fetch mail over IMAP: "
            "customers' mail becomes tickets and replies go out from your address."
        ),
        "settings:channel_new",
    ),
    (
        "chat",
        gettext_lazy("Install the chat widget on your store"),
        gettext_lazy(
            "Create a live chat channel, allow your store's address, and paste its snippet "
            "into your store's pages. Done once the widget has opened on your store."
        ),
        "settings:chat_channel_new",
    ),
    (
        "wechat",
        gettext_lazy("Connect your WeChat Official Account"),
        gettext_lazy("Messages to your Official Account arrive as tickets; replies go back."),
        "settings:wechat_channel_new",
    ),
    (
        "phone",
        gettext_lazy("Connect a phone number"),
        gettext_lazy("Calls ring your agents on duty; missed calls leave a ticket."),
        "settings:phone_channel_new",
    ),
    (
        "team",
        gettext_lazy("Invite your agents and supervisors"),
        gettext_lazy("Each person gets an email with a link to join, in the role you choose."),
        "settings:members",
    ),
    (
        "limits",
        gettext_lazy("Set remedy limits and the escalation threshold"),
        gettext_lazy(
            "What agents may give customers without asking (refunds, coupons), and when a "
            "supervisor is alerted."
        ),
        "settings:empowerment",
    ),
    (
        "import",
        gettext_lazy("Import your customers and orders"),
        gettext_lazy(
            "Upload a CSV or Excel file from your shop: agents see each customer's orders "
            "beside their tickets."
        ),
        "settings:imports",
    ),
]
STEP_KEYS = [key for key, *_rest in STEPS]


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    help: str
    url: str
    done: bool
    skipped: bool

    @property
    def settled(self) -> bool:
        """Done, or set aside by the owner: nothing left to do."""
        return self.done or self.skipped


@dataclass(frozen=True)
class Checklist:
    steps: list[Step]
    dismissed: bool

    @property
    def total(self) -> int:
        return len(self.steps)

    @property
    def settled_count(self) -> int:
        return sum(step.settled for step in self.steps)

    @property
    def complete(self) -> bool:
        return self.settled_count == self.total

    @property
    def percent(self) -> int:
        return round(100 * self.settled_count / self.total) if self.total else 100


def _progress() -> OnboardingProgress | None:
    return OnboardingProgress.objects.first()


def _active_channel_kinds() -> set[str]:
    from channels_in.models import ChannelAccount

    return set(ChannelAccount.objects.filter(is_active=True).values_list("kind", flat=True))


def _chat_seen() -> bool:
    from channels_in.models import ChatVisitor

    return ChatVisitor.objects.filter(
        account__kind="chat", account__is_active=True, account__webchat__isnull=False
    ).exists()


def _team_done(tenant: Tenant) -> bool:
    return (
        Membership.objects.filter(tenant=tenant).count() > 1
        or Invitation.objects.filter(
            tenant=tenant,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        ).exists()
    )


def _limits_done() -> bool:
    from escalation.models import RemedyLimit
    from tickets.audit import AuditKind
    from tickets.models import AuditEvent

    # By object type first: the audit index starts (tenant, object_type), so a merchant with
    # millions of ticket rows in its audit log is not read through to find none.
    return (
        RemedyLimit.objects.exists()
        or AuditEvent.objects.filter(
            object_type="escalationpolicy", action=AuditKind.ESCALATION_POLICY_CHANGED.value
        ).exists()
    )


def _import_done() -> bool:
    from tickets.imports import has_completed_import

    return has_completed_import()


_UNREAD = object()


def checklist(tenant: Tenant, progress: Any = _UNREAD) -> Checklist:
    """The active merchant's steps, each with what its data says (the merchant must be active);
    ``progress`` is the merchant's OnboardingProgress (or None) when the caller read it already."""
    if progress is _UNREAD:
        progress = _progress()
    skipped = set(progress.skipped_steps) if progress else set()
    channels = _active_channel_kinds()
    done = {
        "email": "email" in channels,
        "chat": "chat" in channels and _chat_seen(),
        "wechat": "wechat" in channels,
        "phone": "phone" in channels,
        "team": _team_done(tenant),
        "limits": _limits_done(),
        "import": _import_done(),
    }
    steps = [
        Step(
            key=key,
            title=str(title),
            help=str(help_text),
            url=reverse(url_name),
            done=done[key],
            skipped=key in skipped and not done[key],
        )
        for key, title, help_text, url_name in STEPS
    ]
    return Checklist(steps=steps, dismissed=bool(progress and progress.dismissed_at))


def may_see_checklist(acting_agent: ActingAgent) -> bool:
    """Owners and admins set the merchant up; the checklist is theirs."""
    return acting_agent.can(Capability.MANAGE_MEMBERS)


def _locked_progress() -> OnboardingProgress:
    progress, _created = OnboardingProgress.objects.select_for_update().get_or_create()
    return progress


def _checked_step(step: str) -> str:
    if step not in STEP_KEYS:
        raise BadInput(_("Unknown step %(step)s") % {"step": step}, field="step")
    return step


def skip_step(*, acting_agent: ActingAgent, step: str, skip: bool = True) -> OnboardingProgress:
    """The owner sets a step aside (it counts as settled), or takes it up again."""
    from tickets import audit
    from tickets.audit import AuditKind

    require(acting_agent, Capability.MANAGE_MERCHANT)
    step = _checked_step(step)
    with transaction.atomic():
        progress = _locked_progress()
        skipped = list(progress.skipped_steps)
        if (step in skipped) == skip:
            return progress
        progress.skipped_steps = [*skipped, step] if skip else [s for s in skipped if s != step]
        progress.save(update_fields=["skipped_steps", "updated_at"])
        audit.record(
            actor=acting_agent,
            kind=AuditKind.ONBOARDING_STEP_SKIPPED if skip else AuditKind.ONBOARDING_STEP_RESUMED,
            obj=progress,
            details={"step": step},
        )
    return progress


def dismiss_reminder(*, acting_agent: ActingAgent, dismissed: bool = True) -> OnboardingProgress:
    """Stop (or start again) reminding the merchant's admins on the tickets list."""
    require(acting_agent, Capability.MANAGE_MEMBERS)
    with transaction.atomic():
        progress = _locked_progress()
        if bool(progress.dismissed_at) == dismissed:
            return progress
        progress.dismissed_at = timezone.now() if dismissed else None
        progress.save(update_fields=["dismissed_at", "updated_at"])
    return progress


def reminder(acting_agent: Any) -> Checklist | None:
    """The checklist to remind an owner or admin of on the tickets list, or None (not theirs,
    all settled, or dismissed). Cheap for everyone else: no query."""
    if acting_agent is None or not may_see_checklist(acting_agent):
        return None
    progress = _progress()
    if progress is not None and progress.dismissed_at:
        return None  # hidden: one query, not the whole checklist, on every page
    found = checklist(acting_agent.tenant, progress)
    if found.complete:
        return None
    return found
