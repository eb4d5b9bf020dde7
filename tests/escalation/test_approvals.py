"""Approval requests: a grant past an agent's limits goes to a supervisor, who approves it,
gives another amount or denies it, once, within the supervisor's own limits."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from escalation import escalations
from escalation.approvals import decide_approval
from escalation.limits import LimitExceeded
from escalation.models import (
    ApprovalRequest,
    Escalation,
    EscalationPolicy,
    Remedy,
    RemedyKind,
    RemedyLimit,
    Trigger,
)
from helpdesk import realtime, tenancy
from helpdesk.errors import InvalidTransition, PermissionDenied
from helpdesk.models import ApiScope, Role
from tests.conftest import _member, acting, login
from tests.escalation.test_concurrency import in_threads
from tests.escalation.test_remedy_api import key_client
from tickets.audit import AuditKind
from tickets.models import AuditEvent, Order, Ticket

pytestmark = pytest.mark.django_db

PAGE = {"HTTP_ACCEPT": "text/html,application/xhtml+xml"}
Asked = ApprovalRequest.State


@pytest.fixture
def supervisors_refund_limit(tenant_acme) -> RemedyLimit:
    """Supervisors may refund up to ¥250 per grant."""
    with tenancy.activate(tenant_acme):
        return RemedyLimit.objects.create(
            role=Role.SUPERVISOR,
            kind=RemedyKind.REFUND,
            currency="CNY",
            per_grant_max_amount=Decimal("250"),
        )


@pytest.fixture
def limits(agents_refund_limit, supervisors_refund_limit) -> None:
    """Agents refund up to ¥100 per grant, supervisors up to ¥250."""


@pytest.fixture
def announced(monkeypatch) -> list[tuple[str, dict]]:
    """The approval events pushed to agents' browsers."""
    pushed: list[tuple[str, dict]] = []

    def publish(tenant_id, event, payload, ticket=None) -> None:
        if event.startswith("approval."):
            pushed.append((event, payload))

    monkeypatch.setattr(realtime, "publish_after_commit", publish)
    return pushed


def approvals_url() -> str:
    return reverse("escalation:approvals")


def ticket_page(client, ticket) -> str:
    return client.get(f"/tickets/{ticket.number}/").content.decode()


def grant(client, ticket, **fields: str):
    """Post the ticket page's grant form, as a browser does, and follow."""
    return client.post(
        f"/tickets/{ticket.number}/remedies/",
        fields,
        HTTP_REFERER=f"http://testserver/tickets/{ticket.number}/",
        follow=True,
        **PAGE,
    )


def decide(client, approval_id: int, **fields: str):
    """Post one of the approvals page's forms, as a browser does, and follow."""
    return client.post(
        reverse("escalation:decide", args=[approval_id]),
        fields,
        HTTP_REFERER=f"http://testserver{approvals_url()}",
        follow=True,
        **PAGE,
    )


def requests_of(tenant) -> list[ApprovalRequest]:
    with tenancy.activate(tenant):
        return list(ApprovalRequest.objects.order_by("pk"))


def remedies_of(tenant) -> list[Remedy]:
    with tenancy.activate(tenant):
        return list(Remedy.objects.order_by("pk"))


def escalations_of(tenant) -> list[Escalation]:
    with tenancy.activate(tenant):
        return list(Escalation.objects.select_related("resolved_by").order_by("pk"))


def refunded(tenant) -> Decimal:
    with tenancy.activate(tenant):
        return Order.objects.get().refunded_amount


def ask(
    agent, ticket, amount: str = "150", note: str = "漏油严重，客户要求多退"
) -> ApprovalRequest:
    """The agent's refund past their limit, sent for approval from the ticket page."""
    grant(login(agent), ticket, kind="refund", amount=amount, note=note)
    (approval,) = requests_of(ticket.tenant)
    return approval


def test_a_grant_past_the_agents_limit_is_sent_for_approval_and_gives_nothing_yet(
    tenant_acme, agent_li, acme_ticket, limits
):
    client = login(agent_li)
    response = grant(client, acme_ticket, kind="refund", amount="150", note="漏油严重")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Above your limit: sent to a supervisor for approval." in page
    panel = page[page.index('class="approval-requests"') :]
    assert "CN¥150.00" in panel
    assert "Waiting for approval" in panel
    assert "the most you may give in one grant" in panel
    assert "漏油严重" in panel

    # Asking again while it waits does not ask twice.
    grant(client, acme_ticket, kind="refund", amount="150", note="漏油严重")
    (approval,) = requests_of(tenant_acme)
    assert (approval.state, approval.amount, approval.refusal_limit) == (
        Asked.PENDING,
        Decimal("150"),
        "per_grant",
    )
    assert remedies_of(tenant_acme) == []
    assert refunded(tenant_acme) == 0


