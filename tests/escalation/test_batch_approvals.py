"""Price-protection batches past an agent's limits: the orders within the agent's limits are
paid at once, the others go together to a supervisor as ONE approval request (no ticket), who
approves it (each order paid in the supervisor's name, each customer told) or denies it."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import translation

from channels_in.models import ChannelAccount, Mailbox
from escalation.approvals import decide_approval
from escalation.limits import LimitExceeded
from escalation.models import (
    ApprovalRequest,
    Escalation,
    PriceDrop,
    PriceDropCompensation,
    Remedy,
    RemedyKind,
    RemedyLimit,
)
from escalation.price_drops import compensate, eligible_orders
from helpdesk import realtime, tenancy
from helpdesk.errors import BadInput, InvalidTransition, PermissionDenied
from helpdesk.models import Role, Tenant
from helpdesk.money import format_money
from tests.conftest import _member, acting, login
from tests.escalation.test_concurrency import in_threads
from tests.escalation.test_price_drops import bought, cut_to
from tests.escalation.test_remedy_api import key_client
from tests.factories import CustomerFactory
from tickets.audit import AuditKind
from tickets.models import AuditEvent, Message, Order

pytestmark = pytest.mark.django_db

PAGE = {"HTTP_ACCEPT": "text/html,application/xhtml+xml"}
Asked = ApprovalRequest.State


def cny(amount: str) -> str:
    return format_money(Decimal(amount), "CNY", "en")


@pytest.fixture
def protection_limits(tenant_acme: Tenant) -> None:
    """Agents may compensate up to ¥300 per order; supervisors any amount."""
    with tenancy.activate(tenant_acme):
        RemedyLimit.objects.create(
            role=Role.AGENT,
            kind=RemedyKind.PRICE_PROTECTION,
            currency="CNY",
            per_grant_max_amount=Decimal("300"),
        )
        RemedyLimit.objects.create(
            role=Role.SUPERVISOR, kind=RemedyKind.PRICE_PROTECTION, currency="CNY"
        )


@pytest.fixture
def cut(tenant_acme: Tenant, supervisor_wang, protection_limits) -> PriceDrop:
    """The range hood cut to ¥3,499.00; three buyers paid more: owed ¥200, ¥500 and ¥600.
    Acme answers by email, and each buyer has an address."""
    with tenancy.activate(tenant_acme):
        account = ChannelAccount.objects.create(kind="email", name="Acme support")
        Mailbox.objects.create(account=account, address="support@acme.example", from_name="Acme")
        for price, days, name in (
            ("3699.00", 10, "张伟"),
            ("3999.00", 8, "李娜"),
            ("4099.00", 6, "王强"),
        ):
            buyer = CustomerFactory(name=name, email=f"{days}@example.cn")
            bought(price=price, days_ago=days, customer=buyer)
        return cut_to(supervisor_wang, "3499.00")


def orders_of(tenant: Tenant) -> list[Order]:
    """The three orders, oldest first: owed ¥200, ¥500, ¥600."""
    with tenancy.activate(tenant):
        return list(Order.objects.order_by("placed_at"))


def requests_of(tenant: Tenant) -> list[ApprovalRequest]:
    with tenancy.activate(tenant):
        return list(ApprovalRequest.objects.order_by("pk"))


def paid(tenant: Tenant) -> list[tuple[str, Decimal, str]]:
    """The compensations paid: order, amount, who granted it."""
    with tenancy.activate(tenant):
        return sorted(
            Remedy.objects.filter(kind=RemedyKind.PRICE_PROTECTION).values_list(
                "order__number", "amount", "granted_by__username"
            )
        )


def run(agent, tenant: Tenant, cut: PriceDrop):
    """The agent compensates every order of the cut, in the service's words (English)."""
    with tenancy.activate(tenant), translation.override("en"):
        return compensate(acting_agent=acting(agent), price_drop=cut, orders=orders_of(tenant))


def batch_sent(agent_li, tenant_acme, cut) -> ApprovalRequest:
    run(agent_li, tenant_acme, cut)
    (approval,) = requests_of(tenant_acme)
    return approval


