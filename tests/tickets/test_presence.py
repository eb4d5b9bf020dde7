"""Agents choose online, away or offline; their open pages' heartbeats keep it true, and a sweep
notices when the heartbeat stops."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from helpdesk import tenancy
from helpdesk.errors import BadInput
from helpdesk.models import Role
from helpdesk.permissions import SYSTEM
from tests.conftest import acting, login
from tests.factories import CustomerFactory, MembershipFactory, UserFactory
from tickets import presence, services
from tickets.audit import AuditKind
from tickets.models import AgentPresence, AuditEvent, Group, GroupMember, Ticket

pytestmark = pytest.mark.django_db

AWAY_SECONDS = 60
OFFLINE_SECONDS = 300


@pytest.fixture(autouse=True)
def _timeouts(settings) -> None:
    settings.HELPDESK_PRESENCE_AWAY_SECONDS = AWAY_SECONDS
    settings.HELPDESK_PRESENCE_OFFLINE_SECONDS = OFFLINE_SECONDS


def status_of(user: Any) -> tuple[str, str]:
    """(status, chosen_status) in the active merchant."""
    row = AgentPresence.objects.get(user=user)
    return row.status, row.chosen_status


def last_heartbeat(user: Any) -> datetime:
    return AgentPresence.objects.get(user=user).last_heartbeat_at


def presence_log() -> list[tuple[str, list[str], str]]:
    """The merchant's presence changes: (who, [old, new], reason)."""
    return [
        (e.actor_label, e.changes["presence"], e.changes.get("details", {}).get("reason", ""))
        for e in AuditEvent.objects.filter(action=AuditKind.AGENT_PRESENCE_CHANGED).order_by("pk")
    ]


def ticket_of(user: Any, *, channel: str, subject: str) -> Ticket:
    """An open ticket on ``channel`` that ``user`` is working on."""
    ticket = services.open_ticket(
        acting_agent=SYSTEM, customer=CustomerFactory(), subject=subject, channel=channel
    )
    Ticket.objects.filter(pk=ticket.pk).update(
        assignee=user, status=Ticket.Status.OPEN, queued_at=None
    )
    return ticket


def assignee_of(ticket: Ticket) -> Any:
    return Ticket.objects.get(pk=ticket.pk).assignee


# --- choosing ---------------------------------------------------------------------------------


def test_an_agent_chooses_online_away_and_offline_and_each_change_is_audited(in_acme, agent_li):
    li = acting(agent_li)
    assert presence.presence_of([agent_li.pk]) == {agent_li.pk: "offline"}  # never seen
    for status in ("online", "away", "offline"):
        presence.set_presence(acting_agent=li, status=status)
        assert status_of(agent_li) == (status, status)
        assert presence.presence_of([agent_li.pk]) == {agent_li.pk: status}
    assert presence_log() == [
        ("li.acme", ["offline", "online"], ""),
        ("li.acme", ["online", "away"], ""),
        ("li.acme", ["away", "offline"], ""),
    ]


def test_choosing_the_status_one_already_has_writes_nothing(in_acme, agent_li):
    presence.set_presence(acting_agent=acting(agent_li), status="online")
    presence.set_presence(acting_agent=acting(agent_li), status="online")
    assert len(presence_log()) == 1


@pytest.mark.parametrize("status", ["busy", "", "ONLINE", "chosen_status"])
def test_an_unknown_status_is_refused_and_nothing_is_written(in_acme, agent_li, status):
    with pytest.raises(BadInput) as refused:
        presence.set_presence(acting_agent=acting(agent_li), status=status)
    assert refused.value.extra == {"field": "status"}
    assert not AgentPresence.objects.exists()
    assert presence_log() == []


@pytest.mark.parametrize("person", ["agent_li", "supervisor_wang", "admin_zhao", "owner_chen"])
def test_everyone_who_works_tickets_has_a_presence(in_acme, person, request):
    user = request.getfixturevalue(person)
    presence.set_presence(acting_agent=acting(user), status="away")
    assert presence.presence_of([user.pk]) == {user.pk: "away"}


# --- heartbeats and the sweep -----------------------------------------------------------------


def test_the_first_heartbeat_puts_an_agent_online(in_acme, agent_li):
    presence.record_heartbeat(user=agent_li)
    assert status_of(agent_li) == ("online", "online")
    assert presence_log() == [("li.acme", ["offline", "online"], "heartbeat started")]