def test_a_grant_past_the_limit_escalates_the_ticket_once_with_the_request(
    tenant_acme, agent_li, acme_ticket, limits
):
    approval = ask(agent_li, acme_ticket)
    grant(login(agent_li), acme_ticket, kind="refund", amount="150", note="再问一次")
    assert len(requests_of(tenant_acme)) == 1
    (escalation,) = escalations_of(tenant_acme)
    assert (escalation.trigger, escalation.state, escalation.ticket_id) == (
        Trigger.OVER_LIMIT,
        Escalation.State.OPEN,
        acme_ticket.pk,
    )
    assert (escalation.approval_request_id, escalation.raised_by) == (approval.pk, agent_li)
    # The reason is the refusal the agent saw.
    assert escalation.reason == approval.refusal
    assert "the most you may give in one grant" in escalation.reason
    with tenancy.activate(tenant_acme):
        assert Ticket.objects.get(pk=acme_ticket.pk).escalated_at is not None
        raised = AuditEvent.objects.filter(action=AuditKind.ESCALATION_RAISED)
        assert raised.count() == 1


def test_a_merchant_who_switched_the_trigger_off_gets_the_request_but_no_escalation(
    tenant_acme, agent_li, acme_ticket, limits
):
    with tenancy.activate(tenant_acme):
        EscalationPolicy.objects.filter(pk=escalations.policy().pk).update(on_over_limit=False)
    ask(agent_li, acme_ticket)
    assert escalations_of(tenant_acme) == []
    with tenancy.activate(tenant_acme):
        assert Ticket.objects.get(pk=acme_ticket.pk).escalated_at is None


@pytest.mark.parametrize(
    ("decision", "fields", "granted"),
    [
        ("approve", {}, Decimal("150")),
        ("counter", {"amount": "120", "reason": "只退漏油部件的钱"}, Decimal("120")),
        ("deny", {"reason": "已经补发配件"}, None),
    ],
)
def test_deciding_the_request_resolves_the_escalation_it_raised(
    tenant_acme, agent_li, supervisor_wang, acme_ticket, limits, decision, fields, granted
):
    approval = ask(agent_li, acme_ticket)
    decide(login(supervisor_wang), approval.pk, decision=decision, **fields)
    remedies = remedies_of(tenant_acme)
    assert [remedy.amount for remedy in remedies] == ([granted] if granted else [])
    (escalation,) = escalations_of(tenant_acme)
    assert (escalation.state, escalation.resolved_by) == (
        Escalation.State.RESOLVED,
        supervisor_wang,
    )
    assert str(requests_of(tenant_acme)[0].get_state_display()) in escalation.resolution
    if "reason" in fields:
        assert fields["reason"] in escalation.resolution


def test_the_escalation_waits_until_the_tickets_last_request_is_decided(
    tenant_acme, agent_li, supervisor_wang, acme_ticket, limits
):
    refund = ask(agent_li, acme_ticket)
    # A gift the agent may not give at all: a second request, the same open escalation.
    grant(login(agent_li), acme_ticket, kind="gift", amount="50", item="优惠券", note="补偿")
    gift = next(r for r in requests_of(tenant_acme) if r.kind == "gift")
    (escalation,) = escalations_of(tenant_acme)

    decide(login(supervisor_wang), refund.pk, decision="deny", reason="已经补发配件")
    (escalation,) = escalations_of(tenant_acme)
    assert (escalation.state, escalation.approval_request_id) == (Escalation.State.OPEN, gift.pk)

    decide(login(supervisor_wang), gift.pk, decision="deny", reason="不送券")
    (escalation,) = escalations_of(tenant_acme)
    assert escalation.state == Escalation.State.RESOLVED and "不送券" in escalation.resolution


