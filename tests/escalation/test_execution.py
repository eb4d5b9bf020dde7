"""Granted remedies are carried out by the merchant's order system: a signed post with an
idempotency key to a real receiver on 127.0.0.1, retried until it answers 2xx, and never
again after; without an execution URL a person does it and says so."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from escalation import execution
from escalation.models import EmpowermentPolicy, Remedy, RemedyKind, RemedyLimit
from escalation.services import grant_remedy
from escalation.tasks import execute_remedy
from helpdesk import tenancy
from helpdesk.errors import InvalidTransition, NotFound, PermissionDenied
from helpdesk.models import Role, WebhookDelivery
from helpdesk.permissions import SYSTEM
from tests.channels_in.conftest import real_worker  # noqa: F401
from tests.channels_in.polling import wait_for
from tests.conftest import _member, acting
from tests.factories import CustomerFactory, OrderFactory
from tickets.audit import AuditKind
from tickets.models import AuditEvent
from tickets.services import open_ticket

pytestmark = pytest.mark.django_db(transaction=True)

Execution = Remedy.Execution


# --- the merchant's order system -------------------------------------------------------------


@dataclass
class Answer:
    status: int = 200
    body: bytes = b'{"ok": true}'
    delay: float = 0.0  # seconds to take before answering (the work still gets done)


@dataclass
class Delivery:
    headers: Any
    body: bytes

    @property
    def key(self) -> str:
        return self.headers["Idempotency-Key"]


@dataclass
class OrderSystem:
    """A real HTTP server on 127.0.0.1 that logs every delivery and answers it with the next
    queued ``Answer`` (else 200)."""

    seen: list[Delivery] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/remedies") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def order_system(allow_egress) -> Iterator[OrderSystem]:
    system = OrderSystem()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                system.seen.append(Delivery(self.headers, body))
                answer = system.answers.pop(0) if system.answers else Answer()
            time.sleep(answer.delay)
            with contextlib.suppress(OSError):  # the helpdesk may have hung up by now
                self.send_response(answer.status)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    system.port = server.server_address[1]
    allow_egress("127.0.0.1", system.port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield system
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def execution_policy(tenant_acme, order_system) -> EmpowermentPolicy:
    """Acme executes remedies through its order system."""
    with tenancy.activate(tenant_acme):
        return EmpowermentPolicy.objects.create(execution_url=order_system.url())


@pytest.fixture
def queue_only(monkeypatch) -> None:
    """Tasks are queued but not run: the test plays the worker, try by try."""
    monkeypatch.setattr(execute_remedy, "delay", lambda *args, **kwargs: None)


def grant_refund(agent: Any, ticket: Any, amount: str = "50.00", **fields: Any) -> Remedy:
    with tenancy.activate(ticket.tenant):
        remedy = grant_remedy(
            acting_agent=acting(agent),
            ticket=ticket,
            kind=RemedyKind.REFUND,
            amount=amount,
            **fields,
        )
        remedy.refresh_from_db()
        return remedy


def verified(secret: str, delivery: Delivery) -> dict[str, Any]:
    """Check the signature as the merchant's system would (helpdesk/signing.py); the JSON."""
    timestamp = delivery.headers["X-Helpdesk-Timestamp"]
    assert abs(time.time() - int(timestamp)) < 60
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + delivery.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(delivery.headers["X-Helpdesk-Signature"], f"sha256={expected}")
    return json.loads(delivery.body)


def audit_rows(tenant: Any, kind: AuditKind) -> list[AuditEvent]:
    with tenancy.activate(tenant):
        return list(AuditEvent.objects.filter(action=kind.value))


def fresh(remedy: Remedy) -> Remedy:
    with tenancy.activate(remedy.tenant):
        return Remedy.objects.select_related("delivery").get(pk=remedy.pk)


# --- executed --------------------------------------------------------------------------------