def test_an_agents_batch_pays_what_is_within_the_limit_and_asks_once_for_the_rest(
    tenant_acme, agent_li, cut
):
    first, second, third = orders_of(tenant_acme)
    results = run(agent_li, tenant_acme, cut)

    assert [(r.order.number, r.outcome.value, r.amount) for r in results] == [
        (first.number, "granted", Decimal("200.00")),
        (second.number, "sent_for_approval", Decimal("500.00")),
        (third.number, "sent_for_approval", Decimal("600.00")),
    ]
    assert paid(tenant_acme) == [(first.number, Decimal("200.00"), "li.acme")]
    (approval,) = requests_of(tenant_acme)
    assert approval.is_batch and approval.ticket_id is None
    assert (approval.price_drop_id, approval.kind, approval.state) == (
        cut.pk,
        RemedyKind.PRICE_PROTECTION,
        Asked.PENDING,
    )
    assert (approval.amount, approval.currency, approval.requested_by) == (
        Decimal("1100"),
        "CNY",
        agent_li,
    )
    assert approval.batch_orders == [
        {"order": second.pk, "amount": "500.00"},
        {"order": third.pk, "amount": "600.00"},
    ]
    assert approval.refusal_limit == "per_grant"
    assert "the most you may give in one grant" in approval.refusal
    assert approval.note == "2 orders above your limits"
    with tenancy.activate(tenant_acme):
        assert AuditEvent.objects.filter(action=AuditKind.PRICE_DROP_BATCH_REQUESTED).count() == 1
        # A batch has no ticket to escalate.
        assert not Escalation.objects.exists()

    # Run again while it waits: nothing new is asked, nothing paid twice.
    again = run(agent_li, tenant_acme, cut)
    assert [r.outcome.value for r in again] == [
        "already_compensated",
        "sent_for_approval",
        "sent_for_approval",
    ]
    assert {r.approval_request.pk for r in again[1:]} == {approval.pk}
    assert len(requests_of(tenant_acme)) == 1
    assert len(paid(tenant_acme)) == 1
    with tenancy.activate(tenant_acme):
        assert AuditEvent.objects.filter(action=AuditKind.PRICE_DROP_BATCH_REQUESTED).count() == 1


def test_an_order_past_the_limit_while_a_batch_waits_is_refused_until_it_is_decided(
    tenant_acme, agent_li, cut
):
    first, second, third = orders_of(tenant_acme)
    with tenancy.activate(tenant_acme), translation.override("en"):
        compensate(acting_agent=acting(agent_li), price_drop=cut, orders=[second])
        [result] = compensate(acting_agent=acting(agent_li), price_drop=cut, orders=[third])
    assert result.outcome == "refused"
    assert "wait for a supervisor" in result.reason
    (approval,) = requests_of(tenant_acme)
    assert approval.batch_orders == [{"order": second.pk, "amount": "500.00"}]


def test_the_agent_is_told_on_the_page_and_the_supervisor_sees_the_batch(
    tenant_acme, agent_li, supervisor_wang, cut
):
    first, second, third = orders_of(tenant_acme)
    agent = login(agent_li)
    listing = agent.get("/escalation/price-drops/", **PAGE).content.decode()
    assert f'href="/escalation/price-drops/{cut.pk}/"' in listing
    assert 'id="record-price-cut"' not in listing  # recording a cut stays with supervisors
    refused = agent.post(
        "/escalation/price-drops/", {"sku": cut.sku, "new_unit_price": "1", "protection_days": "30"}
    )
    assert refused.status_code == 403

    page = agent.post(
        f"/escalation/price-drops/{cut.pk}/",
        {"order": [str(o.pk) for o in (first, second, third)]},
        follow=True,
        **PAGE,
    ).content.decode()
    assert f"Order {first.number}: {cny('200')} granted" in page
    assert f"2 orders (total {cny('1100')}) sent to a supervisor for approval." in page
    waiting = page[page.index('id="pending-batch"') :]
    assert f"2 orders (total {cny('1100')}) sent by li.acme wait for a supervisor" in waiting
    rows = page[page.index("eligible-orders") :]
    assert rows.count("data-waiting-approval") == 2

    approvals_page = login(supervisor_wang).get(reverse("escalation:approvals")).content.decode()
    pending = approvals_page[
        approvals_page.index('id="pending-approvals"') : approvals_page.index(
            'id="decided-approvals"'
        )
    ]
    row = pending[pending.index(f'data-batch="{cut.pk}"') :]
    assert f'href="/escalation/price-drops/{cut.pk}/"' in row
    assert cut.sku in row and "2 orders" in row and cny("1100") in row
    assert 'value="counter"' not in pending  # a batch is approved or denied
    assert "data-approvals-waiting>1<" in approvals_page