def test_a_supervisor_approves_and_the_remedy_is_granted_like_any_grant(
    tenant_acme, agent_li, supervisor_wang, acme_ticket, limits
):
    approval = ask(agent_li, acme_ticket)
    client = login(supervisor_wang)
    page = client.get(approvals_url()).content.decode()
    pending = page[page.index('id="pending-approvals"') : page.index('id="decided-approvals"')]
    assert f'href="/tickets/{acme_ticket.number}/#remedies"' in pending
    assert "王芳" in pending and "li.acme" in pending
    assert "CN¥150.00" in pending
    assert "the most you may give in one grant" in pending
    assert "漏油严重，客户要求多退" in pending
    assert "data-approvals-waiting>1<" in page  # the nav badge

    page = decide(client, approval.pk, decision="approve").content.decode()
    assert "Approved: CN¥150.00 granted." in page
    assert "Nothing waits for approval." in page
    decided = page[page.index('id="decided-approvals"') :]
    assert 'data-state="approved"' in decided and "wang.acme" in decided

    (remedy,) = remedies_of(tenant_acme)
    assert (remedy.kind, remedy.amount, remedy.granted_by) == ("refund", 150, supervisor_wang)
    assert remedy.execution == Remedy.Execution.MANUAL  # no order system: as any grant
    (approval,) = requests_of(tenant_acme)
    assert (approval.state, approval.granted_amount) == (Asked.APPROVED, Decimal("150"))
    assert (approval.remedy_id, approval.decided_by) == (remedy.pk, supervisor_wang)
    assert refunded(tenant_acme) == Decimal("150")
    with tenancy.activate(tenant_acme):
        actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"approval.requested", "approval.approved", "remedy.granted"} <= actions

    panel = ticket_page(login(agent_li), acme_ticket)
    assert "wang.acme granted CN¥150.00" in panel[panel.index('class="approval-requests"') :]


def test_a_counter_offer_grants_the_amount_offered_and_needs_a_reason(
    tenant_acme, agent_li, supervisor_wang, acme_ticket, limits
):
    approval = ask(agent_li, acme_ticket)
    client = login(supervisor_wang)
    page = decide(client, approval.pk, decision="counter", amount="120").content.decode()
    assert "Say why" in page
    page = decide(
        client, approval.pk, decision="counter", amount="150", reason="同样"
    ).content.decode()
    assert "another amount than was asked" in page
    assert remedies_of(tenant_acme) == []
    assert requests_of(tenant_acme)[0].state == Asked.PENDING

    page = decide(
        client, approval.pk, decision="counter", amount="120", reason="只退漏油部件的钱"
    ).content.decode()
    assert "Countered: CN¥120.00 granted." in page
    (remedy,) = remedies_of(tenant_acme)
    assert remedy.amount == Decimal("120")
    (approval,) = requests_of(tenant_acme)
    assert (approval.state, approval.amount, approval.granted_amount) == (
        Asked.COUNTERED,
        Decimal("150"),
        Decimal("120"),
    )
    assert refunded(tenant_acme) == Decimal("120")
    panel = ticket_page(login(agent_li), acme_ticket)
    assert "wang.acme granted CN¥120.00: 只退漏油部件的钱" in panel


def test_a_denial_needs_a_reason_and_writes_no_remedy(
    tenant_acme, agent_li, supervisor_wang, acme_ticket, limits
):
    approval = ask(agent_li, acme_ticket)
    client = login(supervisor_wang)
    page = decide(client, approval.pk, decision="deny", reason="  ").content.decode()
    assert "Say why" in page
    assert requests_of(tenant_acme)[0].state == Asked.PENDING

    page = decide(client, approval.pk, decision="deny", reason="已经补发配件").content.decode()
    assert "Denied." in page
    (approval,) = requests_of(tenant_acme)
    assert (approval.state, approval.granted_amount, approval.remedy) == (
        Asked.DENIED,
        None,
        None,
    )
    assert remedies_of(tenant_acme) == []
    assert refunded(tenant_acme) == 0
    assert "wang.acme denied it: 已经补发配件" in ticket_page(login(agent_li), acme_ticket)
    # Decided is decided: no approval after a denial.
    page = decide(client, approval.pk, decision="approve").content.decode()
    assert "already decided" in page
    assert remedies_of(tenant_acme) == []


def test_agents_and_supervisors_hear_of_requests_and_decisions_live(
    tenant_acme, agent_li, supervisor_wang, acme_ticket, limits, announced
):
    approval = ask(agent_li, acme_ticket)
    decide(login(supervisor_wang), approval.pk, decision="counter", amount="90", reason="够了")
    assert [(event, payload["state"], payload["ticket"]) for event, payload in announced] == [
        ("approval.requested", "pending", acme_ticket.number),
        ("approval.decided", "countered", acme_ticket.number),
    ]
    assert announced[0][1]["approval_request"] == approval.pk
    assert announced[0][1]["amount"] == "150.00"


