"""Service levels: a ticket's first reply and resolution fall due after the merchant's target in
its group's business hours; a missed target is marked once, audited and announced; agents see
the clock on the ticket; owners and admins set the targets under /settings/service-levels/."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.template import Context, Template
from django.utils import timezone, translation

from helpdesk import realtime, tenancy
from helpdesk.errors import BadInput, PermissionDenied
from helpdesk.models import Role
from tests.conftest import acting, login
from tests.escalation.test_concurrency import in_threads
from tests.factories import CustomerFactory, MembershipFactory, UserFactory
from tickets import service_levels
from tickets.audit import AuditKind
from tickets.models import AuditEvent, Group, GroupMember, ServiceTarget, Ticket
from tickets.service_levels import (
    clock_of,
    note_first_response,
    record_missed_targets,
    restart_clocks,
    service_level_breached,
    set_service_target,
    start_clocks,
)

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
OFFICE_WEEK = [[["09:00", "18:00"]]] * 5 + [[], []]
FRIDAY = (2026, 3, 6)  # the Monday after is 9 March


def at(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)


def office_group(name: str = "After-sales 售后") -> Group:
    return Group.objects.create(name=name, always_open=False, weekly_hours=OFFICE_WEEK)


def make_ticket(number: int = 1, **fields) -> Ticket:
    """A ticket of the active merchant with ``fields`` written as they are (created_at too)."""
    ticket = Ticket.objects.create(
        number=number, subject="空调不制冷", channel="email", customer=CustomerFactory()
    )
    if fields:
        Ticket.objects.filter(pk=ticket.pk).update(**fields)
        ticket.refresh_from_db()
    return ticket


@pytest.fixture
def frozen_now(monkeypatch):
    """``frozen_now(moment)`` makes ``timezone.now()`` answer ``moment``."""

    def freeze(moment: datetime) -> datetime:
        monkeypatch.setattr(timezone, "now", lambda: moment)
        return moment

    return freeze


@pytest.fixture
def announced(monkeypatch) -> list[tuple[int, str, dict]]:
    """What the sweep pushed to agents' browsers about tickets (the escalations a missed
    target raises are tests/escalation/test_triggers.py's)."""
    pushed: list[tuple[int, str, dict]] = []

    def publish(tenant_id: int, event: str, payload: dict, ticket: object = None) -> None:
        if not event.startswith("escalation."):
            pushed.append((tenant_id, event, payload))

    monkeypatch.setattr(realtime, "publish_after_commit", publish)
    return pushed


@pytest.fixture
def breaches() -> list[tuple[int, str]]:
    """The service_level_breached signals sent, as (ticket number, target)."""
    heard: list[tuple[int, str]] = []
    lock = threading.Lock()

    def receiver(sender, ticket, target, **kwargs) -> None:
        with lock:
            heard.append((ticket.number, target))

    service_level_breached.connect(receiver, dispatch_uid="test-breaches")
    yield heard
    service_level_breached.disconnect(dispatch_uid="test-breaches")


# --- due times ---------------------------------------------------------------------------------


def test_a_ticket_filed_friday_evening_in_shanghai_is_due_monday_morning(in_acme, frozen_now):
    ServiceTarget.objects.create(priority="normal", first_response_minutes=60)
    frozen_now(at(SHANGHAI, *FRIDAY, 17, 30))
    # As the ticket is drafted, before it is saved.
    ticket = Ticket(subject="退货", channel="email", group=office_group(), priority="normal")
    assert start_clocks(ticket) == ["first_response_due_at"]
    assert ticket.first_response_due_at == at(SHANGHAI, 2026, 3, 9, 9, 30)
    assert ticket.resolution_due_at is None


def test_the_same_ticket_in_new_york_is_due_monday_morning_new_york_time(tenant_globex):
    with tenancy.activate(tenant_globex):
        ServiceTarget.objects.create(priority="high", first_response_minutes=60)
        group = office_group("Support")
        ticket = make_ticket(group=group, priority="high", created_at=at(NEW_YORK, *FRIDAY, 17, 30))
        assert start_clocks(ticket) == ["first_response_due_at"]
    assert ticket.first_response_due_at == at(NEW_YORK, 2026, 3, 9, 9, 30)
    # Not Shanghai's Monday morning, which is Sunday evening in New York.
    assert ticket.first_response_due_at != at(SHANGHAI, 2026, 3, 9, 9, 30)


