"""Macros: supervisors keep the merchant's canned replies, agents insert them filled in for the
ticket they answer, and nothing but the known variables is ever filled in."""

from __future__ import annotations

import pytest

from channels_in.models import ChannelAccount
from helpdesk import tenancy
from helpdesk.errors import BadInput, PermissionDenied
from helpdesk.models import Membership
from helpdesk.permissions import SYSTEM
from tests.conftest import acting, login
from tests.factories import CustomerFactory, OrderFactory
from tickets import macros, services
from tickets.audit import AuditKind
from tickets.models import AuditEvent, Group, GroupMember, Macro, Message, Ticket

pytestmark = pytest.mark.django_db

HTML = {"HTTP_ACCEPT": "text/html"}
WHERE = "您好 {{ customer.name }}，订单 {{order.number}} 已由 {{ order.carrier }} 发出，单号 {{ order.tracking_number }}。{{ agent.name }}"


def _ticket(*, order: bool = True, group: Group | None = None) -> Ticket:
    address = (
        "li.wei@example.cn" if not Ticket.objects.exists() else f"c{Ticket.objects.count()}@x.cn"
    )
    customer = CustomerFactory(name="李伟", email=address)
    linked = (
        OrderFactory(
            customer=customer,
            number=f"SO2026110{Ticket.objects.count() + 5}",
            carrier="顺丰",
            tracking_number="SF1234567890",
        )
        if order
        else None
    )
    ticket = services.open_ticket(
        acting_agent=SYSTEM,
        customer=customer,
        subject="快递到哪了",
        channel="email",
        order=linked,
    )
    account = ChannelAccount.objects.filter(kind="email").first()
    Message.objects.create(
        ticket=ticket,
        direction="inbound",
        channel="email",
        channel_account=account,
        author_customer=customer,
        subject="快递到哪了",
        body_text="我的快递到哪了？",
        metadata={"from": address},
    )
    if group is not None:
        Ticket.objects.filter(pk=ticket.pk).update(group=group)
        ticket.refresh_from_db()
    return ticket


def _macro(name: str = "Where is my parcel 物流查询", body: str = WHERE) -> Macro:
    return Macro.objects.create(name=name, body=body)


@pytest.fixture
def named_li(in_acme, agent_li, acme_email):
    Membership.objects.filter(user=agent_li).update(display_name="李丽")
    return agent_li


# --- rendering -----------------------------------------------------------------------------------


def test_a_macro_is_filled_in_with_the_customer_order_and_agent(named_li):
    ticket = _ticket()
    macro = _macro()
    rendered = macros.render_macro(acting_agent=acting(named_li), macro=macro, ticket=ticket)
    assert rendered.text == ("您好 李伟，订单 SO20261105 已由 顺丰 发出，单号 SF1234567890。李丽")
    assert rendered.warnings == []
    macro.refresh_from_db()
    assert macro.usage_count == 1


def test_ticket_variables_and_the_customers_email_are_filled_in(named_li):
    ticket = _ticket()
    macro = _macro(body="#{{ ticket.number }} {{ ticket.subject }} → {{ customer.email }}")
    text = macros.render_macro(acting_agent=acting(named_li), macro=macro, ticket=ticket).text
    assert text == f"#{ticket.number} 快递到哪了 → li.wei@example.cn"


def test_without_an_order_the_order_variables_are_empty_and_the_agent_is_warned(named_li):
    ticket = _ticket(order=False)
    rendered = macros.render_macro(acting_agent=acting(named_li), macro=_macro(), ticket=ticket)
    assert rendered.text == "您好 李伟，订单  已由  发出，单号 。李丽"
    assert rendered.warnings == ["This ticket has no order: the order's details are left empty."]


def test_merchant_text_is_never_run_as_a_template(named_li):
    """Only the whitelist is filled in: template tags in a macro's text stay text."""
    ticket = _ticket()
    macro = _macro(body="{% load static %}{{ customer.name }} {# hi #}")
    text = macros.render_macro(acting_agent=acting(named_li), macro=macro, ticket=ticket).text
    assert text == "{% load static %}李伟 {# hi #}"