def test_a_granted_refund_is_posted_signed_with_its_idempotency_key_and_executed(
    tenant_acme, agent_li, acme_ticket, agents_refund_limit, execution_policy, order_system
):
    remedy = grant_refund(agent_li, acme_ticket, "50", note="漏油，先退50元")

    assert remedy.execution == Execution.EXECUTED and remedy.executed_at is not None
    assert remedy.execution_error == ""
    (delivery,) = order_system.seen
    assert delivery.key == str(remedy.idempotency_key)
    assert delivery.headers["X-Helpdesk-Event"] == "remedy.granted"
    assert delivery.headers["Content-Type"].startswith("application/json")
    document = verified(execution_policy.execution_secret, delivery)
    assert b", " not in delivery.body and "漏油".encode() in delivery.body  # compact, UTF-8
    assert document == {
        "type": "remedy.granted",
        "idempotency_key": str(remedy.idempotency_key),
        "remedy": {
            "id": remedy.pk,
            "kind": "refund",
            "amount": "50.00",
            "currency": "CNY",
            "item": "",
            "note": "漏油，先退50元",
            "created_at": remedy.created_at.isoformat().replace("+00:00", "Z"),
        },
        "order": {"number": "SO20260815"},
        "customer": {
            "id": acme_ticket.customer_id,
            "name": "王芳",
            "email": "wang.fang@example.cn",
        },
        "ticket": {"number": acme_ticket.number},
        "granted_by": {"name": "li.acme", "role": "agent"},
    }
    assert len(audit_rows(tenant_acme, AuditKind.REMEDY_EXECUTED)) == 1
    sent = fresh(remedy).delivery
    assert sent.state == WebhookDelivery.State.DELIVERED and sent.attempts == 1
    assert str(sent.pk) == delivery.headers["X-Helpdesk-Delivery"]


def test_nothing_is_sent_once_a_remedy_is_executed(
    tenant_acme, agent_li, acme_ticket, agents_refund_limit, execution_policy, order_system
):
    remedy = grant_refund(agent_li, acme_ticket)
    assert remedy.execution == Execution.EXECUTED

    # The same task delivered again, and a worker trying it without knowing the last attempt.
    assert execute_remedy(tenant_acme.pk, remedy.pk, after_attempt=0) == Execution.EXECUTED
    assert execute_remedy(tenant_acme.pk, remedy.pk) == Execution.EXECUTED
    with tenancy.activate(tenant_acme):
        assert execution.execute(remedy_id=remedy.pk, retry_in=30) == Execution.EXECUTED

    assert len(order_system.seen) == 1
    assert len(audit_rows(tenant_acme, AuditKind.REMEDY_EXECUTED)) == 1
    assert fresh(remedy).delivery.attempts == 1


def test_a_first_delivery_that_times_out_is_retried_and_the_remedy_executes_once(
    tenant_acme,
    agent_li,
    acme_ticket,
    agents_refund_limit,
    execution_policy,
    order_system,
    queue_only,
    settings,
):
    settings.HELPDESK_WEBHOOK_TIMEOUT_SECONDS = 1
    # The order system does the refund but answers too late; the next try is answered at once.
    order_system.answers = [Answer(200, delay=2.5)]
    remedy = grant_refund(agent_li, acme_ticket)
    assert remedy.execution == Execution.PENDING and order_system.seen == []

    with tenancy.activate(tenant_acme), pytest.raises(execution.ExecutionDeferred) as deferred:
        execution.execute(remedy_id=remedy.pk, retry_in=30, after_attempt=0)
    assert deferred.value.attempt == 1
    waiting = fresh(remedy)
    assert waiting.execution == Execution.PENDING
    assert "did not answer within 1 seconds" in waiting.execution_error
    assert waiting.delivery.state == WebhookDelivery.State.RETRYING
    assert waiting.delivery.next_attempt_at is not None

    # A stale copy of the first task stands down: the delivery was tried since it was queued.
    assert execute_remedy(tenant_acme.pk, remedy.pk, after_attempt=0) == "superseded"
    assert len(order_system.seen) == 1

    # The scheduled retry, run by the worker.
    assert execute_remedy(tenant_acme.pk, remedy.pk, after_attempt=1) == Execution.EXECUTED
    first, second = order_system.seen
    assert first.body == second.body
    assert first.key == second.key == str(remedy.idempotency_key)
    assert first.headers["X-Helpdesk-Delivery"] == second.headers["X-Helpdesk-Delivery"]
    verified(execution_policy.execution_secret, first)
    verified(execution_policy.execution_secret, second)

    done = fresh(remedy)
    assert done.execution == Execution.EXECUTED and done.execution_error == ""
    assert done.delivery.attempts == 2
    assert done.delivery.state == WebhookDelivery.State.DELIVERED
    assert len(audit_rows(tenant_acme, AuditKind.REMEDY_EXECUTED)) == 1

    # Running the task again sends nothing more.
    assert execute_remedy(tenant_acme.pk, remedy.pk, after_attempt=2) == Execution.EXECUTED
    assert len(order_system.seen) == 2


