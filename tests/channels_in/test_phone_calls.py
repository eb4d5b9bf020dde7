"""Agents answer phone tickets by calling: a logged call on the ticket, a call-back that shows
in the agent's "Call-backs due" queue at its time, and the phone number in their profile."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from channels_in import phone_calls
from channels_in.models import CallBack, CallLog
from channels_in.phone_tasks import announce_due_call_backs
from helpdesk import realtime, tenancy
from helpdesk.errors import BadInput
from helpdesk.models import Membership
from helpdesk.permissions import SYSTEM
from tests.channels_in.test_phone import (
    acme_phone,  # noqa: F401 (a fixture)
    corpus_form,
    post_twilio,
    tickets_of,
)
from tests.conftest import acting, login
from tests.factories import CustomerFactory
from tickets.models import AuditEvent, Message, Ticket
from tickets.services import open_ticket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def missed_call(acme_phone, agent_li) -> Ticket:  # noqa: F811
    """A missed call's ticket, assigned to agent li."""
    post_twilio(acme_phone, "voice", corpus_form("01_incoming_call"))
    post_twilio(acme_phone, "status", corpus_form("07_call_status_completed", CallStatus="busy"))
    [ticket] = tickets_of(acme_phone.tenant)
    with tenancy.activate(acme_phone.tenant):
        Ticket.objects.filter(pk=ticket.pk).update(assignee=agent_li)
        ticket.refresh_from_db()
    return ticket


def _rows(page: str) -> list[str]:
    return re.findall(r"<a href=\"/tickets/\d+/\" data-nav-open>([^<]*)</a>", page)


def test_an_agent_answers_a_missed_call_with_a_logged_call_back(missed_call, agent_li):
    client = login(agent_li)
    response = client.post(
        f"/inbound/phone/tickets/{missed_call.number}/calls/",
        {
            "direction": "outbound",
            "number": "138 0013 8000",  # as typed: read in the merchant's region
            "outcome": "answered",
            "minutes": "4",
            "seconds": "5",
            "notes": "洗衣机漏水，明天上门维修。",
        },
    )
    assert response.status_code == 302
    with tenancy.activate(missed_call.tenant):
        log = CallLog.objects.get()
        assert (log.number, log.duration_seconds, log.outcome) == (
            "+8613800138000",
            245,
            "answered",
        )
        reply = log.message
        assert reply.direction == Message.Direction.OUTBOUND and reply.channel == "phone"
        assert reply.delivery_state == Message.Delivery.SENT
        assert reply.body_text == (
            "Called +86 138 0013 8000: talked, 4:05.\n\n洗衣机漏水，明天上门维修。"
        )
        missed_call.refresh_from_db()
        assert missed_call.first_responded_at is not None
        audit = AuditEvent.objects.get(action="call.logged")
        assert audit.actor_id == agent_li.pk and audit.changes["details"]["outcome"] == "answered"
    page = client.get(f"/tickets/{missed_call.number}/").content.decode()
    assert "Called +86 138 0013 8000: talked, 4:05." in page
    assert f'id="call-{log.pk}"' in page


def test_a_call_from_the_customer_to_an_agents_mobile_is_logged_as_a_note(missed_call, agent_li):
    with tenancy.activate(missed_call.tenant):
        log = phone_calls.log_call(
            acting_agent=acting(agent_li),
            ticket=missed_call,
            direction="inbound",
            number="+8613800138000",
            outcome="answered",
            duration_seconds=60,
        )
        assert log.message.direction == Message.Direction.NOTE
        assert log.message.body_text == "Call from +86 138 0013 8000: talked, 1:00."
        missed_call.refresh_from_db()
        assert missed_call.first_responded_at is None  # nobody answered the customer yet