def test_an_agent_cannot_use_a_macro_on_a_ticket_out_of_reach(named_li, in_acme):
    closed_group = Group.objects.create(name="VIP 专席")
    ticket = _ticket(group=closed_group)
    with pytest.raises(PermissionDenied):
        macros.render_macro(acting_agent=acting(named_li), macro=_macro(), ticket=ticket)
    assert Macro.objects.get().usage_count == 0


# --- keeping the list ------------------------------------------------------------------------------


def test_an_unknown_variable_is_refused_naming_the_known_ones(in_acme, supervisor_wang):
    with pytest.raises(BadInput) as refused:
        macros.save_macro(
            acting_agent=acting(supervisor_wang), name="Bad", body="Hi {{ customer.phone }}"
        )
    assert "{{ customer.phone }}" in refused.value.message
    assert "{{ order.tracking_number }}" in refused.value.message
    assert not Macro.objects.exists()


def test_agents_cannot_keep_the_list(in_acme, agent_li):
    with pytest.raises(PermissionDenied):
        macros.save_macro(acting_agent=acting(agent_li), name="Hi", body="Hello")
    assert not Macro.objects.exists()


def test_saving_retiring_and_restoring_are_audited(in_acme, supervisor_wang):
    wang = acting(supervisor_wang)
    macro = macros.save_macro(acting_agent=wang, name="Hi", body="Hello {{ customer.name }}")
    macros.save_macro(acting_agent=wang, macro=macro, name="Hi", body="您好 {{ customer.name }}")
    macros.retire_macro(acting_agent=wang, macro=macro)
    assert list(macros.active_macros()) == []
    macros.restore_macro(acting_agent=wang, macro=macro)
    actions = list(
        AuditEvent.objects.filter(object_type="macro")
        .order_by("pk")
        .values_list("action", "changes")
    )
    assert [a for a, _c in actions] == [
        AuditKind.MACRO_SAVED,
        AuditKind.MACRO_SAVED,
        AuditKind.MACRO_RETIRED,
        AuditKind.MACRO_RESTORED,
    ]
    assert actions[1][1] == {"body": ["Hello {{ customer.name }}", "您好 {{ customer.name }}"]}


def test_two_macros_cannot_share_a_name(in_acme, supervisor_wang):
    wang = acting(supervisor_wang)
    macros.save_macro(acting_agent=wang, name="Hi", body="Hello")
    with pytest.raises(BadInput):
        macros.save_macro(acting_agent=wang, name="Hi", body="Hello again")
    assert Macro.objects.count() == 1


# --- the settings page -----------------------------------------------------------------------------


def test_a_supervisor_adds_a_macro_on_the_settings_page(supervisor_wang, in_acme):
    client = login(supervisor_wang)
    page = client.get("/settings/macros/").content.decode()
    assert "No macros yet" in page
    assert "{{ order.tracking_number }}" in page  # the variables are listed
    response = client.post("/settings/macros/", {"name": "物流查询", "body": WHERE}, follow=True)
    assert "The macro 物流查询 is added." in response.content.decode()
    assert Macro.objects.get().body == WHERE


