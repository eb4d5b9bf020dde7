"""Supervisor alerts: the escalation rate above its target, a product or supplier whose defect
rate passed the merchant's limit. Raised once per crossing, cleared when the figure falls back.

A check reads the figures (``escalation.metrics``), then decides under a lock on the merchant's
escalation policy row, so two checks running at once (a sweep and an escalation's own check)
alert once; the partial unique constraint on active alerts holds even if they did not. A new
alert is audited, pushed to supervisors' pages ("alert.raised") and, after commit, emailed to
the merchant's supervisors, admins and owners in the merchant's language.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core import mail
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from escalation import metrics
from escalation.models import EscalationPolicy, SupervisorAlert
from helpdesk import realtime, tenancy
from helpdesk.models import Membership, Role, Tenant
from helpdesk.permissions import SYSTEM
from helpdesk.tenancy import require_tenant
from tickets import audit
from tickets.audit import AuditKind

logger = logging.getLogger(__name__)

Kind = SupervisorAlert.Kind

# The alerting window of the escalation rate, and the one defect rates are counted over.
RATE_DAYS = 7
DEFECT_DAYS = 30
# Who is told: the people who may supervise.
ALERTED_ROLES = (Role.SUPERVISOR, Role.ADMIN, Role.OWNER)
DASHBOARD_PATH = "/supervisor/"


def percent_words(value: Decimal | str | None) -> str:
    """A percentage as people write it: 3 (not 3.00), 2.5, 4.17."""
    if value is None:
        return "-"
    return f"{Decimal(value).normalize():f}"


# --- titles and bodies, in the language active when they are built ------------------------


def rate_title(details: dict[str, Any]) -> str:
    return _("Escalation rate %(rate)s%% is above the %(threshold)s%% target") % {
        "rate": details["rate"],
        "threshold": percent_words(details["threshold"]),
    }


def rate_body(details: dict[str, Any]) -> str:
    return _(
        "%(escalated)s of %(complaints)s complaint tickets created in the last %(days)s days "
        "were escalated to a supervisor."
    ) % {
        "escalated": details["escalated"],
        "complaints": details["complaints"],
        "days": details["days"],
    }


def defect_title(details: dict[str, Any]) -> str:
    return _("Defect rate of %(label)s is %(rate)s%%, above the %(limit)s%% limit") % {
        "label": details["label"],
        "rate": details["rate"],
        "limit": percent_words(details["limit"]),
    }


def defect_body(details: dict[str, Any]) -> str:
    return _(
        "%(complaint_orders)s of %(orders)s orders placed in the last %(days)s days with "
        "%(label)s have a complaint ticket."
    ) % {
        "complaint_orders": details["complaint_orders"],
        "orders": details["orders"],
        "days": details["days"],
        "label": details["label"],
    }


WORDING: dict[str, tuple[Callable[[dict], str], Callable[[dict], str]]] = {
    Kind.ESCALATION_RATE: (rate_title, rate_body),
    Kind.DEFECT_RATE: (defect_title, defect_body),
}


def _worded(kind: str, details: dict[str, Any]) -> tuple[str, str]:
    title, body = WORDING[kind]
    with translation.override(require_tenant().locale or settings.LANGUAGE_CODE):
        return title(details), body(details)


# --- raising and clearing --------------------------------------------------------------------


def _raise_once(
    *, found: EscalationPolicy, kind: str, key: str, details: dict[str, Any]
) -> SupervisorAlert | None:
    """Raise the alert unless one of ``kind`` and ``key`` is active; None when one is."""
    tenant = require_tenant()
    with transaction.atomic():
        # Checks of one merchant queue here: the second sees the first's alert.
        EscalationPolicy.objects.select_for_update().filter(pk=found.pk).first()
        active = SupervisorAlert.objects.filter(kind=kind, key=key, cleared_at__isnull=True).first()
        if active is not None:
            if active.emailed_at is None:  # the mail server failed last time: try again
                transaction.on_commit(functools.partial(_email_after_commit, tenant, active.pk))
            return None
        title, body = _worded(kind, details)
        try:
            with transaction.atomic():
                alert = SupervisorAlert.objects.create(
                    kind=kind, key=key, title=title[:255], body=body, details=details
                )
        except IntegrityError:  # raised meanwhile by a check that did not take the lock
            return None
        audit.record(
            actor=SYSTEM,
            kind=AuditKind.SUPERVISOR_ALERT_RAISED,
            obj=alert,
            details={"kind": kind, "key": key, "title": alert.title},
        )
        realtime.publish_after_commit(
            tenant.pk, "alert.raised", {"alert": alert.pk, "kind": kind, "title": alert.title}
        )
        transaction.on_commit(functools.partial(_email_after_commit, tenant, alert.pk))
    return alert


def _clear(alerts: QuerySet[SupervisorAlert], now: datetime) -> int:
    """Clear the active ``alerts``: the figure fell back, so the next crossing alerts again."""
    cleared = list(alerts.filter(cleared_at__isnull=True).values_list("pk", "kind"))
    if not cleared:
        return 0
    SupervisorAlert.objects.filter(pk__in=[pk for pk, _ in cleared]).update(cleared_at=now)
    tenant_id = require_tenant().pk
    for pk, kind in cleared:
        realtime.publish_after_commit(
            tenant_id, "supervisor.alert_cleared", {"alert": pk, "kind": kind}
        )
    return len(cleared)


def check_escalation_rate(*, now: datetime | None = None) -> SupervisorAlert | None:
    """Raise an alert when the active merchant's 7-day escalation rate is strictly above its
    threshold with at least its minimum of complaint tickets, unless one is active; clear the
    active one once that no longer holds. The alert raised by this call, or None."""
    now = now or timezone.now()
    found = metrics.policy()
    figures = metrics.escalation_rate(days=RATE_DAYS, end=now, found_policy=found)
    active = SupervisorAlert.objects.filter(kind=Kind.ESCALATION_RATE, key="")
    if not figures.above:
        _clear(active, now)
        return None
    if active.filter(cleared_at__isnull=True, emailed_at__isnull=False).exists():
        return None  # still above, already told: nothing to work out again
    details = {
        **figures.as_json(),
        "drivers": metrics.escalation_drivers(days=RATE_DAYS, end=now),
        "what_if": [scenario.as_json() for scenario in metrics.what_if(days=RATE_DAYS, end=now)],
    }
    return _raise_once(found=found, kind=Kind.ESCALATION_RATE, key="", details=details)


def defect_key(row: dict[str, Any]) -> str:
    return f"{row['dimension']}:{row['key']}"


def check_defect_rates(*, now: datetime | None = None) -> list[SupervisorAlert]:
    """Raise an alert for each SKU and supplier whose 30-day defect rate is above the merchant's
    limit (with its minimum of orders) and has none active; clear those that fell back. The
    alerts raised by this call."""
    now = now or timezone.now()
    found = metrics.policy()
    above = {
        defect_key(row): row
        for row in metrics.defect_rates(days=DEFECT_DAYS, end=now, found_policy=found)
        if row["above"]
    }
    defect_alerts = SupervisorAlert.objects.filter(kind=Kind.DEFECT_RATE)
    _clear(defect_alerts.exclude(key__in=list(above)), now)
    already = set(
        defect_alerts.filter(cleared_at__isnull=True, key__in=list(above)).values_list(
            "key", flat=True
        )
    )
    raised = []
    for key, row in above.items():
        if key in already:
            continue
        details = {
            "dimension": row["dimension"],
            "key": row["key"],
            "label": row["label"],
            "orders": row["orders"],
            "complaint_orders": row["complaint_orders"],
            "rate": metrics.percent_text(row["rate"]),
            "limit": str(Decimal(found.defect_rate_percent).quantize(metrics.CENT)),
            "min_orders": found.defect_min_orders,
            "days": DEFECT_DAYS,
        }
        alert = _raise_once(found=found, kind=Kind.DEFECT_RATE, key=key, details=details)
        if alert is not None:
            raised.append(alert)
    return raised


# --- who is told, and how --------------------------------------------------------------------


def people_to_alert() -> QuerySet[Membership]:
    """The merchant's supervisors, admins and owners who can receive mail."""
    return (
        Membership.objects.filter(
            tenant=require_tenant(), role__in=ALERTED_ROLES, user__is_active=True
        )
        .exclude(user__email="")
        .select_related("user")
        .order_by("user__email")
    )