def test_a_supervisor_approves_the_batch_and_each_customer_is_told(
    tenant_acme, agent_li, supervisor_wang, cut, monkeypatch
):
    pushed: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        realtime,
        "publish_after_commit",
        lambda tenant_id, event, payload, ticket=None: pushed.append((event, payload, ticket)),
    )
    approval = batch_sent(agent_li, tenant_acme, cut)
    first, second, third = orders_of(tenant_acme)

    page = (
        login(supervisor_wang)
        .post(
            reverse("escalation:decide", args=[approval.pk]),
            {"decision": "approve"},
            follow=True,
            **PAGE,
        )
        .content.decode()
    )
    assert f"Approved: {cny('1100')} granted." in page
    assert paid(tenant_acme) == sorted(
        [
            (first.number, Decimal("200.00"), "li.acme"),
            (second.number, Decimal("500.00"), "wang.acme"),
            (third.number, Decimal("600.00"), "wang.acme"),
        ]
    )
    (approval,) = requests_of(tenant_acme)
    assert (approval.state, approval.granted_amount, approval.decided_by) == (
        Asked.APPROVED,
        Decimal("1100"),
        supervisor_wang,
    )
    assert f"Order {second.number}: {cny('500')} granted on ticket" in approval.decision_reason
    assert f"Order {third.number}: {cny('600')} granted on ticket" in approval.decision_reason
    with tenancy.activate(tenant_acme):
        # Each customer gets the news on a ticket about their order.
        for order in (second, third):
            notice = Message.objects.get(ticket__order=order, direction=Message.Direction.OUTBOUND)
            assert order.number in notice.body_text
        assert eligible_orders(cut) == []
        decided = AuditEvent.objects.get(action=AuditKind.APPROVAL_APPROVED)
        assert [o["order"] for o in decided.changes["details"]["orders"]] == [
            second.number,
            third.number,
        ]
    # Only supervisors hear of a batch: its events carry no ticket.
    batch_events = [(e, p["state"], t) for e, p, t in pushed if "approval" in e]
    assert batch_events == [
        ("supervisor.approval.requested", "pending", None),
        ("supervisor.approval.decided", "approved", None),
    ]
    assert [p["price_drop"] for e, p, _t in pushed if "approval" in e] == [
        {"id": cut.pk, "sku": cut.sku}
    ] * 2


def test_orders_compensated_meanwhile_are_skipped_when_the_batch_is_approved(
    tenant_acme, agent_li, supervisor_wang, admin_zhao, cut
):
    approval = batch_sent(agent_li, tenant_acme, cut)
    first, second, third = orders_of(tenant_acme)
    with tenancy.activate(tenant_acme):
        compensate(acting_agent=acting(supervisor_wang), price_drop=cut, orders=[second])
        RemedyLimit.objects.create(
            role=Role.ADMIN, kind=RemedyKind.PRICE_PROTECTION, currency="CNY"
        )
        with translation.override("en"):
            decided = decide_approval(
                acting_agent=acting(admin_zhao), request=approval, decision="approve"
            )
    assert decided.granted_amount == Decimal("600")
    assert f"Order {second.number}: already compensated" in decided.decision_reason
    with tenancy.activate(tenant_acme):
        assert PriceDropCompensation.objects.filter(order=second).count() == 1
    assert [amount for _n, amount, _w in paid(tenant_acme)] == sorted(
        [Decimal("200.00"), Decimal("500.00"), Decimal("600.00")]
    )


