"""Carrying granted remedies out in the merchant's order system.

A remedy is posted, signed, to the execution URL of the merchant's ``EmpowermentPolicy`` as one
``WebhookDelivery`` (event ``remedy.granted``): every try sends the same bytes under the same
``Idempotency-Key`` (the remedy's key), so the merchant's system refunds or ships once however
often it hears of it. A 2xx answer makes the remedy ``executed``; a failure that may pass is
tried again with backoff (``escalation.tasks.execute_remedy``), one that cannot, or the last
try, makes it ``failed`` with the reason. Without an execution URL a remedy is ``manual``: a
person carries it out and marks it executed by hand.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from escalation import limits
from escalation.models import EmpowermentPolicy, Remedy
from helpdesk import http, realtime, webhooks
from helpdesk.errors import BadInput, InvalidTransition, NotFound, PermissionDenied
from helpdesk.models import WebhookDelivery
from helpdesk.money import rounded
from helpdesk.permissions import SYSTEM, ActingAgent, Capability, require
from tickets import audit
from tickets.audit import AuditKind

EVENT = "remedy.granted"
IDEMPOTENCY_HEADER = "Idempotency-Key"

Execution = Remedy.Execution


class ExecutionDeferred(Exception):
    """A try failed for a reason that may pass: the remedy stays pending, showing the error,
    for the try after ``attempt``, which the caller schedules."""

    def __init__(self, failure: webhooks.WebhookFailed, *, attempt: int) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.attempt = attempt


# --- handing a granted remedy over ------------------------------------------------------------


def signing_also(policy: EmpowermentPolicy) -> str:
    """The secret a rotation replaced, while its grace lasts: it signs beside the new one."""
    valid_until = policy.previous_secret_valid_until
    if policy.previous_execution_secret and valid_until and valid_until > timezone.now():
        return policy.previous_execution_secret
    return ""


def hand_over(remedy: Remedy) -> None:
    """Queue a just-granted remedy for execution after the grant commits, or mark it for
    execution by hand when the merchant has no execution URL. Runs inside the grant's
    transaction."""
    url = limits.policy().execution_url
    if not url:
        Remedy.objects.filter(pk=remedy.pk).update(execution=Execution.MANUAL)
        remedy.execution = Execution.MANUAL
        return
    _queue(remedy, url=url)


def _queue(remedy: Remedy, *, url: str) -> None:
    """Give the remedy its delivery if it has none and queue the try after its last one, after
    the caller's transaction commits (a stale task of an earlier round then stands down)."""
    from escalation.tasks import execute_remedy

    delivery = remedy.delivery
    if delivery is None:
        # The URL is checked at each try rather than here: a refused URL shows on the remedy
        # and never undoes a grant that was within the limits.
        delivery = WebhookDelivery.objects.create(url=url, event=EVENT, body=execution_body(remedy))
        Remedy.objects.filter(pk=remedy.pk).update(delivery=delivery)
        remedy.delivery = delivery
    execute_remedy.delay_on_commit(remedy.tenant_id, remedy.pk, after_attempt=delivery.attempts)


def execution_body(remedy: Remedy) -> bytes:
    """What the merchant's order system receives: the remedy, its order, customer, ticket and
    who granted it, as compact JSON."""
    customer = remedy.customer
    person: dict[str, Any] = {"id": customer.pk, "name": customer.name}
    if email := customer.primary_email:
        person["email"] = email
    granter = remedy.granted_by
    return webhooks.encode_payload(
        {
            "type": EVENT,
            "idempotency_key": str(remedy.idempotency_key),
            "remedy": {
                "id": remedy.pk,
                "kind": remedy.kind,
                "amount": amount_text(remedy.amount, remedy.currency),
                "currency": remedy.currency,
                "item": remedy.item,
                "note": remedy.note,
                "created_at": remedy.created_at.isoformat().replace("+00:00", "Z"),
            },
            "order": {"number": remedy.order.number} if remedy.order is not None else None,
            "customer": person,
            "ticket": {"number": remedy.ticket.number},
            "granted_by": {
                "name": granter.get_full_name().strip() or granter.get_username(),
                "role": remedy.granted_role,
            },
        }
    )