def dashboard_url() -> str:
    return settings.HELPDESK_PUBLIC_URL.rstrip("/") + DASHBOARD_PATH


def alert_email(alert: SupervisorAlert, member: Membership, language: str) -> mail.EmailMessage:
    """The alert's email to one person, in ``language``."""
    tenant = require_tenant()
    with translation.override(language):
        title, body = _worded(alert.kind, alert.details)
        context = {
            "alert": alert,
            "tenant": tenant,
            "member": member,
            "title": title,
            "body": body,
            "details": alert.details,
            "is_rate": alert.kind == Kind.ESCALATION_RATE,
            "threshold": percent_words(alert.details.get("threshold")),
            "limit": percent_words(alert.details.get("limit")),
            "dashboard_url": dashboard_url(),
        }
        text = render_to_string("escalation/alert_email.txt", context)
        subject = f"[{tenant.name}] {title}"
    return mail.EmailMessage(
        subject=subject.replace("\n", " ")[:255], body=text, to=[member.user.email]
    )


def _email_after_commit(tenant: Tenant, alert_id: int) -> None:
    # The caller's transaction may end outside the block that activated its tenant.
    with tenancy.activate(tenant):
        email_alert(alert_id=alert_id)


def email_alert(*, alert_id: int) -> int:
    """Email the alert to each supervisor, admin and owner, once: the first call claims it
    (``emailed_at``); a mail server failure releases the claim so the next check tries again.
    The number of emails sent."""
    now = timezone.now()
    claimed = SupervisorAlert.objects.filter(
        pk=alert_id, emailed_at__isnull=True, cleared_at__isnull=True
    ).update(emailed_at=now)
    if not claimed:
        return 0
    alert = SupervisorAlert.objects.get(pk=alert_id)
    # People choose a language per browser, not per account: mail goes in the merchant's.
    language = require_tenant().locale or settings.LANGUAGE_CODE
    messages = [alert_email(alert, member, language) for member in people_to_alert()]
    try:
        with mail.get_connection() as connection:
            sent = connection.send_messages(messages) if messages else 0
    except Exception:  # the mail server is down: the next check sends it
        logger.warning("alert %s not emailed", alert_id, exc_info=True)
        SupervisorAlert.objects.filter(pk=alert_id).update(emailed_at=None)
        return 0
    return sent or 0


# --- for the dashboard -----------------------------------------------------------------------


def active_alerts() -> QuerySet[SupervisorAlert]:
    """The alerts not cleared yet, newest first."""
    return SupervisorAlert.objects.filter(cleared_at__isnull=True).order_by("-created_at", "-pk")


def recent_alerts(limit: int = 20) -> list[SupervisorAlert]:
    """The latest alerts, active or cleared, newest first."""
    return list(SupervisorAlert.objects.order_by("-created_at", "-pk")[:limit])