def test_a_denied_batch_pays_nothing_and_a_later_run_asks_again_for_what_is_still_owed(
    tenant_acme, agent_li, supervisor_wang, cut
):
    approval = batch_sent(agent_li, tenant_acme, cut)
    client = login(supervisor_wang)
    url = reverse("escalation:decide", args=[approval.pk])
    page = client.post(url, {"decision": "deny"}, follow=True, **PAGE).content.decode()
    assert "Say why" in page
    page = client.post(
        url, {"decision": "deny", "reason": "等厂家补贴"}, follow=True, **PAGE
    ).content.decode()
    assert "Denied." in page
    (approval,) = requests_of(tenant_acme)
    assert (approval.state, approval.granted_amount) == (Asked.DENIED, None)
    assert len(paid(tenant_acme)) == 1
    with tenancy.activate(tenant_acme):
        assert len(eligible_orders(cut)) == 2

    run(agent_li, tenant_acme, cut)
    denied, again = requests_of(tenant_acme)
    assert (again.state, again.amount, len(again.batch_orders)) == (
        Asked.PENDING,
        Decimal("1100"),
        2,
    )


def test_a_batch_cannot_be_countered(tenant_acme, agent_li, supervisor_wang, cut):
    approval = batch_sent(agent_li, tenant_acme, cut)
    page = (
        login(supervisor_wang)
        .post(
            reverse("escalation:decide", args=[approval.pk]),
            {"decision": "counter", "amount": "800", "reason": "少一点"},
            **PAGE,
        )
        .content.decode()
    )
    assert "approve or deny a batch" in page
    response = key_client(tenant_acme, supervisor_wang).post(
        f"/api/v1/approvals/{approval.pk}/decision/",
        {"decision": "counter", "amount": "800", "reason": "少一点"},
        format="json",
    )
    assert (response.status_code, response.json()["code"]) == (400, "bad_input")
    assert "approve or deny a batch" in response.json()["message"]
    with tenancy.activate(tenant_acme), pytest.raises(BadInput):
        decide_approval(
            acting_agent=acting(supervisor_wang),
            request=approval,
            decision="counter",
            amount="800",
            reason="少一点",
        )
    assert requests_of(tenant_acme)[0].state == Asked.PENDING
    assert len(paid(tenant_acme)) == 1


def test_the_supervisors_own_limits_apply_to_each_order_of_the_batch(
    tenant_acme, agent_li, supervisor_wang, cut
):
    approval = batch_sent(agent_li, tenant_acme, cut)
    first, second, third = orders_of(tenant_acme)
    with tenancy.activate(tenant_acme):
        RemedyLimit.objects.filter(role=Role.SUPERVISOR).update(per_grant_max_amount=Decimal("400"))
        # Neither order fits: nothing is decided, nothing written.
        with pytest.raises(LimitExceeded):
            decide_approval(
                acting_agent=acting(supervisor_wang), request=approval, decision="approve"
            )
    assert requests_of(tenant_acme)[0].state == Asked.PENDING
    assert len(paid(tenant_acme)) == 1

    with tenancy.activate(tenant_acme):
        RemedyLimit.objects.filter(role=Role.SUPERVISOR).update(per_grant_max_amount=Decimal("550"))
        with translation.override("en"):
            decided = decide_approval(
                acting_agent=acting(supervisor_wang), request=approval, decision="approve"
            )
        assert [e.order.number for e in eligible_orders(cut)] == [third.number]
    # What was paid is what was granted; the order past the supervisor's limit is said.
    assert (decided.state, decided.granted_amount) == (Asked.APPROVED, Decimal("500"))
    assert f"Order {third.number}: not compensated" in decided.decision_reason
    assert (second.number, Decimal("500.00"), "wang.acme") in paid(tenant_acme)