def test_every_try_of_a_busy_order_system_carries_the_same_key_until_the_last_fails_it(
    tenant_acme,
    agent_li,
    acme_ticket,
    agents_refund_limit,
    execution_policy,
    order_system,
    queue_only,
):
    order_system.answers = [Answer(503, b"busy"), Answer(429, b"slow down"), Answer(502)]
    remedy = grant_refund(agent_li, acme_ticket)
    with tenancy.activate(tenant_acme):
        for attempt in (0, 1):
            with pytest.raises(execution.ExecutionDeferred):
                execution.execute(remedy_id=remedy.pk, retry_in=30, after_attempt=attempt)
            assert fresh(remedy).execution == Execution.PENDING
        assert "429" in fresh(remedy).execution_error
        # The last try (no retry_in): a failure that might have passed is final now.
        assert execution.execute(remedy_id=remedy.pk, after_attempt=2) == Execution.FAILED

    assert {delivery.key for delivery in order_system.seen} == {str(remedy.idempotency_key)}
    assert len({delivery.body for delivery in order_system.seen}) == 1
    failed = fresh(remedy)
    assert failed.execution == Execution.FAILED and "502" in failed.execution_error
    assert failed.delivery.state == WebhookDelivery.State.FAILED
    (row,) = audit_rows(tenant_acme, AuditKind.REMEDY_EXECUTION_FAILED)
    assert row.changes["execution"] == ["pending", "failed"]
    assert "502" in row.changes["details"]["error"]
    assert audit_rows(tenant_acme, AuditKind.REMEDY_EXECUTED) == []


def test_the_task_waits_longer_before_each_retry():
    from helpdesk.tasks import webhook_backoff

    assert [webhook_backoff(n) for n in range(5)] == [30, 120, 480, 1920, 7680]
    assert execute_remedy.max_retries == 5  # six tries in all


# --- failed ----------------------------------------------------------------------------------


def test_a_refusal_by_the_order_system_fails_the_remedy_at_once_with_the_reason(
    tenant_acme, agent_li, acme_ticket, agents_refund_limit, execution_policy, order_system
):
    order_system.answers = [Answer(422, b'{"error": "order already refunded"}')]
    remedy = grant_refund(agent_li, acme_ticket)

    assert remedy.execution == Execution.FAILED
    assert "422" in remedy.execution_error
    assert len(order_system.seen) == 1
    assert len(audit_rows(tenant_acme, AuditKind.REMEDY_EXECUTION_FAILED)) == 1
    assert fresh(remedy).delivery.last_response == '{"error": "order already refunded"}'


def test_an_execution_url_the_platform_must_not_reach_fails_the_remedy_unsent(
    tenant_acme, agent_li, acme_ticket, agents_refund_limit, order_system
):
    with tenancy.activate(tenant_acme):
        # Only the order system's own port is allowed; this one is internal.
        EmpowermentPolicy.objects.create(execution_url="http://127.0.0.1:6379/refunds")
    remedy = grant_refund(agent_li, acme_ticket)

    assert remedy.execution == Execution.FAILED
    assert "http://127.0.0.1:6379/refunds cannot be used" in remedy.execution_error
    assert order_system.seen == []
    assert len(audit_rows(tenant_acme, AuditKind.REMEDY_EXECUTION_FAILED)) == 1


