"""Merging tickets and customers, and macros, through the public API: the pages' rules hold."""

from __future__ import annotations

from helpdesk import tenancy
from helpdesk.permissions import SYSTEM
from tests.factories import CustomerFactory
from tickets import services
from tickets.models import Customer, Macro, Ticket


def test_a_ticket_merged_into_another_moves_its_conversation_and_closes(
    tenant_acme, acme, supervisor_api
):
    with tenancy.activate(tenant_acme):
        customer = Customer.objects.get(pk=acme.customer)
        other = services.open_ticket(
            acting_agent=SYSTEM, customer=customer, subject="又坏了", channel="email"
        )
        services.add_note(acting_agent=SYSTEM, ticket=other, text="第二次联系")
    response = supervisor_api.post(
        f"/api/v1/tickets/{other.number}/merge/", {"into": acme.ticket}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["number"] == acme.ticket
    assert "第二次联系" in [m["body_text"] for m in response.json()["messages"]]
    with tenancy.activate(tenant_acme):
        merged = Ticket.objects.get(number=other.number)
        assert (merged.merged_into.number, merged.status) == (acme.ticket, Ticket.Status.CLOSED)
    again = supervisor_api.post(
        f"/api/v1/tickets/{other.number}/merge/", {"into": acme.ticket}, format="json"
    )
    assert again.status_code == 400
    assert again.json()["message"]


def test_merging_into_another_merchants_ticket_is_not_found(
    tenant_acme, acme, globex, supervisor_api
):
    response = supervisor_api.post(
        f"/api/v1/tickets/{acme.ticket}/merge/", {"into": globex.ticket + 100}, format="json"
    )
    assert response.status_code == 404
    with tenancy.activate(tenant_acme):
        assert Ticket.objects.get(number=acme.ticket).merged_into_id is None


def test_two_records_of_one_person_become_one_customer(tenant_acme, acme, supervisor_api):
    with tenancy.activate(tenant_acme):
        phone_caller = CustomerFactory(name="来电者")
        call = services.open_ticket(
            acting_agent=SYSTEM, customer=phone_caller, subject="未接来电", channel="phone"
        )
    response = supervisor_api.post(
        f"/api/v1/customers/{phone_caller.pk}/merge/", {"into": acme.customer}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["id"] == acme.customer
    with tenancy.activate(tenant_acme):
        assert Ticket.objects.get(pk=call.pk).customer_id == acme.customer


def test_a_macro_is_filled_in_for_the_ticket_and_counted(tenant_acme, acme, agent_api):
    with tenancy.activate(tenant_acme):
        macro = Macro.objects.create(name="问候", body="您好 {{ customer.name }}，我们在查。")
        retired = Macro.objects.create(name="旧的", body="旧话", active=False)
    listed = agent_api.get("/api/v1/macros/").json()["results"]
    assert [m["name"] for m in listed] == ["问候"]
    filled = agent_api.post(f"/api/v1/tickets/{acme.ticket}/macros/{macro.pk}/render/")
    assert filled.status_code == 200, filled.json()
    assert filled.json()["text"] == "您好 李伟，我们在查。"
    with tenancy.activate(tenant_acme):
        assert Macro.objects.get(pk=macro.pk).usage_count == 1
    refused = agent_api.post(f"/api/v1/tickets/{acme.ticket}/macros/{retired.pk}/render/")
    assert refused.status_code == 400
    missing = agent_api.post(f"/api/v1/tickets/{acme.ticket}/macros/{macro.pk + 999}/render/")
    assert missing.status_code == 404
    assert set(missing.json()) == {"message", "code", "extra"}


def test_another_merchants_macro_is_not_found(tenant_globex, acme, agent_api):
    with tenancy.activate(tenant_globex):
        theirs = Macro.objects.create(name="Hello", body="Hello {{ customer.name }}")
    response = agent_api.post(f"/api/v1/tickets/{acme.ticket}/macros/{theirs.pk}/render/")
    assert response.status_code == 404
    with tenancy.activate(tenant_globex):
        assert Macro.objects.get(pk=theirs.pk).usage_count == 0