def amount_text(amount: Decimal, currency: str) -> str:
    """The amount with the currency's decimal places ("12.50", "1200" for JPY); an amount
    finer than that (from an order's four places) is sent exactly, never rounded."""
    shown = rounded(amount, currency)
    return str(shown) if shown == amount else format(amount.normalize(), "f")


# --- one try ----------------------------------------------------------------------------------


def execute(
    *, remedy_id: int, retry_in: int | None = None, after_attempt: int | None = None
) -> str:
    """Try once to have the merchant's system carry out a pending remedy; return its state.

    Nothing is sent for a remedy that is no longer pending (executed, failed, by hand), nor
    when its delivery was tried since ``after_attempt`` (a duplicate or superseded task). When
    the try fails for a reason that may pass and ``retry_in`` is given, the remedy stays
    pending with the error and ``ExecutionDeferred`` asks the caller to schedule the next try;
    without ``retry_in`` this is the last try and any failure is final.
    """
    remedy = Remedy.objects.select_related("delivery", "ticket").filter(pk=remedy_id).first()
    if remedy is None:
        return "gone"
    if remedy.execution != Execution.PENDING:
        return remedy.execution
    delivery = remedy.delivery
    if delivery is None:
        return _fail(remedy, None, _("This remedy has no order system to be executed in."))
    if after_attempt is not None and delivery.attempts != after_attempt:
        return "superseded"
    found = limits.policy()
    url = found.execution_url
    if not url:
        return _fail(
            remedy,
            delivery,
            _("The merchant removed the execution URL: carry this remedy out by hand."),
        )
    try:
        http.check_url(url)
    except BadInput as refused:  # EgressRefused included
        return _fail(
            remedy,
            delivery,
            _("The execution URL %(url)s cannot be used: %(reason)s")
            % {"url": url, "reason": refused.message},
        )
    if delivery.url != url:
        # The merchant corrected the URL since the last try: the same body goes there now.
        delivery.url = url
        delivery.save(update_fields=["url", "updated_at"])
    try:
        webhooks.send_signed(
            delivery=delivery,
            secret=found.execution_secret,
            previous_secret=signing_also(found),
            headers={IDEMPOTENCY_HEADER: str(remedy.idempotency_key)},
        )
    except webhooks.AttemptSuperseded:
        return "superseded"
    except webhooks.WebhookFailed as failure:
        if failure.permanent or retry_in is None:
            webhooks.give_up(delivery=delivery)
            return _fail(remedy, delivery, failure.message)
        Remedy.objects.filter(pk=remedy.pk, execution=Execution.PENDING).update(
            execution_error=failure.message
        )
        webhooks.schedule_retry(delivery=delivery, countdown=retry_in)
        raise ExecutionDeferred(failure, attempt=delivery.attempts) from failure
    return _succeed(remedy)


def _succeed(remedy: Remedy) -> str:
    with transaction.atomic():
        done = Remedy.objects.filter(pk=remedy.pk, execution=Execution.PENDING).update(
            execution=Execution.EXECUTED, execution_error="", executed_at=timezone.now()
        )
        if done != 1:  # another try got there first: it wrote the one audit row
            return _current_state(remedy)
        audit.record(
            actor=SYSTEM,
            kind=AuditKind.REMEDY_EXECUTED,
            obj=remedy.ticket,
            changes={"execution": (Execution.PENDING, Execution.EXECUTED)},
            details=_audit_details(remedy),
        )
        _announce(remedy, "remedy.executed")
    return Execution.EXECUTED


def _fail(remedy: Remedy, delivery: WebhookDelivery | None, reason: str) -> str:
    with transaction.atomic():
        done = Remedy.objects.filter(pk=remedy.pk, execution=Execution.PENDING).update(
            execution=Execution.FAILED, execution_error=reason
        )
        if done != 1:
            return _current_state(remedy)
        audit.record(
            actor=SYSTEM,
            kind=AuditKind.REMEDY_EXECUTION_FAILED,
            obj=remedy.ticket,
            changes={"execution": (Execution.PENDING, Execution.FAILED)},
            details={**_audit_details(remedy), "error": reason},
        )
        _announce(remedy, "remedy.failed")
    return Execution.FAILED