def test_heartbeats_keep_an_agent_online_through_every_sweep(in_acme, agent_li):
    presence.record_heartbeat(user=agent_li)
    for _minute in range(10):
        # A minute passes (longer than the away timeout), the page beats, the sweep runs.
        AgentPresence.objects.update(
            last_heartbeat_at=timezone.now() - timedelta(seconds=AWAY_SECONDS + 1)
        )
        presence.record_heartbeat(user=agent_li)
        assert presence.sweep_presence() == []
    assert status_of(agent_li) == ("online", "online")
    assert len(presence_log()) == 1


def test_a_heartbeat_that_changes_nothing_is_one_statement(in_acme, agent_li):
    presence.record_heartbeat(user=agent_li)
    before = last_heartbeat(agent_li)
    with CaptureQueriesContext(connection) as queries:
        row = presence.record_heartbeat(user=agent_li)
    assert len(queries) == 1
    assert (row.user_id, row.status, row.chosen_status) == (agent_li.pk, "online", "online")
    assert last_heartbeat(agent_li) > before


def test_a_silent_agent_becomes_away_then_offline_and_a_heartbeat_restores_their_choice(
    in_acme, agent_li
):
    presence.record_heartbeat(user=agent_li)
    heard_at = last_heartbeat(agent_li)

    assert presence.sweep_presence(now=heard_at + timedelta(seconds=AWAY_SECONDS - 1)) == []
    assert status_of(agent_li) == ("online", "online")

    moved = presence.sweep_presence(now=heard_at + timedelta(seconds=AWAY_SECONDS + 1))
    assert [(row.user_id, row.status) for row in moved] == [(agent_li.pk, "away")]
    assert status_of(agent_li) == ("away", "online")  # what they chose is kept

    assert presence.sweep_presence(now=heard_at + timedelta(seconds=OFFLINE_SECONDS - 1)) == []
    moved = presence.sweep_presence(now=heard_at + timedelta(seconds=OFFLINE_SECONDS + 1))
    assert [(row.user_id, row.status) for row in moved] == [(agent_li.pk, "offline")]
    assert status_of(agent_li) == ("offline", "online")

    presence.record_heartbeat(user=agent_li)  # the laptop wakes up
    assert status_of(agent_li) == ("online", "online")
    assert presence_log() == [
        ("li.acme", ["offline", "online"], "heartbeat started"),
        ("system", ["online", "away"], "heartbeat stopped"),
        ("system", ["away", "offline"], "heartbeat stopped"),
        ("li.acme", ["offline", "online"], "heartbeat resumed"),
    ]


def test_an_agent_silent_past_the_offline_timeout_goes_straight_offline(in_acme, agent_li):
    presence.record_heartbeat(user=agent_li)
    heard_at = last_heartbeat(agent_li)
    presence.sweep_presence(now=heard_at + timedelta(seconds=OFFLINE_SECONDS + 1))
    assert status_of(agent_li) == ("offline", "online")
    assert presence_log()[-1] == ("system", ["online", "offline"], "heartbeat stopped")


def test_an_agent_who_chose_away_stays_away_while_heard_and_comes_back_away(in_acme, agent_li):
    presence.set_presence(acting_agent=acting(agent_li), status="away")
    heard_at = last_heartbeat(agent_li)
    assert presence.sweep_presence(now=heard_at + timedelta(seconds=AWAY_SECONDS + 1)) == []
    presence.sweep_presence(now=heard_at + timedelta(seconds=OFFLINE_SECONDS + 1))
    assert status_of(agent_li) == ("offline", "away")
    presence.record_heartbeat(user=agent_li)
    assert status_of(agent_li) == ("away", "away")


def test_an_agent_who_chose_offline_stays_offline_with_their_pages_open(in_acme, agent_li):
    presence.set_presence(acting_agent=acting(agent_li), status="offline")
    presence.record_heartbeat(user=agent_li)
    assert status_of(agent_li) == ("offline", "offline")


def test_a_sweep_run_twice_changes_an_agent_once(in_acme, agent_li):
    presence.record_heartbeat(user=agent_li)
    later = last_heartbeat(agent_li) + timedelta(seconds=AWAY_SECONDS + 1)
    assert len(presence.sweep_presence(now=later)) == 1
    assert presence.sweep_presence(now=later) == []
    assert [change for _who, change, _why in presence_log()] == [
        ["offline", "online"],
        ["online", "away"],
    ]