def test_a_group_open_around_the_clock_counts_the_wall_clock(in_acme):
    ServiceTarget.objects.create(
        priority="urgent", first_response_minutes=60, resolution_minutes=24 * 60
    )
    group = Group.objects.create(name="24/7", always_open=True)
    ticket = make_ticket(group=group, priority="urgent", created_at=at(SHANGHAI, *FRIDAY, 17, 30))
    assert sorted(start_clocks(ticket)) == ["first_response_due_at", "resolution_due_at"]
    assert ticket.first_response_due_at == at(SHANGHAI, *FRIDAY, 18, 30)
    assert ticket.resolution_due_at == at(SHANGHAI, 2026, 3, 7, 17, 30)


def test_without_a_target_for_its_priority_a_ticket_has_no_due_time(in_acme):
    ServiceTarget.objects.create(priority="urgent", first_response_minutes=15)
    ticket = make_ticket(priority="low")
    assert start_clocks(ticket) == []
    assert ticket.first_response_due_at is None and ticket.resolution_due_at is None


def test_raising_the_priority_restarts_the_running_clocks_only(in_acme):
    ServiceTarget.objects.create(
        priority="normal", first_response_minutes=240, resolution_minutes=2880
    )
    ServiceTarget.objects.create(
        priority="urgent", first_response_minutes=30, resolution_minutes=480
    )
    created = at(SHANGHAI, 2026, 3, 9, 10, 0)  # Monday
    ticket = make_ticket(group=office_group(), created_at=created)
    start_clocks(ticket)
    ticket.save()
    ticket.priority = "urgent"
    ticket.save(update_fields=["priority"])
    restart_clocks(ticket=ticket)
    ticket.refresh_from_db()
    assert ticket.first_response_due_at == at(SHANGHAI, 2026, 3, 9, 10, 30)
    assert ticket.resolution_due_at == at(SHANGHAI, 2026, 3, 9, 18, 0)
    # Answered: lowering it again moves only the resolution.
    note_first_response(ticket=ticket, at=at(SHANGHAI, 2026, 3, 9, 10, 20))
    ticket.priority = "normal"
    ticket.save(update_fields=["priority"])
    restart_clocks(ticket=ticket)
    ticket.refresh_from_db()
    assert ticket.first_response_due_at == at(SHANGHAI, 2026, 3, 9, 10, 30)
    # 48 business hours: 8 on Monday, 36 to Friday's close, 4 more the next Monday.
    assert ticket.resolution_due_at == at(SHANGHAI, 2026, 3, 16, 13, 0)


def test_only_the_first_reply_counts_as_the_first_response(in_acme):
    ticket = make_ticket()
    first, later = at(SHANGHAI, *FRIDAY, 10, 0), at(SHANGHAI, *FRIDAY, 11, 0)
    note_first_response(ticket=ticket, at=first)
    note_first_response(ticket=ticket, at=later)
    ticket.refresh_from_db()
    assert ticket.first_responded_at == first


# --- missed targets ----------------------------------------------------------------------------


def test_a_missed_first_response_is_marked_once_audited_and_announced(in_acme, announced, breaches):
    now = timezone.now()
    late = make_ticket(number=7, first_response_due_at=now - timedelta(minutes=5))
    assert record_missed_targets() == 1
    assert record_missed_targets() == 0
    late.refresh_from_db()
    assert late.first_response_breached_at == now - timedelta(minutes=5)
    [event] = AuditEvent.objects.filter(action=AuditKind.TICKET_TARGET_MISSED)
    assert event.object_id == str(late.pk)
    assert event.actor is None and event.actor_label == "system"
    assert event.changes == {
        "details": {
            "target": "first_response",
            "due_at": (now - timedelta(minutes=5)).isoformat(),
        }
    }
    assert breaches == [(7, "first_response")]
    assert announced == [
        (in_acme.pk, "ticket.updated", {"ticket": 7, "target_missed": "first_response"})
    ]


def test_a_ticket_answered_or_solved_in_time_is_not_marked(in_acme, breaches):
    now = timezone.now()
    due = now - timedelta(minutes=10)
    answered = make_ticket(
        number=1, first_response_due_at=due, first_responded_at=due - timedelta(minutes=1)
    )
    solved = make_ticket(
        number=2,
        status=Ticket.Status.SOLVED,
        resolution_due_at=due,
        solved_at=due - timedelta(hours=1),
    )
    not_yet = make_ticket(number=3, first_response_due_at=now + timedelta(minutes=10))
    assert record_missed_targets() == 0
    for ticket in (answered, solved, not_yet):
        ticket.refresh_from_db()
        assert ticket.first_response_breached_at is None
        assert ticket.resolution_breached_at is None
    assert breaches == []
    assert not AuditEvent.objects.filter(action=AuditKind.TICKET_TARGET_MISSED).exists()