def _current_state(remedy: Remedy) -> str:
    remedy.refresh_from_db(fields=["execution", "execution_error", "executed_at"])
    return remedy.execution


# --- what people do about a remedy -----------------------------------------------------------


def retry_execution(*, acting_agent: ActingAgent, remedy: Remedy) -> Remedy:
    """Send a remedy whose execution failed to the merchant's order system again, with the
    same body and idempotency key (a supervisor, or the person who granted it)."""
    _require_may_handle(acting_agent, remedy)
    with transaction.atomic():
        remedy = _locked(remedy)
        if remedy.execution == Execution.PENDING:
            return remedy  # already on its way
        if remedy.execution != Execution.FAILED:
            raise InvalidTransition(
                _("Only a remedy whose execution failed can be sent again"),
                execution=remedy.execution,
            )
        url = limits.policy().execution_url
        if not url:
            raise InvalidTransition(
                _("The merchant has no execution URL: carry the remedy out by hand"),
                execution=remedy.execution,
            )
        remedy.execution = Execution.PENDING
        remedy.save(update_fields=["execution"])
        audit.record(
            actor=acting_agent,
            kind=AuditKind.REMEDY_EXECUTION_RETRIED,
            obj=remedy.ticket,
            changes={"execution": (Execution.FAILED, Execution.PENDING)},
            details={**_audit_details(remedy), "event": EVENT, "error": remedy.execution_error},
        )
        _queue(remedy, url=url)
        _announce(remedy, "remedy.pending")
    remedy.refresh_from_db()  # a worker that runs inline has tried it already
    return remedy


def mark_executed_by_hand(*, acting_agent: ActingAgent, remedy: Remedy, note: str = "") -> Remedy:
    """Record that someone carried out a remedy by hand: one marked for manual execution, or
    one whose execution failed (a supervisor, or the person who granted it)."""
    _require_may_handle(acting_agent, remedy)
    with transaction.atomic():
        remedy = _locked(remedy)
        if remedy.execution == Execution.EXECUTED:
            return remedy
        if remedy.execution not in (Execution.MANUAL, Execution.FAILED):
            raise InvalidTransition(
                _("This remedy is being executed by the order system; wait for the outcome"),
                execution=remedy.execution,
            )
        old = remedy.execution
        remedy.execution = Execution.EXECUTED
        remedy.executed_at = timezone.now()
        remedy.save(update_fields=["execution", "executed_at"])
        details = _audit_details(remedy)
        if note.strip():
            details["note"] = note.strip()
        audit.record(
            actor=acting_agent,
            kind=AuditKind.REMEDY_EXECUTED_BY_HAND,
            obj=remedy.ticket,
            changes={"execution": (old, Execution.EXECUTED)},
            details=details,
        )
        _announce(remedy, "remedy.executed")
    return remedy


def _require_may_handle(acting_agent: ActingAgent, remedy: Remedy) -> None:
    require(acting_agent, Capability.WORK_TICKETS)
    if remedy.tenant_id != acting_agent.tenant.pk:
        raise NotFound(_("No such remedy"))
    if acting_agent.can(Capability.SUPERVISE) or remedy.granted_by_id == acting_agent.user.pk:
        return
    raise PermissionDenied(
        _("Only a supervisor or the person who granted a remedy can act on its execution"),
        capability=Capability.SUPERVISE.value,
        role=acting_agent.role,
    )


def _locked(remedy: Remedy) -> Remedy:
    found = (
        Remedy.objects.select_for_update(of=("self",))
        .select_related("delivery", "ticket")
        .filter(pk=remedy.pk)
        .first()
    )
    if found is None:  # another merchant's, seen through the wall that hides it
        raise NotFound(_("No such remedy"))
    return found


def _audit_details(remedy: Remedy) -> dict[str, Any]:
    return {
        "remedy": remedy.pk,
        "kind": remedy.kind,
        "amount": remedy.amount,
        "currency": remedy.currency,
    }


def _announce(remedy: Remedy, event: str) -> None:
    realtime.publish_after_commit(
        remedy.tenant_id,
        event,
        {"ticket": remedy.ticket.number, "remedy": remedy.pk},
        ticket=remedy.ticket,
    )
