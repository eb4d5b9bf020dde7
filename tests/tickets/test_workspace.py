"""What an agent sees and does after signing in."""

from __future__ import annotations

import pytest
from django.test import Client

from helpdesk import tenancy
from helpdesk.permissions import SYSTEM
from tests.conftest import PASSWORD, acting, login
from tests.factories import CustomerFactory, UserFactory
from tickets import services
from tickets.models import AuditEvent, Message, Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def noisy_hood_ticket(in_acme):
    customer = CustomerFactory(name="李伟", email="li.wei@example.cn")
    ticket = services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject="吸油烟机噪音很大", channel="email"
    )
    Message.objects.create(
        ticket=ticket,
        direction="inbound",
        channel="email",
        author_customer=customer,
        body_text="安装后噪音很大，请处理。",
    )
    return ticket


def test_login_lands_on_the_tenants_ticket_list(agent_li, noisy_hood_ticket):
    client = Client()
    response = client.post("/login/", {"username": "li.acme", "password": PASSWORD}, follow=True)
    page = response.content.decode()
    assert response.redirect_chain[-1][0] == "/tickets/"
    assert "吸油烟机噪音很大" in page
    assert "Acme 家电" in page


def test_wrong_password_is_refused_with_a_message(agent_li):
    response = Client().post("/login/", {"username": "li.acme", "password": "nope"})
    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode()