def test_a_call_with_a_number_that_is_none_is_refused_and_nothing_is_written(missed_call, agent_li):
    response = login(agent_li).post(
        f"/inbound/phone/tickets/{missed_call.number}/calls/",
        {
            "direction": "outbound",
            "number": "call me",
            "outcome": "answered",
            "minutes": "0",
            "seconds": "0",
        },
        HTTP_ACCEPT="text/html",
    )
    assert response.status_code == 400
    assert "call me is not a phone number" in response.content.decode()
    with tenancy.activate(missed_call.tenant):
        assert CallLog.objects.count() == 0
        assert not AuditEvent.objects.filter(action="call.logged").exists()


def test_another_merchants_agent_cannot_log_a_call_on_the_ticket(missed_call, globex_agent_li):
    response = login(globex_agent_li).post(
        f"/inbound/phone/tickets/{missed_call.number}/calls/",
        {
            "direction": "outbound",
            "number": "+8613800138000",
            "outcome": "answered",
            "minutes": "1",
            "seconds": "0",
        },
    )
    assert response.status_code == 404
    with tenancy.activate(missed_call.tenant):
        assert CallLog.objects.count() == 0


def test_a_scheduled_call_back_appears_in_the_queue_at_its_time_and_leaves_when_made(
    missed_call, agent_li, supervisor_wang
):
    client = login(agent_li)
    with tenancy.activate(missed_call.tenant):
        soon = timezone.now() + timedelta(seconds=2)
        phone_calls.schedule_call_back(
            acting_agent=acting(agent_li), ticket=missed_call, due_at=soon, note="问维修时间"
        )
        # Someone else's call-back on the same ticket is not in li's queue.
        phone_calls.schedule_call_back(
            acting_agent=acting(supervisor_wang),
            ticket=missed_call,
            due_at=timezone.now(),
        )
        assert AuditEvent.objects.filter(action="call_back.scheduled").count() == 2
    assert _rows(client.get("/tickets/?view=call_backs").content.decode()) == []
    time.sleep(2.2)
    page = client.get("/tickets/?view=call_backs").content.decode()
    assert _rows(page) == [missed_call.subject]
    counts = client.get("/tickets/counts/?view=call_backs").content.decode()
    assert re.search(r'data-count="call_backs">1<', counts)
    client.post(
        f"/inbound/phone/tickets/{missed_call.number}/calls/",
        {
            "direction": "outbound",
            "number": "+8613800138000",
            "outcome": "answered",
            "minutes": "2",
            "seconds": "0",
        },
    )
    assert _rows(client.get("/tickets/?view=call_backs").content.decode()) == []
    with tenancy.activate(missed_call.tenant):
        done = CallBack.objects.get(agent=agent_li)
        assert done.done_at is not None and done.call_log == CallLog.objects.get()
        assert CallBack.objects.get(agent=supervisor_wang).done_at is None


def test_a_call_back_is_scheduled_from_the_ticket_page_in_the_merchants_time(missed_call, agent_li):
    response = login(agent_li).post(
        f"/inbound/phone/tickets/{missed_call.number}/call-backs/",
        {"due_at": "2099-01-02T09:30", "note": "上午回电"},
    )
    assert response.status_code == 302
    with tenancy.activate(missed_call.tenant):
        call_back = CallBack.objects.get()
        local = timezone.localtime(
            call_back.due_at, timezone=ZoneInfo(missed_call.tenant.time_zone)
        )
    assert (local.hour, local.minute) == (9, 30)
    assert call_back.number == "+8613800138000"  # the caller's number, known from the call
    page = login(agent_li).get(f"/tickets/{missed_call.number}/").content.decode()
    assert f'id="call-back-{call_back.pk}"' in page and "上午回电" in page


