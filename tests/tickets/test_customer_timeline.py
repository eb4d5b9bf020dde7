"""One customer across channels: the customer page shows who they are, their tickets and one
timeline of what they wrote, were told and did, limited to what the agent may open."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_in import pipeline
from channels_in.base import Envelope
from channels_in.models import ApiChannel, ChannelAccount
from helpdesk import tenancy
from helpdesk.permissions import SYSTEM
from tests.channels_in.mails import customer_mail
from tests.conftest import acting, login
from tests.factories import CustomerFactory
from tickets import selectors, services
from tickets.incoming import Identity, InboundEvent, InboundMessage
from tickets.models import Customer, CustomerEvent, Group, GroupMember, Ticket

pytestmark = pytest.mark.django_db

ADDRESS = "same@example.cn"


@pytest.fixture
def acme_api(in_acme) -> ChannelAccount:
    account = ChannelAccount.objects.create(kind="api", name="Acme 商城 App")
    ApiChannel.objects.create(account=account, callback_url="https://shop.example/helpdesk")
    return account


@pytest.fixture
def mail_in(acme_email, django_capture_on_commit_callbacks) -> Callable[..., Ticket]:
    """A customer's mail posted to the merchant's mailbox, filed by the pipeline."""

    def send(*, subject: str, body: str, sender: str = f"王芳 <{ADDRESS}>") -> Ticket:
        with django_capture_on_commit_callbacks(execute=True):
            pipeline.receive(
                account=acme_email,
                envelope=Envelope.of(customer_mail(sender=sender, subject=subject, body=body)),
                source="webhook",
            )
        return Ticket.objects.filter(channel="email").order_by("-pk").first()

    return send


def api_message(
    account: ChannelAccount, *, external_id: str, text: str, email: str = ADDRESS
) -> Ticket:
    """What the merchant's system posts for its customer cust-42, who gave it their email."""
    with transaction.atomic():
        filed = services.record_customer_message(
            inbound=InboundMessage(
                channel="api",
                external_id=external_id,
                sender_kind="external",
                sender_value="cust-42",
                sender_name="王芳",
                other_identities=[Identity("email", email)],
                conversation_id=f"conv-{external_id}",
                subject="App 订单咨询",
                text=text,
            ),
            account_id=account.pk,
        )
    return filed.ticket


def subscribed(account: ChannelAccount, *, external_id: str = "ev-1", **data: object) -> None:
    with transaction.atomic():
        services.record_customer_event(
            event=InboundEvent(
                channel="api",
                external_id=external_id,
                kind="subscribed",
                sender_kind="external",
                sender_value="cust-42",
                other_identities=[Identity("email", ADDRESS)],
                occurred_at=timezone.now(),
                data=data,
            ),
            account_id=account.pk,
        )


def page_of(client, customer: Customer) -> str:
    response = client.get(f"/tickets/customers/{customer.pk}/")
    assert response.status_code == 200
    return response.content.decode()


# --- one person, every channel -----------------------------------------------------------------


def test_mail_and_api_messages_of_one_address_make_one_timeline_in_time_order(
    agent_li, mail_in, acme_api
):
    email_ticket = mail_in(subject="吸油烟机噪音很大", body="安装后噪音很大，请处理。")
    api_ticket = api_message(acme_api, external_id="m-1", text="我的订单什么时候发货？")

    customer = Customer.objects.get()
    assert {email_ticket.customer_id, api_ticket.customer_id} == {customer.pk}
    page = page_of(login(agent_li), customer)
    assert "<h1>王芳</h1>" in page
    # Newest first: the app message came after the mail.
    assert page.index("我的订单什么时候发货？") < page.index("安装后噪音很大，请处理。")
    api_entry = page[
        page.index("我的订单什么时候发货？") - 600 : page.index("我的订单什么时候发货？")
    ]
    assert "API (Acme 商城 App)" in api_entry
    assert f"#{api_ticket.number} App 订单咨询" in api_entry
    mail_entry = page[page.index("安装后噪音很大") - 600 : page.index("安装后噪音很大")]
    assert "Email (Acme support)" in mail_entry
    assert f"#{email_ticket.number} 吸油烟机噪音很大" in mail_entry
    # How to reach them, with the channel account a channel-scoped id belongs to.
    assert ADDRESS in page
    assert "Customer id in the merchant&#x27;s system" in page
    assert 'cust-42 <span class="muted">Acme 商城 App</span>' in page
    # Their tickets, with status and channel.
    assert f'href="/tickets/{email_ticket.number}/"' in page
    assert f'href="/tickets/{api_ticket.number}/"' in page


def test_the_ticket_page_links_the_customer_to_their_page(agent_li, mail_in):
    ticket = mail_in(subject="吸油烟机噪音很大", body="安装后噪音很大")
    page = login(agent_li).get(f"/tickets/{ticket.number}/").content.decode()
    assert f'<a href="/tickets/customers/{ticket.customer_id}/">王芳</a>' in page


def test_a_channel_event_appears_on_the_timeline_with_its_label_and_details(
    agent_li, mail_in, acme_api
):
    mail_in(subject="发票", body="请开发票")
    subscribed(acme_api, plan="VIP 会员")
    customer = Customer.objects.get()
    assert CustomerEvent.objects.get().customer == customer

    page = page_of(login(agent_li), customer)
    assert page.index("Subscribed") < page.index("请开发票")
    assert "<dt>plan</dt><dd>VIP 会员</dd>" in page