def test_the_api_lists_the_batch_without_a_ticket_and_approves_it(
    tenant_acme, agent_li, supervisor_wang, cut
):
    approval = batch_sent(agent_li, tenant_acme, cut)
    first, second, third = orders_of(tenant_acme)
    client = key_client(tenant_acme, supervisor_wang)
    [row] = client.get("/api/v1/approvals/?state=pending").json()["results"]
    assert (row["id"], row["ticket"], row["customer"]) == (approval.pk, None, None)
    assert row["price_drop"] == {"id": cut.pk, "sku": cut.sku}
    assert row["batch_orders"] == [
        {"order": second.number, "amount": "500.00"},
        {"order": third.number, "amount": "600.00"},
    ]
    assert (row["kind"], row["amount"], row["requested_by"]) == (
        "price_protection",
        "1100.00",
        "li.acme",
    )

    response = client.post(
        f"/api/v1/approvals/{approval.pk}/decision/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["state"], body["granted_amount"], body["ticket"]) == ("approved", "1100.00", None)
    assert len(paid(tenant_acme)) == 3
    again = client.post(
        f"/api/v1/approvals/{approval.pk}/decision/",
        {"decision": "deny", "reason": "晚了"},
        format="json",
    )
    assert (again.status_code, again.json()["code"]) == (409, "invalid_transition")


def test_agents_cannot_decide_a_batch_nor_compensate_without_a_limit(tenant_acme, agent_li, cut):
    approval = batch_sent(agent_li, tenant_acme, cut)
    response = login(agent_li).post(
        reverse("escalation:decide", args=[approval.pk]), {"decision": "approve"}, **PAGE
    )
    assert response.status_code == 403
    with tenancy.activate(tenant_acme):
        RemedyLimit.objects.filter(role=Role.AGENT).delete()
        with pytest.raises(PermissionDenied):
            compensate(acting_agent=acting(agent_li), price_drop=cut, orders=orders_of(tenant_acme))
    assert login(agent_li).get(f"/escalation/price-drops/{cut.pk}/", **PAGE).status_code == 403
    assert len(paid(tenant_acme)) == 1
    assert requests_of(tenant_acme)[0].state == Asked.PENDING


def test_another_merchants_supervisor_cannot_see_or_decide_the_batch(
    tenant_acme, tenant_globex, agent_li, cut
):
    approval = batch_sent(agent_li, tenant_acme, cut)
    globex_wang = _member(tenant_globex, "wang.globex", Role.SUPERVISOR).user
    client = login(globex_wang)
    page = client.get(reverse("escalation:approvals")).content.decode()
    assert "Nothing waits for approval." in page and cut.sku not in page
    response = client.post(
        reverse("escalation:decide", args=[approval.pk]), {"decision": "approve"}, **PAGE
    )
    assert response.status_code == 404
    assert client.get(f"/escalation/price-drops/{cut.pk}/", **PAGE).status_code == 404
    api = key_client(tenant_globex, globex_wang)
    assert api.get("/api/v1/approvals/").json()["results"] == []
    response = api.post(
        f"/api/v1/approvals/{approval.pk}/decision/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 404
    assert requests_of(tenant_acme)[0].state == Asked.PENDING
    assert len(paid(tenant_acme)) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs real row locks")
def test_two_supervisors_approving_a_batch_at_once_pay_each_order_once(
    tenant_acme, agent_li, supervisor_wang, admin_zhao, cut
):
    with tenancy.activate(tenant_acme):
        RemedyLimit.objects.create(
            role=Role.ADMIN, kind=RemedyKind.PRICE_PROTECTION, currency="CNY"
        )
    approval = batch_sent(agent_li, tenant_acme, cut)
    outcomes: list[str] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        user = (supervisor_wang, admin_zhao)[i]
        with tenancy.activate(tenant_acme):
            try:
                decided = decide_approval(
                    acting_agent=acting(user), request=approval, decision="approve"
                )
            except InvalidTransition:
                with lock:
                    outcomes.append("refused")
            else:
                with lock:
                    outcomes.append(decided.state)

    assert in_threads(2, work) == []
    assert sorted(outcomes) == ["approved", "refused"]
    assert len(paid(tenant_acme)) == 3
    with tenancy.activate(tenant_acme):
        assert PriceDropCompensation.objects.count() == 3
        assert AuditEvent.objects.filter(action=AuditKind.APPROVAL_APPROVED).count() == 1