def test_an_unknown_variable_is_a_form_error_not_a_crash(supervisor_wang, in_acme):
    response = login(supervisor_wang).post(
        "/settings/macros/", {"name": "Bad", "body": "Hi {{ customer.nickname }}"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Unknown variable {{ customer.nickname }}" in page
    assert "{{ agent.name }}" in page
    assert not Macro.objects.exists()


def test_a_supervisor_edits_retires_and_restores_a_macro(supervisor_wang, in_acme):
    macro = _macro()
    client = login(supervisor_wang)
    assert client.get(f"/settings/macros/{macro.pk}/").status_code == 200
    client.post(f"/settings/macros/{macro.pk}/", {"name": "Renamed", "body": "Hi"})
    macro.refresh_from_db()
    assert (macro.name, macro.body) == ("Renamed", "Hi")
    client.post(f"/settings/macros/{macro.pk}/retire/")
    macro.refresh_from_db()
    assert not macro.active
    client.post(f"/settings/macros/{macro.pk}/restore/")
    macro.refresh_from_db()
    assert macro.active


def test_agents_do_not_get_the_settings_page(agent_li, in_acme):
    macro = _macro()
    client = login(agent_li)
    assert client.get("/settings/macros/").status_code == 403
    assert client.post(f"/settings/macros/{macro.pk}/retire/").status_code == 403
    assert Macro.objects.get().active


def test_another_merchants_macro_is_404(supervisor_wang, tenant_globex, in_acme):
    with tenancy.activate(tenant_globex):
        theirs = _macro(name="Globex", body="Hi")
    client = login(supervisor_wang)
    assert client.get(f"/settings/macros/{theirs.pk}/").status_code == 404
    assert client.post(f"/settings/macros/{theirs.pk}/retire/").status_code == 404


# --- the picker ------------------------------------------------------------------------------------


def test_the_reply_box_offers_the_active_macros(named_li):
    ticket = _ticket()
    _macro()
    _macro(name="Retired one", body="x").__class__.objects.filter(name="Retired one").update(
        active=False
    )
    page = login(named_li).get(f"/tickets/{ticket.number}/").content.decode()
    assert "Where is my parcel 物流查询" in page
    assert "Retired one" not in page
    assert "js/macros.js" in page
    assert "This ticket has no order" not in page


def test_the_picker_warns_before_when_the_ticket_has_no_order(named_li):
    ticket = _ticket(order=False)
    _macro()
    page = login(named_li).get(f"/tickets/{ticket.number}/").content.decode()
    assert "This ticket has no order" in page


def test_without_macros_supervisors_get_a_link_to_add_some_and_agents_nothing(
    named_li, supervisor_wang
):
    ticket = _ticket()
    assert (
        "/settings/macros/"
        not in login(named_li).get(f"/tickets/{ticket.number}/").content.decode()
    )
    page = login(supervisor_wang).get(f"/tickets/{ticket.number}/").content.decode()
    assert 'href="/settings/macros/"' in page


def test_the_picker_fetches_the_filled_in_text_as_json(named_li):
    ticket = _ticket()
    macro = _macro()
    response = login(named_li).post(f"/tickets/{ticket.number}/macros/{macro.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body["text"].startswith("您好 李伟，订单 SO20261105")
    assert body["warnings"] == []
    macro.refresh_from_db()
    assert macro.usage_count == 1


def test_the_picker_answers_404_for_tickets_and_macros_out_of_reach(
    named_li, tenant_globex, in_acme
):
    ticket = _ticket()
    out_of_reach = _ticket(group=Group.objects.create(name="VIP 专席"))
    macro = _macro()
    retired = _macro(name="Retired", body="x")
    Macro.objects.filter(pk=retired.pk).update(active=False)
    with tenancy.activate(tenant_globex):
        theirs = _macro(name="Globex", body="Hi")
    client = login(named_li)
    for url in (
        f"/tickets/{out_of_reach.number}/macros/{macro.pk}/",
        f"/tickets/{ticket.number}/macros/{theirs.pk}/",
        f"/tickets/{ticket.number}/macros/{retired.pk}/",
        f"/tickets/999/macros/{macro.pk}/",
    ):
        assert client.post(url).status_code == 404, url
    assert Macro.objects.get(pk=macro.pk).usage_count == 0


def test_an_agent_in_the_tickets_group_may_use_macros_on_it(named_li):
    group = Group.objects.create(name="After-sales 售后")
    GroupMember.objects.create(group=group, user=named_li)
    ticket = _ticket(group=group)
    macro = _macro(body="Hi {{ customer.name }}")
    response = login(named_li).post(f"/tickets/{ticket.number}/macros/{macro.pk}/")
    assert response.json()["text"] == "Hi 李伟"


def test_the_demo_merchants_come_with_three_macros_that_fill_in(capsys):
    from django.core.management import call_command

    from helpdesk.models import Tenant

    call_command("seed_demo")
    call_command("seed_demo")  # run again: still three each
    for tenant in Tenant.objects.all():
        with tenancy.activate(tenant):
            assert macros.active_macros().count() == 3
            names = " ".join(macros.active_macros().values_list("name", flat=True))
            assert "物流查询" in names and "Shipping update" in names