def test_a_failed_remedy_sent_again_by_its_granter_executes_with_the_same_key(
    tenant_acme, agent_li, acme_ticket, agents_refund_limit, execution_policy, order_system
):
    order_system.answers = [Answer(400, b"bad request")]
    remedy = grant_refund(agent_li, acme_ticket)
    assert remedy.execution == Execution.FAILED

    with tenancy.activate(tenant_acme):
        execution.retry_execution(acting_agent=acting(agent_li), remedy=remedy)

    done = fresh(remedy)
    assert done.execution == Execution.EXECUTED and done.execution_error == ""
    first, second = order_system.seen
    assert first.key == second.key and first.body == second.body
    (resent,) = audit_rows(tenant_acme, AuditKind.REMEDY_EXECUTION_RETRIED)
    assert resent.actor == agent_li
    assert resent.changes["execution"] == ["failed", "pending"]
    assert len(audit_rows(tenant_acme, AuditKind.REMEDY_EXECUTED)) == 1


def test_only_a_supervisor_or_the_granter_acts_on_a_remedys_execution(
    tenant_acme,
    agent_li,
    supervisor_wang,
    acme_ticket,
    agents_refund_limit,
    execution_policy,
    order_system,
):
    order_system.answers = [Answer(400)]
    remedy = grant_refund(agent_li, acme_ticket)
    colleague = _member(tenant_acme, "zhang.acme", Role.AGENT).user

    with tenancy.activate(tenant_acme):
        with pytest.raises(PermissionDenied):
            execution.retry_execution(acting_agent=acting(colleague), remedy=remedy)
        with pytest.raises(PermissionDenied):
            execution.mark_executed_by_hand(acting_agent=acting(colleague), remedy=remedy)
        assert fresh(remedy).execution == Execution.FAILED

        execution.mark_executed_by_hand(
            acting_agent=acting(supervisor_wang), remedy=remedy, note="在后台手动退款"
        )
        with pytest.raises(InvalidTransition):
            execution.retry_execution(acting_agent=acting(supervisor_wang), remedy=remedy)

    done = fresh(remedy)
    assert done.execution == Execution.EXECUTED and done.executed_at is not None
    (by_hand,) = audit_rows(tenant_acme, AuditKind.REMEDY_EXECUTED_BY_HAND)
    assert by_hand.actor == supervisor_wang
    assert by_hand.changes["details"]["note"] == "在后台手动退款"
    assert len(order_system.seen) == 1


# --- by hand ---------------------------------------------------------------------------------


def test_without_an_execution_url_a_remedy_waits_to_be_executed_by_hand(
    tenant_acme, agent_li, acme_ticket, agents_refund_limit, allow_egress
):
    remedy = grant_refund(agent_li, acme_ticket)
    assert remedy.execution == Execution.MANUAL and remedy.delivery is None
    with tenancy.activate(tenant_acme):
        assert WebhookDelivery.objects.count() == 0
        with pytest.raises(InvalidTransition):
            execution.retry_execution(acting_agent=acting(agent_li), remedy=remedy)

        execution.mark_executed_by_hand(acting_agent=acting(agent_li), remedy=remedy)
        # Twice is once: nothing changes, nothing more is written.
        execution.mark_executed_by_hand(acting_agent=acting(agent_li), remedy=remedy)

    done = fresh(remedy)
    assert done.execution == Execution.EXECUTED and done.executed_at is not None
    (row,) = audit_rows(tenant_acme, AuditKind.REMEDY_EXECUTED_BY_HAND)
    assert row.changes["execution"] == ["manual", "executed"]
    assert audit_rows(tenant_acme, AuditKind.REMEDY_EXECUTED) == []


# --- another merchant ------------------------------------------------------------------------