def test_anonymous_visitors_are_sent_to_login():
    response = Client().get("/tickets/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_user_without_a_merchant_is_told_so():
    response = login(UserFactory(username="drifter")).get("/tickets/")
    assert response.status_code == 403
    assert "not a member of any merchant" in response.content.decode()


def test_agent_reads_the_conversation_and_solves_the_ticket(agent_li, noisy_hood_ticket):
    client = login(agent_li, language=None)
    page = client.get(f"/tickets/{noisy_hood_ticket.number}/").content.decode()
    assert "安装后噪音很大" in page
    response = client.post(
        f"/tickets/{noisy_hood_ticket.number}/status/", {"status": "solved"}, follow=True
    )
    assert f"工单 #{noisy_hood_ticket.number} 已变为“已解决”" in response.content.decode()
    noisy_hood_ticket.refresh_from_db()
    assert noisy_hood_ticket.status == "solved"
    event = AuditEvent.objects.get(action="ticket.status_changed")
    assert (event.actor, event.changes) == (agent_li, {"status": ["new", "solved"]})


def test_invalid_transition_is_explained_not_a_crash(agent_li, noisy_hood_ticket):
    services.change_ticket_status(
        acting_agent=acting(agent_li), ticket=noisy_hood_ticket, status="closed"
    )
    client = login(agent_li)
    response = client.post(
        f"/tickets/{noisy_hood_ticket.number}/status/",
        {"status": "pending"},
        HTTP_ACCEPT="text/html",
        HTTP_REFERER=f"/tickets/{noisy_hood_ticket.number}/",
        follow=True,
    )
    assert response.status_code == 200
    assert "A closed ticket cannot become pending" in response.content.decode()


def test_a_solved_ticket_reopens_and_counts_it(agent_li, noisy_hood_ticket):
    services.change_ticket_status(
        acting_agent=acting(agent_li), ticket=noisy_hood_ticket, status="solved"
    )
    services.change_ticket_status(
        acting_agent=acting(agent_li), ticket=noisy_hood_ticket, status="open"
    )
    noisy_hood_ticket.refresh_from_db()
    assert (noisy_hood_ticket.status, noisy_hood_ticket.reopened_count) == ("open", 1)
    assert noisy_hood_ticket.solved_at is None


def test_list_filters_by_status_and_search(agent_li, noisy_hood_ticket):
    other = services.open_ticket(
        acting_agent=SYSTEM,
        customer=CustomerFactory(name="Emily"),
        subject="Invoice copy",
        channel="chat",
    )
    services.change_ticket_status(acting_agent=acting(agent_li), ticket=other, status="solved")
    client = login(agent_li)
    unsolved = client.get("/tickets/").content.decode()
    assert "吸油烟机噪音很大" in unsolved and "Invoice copy" not in unsolved
    solved = client.get("/tickets/?status=solved").content.decode()
    assert "Invoice copy" in solved and "吸油烟机噪音很大" not in solved
    found = client.get("/tickets/?status=all&q=li.wei@example").content.decode()
    assert "吸油烟机噪音很大" in found and "Invoice copy" not in found


def test_internal_note_is_shown_and_audited(agent_li, noisy_hood_ticket):
    client = login(agent_li)
    client.post(f"/tickets/{noisy_hood_ticket.number}/note/", {"text": "Ask the supplier"})
    page = client.get(f"/tickets/{noisy_hood_ticket.number}/").content.decode()
    assert "Ask the supplier" in page
    assert AuditEvent.objects.filter(action="message.note_added", actor=agent_li).count() == 1


def test_one_customer_across_channels_is_one_person(in_acme):
    first = services.resolve_customer(kind="email", value="Li.Wei@Example.CN", name="李伟")
    services.add_identity(acting_agent=SYSTEM, customer=first, kind="phone", value="138 0013 8000")
    assert services.resolve_customer(kind="phone", value="+86 13800138000") == first
    assert services.resolve_customer(kind="email", value="li.wei@example.cn") == first
    assert first.identities.get(kind="phone").value == "+8613800138000"


def test_money_stays_decimal_and_refunds_cannot_exceed_payment(in_acme):
    from decimal import Decimal

    from django.db import IntegrityError, transaction

    from tests.factories import OrderFactory

    order = OrderFactory(total_amount=Decimal("0.10"), paid_amount=Decimal("0.30"))
    order.refresh_from_db()
    assert order.refundable_amount == Decimal("0.30")
    order.refunded_amount = Decimal("0.31")
    with pytest.raises(IntegrityError), transaction.atomic():
        order.save()


def test_ticket_list_stays_within_query_budget(agent_li, in_acme, django_assert_max_num_queries):
    customer = CustomerFactory()
    for i in range(30):
        services.open_ticket(
            acting_agent=SYSTEM, customer=customer, subject=f"t{i}", channel="email"
        )
    client = login(agent_li)
    with django_assert_max_num_queries(12):
        client.get("/tickets/")
    assert Ticket.objects.count() == 30


def test_healthz_answers():
    assert Client().get("/healthz").json() == {"status": "ok"}


def test_seed_demo_is_idempotent_and_prints_logins(capsys):
    from django.core.management import call_command

    from helpdesk.models import Tenant

    call_command("seed_demo")
    acme = Tenant.objects.get(slug="acme")
    with tenancy.activate(acme):
        seeded = Ticket.objects.count()  # five of today and a month of history
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "acme-agent-li" in out and "helpdesk-demo" in out
    acme.refresh_from_db()
    with tenancy.activate(acme):
        assert Ticket.objects.count() == seeded > 5
        assert Ticket.objects.filter(customer__name="李伟").exists()
    assert acme.last_ticket_number == seeded


def test_agents_work_in_their_merchants_language_unless_they_choose(agent_li, globex_agent_li):
    acme_page = login(agent_li, language=None).get("/tickets/").content.decode()
    assert "工单" in acme_page
    assert '<html lang="zh-hans">' in acme_page
    globex_page = login(globex_agent_li, language=None).get("/tickets/").content.decode()
    assert "Tickets" in globex_page and "工单" not in globex_page
    english = login(agent_li, language=None)
    english.post("/i18n/setlang/", {"language": "en", "next": "/tickets/"})
    assert "工单" not in english.get("/tickets/").content.decode()


def test_ticket_statuses_read_in_chinese_for_a_chinese_merchant(agent_li, noisy_hood_ticket):
    services.change_ticket_status(
        acting_agent=acting(agent_li), ticket=noisy_hood_ticket, status="solved"
    )
    page = login(agent_li, language=None).get("/tickets/?status=solved").content.decode()
    assert "已解决" in page


def test_ticket_history_reads_as_sentences_in_the_agents_language(agent_li, noisy_hood_ticket):
    services.change_ticket_status(
        acting_agent=acting(agent_li), ticket=noisy_hood_ticket, status="pending"
    )
    english = login(agent_li).get(f"/tickets/{noisy_hood_ticket.number}/").content.decode()
    assert "Status changed from New to Pending" in english
    assert "li.acme · " in english
    chinese = login(agent_li, language=None).get(f"/tickets/{noisy_hood_ticket.number}/")
    assert "状态从新建改为待客户回复" in chinese.content.decode()


def test_the_ticket_page_shows_the_customers_tickets_on_other_channels(agent_li, noisy_hood_ticket):
    services.open_ticket(
        acting_agent=SYSTEM,
        customer=noisy_hood_ticket.customer,
        subject="微信咨询安装时间",
        channel="wechat",
    )
    services.open_ticket(
        acting_agent=SYSTEM, customer=CustomerFactory(), subject="Someone else", channel="chat"
    )
    page = login(agent_li).get(f"/tickets/{noisy_hood_ticket.number}/").content.decode()
    assert "微信咨询安装时间" in page and "WeChat" in page
    assert "Someone else" not in page


def test_pages_forbid_inline_script_so_customer_content_cannot_run(agent_li, noisy_hood_ticket):
    response = login(agent_li).get(f"/tickets/{noisy_hood_ticket.number}/")
    policy = response["Content-Security-Policy"]
    assert (
        "script-src 'self'" in policy
        and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    )
    assert "frame-ancestors 'none'" in policy
    assert "onchange=" not in response.content.decode()


def test_a_note_is_confirmed_and_notes_carry_no_channel(agent_li, noisy_hood_ticket):
    client = login(agent_li)
    page = client.post(
        f"/tickets/{noisy_hood_ticket.number}/note/", {"text": "Check batch 2026-11"}, follow=True
    ).content.decode()
    assert "Note added." in page
    assert "Internal note · Email" not in page and "Internal note ·" in page