def test_two_sweeps_at_once_change_an_agent_once(in_acme, agent_li, monkeypatch):
    """The second sweep read the agent as online before the first one moved them."""
    presence.record_heartbeat(user=agent_li)
    later = last_heartbeat(agent_li) + timedelta(seconds=OFFLINE_SECONDS + 1)
    other_sweep: list[list[AgentPresence]] = []

    @contextlib.contextmanager
    def atomic_after_another_sweep():  # type: ignore[no-untyped-def]
        if not other_sweep:
            other_sweep.append([])
            other_sweep[0] = presence.sweep_presence(now=later)
        with transaction.atomic():
            yield

    monkeypatch.setattr(presence, "transaction", SimpleNamespace(atomic=atomic_after_another_sweep))
    this_sweep = presence.sweep_presence(now=later)
    assert len(other_sweep[0]) + len(this_sweep) == 1
    assert [change for _who, change, _why in presence_log()] == [
        ["offline", "online"],
        ["online", "offline"],
    ]


def test_a_heartbeat_after_the_sweep_read_an_agent_keeps_them_online(
    in_acme, agent_li, monkeypatch
):
    presence.record_heartbeat(user=agent_li)
    later = last_heartbeat(agent_li) + timedelta(seconds=AWAY_SECONDS + 1)
    beaten: list[bool] = []

    @contextlib.contextmanager
    def atomic_after_a_heartbeat():  # type: ignore[no-untyped-def]
        if not beaten:
            beaten.append(True)
            AgentPresence.objects.update(last_heartbeat_at=later)  # the page beat just now
        with transaction.atomic():
            yield

    monkeypatch.setattr(presence, "transaction", SimpleNamespace(atomic=atomic_after_a_heartbeat))
    assert presence.sweep_presence(now=later) == []
    assert status_of(agent_li) == ("online", "online")


# --- the work that moves ----------------------------------------------------------------------


def test_going_offline_returns_live_conversations_to_the_queue_and_keeps_email(in_acme, agent_li):
    presence.set_presence(acting_agent=acting(agent_li), status="online")
    chat = ticket_of(agent_li, channel="chat", subject="在线咨询")
    app = ticket_of(agent_li, channel="api", subject="App 里的消息")
    mail = ticket_of(agent_li, channel="email", subject="发票")
    solved = ticket_of(agent_li, channel="chat", subject="已解决")
    Ticket.objects.filter(pk=solved.pk).update(status=Ticket.Status.SOLVED)

    presence.set_presence(acting_agent=acting(agent_li), status="offline")

    assert assignee_of(chat) is None and assignee_of(app) is None
    assert Ticket.objects.get(pk=chat.pk).queued_at is not None  # waiting for someone else
    assert assignee_of(mail) == agent_li
    assert assignee_of(solved) == agent_li
    returned = AuditEvent.objects.filter(action=AuditKind.TICKET_RETURNED_TO_QUEUE)
    assert {e.changes["details"]["reason"] for e in returned} == {"went offline"}
    assert returned.count() == 2


def test_going_away_keeps_live_conversations(in_acme, agent_li):
    presence.set_presence(acting_agent=acting(agent_li), status="online")
    chat = ticket_of(agent_li, channel="chat", subject="在线咨询")
    presence.set_presence(acting_agent=acting(agent_li), status="away")
    assert assignee_of(chat) == agent_li


def test_an_agent_whose_heartbeat_stopped_gives_back_live_conversations_once_offline(
    in_acme, agent_li
):
    presence.record_heartbeat(user=agent_li)
    chat = ticket_of(agent_li, channel="chat", subject="在线咨询")
    heard_at = last_heartbeat(agent_li)
    presence.sweep_presence(now=heard_at + timedelta(seconds=AWAY_SECONDS + 1))
    assert assignee_of(chat) == agent_li  # away keeps them
    presence.sweep_presence(now=heard_at + timedelta(seconds=OFFLINE_SECONDS + 1))
    assert assignee_of(chat) is None
    returned = AuditEvent.objects.get(action=AuditKind.TICKET_RETURNED_TO_QUEUE)
    assert returned.changes["details"]["reason"] == "heartbeat stopped"


def test_an_agent_coming_online_is_handed_the_waiting_conversation(
    in_acme, agent_li, django_capture_on_commit_callbacks
):
    group = Group.objects.create(name="售后 After-sales")
    GroupMember.objects.create(group=group, user=agent_li)
    presence.set_presence(acting_agent=acting(agent_li), status="away")
    waiting = services.open_ticket(
        acting_agent=SYSTEM, customer=CustomerFactory(), subject="等待中", channel="chat"
    )
    Ticket.objects.filter(pk=waiting.pk).update(group=group, queued_at=timezone.now())
    assert assignee_of(waiting) is None

    with django_capture_on_commit_callbacks(execute=True):
        presence.set_presence(acting_agent=acting(agent_li), status="online")

    assert assignee_of(waiting) == agent_li


