"""Search finds tickets by the words agents remember: Chinese words inside sentences, English
words in another form, phone, order and tracking numbers; a bare number names one ticket, and
another merchant's tickets are never found."""

from __future__ import annotations

import re
import uuid
from urllib.parse import quote

import pytest
from django.core.management import call_command
from django.db import transaction

from helpdesk import tenancy
from helpdesk.permissions import SYSTEM
from tests.conftest import acting, login
from tests.factories import CustomerFactory, OrderFactory
from tickets import search, services
from tickets.incoming import InboundMessage
from tickets.models import Ticket

pytestmark = pytest.mark.django_db


def _wrote(text: str, *, subject: str, sender: str | None = None) -> Ticket:
    """A customer's message filed as the pipeline files it: a new ticket."""
    inbound = InboundMessage(
        channel="email",
        external_id=f"<{uuid.uuid4()}@example.cn>",
        sender_kind="email",
        sender_value=sender or f"{uuid.uuid4().hex[:8]}@example.cn",
        subject=subject,
        text=text,
    )
    with transaction.atomic():
        filed = services.record_customer_message(inbound=inbound, account_id=None)
    return filed.ticket


def _found(agent: object, query: str) -> str:
    response = login(agent).get(f"/tickets/?view=all&q={quote(query)}")
    assert response.status_code == 200
    return response.content.decode()


def test_a_chinese_word_inside_a_sentence_finds_its_ticket(agent_li, in_acme):
    _wrote("我买的电饭煲到货时外壳破损了", subject="到货问题")
    _wrote("洗衣机不排水", subject="洗衣机故障")
    for word in ("电饭煲", "破损", "外壳破损"):
        page = _found(agent_li, word)
        assert "到货问题" in page and "洗衣机故障" not in page, word
    assert "到货问题" not in _found(agent_li, "冰箱")


def test_an_english_word_finds_its_other_forms(agent_li, in_acme):
    _wrote("I was told it would be refunded last week.", subject="Money back?")
    _wrote("The kettle leaks.", subject="Leaking kettle")
    page = _found(agent_li, "refund")
    assert "Money back?" in page and "Leaking kettle" not in page
    assert "Money back?" in _found(agent_li, "REFUNDED Week")


def test_a_phone_number_in_a_message_finds_its_ticket_however_it_is_written(agent_li, in_acme):
    _wrote("有事请打我电话 +86 138 0013 8000，谢谢", subject="请回电")
    _wrote("我的电话是13912345678", subject="另一位客户")
    for query in ("13800138000", "+86 138 0013 8000", "138-0013-8000"):
        page = _found(agent_li, query)
        assert "请回电" in page and "另一位客户" not in page, query
    page = _found(agent_li, "+86 139 1234 5678")
    assert "另一位客户" in page and "请回电" not in page


def test_a_linked_order_and_its_tracking_number_find_the_ticket(agent_li, in_acme):
    ticket = _wrote("东西还没到", subject="物流太慢")
    _wrote("东西还没到", subject="别人的包裹")
    order = OrderFactory(
        customer=ticket.customer, number="SO-2026-0815", tracking_number="SF1402758839201"
    )
    services.link_order(acting_agent=acting(agent_li), ticket=ticket, order=order)
    for query in ("SO-2026-0815", "so20260815", "SF1402758839201", "2758839201", "物流 SF14027"):
        page = _found(agent_li, query)
        assert "物流太慢" in page and "别人的包裹" not in page, query


def test_an_order_number_mentioned_in_the_first_message_finds_the_ticket(agent_li, in_acme):
    _wrote("订单号 A20261201-7731 的冰箱漏水", subject="冰箱漏水")
    assert "冰箱漏水" in _found(agent_li, "A20261201-7731")


def test_a_bare_number_names_one_ticket_and_matches_no_digit_in_other_tickets(agent_li, in_acme):
    tickets = [
        _wrote(f"买了{n}台，其中2台坏了，第3台也有问题", subject=f"批量订单 {n}号")
        for n in range(1, 6)
    ]
    page = _found(agent_li, "2")
    assert "批量订单 2号" in page
    assert all(f"批量订单 {t.number}号" not in page for t in tickets if t.number != 2)
    page = _found(agent_li, f"#{tickets[3].number}")
    assert "批量订单 4号" in page and "批量订单 1号" not in page


def test_notes_and_replies_are_found(agent_li, in_acme):
    ticket = _wrote("热水器不出热水", subject="热水器")
    services.add_note(acting_agent=acting(agent_li), ticket=ticket, text="供应商确认需要换主板")
    assert "热水器" in _found(agent_li, "主板")


def test_another_merchants_ticket_is_never_found(agent_li, tenant_globex, in_acme):
    _wrote("电饭煲破损", subject="Acme 的电饭煲")
    with tenancy.activate(tenant_globex):
        customer = CustomerFactory(name="Globex customer")
        services.open_ticket(
            acting_agent=SYSTEM, customer=customer, subject="Globex 电饭煲", channel="email"
        )
        globex = Ticket.objects.get(subject="Globex 电饭煲")
        assert "电饭煲" in globex.search_text
    page = _found(agent_li, "电饭煲")
    assert "Acme 的电饭煲" in page and "Globex 电饭煲" not in page
    assert "Globex 电饭煲" not in _found(agent_li, f"#{globex.number}")


def test_rebuild_search_fills_tickets_written_without_it(agent_li, in_acme):
    ticket = _wrote("空调遥控器失灵", subject="遥控器")
    Ticket.objects.filter(pk=ticket.pk).update(search_text="")
    assert "遥控器" not in _found(agent_li, "失灵")
    call_command("rebuild_search", "--tenant", in_acme.slug, "--batch", "1", stdout=None)
    assert "遥控器" in _found(agent_li, "失灵")


def test_a_query_is_cut_into_words_and_codes():
    assert search.parse_query("#12") == search.ParsedQuery(number=12, terms=(), codes=())
    query = search.parse_query("电饭煲 SF1402758839201 refund")
    assert query.codes == ("sf1402758839201",)
    assert "电饭煲" in query.terms and "refund" in query.terms
    assert search.parse_query("   ").empty


def test_odd_searches_answer_a_page_not_an_error(agent_li, in_acme):
    client = login(agent_li)
    for query in ("'", "a & b | !c", ":*", "(((", "🙂", "#", "#99999999999999", "x" * 200):
        assert client.get(f"/tickets/?q={quote(query)}").status_code == 200, query
    assert client.get(f"/tickets/?q={'x' * 201}").status_code == 400


def test_pages_of_a_common_word_are_newest_first_and_complete(
    supervisor_wang, in_acme, monkeypatch
):
    from tickets import inbox

    monkeypatch.setattr(inbox, "PAGE_SIZE", 2)
    for n in range(5):
        _wrote(f"第{n}台电饭煲破损", subject=f"破损{n}")
    _wrote("电水壶漏水", subject="漏水")
    client = login(supervisor_wang)
    seen, query = [], f"view=all&q={quote('破损')}"
    for _ in range(4):
        page = client.get(f"/tickets/?{query}").content.decode()
        seen += re.findall(r"data-nav-open>([^<]*)<", page)
        found = re.search(r'href="\?([^"]*)" rel="next"', page)
        if not found:
            break
        query = found.group(1).replace("&amp;", "&")
    assert seen == [f"破损{n}" for n in range(4, -1, -1)]
