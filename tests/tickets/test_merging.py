"""Merging: two tickets about one thing become one (from the ticket page and the list), and two
customers who are one person share one timeline, with the permissions, the audit and the
refusals a merchant expects."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from channels_in import pipeline
from channels_in.base import Envelope
from helpdesk import realtime
from helpdesk.errors import BadInput, PermissionDenied
from helpdesk.permissions import SYSTEM
from tests.channels_in.mails import customer_mail
from tests.conftest import acting, login
from tests.factories import CustomerFactory, OrderFactory
from tickets import merging, search, service_levels, services
from tickets.audit import AuditKind
from tickets.models import (
    Attachment,
    AuditEvent,
    Customer,
    CustomerEvent,
    CustomerIdentity,
    Group,
    IdentityKind,
    Message,
    ServiceTarget,
    Ticket,
)

pytestmark = pytest.mark.django_db

HTML = {"HTTP_ACCEPT": "text/html"}


@pytest.fixture
def published(monkeypatch) -> list[tuple[str, dict]]:
    seen: list[tuple[str, dict]] = []

    def publish(tenant_id, event, payload, *, ticket=None) -> None:
        seen.append((event, payload))

    monkeypatch.setattr(realtime, "publish_after_commit", publish)
    return seen


def _ticket(customer: Customer, subject: str, text: str = "你好") -> Ticket:
    ticket = services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject=subject, channel="email"
    )
    Message.objects.create(
        ticket=ticket,
        direction="inbound",
        channel="email",
        author_customer=customer,
        subject=subject,
        body_text=text,
    )
    return ticket


@pytest.fixture
def li_wei(in_acme) -> Customer:
    return CustomerFactory(name="李伟", email="li.wei@example.cn")


def _notes(ticket: Ticket) -> list[str]:
    return list(
        Message.objects.filter(ticket=ticket, direction="note").values_list("body_text", flat=True)
    )


# --- tickets: the service ----------------------------------------------------------------------


def test_merging_moves_messages_attachments_tags_and_order_and_closes_the_source(
    agent_li, li_wei, published
):
    ServiceTarget.objects.create(priority="normal", first_response_minutes=30)
    target = _ticket(li_wei, "洗碗机漏水", "洗碗机底部漏水")
    source = _ticket(li_wei, "还是漏水", "订单 SO20261105 的洗碗机还在漏水")
    photo = Attachment.objects.create(
        message=source.messages.get(),
        file=ContentFile(b"jpeg", name="leak.jpg"),
        filename="leak.jpg",
        content_type="image/jpeg",
        size=4,
    )
    services.tag_ticket(acting_agent=SYSTEM, ticket=source, names=["漏水", "urgent"])
    services.tag_ticket(acting_agent=SYSTEM, ticket=target, names=["漏水"])
    order = OrderFactory(customer=li_wei, number="SO20261105")
    services.link_order(acting_agent=SYSTEM, ticket=source, order=order)
    Ticket.objects.filter(pk=source.pk).update(assignee=agent_li)

    merging.merge_tickets(acting_agent=acting(agent_li), source=source, target=target)

    source.refresh_from_db()
    target.refresh_from_db()
    bodies = list(target.messages.values_list("body_text", flat=True))
    assert bodies[:2] == ["洗碗机底部漏水", "订单 SO20261105 的洗碗机还在漏水"]
    assert _notes(target) == [f"Merged from #{source.number} (还是漏水)"]
    assert _notes(source) == [f"Merged into #{target.number}"]
    assert source.messages.count() == 1  # only the note saying where the rest went
    photo.refresh_from_db()
    assert photo.message.ticket == target
    assert sorted(target.tags.values_list("name", flat=True)) == ["urgent", "漏水"]
    assert not source.tags.exists()
    assert target.order == order
    assert (source.status, source.merged_into) == (Ticket.Status.CLOSED, target)
    assert source.closed_at is not None and source.queued_at is None
    events = AuditEvent.objects.filter(action=AuditKind.TICKET_MERGED).order_by("pk")
    assert [(e.object_id, e.actor) for e in events] == [
        (str(source.pk), agent_li),
        (str(target.pk), agent_li),
    ]
    assert events[0].changes["merged_into"] == [None, target.number]
    assert events[0].changes["status"] == ["new", "closed"]
    assert events[1].changes["details"] == {"merged_from": source.number, "messages_moved": 1}
    assert ("ticket.updated", {"ticket": target.number, "merged_from": source.number}) in published
    assert (
        "ticket.updated",
        {"ticket": source.number, "status": "closed", "merged_into": target.number},
    ) in published
    # Search finds the target by what was written on the merged ticket.
    assert target in search.matching(Ticket.objects.all(), "SO20261105")
    # A merged ticket never misses a target later, however long nobody answers it.
    later = timezone.now() + timedelta(days=30)
    service_levels.record_missed_targets(later)
    source.refresh_from_db()
    assert source.first_response_breached_at is None


@pytest.mark.parametrize("case", ["itself", "into merged", "merged again", "into closed"])
def test_merges_that_make_no_sense_are_refused_and_change_nothing(agent_li, li_wei, case):
    one, two, three = (_ticket(li_wei, f"问题 {n}") for n in range(3))
    merging.merge_tickets(acting_agent=acting(agent_li), source=three, target=two)
    services.change_ticket_status(acting_agent=SYSTEM, ticket=one, status="closed")
    source, target, reason = {
        "itself": (two, two, "cannot be merged into itself"),
        "into merged": (one, three, "was merged into another ticket"),
        "merged again": (three, one, "was already merged"),
        "into closed": (two, one, "is closed"),
    }[case]
    audited = AuditEvent.objects.count()
    with pytest.raises(BadInput, match=reason):
        merging.merge_tickets(acting_agent=acting(agent_li), source=source, target=target)
    assert AuditEvent.objects.count() == audited
    assert Message.objects.filter(ticket=one).count() == 1


def test_an_agent_may_merge_only_tickets_they_work(agent_li, li_wei):
    mine, theirs = _ticket(li_wei, "一"), _ticket(li_wei, "二")
    Ticket.objects.filter(pk=theirs.pk).update(group=Group.objects.create(name="VIP desk"))
    theirs.refresh_from_db()
    for source, target in ((mine, theirs), (theirs, mine)):
        with pytest.raises(PermissionDenied):
            merging.merge_tickets(acting_agent=acting(agent_li), source=source, target=target)
    assert not AuditEvent.objects.filter(action=AuditKind.TICKET_MERGED).exists()
    response = login(agent_li).post(f"/tickets/{mine.number}/merge/", {"into": theirs.number})
    assert response.status_code == 400  # a ticket they cannot open is named like a missing one
    assert Ticket.objects.get(pk=mine.pk).merged_into is None


# --- tickets: the pages ------------------------------------------------------------------------


def test_an_agent_merges_from_the_ticket_page_and_the_merged_ticket_points_to_the_other(
    agent_li, li_wei
):
    target = _ticket(li_wei, "洗碗机漏水")
    source = _ticket(li_wei, "还是漏水")
    client = login(agent_li)
    page = client.get(f"/tickets/{source.number}/").content.decode()
    assert "Merge into another ticket" in page
    confirm = client.get(f"/tickets/{source.number}/merge/", {"into": f"#{target.number}"})
    page = confirm.content.decode()
    assert confirm.status_code == 200
    assert f"Merge #{source.number} into #{target.number}" in page
    assert "different customers" not in page
    response = client.post(f"/tickets/{source.number}/merge/", {"into": target.number}, follow=True)
    assert response.redirect_chain[-1][0] == f"/tickets/{target.number}/"
    page = response.content.decode()
    assert f"Ticket #{source.number} is merged into #{target.number}." in page
    assert f"Merged from #{source.number} (还是漏水)" in page
    page = client.get(f"/tickets/{source.number}/").content.decode()
    assert (
        f'This ticket was merged into <a href="/tickets/{target.number}/">#{target.number}</a>'
        in page
    )
    assert "Merge into another ticket" not in page


def test_the_confirmation_warns_when_the_tickets_are_different_customers(agent_li, li_wei):
    other = CustomerFactory(name="王芳", email="wang.fang@example.cn")
    target, source = _ticket(other, "退款"), _ticket(li_wei, "退款进度")
    page = (
        login(agent_li)
        .get(f"/tickets/{source.number}/merge/", {"into": target.number})
        .content.decode()
    )
    assert "These tickets are different customers': 李伟 and 王芳." in page
    assert f"Merge #{source.number} into #{target.number}" in page


def test_the_confirmation_refuses_what_the_service_would_refuse(agent_li, li_wei):
    ticket = _ticket(li_wei, "洗碗机漏水")
    client = login(agent_li)
    response = client.get(f"/tickets/{ticket.number}/merge/", {"into": ticket.number})
    assert response.status_code == 400
    assert "A ticket cannot be merged into itself" in response.content.decode()
    response = client.get(f"/tickets/{ticket.number}/merge/", {"into": "abc"})
    assert response.status_code == 400
    assert "There is no ticket abc you can open." in response.content.decode()
    response = client.post(f"/tickets/{ticket.number}/merge/", {"into": ""})
    assert response.status_code == 400


def test_another_merchants_tickets_are_404_or_unknown(
    globex_agent_li, li_wei, tenant_globex, acting_as
):
    acme = [_ticket(li_wei, f"问题 {n}") for n in range(3)]
    with acting_as(tenant_globex):
        theirs = _ticket(CustomerFactory(name="Jane", email="li.wei@example.cn"), "Tent")
    client = login(globex_agent_li)
    assert client.get(f"/tickets/{acme[2].number}/merge/").status_code == 404
    assert client.post(f"/tickets/{acme[2].number}/merge/", {"into": 1}).status_code == 404
    # Globex's #1 into "#3": acme's #3 is not theirs to merge into.
    response = client.post(f"/tickets/{theirs.number}/merge/", {"into": acme[2].number})
    assert response.status_code == 400
    with acting_as(tenant_globex):
        assert Ticket.objects.get(pk=theirs.pk).merged_into is None


def test_bulk_merge_puts_the_chosen_tickets_into_the_oldest(agent_li, li_wei, published):
    oldest, middle, newest = (_ticket(li_wei, f"漏水 {n}") for n in range(3))
    response = login(agent_li).post(
        "/tickets/bulk/",
        {"action": "merge", "tickets": [newest.number, oldest.number, middle.number]},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == f"/tickets/{oldest.number}/"
    page = response.content.decode()
    assert f"Merged #{middle.number}, #{newest.number} into #{oldest.number}." in page
    assert oldest.messages.filter(direction="inbound").count() == 3
    assert set(Ticket.objects.filter(merged_into=oldest).values_list("number", flat=True)) == {
        middle.number,
        newest.number,
    }


def test_bulk_merge_into_a_chosen_ticket_names_the_refused_ones(agent_li, li_wei):
    keep, other, closed = (_ticket(li_wei, f"漏水 {n}") for n in range(3))
    merging.merge_tickets(acting_agent=acting(agent_li), source=closed, target=other)
    response = login(agent_li).post(
        "/tickets/bulk/",
        {
            "action": "merge",
            "merge_into": other.number,
            "tickets": [keep.number, other.number, closed.number],
        },
        follow=True,
    )
    page = response.content.decode()
    assert f"Merged #{keep.number} into #{other.number}." in page
    assert f"#{closed.number}: Ticket #{closed.number} was already merged" in page
    response = login(agent_li).post(
        "/tickets/bulk/", {"action": "merge", "tickets": [keep.number]}, **HTML
    )
    assert response.status_code == 400


# --- customers ---------------------------------------------------------------------------------


@pytest.fixture
def wechat_li(in_acme) -> Customer:
    """The same person as li_wei, known so far only by their WeChat openid."""
    from channels_in.models import ChannelAccount

    account = ChannelAccount.objects.create(kind="wechat", name="Acme 公众号")
    customer = Customer.objects.create(name="微信用户", notes="喜欢下午联系", is_vip=True)
    CustomerIdentity.objects.create(
        customer=customer, kind=IdentityKind.WECHAT, value="o6_openid_li", account=account
    )
    CustomerIdentity.objects.create(
        customer=customer, kind=IdentityKind.PHONE, value="+8613800138000"
    )
    return customer


def test_merging_customers_moves_everything_and_the_old_page_leads_to_the_one_kept(
    supervisor_wang, li_wei, wechat_li, published
):
    _ticket(li_wei, "邮件里的问题")
    wechat_ticket = _ticket(wechat_li, "微信里的问题")
    order = OrderFactory(customer=wechat_li, number="SO-WX-0001")
    CustomerEvent.objects.create(
        customer=wechat_li,
        channel="wechat",
        kind="subscribed",
        external_id="ev-1",
        occurred_at=timezone.now(),
    )

    merged = merging.merge_customers(
        acting_agent=acting(supervisor_wang), source=wechat_li, target=li_wei
    )

    assert (merged.identities, merged.tickets, merged.orders, merged.events) == (2, 1, 1, 1)
    li_wei.refresh_from_db()
    wechat_li.refresh_from_db()
    assert wechat_li.merged_into == li_wei
    assert sorted(li_wei.identities.values_list("value", flat=True)) == [
        "+8613800138000",
        "li.wei@example.cn",
        "o6_openid_li",
    ]
    wechat_ticket.refresh_from_db()
    assert wechat_ticket.customer == li_wei
    assert Message.objects.get(ticket=wechat_ticket).author_customer == li_wei
    order.refresh_from_db()
    assert order.customer == li_wei
    assert li_wei.events.count() == 1
    assert li_wei.is_vip and "喜欢下午联系" in li_wei.notes
    events = AuditEvent.objects.filter(action=AuditKind.CUSTOMER_MERGED).order_by("pk")
    assert [e.object_id for e in events] == [str(wechat_li.pk), str(li_wei.pk)]
    assert events[1].changes["details"]["tickets_moved"] == 1
    assert events[1].actor == supervisor_wang
    # The moved ticket is found by the email address of the customer it now belongs to.
    assert wechat_ticket in search.matching(Ticket.objects.all(), "li.wei@example.cn")

    client = login(supervisor_wang)
    response = client.get(f"/tickets/customers/{wechat_li.pk}/", follow=True)
    assert response.redirect_chain[-1][0] == f"/tickets/customers/{li_wei.pk}/"
    page = response.content.decode()
    assert "邮件里的问题" in page and "微信里的问题" in page  # one timeline
    assert "SO-WX-0001" in page


@pytest.fixture
def mail_in(acme_email, django_capture_on_commit_callbacks) -> Callable[..., Ticket]:
    def send(*, sender: str, subject: str) -> Ticket:
        with django_capture_on_commit_callbacks(execute=True):
            pipeline.receive(
                account=acme_email,
                envelope=Envelope.of(customer_mail(sender=sender, subject=subject)),
                source="webhook",
            )
        return Ticket.objects.order_by("-pk").first()

    return send


def test_after_a_merge_mail_from_a_moved_address_lands_on_the_customer_kept(
    supervisor_wang, in_acme, mail_in
):
    first = mail_in(sender="小王 <xiao.wang@example.cn>", subject="第一封")
    kept = CustomerFactory(name="王小明", email="wang.xm@example.cn")
    merging.merge_customers(
        acting_agent=acting(supervisor_wang), source=first.customer, target=kept
    )
    later = mail_in(sender="小王 <xiao.wang@example.cn>", subject="又一个问题")
    assert later.customer == kept
    assert Customer.objects.count() == 2  # nobody new was created for the address


def test_an_agent_merges_a_customer_whose_tickets_they_all_work(agent_li, li_wei, wechat_li):
    _ticket(wechat_li, "微信里的问题")  # unrouted: every agent works it
    merging.merge_customers(acting_agent=acting(agent_li), source=wechat_li, target=li_wei)
    assert Customer.objects.get(pk=wechat_li.pk).merged_into == li_wei


def test_an_agent_may_not_merge_a_customer_with_tickets_out_of_their_reach(
    agent_li, li_wei, wechat_li
):
    _ticket(li_wei, "邮件里的问题")
    _ticket(wechat_li, "微信里的问题")
    hidden = _ticket(wechat_li, "VIP 问题")
    Ticket.objects.filter(pk=hidden.pk).update(group=Group.objects.create(name="VIP desk"))
    with pytest.raises(PermissionDenied):
        merging.merge_customers(acting_agent=acting(agent_li), source=wechat_li, target=li_wei)
    assert Customer.objects.get(pk=wechat_li.pk).merged_into is None
    assert wechat_li.identities.count() == 2
    client = login(agent_li)
    response = client.get(f"/tickets/customers/{wechat_li.pk}/merge/", {"into": li_wei.pk})
    assert response.status_code == 403
    assert "belong to groups you do not work in" in response.content.decode()
    response = client.post(f"/tickets/customers/{wechat_li.pk}/merge/", {"into": li_wei.pk})
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action=AuditKind.CUSTOMER_MERGED).exists()


def test_the_customer_merge_page_finds_by_email_phone_or_name_then_asks(
    supervisor_wang, li_wei, wechat_li
):
    client = login(supervisor_wang)
    for query in ("li.wei@", "138 0013 8000", "微信"):
        page = client.get(f"/tickets/customers/{li_wei.pk}/merge/", {"q": query}).content.decode()
        found = wechat_li if query != "li.wei@" else None
        if found:
            assert f'href="?into={found.pk}"' in page
        else:
            assert "No other customer matches." in page  # the customer themselves is not offered
    page = client.get(
        f"/tickets/customers/{li_wei.pk}/merge/", {"into": wechat_li.pk}
    ).content.decode()
    assert "Merge 李伟 into 微信用户" in page
    assert "o6_openid_li" in page and "li.wei@example.cn" in page
    response = client.post(
        f"/tickets/customers/{li_wei.pk}/merge/", {"into": wechat_li.pk}, follow=True
    )
    assert response.redirect_chain[-1][0] == f"/tickets/customers/{wechat_li.pk}/"
    assert "李伟 is merged into 微信用户" in response.content.decode()
    # A merged customer is offered no more, and cannot be merged again.
    page = client.get(f"/tickets/customers/{wechat_li.pk}/merge/", {"q": "李伟"}).content.decode()
    assert "No other customer matches." in page
    with pytest.raises(BadInput, match="already merged"):
        merging.merge_customers(
            acting_agent=acting(supervisor_wang),
            source=Customer.objects.get(pk=li_wei.pk),
            target=wechat_li,
        )


def test_an_agent_is_offered_only_customers_they_may_open(agent_li, li_wei):
    _ticket(li_wei, "邮件里的问题")
    visible = CustomerFactory(name="王芳", email="wang.fang@example.cn")
    _ticket(visible, "退款")
    hidden = CustomerFactory(name="王五", email="wang.wu@example.cn")
    vip = _ticket(hidden, "VIP 问题")
    Ticket.objects.filter(pk=vip.pk).update(group=Group.objects.create(name="VIP desk"))
    page = login(agent_li).get(f"/tickets/customers/{li_wei.pk}/merge/", {"q": "王"})
    page = page.content.decode()
    assert f'href="?into={visible.pk}"' in page
    assert "王五" not in page and "wang.wu@example.cn" not in page


def test_another_merchants_customers_are_404(
    supervisor_wang, li_wei, tenant_globex, acting_as, globex_agent_li
):
    with acting_as(tenant_globex):
        theirs = CustomerFactory(name="Jane", email="li.wei@example.cn")
    client = login(supervisor_wang)
    assert client.get(f"/tickets/customers/{theirs.pk}/merge/").status_code == 404
    response = client.post(f"/tickets/customers/{li_wei.pk}/merge/", {"into": theirs.pk})
    assert response.status_code == 404
    assert login(globex_agent_li).get(f"/tickets/customers/{li_wei.pk}/merge/").status_code == 404
    assert Customer.objects.get(pk=li_wei.pk).merged_into is None


def test_the_merge_search_reads_a_fixed_number_of_queries(
    supervisor_wang, li_wei, django_assert_max_num_queries
):
    for n in range(25):
        CustomerFactory(name=f"王 {n}", email=f"wang{n}@example.cn")
    client = login(supervisor_wang)
    client.get(f"/tickets/customers/{li_wei.pk}/merge/", {"q": "王"})
    with django_assert_max_num_queries(12):
        page = client.get(f"/tickets/customers/{li_wei.pk}/merge/", {"q": "王"}).content.decode()
    assert page.count('href="?into=') == 20  # the first twenty, by name


@pytest.mark.django_db(transaction=True)
def test_merging_a_pair_both_ways_at_once_merges_once_without_deadlock(
    tenant_acme, agent_li, supervisor_wang
):
    from helpdesk import tenancy
    from tests.escalation.test_concurrency import in_threads

    with tenancy.activate(tenant_acme):
        customer = CustomerFactory(name="李伟", email="li.wei@example.cn")
        one, two = _ticket(customer, "一"), _ticket(customer, "二")
    ways = [(agent_li, one, two), (supervisor_wang, two, one)]

    def merge(i: int) -> None:
        person, source, target = ways[i]
        with tenancy.activate(tenant_acme):
            merging.merge_tickets(acting_agent=acting(person), source=source, target=target)

    errors = in_threads(2, merge)
    assert len(errors) == 1 and isinstance(errors[0], BadInput), errors
    with tenancy.activate(tenant_acme):
        assert Ticket.objects.filter(merged_into__isnull=False).count() == 1
        assert AuditEvent.objects.filter(action=AuditKind.TICKET_MERGED).count() == 2
        assert Message.objects.filter(direction="inbound").values("ticket").distinct().count() == 1


def test_a_reply_naming_a_merged_ticket_lands_on_the_ticket_it_went_into(
    agent_li, in_acme, mail_in
):
    first = mail_in(sender="小王 <xiao.wang@example.cn>", subject="订单没收到")
    # Merged into the ticket his wife opened about the same order (another customer's).
    second = _ticket(CustomerFactory(name="王太太", email="wang.tt@example.cn"), "同一个订单")
    merging.merge_tickets(acting_agent=acting(agent_li), source=first, target=second)
    # The customer answers the first ticket's mail, subject token and all, days later.
    later = mail_in(
        sender="小王 <xiao.wang@example.cn>", subject=f"Re: [#{first.number}] 订单没收到"
    )
    assert later == second
    assert second.messages.filter(subject__contains=f"[#{first.number}]").exists()
    first.refresh_from_db()
    assert first.status == Ticket.Status.CLOSED
    assert not first.messages.filter(direction="inbound").exists()