# --- the header switch ------------------------------------------------------------------------


def test_the_header_switch_shows_the_agents_presence_and_changes_it(tenant_acme, agent_li):
    client = login(agent_li)
    page = client.get("/tickets/").content.decode()
    assert "data-presence-user=" in page
    assert '<option value="offline" selected>' in page

    response = client.post("/tickets/presence/", {"status": "away", "next": "/tickets/?mine=1"})
    assert (response.status_code, response.url) == (302, "/tickets/?mine=1")
    with tenancy.activate(tenant_acme):
        assert status_of(agent_li) == ("away", "away")
    assert '<option value="away" selected>' in client.get("/tickets/").content.decode()


def test_the_switch_goes_back_only_to_pages_of_this_site(tenant_acme, agent_li):
    client = login(agent_li)
    response = client.post(
        "/tickets/presence/", {"status": "online", "next": "https://evil.example/"}
    )
    assert response.url == "/tickets/"
    response = client.post(
        "/tickets/presence/",
        {"status": "away"},
        headers={"referer": "http://testserver/tickets/7/"},
    )
    assert response.url == "http://testserver/tickets/7/"


def test_the_switch_refuses_an_unknown_status_with_400_and_a_reason(tenant_acme, agent_li):
    client = login(agent_li)
    response = client.post("/tickets/presence/", {"status": "busy"})
    assert response.status_code == 400
    assert response.json()["message"] == "Choose online, away or offline"
    assert response.json()["extra"] == {"field": "status"}
    with tenancy.activate(tenant_acme):
        assert not AgentPresence.objects.exists()


def test_the_switch_takes_posts_only(tenant_acme, agent_li):
    assert login(agent_li).get("/tickets/presence/").status_code == 405


def test_a_platform_operator_on_support_access_has_no_presence_to_set(tenant_acme):
    operator = UserFactory(username="operator", is_staff=True, is_superuser=True)
    client = login(operator)
    assert "data-presence-user=" not in client.get("/tickets/").content.decode()
    assert client.post("/tickets/presence/", {"status": "online"}).status_code == 403
    with tenancy.activate(tenant_acme):
        assert not AgentPresence.objects.exists()
        with pytest.raises(Exception, match="not a member"):
            presence.record_heartbeat(user=operator)
        assert not AgentPresence.objects.exists()


def test_someone_signed_out_cannot_set_a_presence(tenant_acme):
    from django.test import Client

    response = Client().post("/tickets/presence/", {"status": "online"})
    assert response.status_code == 302 and "/login/" in response.url


# --- merchants --------------------------------------------------------------------------------


def test_one_person_in_two_merchants_has_a_presence_in_each(
    tenant_acme, tenant_globex, agent_li, globex_agent_li
):
    MembershipFactory(tenant=tenant_globex, user=agent_li, role=Role.SUPERVISOR)
    with tenancy.activate(tenant_acme):
        presence.set_presence(acting_agent=acting(agent_li), status="online")
    with tenancy.activate(tenant_globex):
        presence.set_presence(acting_agent=acting(agent_li), status="away")
        presence.record_heartbeat(user=globex_agent_li)

    with tenancy.activate(tenant_acme):
        assert presence.presence_of([agent_li.pk, globex_agent_li.pk]) == {
            agent_li.pk: "online",
            globex_agent_li.pk: "offline",
        }
        heard_at = last_heartbeat(agent_li)
        presence.sweep_presence(now=heard_at + timedelta(seconds=OFFLINE_SECONDS + 1))
        assert status_of(agent_li) == ("offline", "online")
    with tenancy.activate(tenant_globex):
        # Acme's sweep never touches globex: li is still away there, globex's li online.
        assert presence.presence_of([agent_li.pk, globex_agent_li.pk]) == {
            agent_li.pk: "away",
            globex_agent_li.pk: "online",
        }
        assert AgentPresence.objects.count() == 2

    # The header shows the merchant one acts for.
    client = login(agent_li)
    client.post("/switch-tenant/", {"tenant": "globex"})
    assert '<option value="away" selected>' in client.get("/tickets/").content.decode()
