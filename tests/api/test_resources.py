"""What the API does with customers, orders, tickets and messages: the pages' rules, through
the same services, with cursor pages, filters and ordering."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from escalation.escalations import escalate
from helpdesk import tenancy
from helpdesk.models import Tenant
from helpdesk.permissions import SYSTEM
from tests.factories import CustomerFactory
from tests.tickets.test_composer import PNG
from tickets import services
from tickets.models import Attachment, AuditEvent, Message, Order, Ticket

pytestmark = pytest.mark.django_db


def test_tickets_come_in_cursor_pages_in_the_order_asked(tenant_acme, acme, supervisor_api):
    with tenancy.activate(tenant_acme):
        for n in range(4):
            services.open_ticket(
                acting_agent=SYSTEM, customer=CustomerFactory(), subject=f"T{n}", channel="chat"
            )
    first = supervisor_api.get("/api/v1/tickets/", {"page_size": 2, "ordering": "number"}).json()
    assert [t["number"] for t in first["results"]] == [1, 2]
    second = supervisor_api.get(first["next"]).json()
    assert [t["number"] for t in second["results"]] == [3, 4]
    newest = supervisor_api.get("/api/v1/tickets/", {"ordering": "-number"}).json()["results"]
    assert [t["number"] for t in newest] == [5, 4, 3, 2, 1]
    chat = supervisor_api.get("/api/v1/tickets/", {"channel": "chat", "ordering": "number"})
    assert [t["number"] for t in chat.json()["results"]] == [2, 3, 4, 5]


def test_a_ticket_opened_changed_and_answered_through_the_api_is_audited_as_its_person(
    tenant_acme, acme, supervisor_api, supervisor_wang
):
    opened = supervisor_api.post(
        "/api/v1/tickets/",
        {"customer": acme.customer, "subject": "退款", "order": acme.order, "priority": "high"},
        format="json",
    )
    assert opened.status_code == 201, opened.content
    number = opened.json()["number"]
    assert (opened.json()["order"], opened.json()["priority"]) == (acme.order, "high")

    changed = supervisor_api.patch(
        f"/api/v1/tickets/{number}/",
        {"status": "open", "assignee": supervisor_wang.pk, "order": None},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["status"], changed.json()["assignee"], changed.json()["order"]) == (
        "open",
        "wang.acme",
        None,
    )

    tagged = supervisor_api.patch(
        f"/api/v1/tickets/{number}/", {"add_tags": ["破损", "VIP"]}, format="json"
    )
    assert tagged.json()["tags"] == ["vip", "破损"]
    untagged = supervisor_api.patch(
        f"/api/v1/tickets/{number}/", {"remove_tags": ["vip"]}, format="json"
    )
    assert untagged.json()["tags"] == ["破损"]

    note = supervisor_api.post(
        f"/api/v1/tickets/{number}/messages/", {"kind": "note", "text": "查一下物流"}, format="json"
    )
    assert note.status_code == 201
    assert (note.json()["direction"], note.json()["author"]) == ("note", "wang.acme")
    listed = supervisor_api.get(f"/api/v1/tickets/{number}/messages/").json()["results"]
    assert [m["body_text"] for m in listed] == ["查一下物流"]
    with tenancy.activate(tenant_acme):
        actions = set(
            AuditEvent.objects.filter(actor=supervisor_wang).values_list("action", flat=True)
        )
    assert {
        "ticket.status_changed",
        "ticket.assigned",
        "ticket.tagged",
        "ticket.untagged",
        "message.note_added",
    } <= actions


def test_a_note_carries_files_sent_as_multipart_and_lists_them(tenant_acme, acme, agent_api):
    photo = SimpleUploadedFile("破损.png", PNG, content_type="image/png")
    receipt = SimpleUploadedFile("receipt.txt", "订单 SO-1".encode(), content_type="text/plain")
    response = agent_api.post(
        f"/api/v1/tickets/{acme.ticket}/messages/",
        {"kind": "note", "text": "顾客发来的照片", "files": [photo, receipt]},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    names = [(a["filename"], a["size"]) for a in response.json()["attachments"]]
    assert sorted(names) == sorted([("破损.png", len(PNG)), ("receipt.txt", 11)])
    listed = agent_api.get(f"/api/v1/tickets/{acme.ticket}/messages/").json()["results"]
    assert {a["filename"] for a in listed[-1]["attachments"]} == {"破损.png", "receipt.txt"}
    with tenancy.activate(tenant_acme):
        stored = Attachment.objects.get(message_id=response.json()["id"], filename="破损.png")
        assert stored.file.read() == PNG


def test_a_file_past_the_merchants_limit_is_refused_with_the_reason(tenant_acme, acme, agent_api):
    Tenant.objects.filter(pk=tenant_acme.pk).update(max_attachment_bytes=1000)
    big = SimpleUploadedFile("big.txt", b"0" * 1001, "text/plain")
    response = agent_api.post(
        f"/api/v1/tickets/{acme.ticket}/messages/",
        {"kind": "note", "text": "太大了", "files": [big]},
        format="multipart",
    )
    assert response.status_code in (400, 413)
    assert response.json()["message"]
    with tenancy.activate(tenant_acme):
        assert not Message.objects.filter(body_text="太大了").exists()


def test_an_agent_cannot_give_a_ticket_to_someone_else(acme, agent_api, supervisor_wang):
    response = agent_api.patch(
        f"/api/v1/tickets/{acme.ticket}/", {"assignee": supervisor_wang.pk}, format="json"
    )
    assert response.status_code in (403, 404)


def test_an_empty_reply_is_refused_and_nothing_is_written(tenant_acme, acme, agent_api):
    response = agent_api.post(
        f"/api/v1/tickets/{acme.ticket}/messages/", {"kind": "reply", "text": "  "}, format="json"
    )
    assert response.status_code == 400
    with tenancy.activate(tenant_acme):
        assert not Message.objects.filter(direction="outbound").exists()


def test_customers_are_found_by_identity_or_made(acme, supervisor_api):
    agent_api = supervisor_api  # who sees every customer, those without tickets too
    known = agent_api.post(
        "/api/v1/customers/",
        {"identities": [{"kind": "email", "value": "LI.WEI@example.cn"}]},
        format="json",
    )
    assert (known.status_code, known.json()["id"]) == (200, acme.customer)
    made = agent_api.post(
        "/api/v1/customers/",
        {"name": "王芳", "identities": [{"kind": "phone", "value": "138 0013 8000"}]},
        format="json",
    )
    assert made.status_code == 201
    assert made.json()["identities"][0]["value"] == "+8613800138000"
    taken = agent_api.post(
        f"/api/v1/customers/{made.json()['id']}/identities/",
        {"kind": "email", "value": "li.wei@example.cn"},
        format="json",
    )
    assert taken.status_code == 400
    assert "belongs to another customer" in taken.json()["message"]


def test_an_order_is_created_then_updated_by_its_number(
    tenant_acme, acme, agent_api, supervisor_api
):
    order = {
        "number": "A-2001",
        "customer": {"email": "new.buyer@example.cn", "name": "赵敏"},
        "currency": "CNY",
        "total_amount": "599.00",
        "paid_amount": "599.00",
        "placed_at": "2026-11-30T10:00:00+08:00",
        "lines": [{"sku": "FAN-2", "product_name": "风扇", "unit_price_amount": "599.00"}],
    }
    created = agent_api.post("/api/v1/orders/", order, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["lines"][0]["unit_price_amount"] == "599.00"

    updated = agent_api.post(
        "/api/v1/orders/",
        {"number": "A-2001", "status": "shipped", "carrier": "SF", "tracking_number": "SF1"},
        format="json",
    )
    assert updated.status_code == 200
    assert (updated.json()["status"], updated.json()["total_amount"]) == ("shipped", "599.00")
    assert len(updated.json()["lines"]) == 1
    refused = agent_api.post(
        "/api/v1/orders/", {"number": "A-2001", "refunded_amount": "600"}, format="json"
    )
    assert refused.status_code == 400
    with tenancy.activate(tenant_acme):
        assert Order.objects.get(number="A-2001").refunded_amount == 0
    assert supervisor_api.get("/api/v1/orders/A-2001/").json()["carrier"] == "SF"
    # An agent of some groups reads the orders of customers with tickets in their reach only.
    assert agent_api.get("/api/v1/orders/A-2001/").status_code == 404
    assert agent_api.get(f"/api/v1/orders/{acme.order}/").status_code == 200


def test_a_ticket_escalated_and_resolved_through_the_api(tenant_acme, acme, supervisor_api):
    with tenancy.activate(tenant_acme):
        ticket = services.open_ticket(
            acting_agent=SYSTEM, customer=CustomerFactory(), subject="差评", channel="email"
        )
    raised = supervisor_api.post(
        f"/api/v1/tickets/{ticket.number}/escalations/", {"reason": "客户要求经理"}, format="json"
    )
    assert raised.status_code == 201, raised.content
    settled = supervisor_api.post(
        f"/api/v1/escalations/{raised.json()['id']}/resolve/", {"resolution": "退款"}, format="json"
    )
    assert (settled.status_code, settled.json()["state"]) == (200, "resolved")
    again = supervisor_api.post(
        f"/api/v1/escalations/{raised.json()['id']}/resolve/", {"resolution": "x"}, format="json"
    )
    assert again.status_code == 409
    with tenancy.activate(tenant_acme):
        assert Ticket.objects.get(pk=ticket.pk).escalated_at is not None


def test_the_escalation_queue_stays_oldest_first_in_cursor_pages(tenant_acme, acme, supervisor_api):
    with tenancy.activate(tenant_acme):
        for n in range(3):
            ticket = services.open_ticket(
                acting_agent=SYSTEM, customer=CustomerFactory(), subject=f"E{n}", channel="chat"
            )
            escalate(ticket=ticket, trigger="manual", reason=f"r{n}")
    first = supervisor_api.get("/api/v1/escalations/", {"page_size": 2}).json()
    rest = supervisor_api.get(first["next"]).json()
    reasons = [row["reason"] for row in first["results"] + rest["results"]]
    assert reasons == ["angry", "r0", "r1", "r2"]


def test_customers_are_filtered_by_a_phone_written_any_way_and_a_bad_one_finds_none(
    acme, supervisor_api
):
    made = supervisor_api.post(
        "/api/v1/customers/",
        {"name": "王芳", "identities": [{"kind": "phone", "value": "138 0013 8000"}]},
        format="json",
    ).json()
    for written in ("+86 138 0013 8000", "13800138000", "+8613800138000"):
        found = supervisor_api.get("/api/v1/customers/", {"phone": written}).json()["results"]
        assert [c["id"] for c in found] == [made["id"]], written
    assert supervisor_api.get("/api/v1/customers/", {"phone": "call me"}).json()["results"] == []
    upper = supervisor_api.get("/api/v1/customers/", {"email": "LI.WEI@example.cn"}).json()
    assert [c["id"] for c in upper["results"]] == [acme.customer]