def test_an_agent_cannot_give_a_call_back_to_a_colleague_nor_set_it_in_the_past(
    missed_call, agent_li, supervisor_wang
):
    with tenancy.activate(missed_call.tenant):
        with pytest.raises(BadInput, match="Only supervisors"):
            phone_calls.schedule_call_back(
                acting_agent=acting(agent_li),
                ticket=missed_call,
                due_at=timezone.now(),
                agent=supervisor_wang,
            )
        with pytest.raises(BadInput, match="from now on"):
            phone_calls.schedule_call_back(
                acting_agent=acting(agent_li),
                ticket=missed_call,
                due_at=timezone.now() - timedelta(days=1),
            )
        assert CallBack.objects.count() == 0
        given = phone_calls.schedule_call_back(
            acting_agent=acting(supervisor_wang),
            ticket=missed_call,
            due_at=timezone.now(),
            agent=agent_li,
        )
        assert given.agent == agent_li


def test_a_call_back_can_be_cancelled_by_its_agent(missed_call, agent_li):
    with tenancy.activate(missed_call.tenant):
        call_back = phone_calls.schedule_call_back(
            acting_agent=acting(agent_li), ticket=missed_call, due_at=timezone.now()
        )
    client = login(agent_li)
    assert _rows(client.get("/tickets/?view=call_backs").content.decode()) == [missed_call.subject]
    assert client.post(f"/inbound/phone/call-backs/{call_back.pk}/cancel/").status_code == 302
    assert _rows(client.get("/tickets/?view=call_backs").content.decode()) == []
    with tenancy.activate(missed_call.tenant):
        assert AuditEvent.objects.filter(action="call_back.cancelled").count() == 1


# --- the agent's phone number -------------------------------------------------------------------


def test_an_agent_keeps_their_phone_number_in_e164_in_their_profile(agent_li, tenant_acme):
    client = login(agent_li)
    form = {"display_name": "小李", "language": "", "signature": ""}
    refused = client.post("/profile/", {**form, "phone": "12"})
    assert refused.status_code == 400
    assert "12 is not a phone number" in refused.content.decode()
    assert Membership.objects.get(user=agent_li, tenant=tenant_acme).phone == ""
    assert client.post("/profile/", {**form, "phone": "139 0013 9000"}).status_code == 302
    assert Membership.objects.get(user=agent_li, tenant=tenant_acme).phone == "+8613900139000"
    assert 'value="+8613900139000"' in client.get("/profile/").content.decode()
    with tenancy.activate(tenant_acme):
        audit = AuditEvent.objects.get(action="member.profile_changed")
        assert audit.changes["phone"] == ["", "+8613900139000"]


def test_a_call_back_that_falls_due_is_announced_to_agents_pages_once(
    missed_call, agent_li, monkeypatch
):
    heard: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        realtime,
        "publish_after_commit",
        lambda tenant_id, event, payload, *, ticket=None: heard.append((event, payload)),
    )
    with tenancy.activate(missed_call.tenant):
        phone_calls.schedule_call_back(
            acting_agent=acting(agent_li), ticket=missed_call, due_at=timezone.now()
        )
        phone_calls.schedule_call_back(
            acting_agent=acting(agent_li),
            ticket=missed_call,
            due_at=timezone.now() + timedelta(hours=2),
        )
    heard.clear()  # what scheduling itself published
    assert announce_due_call_backs() == 1
    assert heard == [("ticket.updated", {"ticket": missed_call.number, "call_back_due": True})]
    assert announce_due_call_backs() == 0  # once
    assert len(heard) == 1


def test_a_call_back_for_a_customer_without_a_number_asks_for_one(in_acme, agent_li):
    ticket = open_ticket(
        acting_agent=SYSTEM, customer=CustomerFactory(name="王芳"), subject="退货", channel="email"
    )
    Ticket.objects.filter(pk=ticket.pk).update(assignee=agent_li)
    with pytest.raises(BadInput, match="Give the number to call back"):
        phone_calls.schedule_call_back(
            acting_agent=acting(agent_li), ticket=ticket, due_at=timezone.now()
        )
    given = phone_calls.schedule_call_back(
        acting_agent=acting(agent_li), ticket=ticket, due_at=timezone.now(), number="021-5555 0199"
    )
    assert given.number == "+862155550199"