def test_a_free_order_past_the_agents_limit_countered_is_a_refund_of_the_amount_offered(
    tenant_acme, agent_li, supervisor_wang, acme_ticket, limits
):
    with tenancy.activate(tenant_acme):
        RemedyLimit.objects.create(role=Role.SUPERVISOR, kind=RemedyKind.FREE_ORDER, currency="CNY")
    grant(login(agent_li), acme_ticket, kind="free_order")
    (approval,) = requests_of(tenant_acme)
    # What is left of the order to give back: the ¥299.00 paid.
    assert (approval.kind, approval.amount) == ("free_order", Decimal("299"))
    assert approval.refusal_limit == "not_empowered"

    page = decide(
        login(supervisor_wang), approval.pk, decision="counter", amount="200", reason="退大部分"
    ).content.decode()
    assert "Countered: CN¥200.00 granted." in page
    (remedy,) = remedies_of(tenant_acme)
    assert (remedy.kind, remedy.amount) == ("refund", Decimal("200"))
    assert refunded(tenant_acme) == Decimal("200")


def test_a_free_order_approved_gives_back_what_was_paid(
    tenant_acme, agent_li, supervisor_wang, acme_ticket, limits
):
    with tenancy.activate(tenant_acme):
        RemedyLimit.objects.create(role=Role.SUPERVISOR, kind=RemedyKind.FREE_ORDER, currency="CNY")
    grant(login(agent_li), acme_ticket, kind="free_order")
    (approval,) = requests_of(tenant_acme)
    page = decide(login(supervisor_wang), approval.pk, decision="approve").content.decode()
    assert "Approved: CN¥299.00 granted." in page
    (remedy,) = remedies_of(tenant_acme)
    assert (remedy.kind, remedy.amount) == ("free_order", Decimal("299"))
    assert refunded(tenant_acme) == Decimal("299")


def test_the_supervisors_own_limits_still_apply(
    tenant_acme, agent_li, supervisor_wang, acme_ticket, limits
):
    approval = ask(agent_li, acme_ticket, amount="280")
    page = decide(login(supervisor_wang), approval.pk, decision="approve").content.decode()
    assert "CN¥280.00 is more than the most you may give in one grant allows" in page
    assert remedies_of(tenant_acme) == []
    assert refunded(tenant_acme) == 0
    (approval,) = requests_of(tenant_acme)
    assert (approval.state, approval.decided_by) == (Asked.PENDING, None)
    # Nothing was decided: the ticket stays escalated.
    assert [e.state for e in escalations_of(tenant_acme)] == [Escalation.State.OPEN]
    with tenancy.activate(tenant_acme), pytest.raises(LimitExceeded):
        decide_approval(
            acting_agent=acting(supervisor_wang),
            request=approval,
            decision="counter",
            amount="260",
            reason="再多一点",
        )
    assert remedies_of(tenant_acme) == []


def test_an_agent_cannot_see_or_decide_approvals(
    tenant_acme, agent_li, supervisor_wang, acme_ticket, limits
):
    approval = ask(agent_li, acme_ticket)
    client = login(agent_li)
    assert client.get(approvals_url(), **PAGE).status_code == 403
    assert reverse("escalation:approvals") not in ticket_page(client, acme_ticket)
    response = client.post(
        reverse("escalation:decide", args=[approval.pk]), {"decision": "approve"}, **PAGE
    )
    assert response.status_code == 403
    with tenancy.activate(tenant_acme), pytest.raises(PermissionDenied):
        decide_approval(acting_agent=acting(agent_li), request=approval, decision="approve")
    assert remedies_of(tenant_acme) == []
    assert requests_of(tenant_acme)[0].state == Asked.PENDING