def test_a_reply_after_the_due_time_still_counts_as_missed(in_acme, breaches):
    due = timezone.now() - timedelta(hours=1)
    make_ticket(number=4, first_response_due_at=due, first_responded_at=due + timedelta(minutes=3))
    assert record_missed_targets() == 1
    assert breaches == [(4, "first_response")]


def test_a_missed_resolution_is_marked_for_an_open_ticket(in_acme, breaches):
    now = timezone.now()
    make_ticket(
        number=5,
        status=Ticket.Status.OPEN,
        first_responded_at=now - timedelta(days=2),
        resolution_due_at=now - timedelta(minutes=1),
    )
    assert record_missed_targets() == 1
    assert breaches == [(5, "resolution")]


def test_the_sweep_marks_only_the_active_merchants_tickets(tenant_acme, tenant_globex, breaches):
    long_ago = timezone.now() - timedelta(hours=3)
    with tenancy.activate(tenant_globex):
        make_ticket(number=9, first_response_due_at=long_ago)
    with tenancy.activate(tenant_acme):
        assert record_missed_targets() == 0
    with tenancy.activate(tenant_globex):
        assert record_missed_targets() == 1
    assert breaches == [(9, "first_response")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs real row locks")
def test_two_sweeps_at_once_mark_each_missed_target_once(
    tenant_acme, announced, breaches, monkeypatch
):
    overdue = timezone.now() - timedelta(minutes=30)
    with tenancy.activate(tenant_acme):
        for number in range(1, 41):
            make_ticket(number=number, first_response_due_at=overdue)
    # Both sweeps read the same 40 overdue tickets before either marks one.
    both_have_read = threading.Barrier(2)
    read_once = threading.local()
    missed_tickets = service_levels.missed_tickets

    def read_together(target, now, *, limit):
        tickets = missed_tickets(target, now, limit=limit)
        if not getattr(read_once, "done", False):
            read_once.done = True
            assert len(tickets) == 40
            both_have_read.wait(timeout=30)
        return tickets

    monkeypatch.setattr(service_levels, "missed_tickets", read_together)
    marked: list[int] = []

    def sweep(_thread: int) -> None:
        with tenancy.activate(tenant_acme):
            marked.append(record_missed_targets())

    assert in_threads(2, sweep) == []
    assert sorted(marked) == [0, 40]
    assert sorted(number for number, _target in breaches) == list(range(1, 41))
    assert len(announced) == 40
    with tenancy.activate(tenant_acme):
        assert AuditEvent.objects.filter(action=AuditKind.TICKET_TARGET_MISSED).count() == 40
        assert not Ticket.objects.filter(first_response_breached_at__isnull=True).exists()


# --- the clock agents see ----------------------------------------------------------------------


def test_the_clock_shows_time_left_then_overdue(in_acme):
    now = timezone.now()
    group = Group.objects.create(name="24/7", always_open=True)
    ticket = make_ticket(
        group=group,
        created_at=now - timedelta(hours=1),
        first_response_due_at=now + timedelta(hours=2, minutes=15),
        resolution_due_at=now + timedelta(days=2),
    )
    with translation.override("en"):
        clock = clock_of(ticket, now)
        assert (clock.target, clock.label, clock.state) == ("first_response", "2h 15m left", "")
        assert clock.remaining == timedelta(hours=2, minutes=15)
        late = clock_of(ticket, now + timedelta(hours=2, minutes=20))
        assert (late.label, late.breached, late.state) == ("overdue by 5m", True, "breached")
        assert late.remaining == -timedelta(minutes=5)
        # Answered: the resolution clock takes over; solved: no clock.
        ticket.first_responded_at = now
        clock = clock_of(ticket, now)
        assert (clock.target, clock.label) == ("resolution", "2d 0h left")
    ticket.status = Ticket.Status.SOLVED
    assert clock_of(ticket, now) is None


def test_the_clock_pauses_while_the_group_is_closed(in_acme):
    ticket = make_ticket(
        group=office_group(),
        created_at=at(SHANGHAI, *FRIDAY, 17, 30),
        first_response_due_at=at(SHANGHAI, 2026, 3, 9, 9, 30),
    )
    with translation.override("en"):
        clock = clock_of(ticket, at(SHANGHAI, 2026, 3, 7, 10, 0))  # Saturday
    assert clock.paused and not clock.breached
    assert clock.label == "paused until Mon 09:00"
    assert clock.state == "paused"
    assert clock.remaining == timedelta(minutes=30)  # business time: Monday 09:00-09:30


def render_clock(ticket: Ticket) -> str:
    with translation.override("en"):
        return Template("{% load service_levels %}{% service_clock ticket %}").render(
            Context({"ticket": ticket})
        )


def test_the_template_tag_shows_overdue_in_red_with_the_due_time_in_the_merchants_zone(in_acme):
    due = timezone.now() - timedelta(minutes=5, seconds=30)
    ticket = make_ticket(first_response_due_at=due)
    html = render_clock(ticket)
    assert 'class="sla breached"' in html
    assert "overdue by 6m" in html
    local = due.astimezone(SHANGHAI)
    assert f"First response due {local:%a %Y-%m-%d %H:%M} (Asia/Shanghai)" in html


def test_the_template_tag_warns_when_little_time_is_left(in_acme):
    now = timezone.now()
    ticket = make_ticket(
        created_at=now - timedelta(hours=3), first_response_due_at=now + timedelta(minutes=50)
    )
    html = render_clock(ticket)
    assert 'class="sla due-soon"' in html  # 50 minutes of a four-hour target
    Ticket.objects.filter(pk=ticket.pk).update(first_response_due_at=now + timedelta(hours=3))
    ticket.refresh_from_db()
    assert 'class="sla"' in render_clock(ticket)
    ticket.status = Ticket.Status.CLOSED
    assert render_clock(ticket).strip() == ""


# --- setting targets ---------------------------------------------------------------------------


def test_targets_must_be_whole_minutes_up_to_sixty_days(in_acme, admin_zhao):
    zhao = acting(admin_zhao)
    for minutes in (0, -5, 60 * 24 * 60 + 1, "60", 1.5):
        with pytest.raises(BadInput):
            set_service_target(
                acting_agent=zhao,
                priority="urgent",
                first_response_minutes=minutes,
                resolution_minutes=None,
            )
    with pytest.raises(BadInput):
        set_service_target(
            acting_agent=zhao,
            priority="critical",
            first_response_minutes=60,
            resolution_minutes=None,
        )
    assert not ServiceTarget.objects.exists()
    assert not AuditEvent.objects.exists()


def test_an_agent_may_not_set_targets(in_acme, agent_li, supervisor_wang):
    for person in (agent_li, supervisor_wang):
        with pytest.raises(PermissionDenied):
            set_service_target(
                acting_agent=acting(person),
                priority="urgent",
                first_response_minutes=30,
                resolution_minutes=None,
            )
    assert not ServiceTarget.objects.exists()


def test_clearing_a_target_is_audited_and_setting_the_same_again_writes_nothing(
    in_acme, owner_chen
):
    chen = acting(owner_chen)
    set_service_target(
        acting_agent=chen, priority="high", first_response_minutes=60, resolution_minutes=480
    )
    set_service_target(
        acting_agent=chen, priority="high", first_response_minutes=60, resolution_minutes=None
    )
    set_service_target(
        acting_agent=chen, priority="high", first_response_minutes=60, resolution_minutes=None
    )
    changes = list(
        AuditEvent.objects.filter(action=AuditKind.SERVICE_TARGET_SET)
        .order_by("pk")
        .values_list("changes", flat=True)
    )
    assert changes == [
        {
            "first_response_minutes": [None, 60],
            "resolution_minutes": [None, 480],
            "details": {"priority": "high"},
        },
        {"resolution_minutes": [480, None], "details": {"priority": "high"}},
    ]


def targets_of(tenant) -> dict[str, tuple[int | None, int | None]]:
    with tenancy.activate(tenant):
        return {
            t.priority: (t.first_response_minutes, t.resolution_minutes)
            for t in ServiceTarget.objects.all()
        }


def blank_form() -> dict[str, str]:
    return {
        f"{priority}-{target}-{part}": ""
        for priority in Ticket.Priority.values
        for target in ("first_response", "resolution")
        for part in ("hours", "minutes")
    }


def test_an_admin_sets_targets_in_business_hours_and_minutes(admin_zhao, tenant_acme):
    client = login(admin_zhao)
    page = client.get("/settings/service-levels/")
    assert page.status_code == 200
    assert "First response (business hours)" in page.content.decode()
    form = blank_form() | {
        "urgent-first_response-minutes": "30",
        "urgent-resolution-hours": "4",
        "normal-first_response-hours": "2",
        "normal-first_response-minutes": "15",
    }
    response = client.post("/settings/service-levels/", form, follow=True)
    assert "The service-level targets are saved." in response.content.decode()
    assert targets_of(tenant_acme) == {
        "urgent": (30, 240),
        "normal": (135, None),
        "high": (None, None),
        "low": (None, None),
    }
    html = client.get("/settings/service-levels/").content.decode()
    assert 'name="normal-first_response-hours" value="2"' in html
    assert 'name="normal-first_response-minutes" value="15"' in html
    with tenancy.activate(tenant_acme):
        assert AuditEvent.objects.filter(action=AuditKind.SERVICE_TARGET_SET).count() == 2


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ({"urgent-first_response-hours": "0"}, "Urgent: A target must be at least one minute"),
        ({"high-resolution-hours": "two"}, "High: write whole hours and minutes"),
        ({"low-resolution-hours": "-3"}, "Low: write whole hours and minutes"),
        (
            {"normal-resolution-hours": "1441"},
            "Normal: A target can be at most 60 days of business time",
        ),
    ],
)
def test_bad_targets_are_refused_with_a_message_and_nothing_is_saved(
    admin_zhao, tenant_acme, typed, message
):
    form = blank_form() | {"urgent-resolution-hours": "8"} | typed
    response = login(admin_zhao).post("/settings/service-levels/", form)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert targets_of(tenant_acme) == {}
    with tenancy.activate(tenant_acme):
        assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("person", ["agent_li", "supervisor_wang"])