def test_notes_show_as_internal_and_a_long_message_as_an_excerpt(agent_li, mail_in):
    ticket = mail_in(subject="长邮件", body="很长的描述" * 100)
    services.add_note(acting_agent=acting(agent_li), ticket=ticket, text="先问供应商")
    customer = ticket.customer

    timeline = selectors.customer_timeline(agent=acting(agent_li), customer=customer)
    assert [(e.kind, e.direction, e.is_internal) for e in timeline] == [
        ("message", "note", True),
        ("message", "inbound", False),
    ]
    assert len(timeline[1].excerpt) == 200 and timeline[1].excerpt.endswith("…")
    page = page_of(login(agent_li), customer)
    assert "Internal note" in page and "先问供应商" in page
    assert "很长的描述" * 50 not in page


# --- only what the agent may open ----------------------------------------------------------------


@pytest.fixture
def groups(in_acme, agent_li):
    after_sales = Group.objects.create(name="After-sales", is_default=True)
    pre_sales = Group.objects.create(name="Pre-sales")
    GroupMember.objects.create(group=after_sales, user=agent_li)
    return after_sales, pre_sales


def test_an_agent_of_one_group_sees_the_other_groups_tickets_only_as_a_count(
    agent_li, supervisor_wang, groups, mail_in, acme_api
):
    after_sales, pre_sales = groups
    mail_in(subject="吸油烟机噪音很大", body="安装后噪音很大")
    api_ticket = api_message(acme_api, external_id="m-1", text="想买第二台，有优惠吗？")
    Ticket.objects.filter(pk=api_ticket.pk).update(group=pre_sales)
    services.add_note(acting_agent=acting(supervisor_wang), ticket=api_ticket, text="老客户折扣")
    customer = Customer.objects.get()

    page = page_of(login(agent_li), customer)
    assert "安装后噪音很大" in page
    assert "想买第二台" not in page and "老客户折扣" not in page
    assert "App 订单咨询" not in page
    assert "1 more ticket you cannot open" in page

    page = page_of(login(supervisor_wang), customer)
    assert "想买第二台" in page and "老客户折扣" in page
    assert "cannot open" not in page


def test_an_agent_of_one_group_cannot_open_a_customer_with_no_ticket_in_reach(
    agent_li, supervisor_wang, groups, acme_api
):
    _, pre_sales = groups
    ticket = api_message(acme_api, external_id="m-1", text="想买第二台")
    Ticket.objects.filter(pk=ticket.pk).update(group=pre_sales)
    only_events = CustomerFactory(name="只关注了公众号")

    for customer in (ticket.customer, only_events):
        url = f"/tickets/customers/{customer.pk}/"
        assert login(agent_li).get(url).status_code == 404
        assert login(supervisor_wang).get(url).status_code == 200


def test_another_merchants_customer_is_not_found(agent_li, tenant_globex, globex_agent_li, in_acme):
    with tenancy.activate(tenant_globex):
        globex_customer = CustomerFactory(name="Emily", email=ADDRESS)
        services.open_ticket(
            acting_agent=SYSTEM, customer=globex_customer, subject="Tent pole", channel="email"
        )
    assert login(agent_li).get(f"/tickets/customers/{globex_customer.pk}/").status_code == 404
    assert (
        login(globex_agent_li).get(f"/tickets/customers/{globex_customer.pk}/").status_code == 200
    )


# --- cost ----------------------------------------------------------------------------------------


def test_the_page_costs_the_same_queries_for_few_or_many_entries(agent_li, mail_in, acme_api):
    mail_in(subject="第一封", body="第一封邮件")
    api_message(acme_api, external_id="m-0", text="第一条")
    customer = Customer.objects.get()
    client = login(agent_li)
    page_of(client, customer)  # the session's first request

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            page_of(client, customer)
        return len(captured)

    few = queries()
    for i in range(1, 8):
        mail_in(subject=f"邮件 {i}", body=f"第 {i} 封邮件")
        api_message(acme_api, external_id=f"m-{i}", text=f"第 {i} 条")
        subscribed(acme_api, external_id=f"ev-{i}", n=i)
    timeline = selectors.customer_timeline(agent=acting(agent_li), customer=customer)
    assert len(timeline) == 2 + 7 * 3
    assert queries() == few


def test_the_timeline_keeps_the_newest_entries_up_to_its_limit(agent_li, mail_in, acme_api):
    mail_in(subject="旧邮件", body="旧邮件")
    CustomerEvent.objects.create(
        customer=Customer.objects.get(),
        channel="api",
        channel_account=acme_api,
        kind="profile_updated",
        external_id="ev-old",
        occurred_at=timezone.now() - timedelta(days=30),
    )
    api_message(acme_api, external_id="m-1", text="新消息")
    subscribed(acme_api)
    timeline = selectors.customer_timeline(
        agent=acting(agent_li), customer=Customer.objects.get(), limit=2
    )
    assert [e.event_kind or e.excerpt for e in timeline] == ["subscribed", "新消息"]


# --- language ------------------------------------------------------------------------------------


def test_the_page_reads_in_chinese_for_a_chinese_merchant(agent_li, groups, mail_in, acme_api):
    _, pre_sales = groups
    mail_in(subject="吸油烟机噪音很大", body="安装后噪音很大")
    api_ticket = api_message(acme_api, external_id="m-1", text="想买第二台")
    Ticket.objects.filter(pk=api_ticket.pk).update(group=pre_sales)
    subscribed(acme_api)
    page = page_of(login(agent_li, language=None), Customer.objects.get())
    assert '<html lang="zh-hans">' in page
    for words in ("时间线", "联系方式", "已关注", "客户来信", "另有 1 个你无法打开的工单"):
        assert words in page, words