def test_another_merchants_remedy_cannot_be_touched(
    tenant_acme, supervisor_wang, tenant_globex, globex_agent_li, order_system
):
    with tenancy.activate(tenant_globex):
        RemedyLimit.objects.create(
            role=Role.AGENT, kind=RemedyKind.REFUND, currency="USD", per_grant_max_amount=None
        )
        order = OrderFactory(
            customer=CustomerFactory(name="Jane Doe"),
            currency="USD",
            total_amount=Decimal("80"),
            paid_amount=Decimal("80"),
        )
        ticket = open_ticket(
            acting_agent=SYSTEM,
            customer=order.customer,
            subject="Broken tent pole",
            channel="email",
            order=order,
        )
    theirs = grant_refund(globex_agent_li, ticket, "20")
    assert theirs.execution == Execution.MANUAL  # globex set no execution URL

    with tenancy.activate(tenant_acme):
        EmpowermentPolicy.objects.create(execution_url=order_system.url())
        assert not Remedy.objects.filter(pk=theirs.pk).exists()
        with pytest.raises(NotFound):
            execution.mark_executed_by_hand(acting_agent=acting(supervisor_wang), remedy=theirs)
        with pytest.raises(NotFound):
            execution.retry_execution(acting_agent=acting(supervisor_wang), remedy=theirs)
    # A task naming acme but globex's remedy finds nothing to send.
    assert execute_remedy(tenant_acme.pk, theirs.pk) == "gone"

    assert fresh(theirs).execution == Execution.MANUAL
    assert order_system.seen == []
    assert audit_rows(tenant_acme, AuditKind.REMEDY_EXECUTED_BY_HAND) == []
    assert audit_rows(tenant_globex, AuditKind.REMEDY_EXECUTED_BY_HAND) == []


# --- on the production broker ------------------------------------------------------------------


def test_a_real_worker_on_redis_retries_a_timed_out_execution_and_executes_it_once(
    tenant_acme,
    agent_li,
    acme_ticket,
    agents_refund_limit,
    execution_policy,
    order_system,
    real_worker,  # noqa: F811
    settings,
):
    """What production does: the grant queues the task on Redis after commit, a Celery worker
    tries, the order system answers too late, the worker retries after its backoff, and the
    remedy ends executed once."""
    settings.HELPDESK_WEBHOOK_TIMEOUT_SECONDS = 1
    settings.HELPDESK_WEBHOOK_RETRY_SECONDS = 1  # the first retry waits 1 s, not 30
    order_system.answers = [Answer(200, delay=2.5)]
    remedy = grant_refund(agent_li, acme_ticket)

    wait_for(lambda: fresh(remedy).execution == Execution.EXECUTED, seconds=30)
    first, second = order_system.seen
    assert first.key == second.key == str(remedy.idempotency_key)
    assert first.body == second.body
    assert len(audit_rows(tenant_acme, AuditKind.REMEDY_EXECUTED)) == 1
    time.sleep(1.5)  # a stray duplicate task would have sent by now
    assert len(order_system.seen) == 2


def test_after_a_rotation_each_post_is_signed_with_the_new_and_the_old_secret(
    tenant_acme,
    agent_li,
    admin_zhao,
    acme_ticket,
    agents_refund_limit,
    execution_policy,
    order_system,
):
    from escalation import policies

    old = execution_policy.execution_secret
    with tenancy.activate(tenant_acme):
        new = policies.update_policy(
            acting_agent=acting(admin_zhao), rotate_execution_secret=True
        ).execution_secret
    assert new != old
    remedy = grant_refund(agent_li, acme_ticket)
    assert remedy.execution == Execution.EXECUTED
    (post,) = order_system.seen
    timestamp = post.headers["X-Helpdesk-Timestamp"]
    offered = [value.strip() for value in post.headers["X-Helpdesk-Signature"].split(",")]
    for secret in (new, old):  # an order system on either secret accepts the post
        digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + post.body, hashlib.sha256)
        assert f"sha256={digest.hexdigest()}" in offered