def test_agents_and_supervisors_are_refused_the_page(person, request, tenant_acme):
    client = login(request.getfixturevalue(person))
    assert client.get("/settings/service-levels/").status_code == 403
    form = blank_form() | {"urgent-first_response-minutes": "5"}
    assert client.post("/settings/service-levels/", form).status_code == 403
    assert targets_of(tenant_acme) == {}


def test_another_merchants_admin_neither_sees_nor_changes_acmes_targets(
    admin_zhao, tenant_acme, tenant_globex
):
    set_by_zhao = blank_form() | {
        "urgent-first_response-hours": "7",
        "urgent-first_response-minutes": "45",
    }
    login(admin_zhao).post("/settings/service-levels/", set_by_zhao)
    globex_admin = MembershipFactory(
        tenant=tenant_globex, user=UserFactory(username="zhao.globex"), role=Role.ADMIN
    ).user
    client = login(globex_admin)
    html = client.get("/settings/service-levels/").content.decode()
    assert 'value="7"' not in html and 'value="45"' not in html
    client.post("/settings/service-levels/", blank_form() | {"urgent-first_response-minutes": "20"})
    assert targets_of(tenant_acme)["urgent"] == (465, None)
    assert targets_of(tenant_globex)["urgent"] == (20, None)


def test_an_agent_raises_a_tickets_priority_on_its_page_and_its_clock_restarts(
    tenant_acme, agent_li, globex_agent_li
):
    with tenancy.activate(tenant_acme):
        ServiceTarget.objects.create(priority="normal", first_response_minutes=240)
        ServiceTarget.objects.create(priority="urgent", first_response_minutes=30)
        group = Group.objects.create(name="全天 24/7", is_default=True)
        GroupMember.objects.create(group=group, user=agent_li)
        ticket = make_ticket(group=group, created_at=timezone.now())
        start_clocks(ticket)
        ticket.save()
        before = ticket.first_response_due_at
    page = login(agent_li)
    response = page.post(f"/tickets/{ticket.number}/priority/", {"priority": "urgent"})
    assert response.status_code == 302
    assert "Urgent" in page.get(f"/tickets/{ticket.number}/").content.decode()
    with tenancy.activate(tenant_acme):
        ticket.refresh_from_db()
        assert ticket.priority == "urgent"
        assert ticket.first_response_due_at < before - timedelta(hours=3)
        event = AuditEvent.objects.get(action=AuditKind.TICKET_PRIORITY_CHANGED)
        assert event.changes["priority"] == ["normal", "urgent"]
    assert page.post(f"/tickets/{ticket.number}/priority/", {"priority": "asap"}).status_code in (
        302,
        400,
    )
    with tenancy.activate(tenant_acme):
        ticket.refresh_from_db()
        assert ticket.priority == "urgent"  # an unknown priority changes nothing
    # Globex's agent (the same person elsewhere) cannot reach acme's ticket by its number.
    other = login(globex_agent_li)
    assert other.post(f"/tickets/{ticket.number}/priority/", {"priority": "low"}).status_code == 404
