"""The audit log has one list of kinds, each with words an admin reads; a row records what
changed as old and new, refuses a "change" that changed nothing, and stores only JSON."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from helpdesk.permissions import SYSTEM, SystemActor
from tests.conftest import acting, login
from tests.factories import CustomerFactory
from tickets import audit, services
from tickets.audit import AuditKind
from tickets.models import AuditEvent, Ticket

pytestmark = pytest.mark.django_db

PO_FILE = Path(__file__).resolve().parents[2] / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


@pytest.fixture
def washer_ticket(in_acme) -> Ticket:
    customer = CustomerFactory(name="王芳", email="wang.fang@example.cn")
    return services.open_ticket(
        acting_agent=SYSTEM, customer=customer, subject="洗衣机不排水", channel="email"
    )


def test_a_typed_kind_is_stored_with_old_and_new_and_its_context(agent_li, washer_ticket):
    event = audit.record(
        actor=acting(agent_li),
        kind=AuditKind.TICKET_STATUS_CHANGED,
        obj=washer_ticket,
        changes={"status": ("new", "pending")},
        details={"channel": "email"},
    )
    event.refresh_from_db()
    assert event.action == "ticket.status_changed"
    assert (event.actor, event.actor_label) == (agent_li, "li.acme")
    assert (event.object_type, event.object_id) == ("ticket", str(washer_ticket.pk))
    assert event.changes == {"status": ["new", "pending"], "details": {"channel": "email"}}


@pytest.mark.parametrize(
    ("actor", "label"),
    [
        (None, "system"),
        (SYSTEM, "system"),
        ("manage.py issue_api_key", "manage.py issue_api_key"),
        (SystemActor(on_behalf_of="manage.py revoke_api_key"), "manage.py revoke_api_key"),
    ],
)
def test_the_system_and_commands_are_named_as_such(actor, label, washer_ticket):
    event = audit.record(actor=actor, kind=AuditKind.TICKET_ROUTED, obj=washer_ticket)
    assert (event.actor, event.actor_label) == (None, label)


def test_an_unknown_kind_is_refused_and_nothing_is_written(agent_li, washer_ticket):
    before = AuditEvent.objects.count()
    with pytest.raises(ValueError):
        audit.record(actor=agent_li, kind="ticket.teleported", obj=washer_ticket)
    assert AuditEvent.objects.count() == before


def test_a_change_that_changed_nothing_is_refused_and_nothing_is_written(agent_li, washer_ticket):
    before = AuditEvent.objects.count()
    with pytest.raises(ValueError, match="did not change"):
        audit.record(
            actor=agent_li,
            kind=AuditKind.TICKET_STATUS_CHANGED,
            obj=washer_ticket,
            changes={"status": ("open", "open")},
        )
    with pytest.raises(ValueError, match="did not change"):
        audit.record(
            actor=agent_li,
            kind=AuditKind.TICKET_ASSIGNED,
            obj=washer_ticket,
            changes={"assignee": (agent_li, agent_li.pk)},
        )
    with pytest.raises(ValueError, match=r"\(old, new\)"):
        audit.record(
            actor=agent_li,
            kind=AuditKind.TICKET_STATUS_CHANGED,
            obj=washer_ticket,
            changes={"status": "pending"},
        )
    assert AuditEvent.objects.count() == before


def test_money_times_and_rows_are_stored_as_json_can_hold_them(agent_li, washer_ticket):
    refunded_at = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
    event = audit.record(
        actor=agent_li,
        kind=AuditKind.TICKET_ORDER_LINKED,
        obj=washer_ticket,
        changes={
            "refund_amount": (Decimal("0.00"), Decimal("199.90")),
            "ticket": (None, washer_ticket),
        },
        details={"refunded_at": refunded_at, "lines": [Decimal("99.95"), Decimal("99.95")]},
    )
    event.refresh_from_db()
    assert event.changes == {
        "refund_amount": ["0.00", "199.90"],
        "ticket": [None, washer_ticket.pk],
        "details": {"refunded_at": "2026-11-30T09:15:00+00:00", "lines": ["99.95", "99.95"]},
    }


def test_labels_are_words_for_an_admin_and_old_actions_read_as_stored():
    assert audit.kind_label("ticket.status_changed") == "Ticket status changed"
    assert audit.kind_label(AuditKind.TICKET_ROUTED) == "Ticket routed to a group"
    assert audit.kind_label("ticket.merged_by_hand") == "ticket.merged_by_hand"


def test_every_kind_has_a_chinese_label():
    source = PO_FILE.read_text(encoding="utf-8")
    translated = dict(re.findall(r'^msgid "(.+)"\nmsgstr "(.+)"$', source, flags=re.MULTILINE))
    missing = [kind.value for kind in AuditKind if str(kind.label) not in translated]
    assert missing == []


def test_the_ticket_page_history_shows_labels_and_old_and_new(agent_li, washer_ticket):
    services.change_ticket_status(
        acting_agent=acting(agent_li), ticket=washer_ticket, status="pending"
    )
    page = login(agent_li).get(f"/tickets/{washer_ticket.number}/").content.decode()
    assert "Status changed from New to Pending" in page  # tickets/history.py words it
    assert "Ticket opened on Email" in page