def test_another_merchants_supervisor_gets_404(
    tenant_acme, tenant_globex, agent_li, acme_ticket, limits
):
    approval = ask(agent_li, acme_ticket)
    globex_wang = _member(tenant_globex, "wang.globex", Role.SUPERVISOR).user
    client = login(globex_wang)
    page = client.get(approvals_url()).content.decode()
    assert "Nothing waits for approval." in page and "li.acme" not in page
    response = client.post(
        reverse("escalation:decide", args=[approval.pk]), {"decision": "approve"}, **PAGE
    )
    assert response.status_code == 404
    api = key_client(tenant_globex, globex_wang)
    response = api.post(
        f"/api/v1/approvals/{approval.pk}/decision/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 404
    assert api.get("/api/v1/approvals/").json()["results"] == []
    assert remedies_of(tenant_acme) == []
    assert requests_of(tenant_acme)[0].state == Asked.PENDING


def test_the_api_sends_a_grant_past_the_limit_for_approval_and_supervisors_decide_it(
    tenant_acme, agent_li, supervisor_wang, acme_ticket, limits
):
    agent = key_client(tenant_acme, agent_li)
    response = agent.post(
        f"/api/v1/tickets/{acme_ticket.number}/remedies/",
        {"kind": "refund", "amount": "150", "note": "漏油"},
        format="json",
    )
    assert response.status_code == 202, response.json()
    asked = response.json()["approval_request"]
    assert (asked["state"], asked["amount"], asked["currency"]) == ("pending", "150.00", "CNY")
    assert (asked["ticket"], asked["requested_by"], asked["note"]) == (
        acme_ticket.number,
        "li.acme",
        "漏油",
    )
    assert asked["refusal_limit"] == "per_grant" and asked["granted_amount"] is None
    assert (asked["price_drop"], asked["batch_orders"]) == (None, None)
    assert remedies_of(tenant_acme) == []
    assert [e.approval_request_id for e in escalations_of(tenant_acme)] == [asked["id"]]
    assert agent.get("/api/v1/approvals/?state=pending").status_code == 403
    response = agent.post(
        f"/api/v1/approvals/{asked['id']}/decision/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 403

    supervisor = key_client(tenant_acme, supervisor_wang)
    listed = supervisor.get("/api/v1/approvals/?state=pending").json()["results"]
    assert [row["id"] for row in listed] == [asked["id"]]
    assert supervisor.get("/api/v1/approvals/?state=approved").json()["results"] == []
    assert supervisor.get("/api/v1/approvals/?state=maybe").status_code == 400
    url = f"/api/v1/approvals/{asked['id']}/decision/"
    response = supervisor.post(url, {"decision": "deny"}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "bad_input")

    response = supervisor.post(url, {"decision": "approve", "reason": "老客户"}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["state"], body["granted_amount"], body["decided_by"]) == (
        "approved",
        "150.00",
        "wang.acme",
    )
    (remedy,) = remedies_of(tenant_acme)
    assert body["remedy"] == remedy.pk
    response = supervisor.post(url, {"decision": "deny", "reason": "晚了"}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "invalid_transition")
    assert len(remedies_of(tenant_acme)) == 1
    assert supervisor.get("/api/v1/approvals/?state=pending").json()["results"] == []


def test_a_read_only_key_cannot_decide(tenant_acme, agent_li, supervisor_wang, acme_ticket, limits):
    approval = ask(agent_li, acme_ticket)
    client = key_client(tenant_acme, supervisor_wang, scopes=[ApiScope.READ])
    assert client.get("/api/v1/approvals/").status_code == 200
    response = client.post(
        f"/api/v1/approvals/{approval.pk}/decision/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 403
    assert remedies_of(tenant_acme) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs real row locks")
def test_two_supervisors_deciding_at_once_give_one_outcome(
    tenant_acme, agent_li, supervisor_wang, admin_zhao, acme_ticket, limits
):
    with tenancy.activate(tenant_acme):
        RemedyLimit.objects.create(
            role=Role.ADMIN, kind=RemedyKind.REFUND, currency="CNY", per_grant_max_amount=250
        )
    approval = ask(agent_li, acme_ticket)
    deciders = [
        (supervisor_wang, "approve", None, ""),
        (admin_zhao, "counter", "120", "只退一部分"),
    ]
    outcomes: list[str] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        user, decision, amount, reason = deciders[i]
        with tenancy.activate(tenant_acme):
            try:
                decided = decide_approval(
                    acting_agent=acting(user),
                    request=approval,
                    decision=decision,
                    amount=amount,
                    reason=reason,
                )
            except InvalidTransition:
                with lock:
                    outcomes.append("refused")
            else:
                with lock:
                    outcomes.append(decided.state)

    assert in_threads(2, work) == []
    assert sorted(outcomes) in (["approved", "refused"], ["countered", "refused"])
    (remedy,) = remedies_of(tenant_acme)
    (approval,) = requests_of(tenant_acme)
    assert approval.state in (Asked.APPROVED, Asked.COUNTERED)
    assert approval.remedy_id == remedy.pk
    assert remedy.amount == approval.granted_amount
    assert refunded(tenant_acme) == remedy.amount
    (escalation,) = escalations_of(tenant_acme)
    assert escalation.state == Escalation.State.RESOLVED
    with tenancy.activate(tenant_acme):
        resolved = AuditEvent.objects.filter(action=AuditKind.ESCALATION_RESOLVED)
        assert resolved.count() == 1
