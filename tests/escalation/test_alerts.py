"""Supervisor alerts: raised once when the escalation rate (or a defect rate) crosses the
merchant's limit, emailed to supervisors, admins and owners, cleared when the figure falls back
so the next crossing alerts again."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection, connections
from django.utils import timezone

from escalation import alerts, tasks
from escalation.escalations import escalate, policy
from escalation.models import SupervisorAlert, Trigger
from helpdesk import tenancy
from helpdesk.models import Role
from tests.escalation import metrics_data as data
from tests.factories import MembershipFactory, UserFactory
from tickets.audit import AuditKind
from tickets.models import AuditEvent, Order, OrderLine, Ticket

pytestmark = pytest.mark.django_db

Kind = SupervisorAlert.Kind


@pytest.fixture
def acme(tenant_acme):
    """Acme in English (the alert's words are checked), with its reason codes."""
    tenant_acme.locale = "en"
    tenant_acme.save()
    with tenancy.activate(tenant_acme):
        data.reason_codes()
        yield tenant_acme


@pytest.fixture
def pushed(monkeypatch) -> list[tuple[int, str, dict]]:
    sent: list[tuple[int, str, dict]] = []

    def publish(tenant_id, event, payload, *, ticket=None):
        sent.append((tenant_id, event, payload))

    monkeypatch.setattr(alerts.realtime, "publish_after_commit", publish)
    return sent


def check(capture) -> SupervisorAlert | None:
    with capture(execute=True):
        return alerts.check_escalation_rate()


def rate_alerts() -> list[SupervisorAlert]:
    return list(SupervisorAlert.objects.filter(kind=Kind.ESCALATION_RATE).order_by("pk"))


def test_the_alert_is_raised_once_when_the_rate_crosses_and_again_after_it_fell_back(
    acme, pushed, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    data.tickets(100, escalated=3)
    assert check(capture) is None  # exactly 3.00%: at the target, not above it
    assert rate_alerts() == []

    fourth = data.tickets(1, escalated=1)[0]
    alert = check(capture)  # 4 of 101: 3.96%
    assert alert is not None
    assert alert.title == "Escalation rate 3.96% is above the 3% target"
    assert alert.body == (
        "4 of 101 complaint tickets created in the last 7 days were escalated to a supervisor."
    )
    assert (alert.details["rate"], alert.details["complaints"], alert.details["escalated"]) == (
        "3.96",
        101,
        4,
    )
    assert [event for _, event, _ in pushed] == ["alert.raised"]
    assert pushed[0][2] == {"alert": alert.pk, "kind": "escalation_rate", "title": alert.title}

    assert check(capture) is None  # still above: no second alert
    assert len(rate_alerts()) == 1
    assert [event for _, event, _ in pushed] == ["alert.raised"]

    Ticket.objects.filter(pk=fourth.pk).update(escalated_at=None)
    assert check(capture) is None
    cleared = rate_alerts()
    assert len(cleared) == 1 and cleared[0].cleared_at is not None
    assert pushed[-1][1] == "supervisor.alert_cleared"

    data.tickets(2, escalated=2)  # 5 of 103: above again
    again = check(capture)
    assert again is not None and again.pk != alert.pk
    assert [a.is_active for a in rate_alerts()] == [False, True]
    assert list(alerts.active_alerts()) == [again]
    assert alerts.recent_alerts() == [again, cleared[0]]


def test_no_alert_before_the_window_holds_the_minimum_of_complaints(
    acme, pushed, django_capture_on_commit_callbacks
):
    data.tickets(29, escalated=10)  # 34%, but 29 complaint tickets
    data.tickets(40, reason="question")  # not complaints
    data.tickets(30, escalated=30, ago=timedelta(days=8))  # outside the 7 days
    assert check(django_capture_on_commit_callbacks) is None
    assert rate_alerts() == []

    data.tickets(1)
    assert check(django_capture_on_commit_callbacks) is not None


def test_the_merchants_own_threshold_and_minimum_apply(
    acme, pushed, django_capture_on_commit_callbacks
):
    rules = policy()
    rules.threshold_percent = 10
    rules.min_complaints = 5
    rules.save()
    data.tickets(10, escalated=1)
    assert check(django_capture_on_commit_callbacks) is None  # 10% is not above 10%
    data.tickets(1, escalated=1)
    alert = check(django_capture_on_commit_callbacks)
    assert alert.title == "Escalation rate 18.18% is above the 10% target"


def test_supervisors_admins_and_owners_are_emailed_agents_are_not(
    acme,
    pushed,
    agent_li,
    supervisor_wang,
    admin_zhao,
    owner_chen,
    tenant_globex,
    django_capture_on_commit_callbacks,
):
    MembershipFactory(tenant=tenant_globex, user=UserFactory(username="globex.boss"), role="owner")
    data.tickets(40, escalated=2, assignee=agent_li)

    alert = check(django_capture_on_commit_callbacks)

    assert sorted(message.to[0] for message in mail.outbox) == [
        "chen.acme@example.com",
        "wang.acme@example.com",
        "zhao.acme@example.com",
    ]
    message = mail.outbox[0]
    assert message.subject == "[Acme 家电] Escalation rate 5.00% is above the 3% target"
    assert "2 of 40 complaint tickets" in message.body
    assert "http://localhost:8000/supervisor/" in message.body
    assert "li.acme: 2" in message.body  # the agent behind the escalations
    alert.refresh_from_db()
    assert alert.emailed_at is not None
    assert check(django_capture_on_commit_callbacks) is None
    assert len(mail.outbox) == 3  # nobody is told twice


def test_the_email_shows_the_what_if_of_a_higher_limit(
    acme, pushed, agent_li, supervisor_wang, agents_refund_limit, django_capture_on_commit_callbacks
):
    made = data.tickets(30)
    data.over_limit(made[0], "150", by=agent_li)
    data.over_limit(made[1], "200", by=agent_li)

    alert = check(django_capture_on_commit_callbacks)

    (scenario,) = alert.details["what_if"]
    assert (scenario["kind"], scenario["current_limit"], scenario["requests"]) == (
        "refund",
        "100.00",
        2,
    )
    assert [(c["limit"], c["absorbed"], c["rate"]) for c in scenario["candidates"]] == [
        ("150.00", 1, "3.33"),
        ("200.00", 2, "0.00"),
    ]
    body = mail.outbox[0].body
    assert "Refund: 2 requests went past the agents' limit (now CN¥100.00 per grant)" in body
    assert (
        "a limit of CN¥150.00 would have absorbed 1, costing CN¥150.00, and left the rate at 3.33%"
    ) in body


def test_a_mail_server_failure_is_retried_by_the_next_check(
    acme, pushed, supervisor_wang, monkeypatch, django_capture_on_commit_callbacks
):
    data.tickets(30, escalated=2)

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("mail server down")

    with monkeypatch.context() as patched:
        patched.setattr(alerts.mail, "get_connection", refuse)
        alert = check(django_capture_on_commit_callbacks)
    alert.refresh_from_db()
    assert alert.emailed_at is None
    assert mail.outbox == []

    assert check(django_capture_on_commit_callbacks) is None
    alert.refresh_from_db()
    assert alert.emailed_at is not None
    assert [message.to for message in mail.outbox] == [["wang.acme@example.com"]]


def test_raising_an_alert_is_audited(acme, pushed, django_capture_on_commit_callbacks):
    data.tickets(30, escalated=2)
    alert = check(django_capture_on_commit_callbacks)
    event = AuditEvent.objects.get(action=AuditKind.SUPERVISOR_ALERT_RAISED.value)
    assert (event.object_type, event.object_id) == ("supervisoralert", str(alert.pk))
    assert event.actor is None


def test_an_escalation_checks_the_rate_after_it_commits(
    acme, pushed, supervisor_wang, django_capture_on_commit_callbacks
):
    made = data.tickets(30, escalated=1)  # 1 of 30: 3.33%, above, but nobody checked yet
    assert rate_alerts() == []
    with django_capture_on_commit_callbacks(execute=True):
        escalate(ticket=made[5], trigger=Trigger.MANUAL, reason="Angry customer")

    (alert,) = rate_alerts()
    assert alert.title == "Escalation rate 6.67% is above the 3% target"
    assert [message.to for message in mail.outbox] == [["wang.acme@example.com"]]


def test_the_sweep_checks_every_merchant_under_its_own_tenant(
    acme, tenant_globex, pushed, django_capture_on_commit_callbacks
):
    data.tickets(30, escalated=2)
    with tenancy.activate(tenant_globex):
        data.reason_codes()
        data.tickets(30, escalated=0)

    with tenancy.deactivate(), django_capture_on_commit_callbacks(execute=True):
        raised = tasks.sweep_alerts()

    assert raised == 1
    assert len(rate_alerts()) == 1
    with tenancy.activate(tenant_globex):
        assert SupervisorAlert.objects.count() == 0


def test_the_task_checks_the_merchant_it_is_given(acme, pushed, django_capture_on_commit_callbacks):
    data.tickets(30, escalated=2)
    with tenancy.deactivate(), django_capture_on_commit_callbacks(execute=True):
        alert_id = tasks.check_escalation_rate.delay(acme.pk).get()
    assert rate_alerts()[0].pk == alert_id


# --- defect rates ----------------------------------------------------------------------------


def orders_of(sku: str, count: int, *, complaints: int = 0, supplier: str = "Fotile") -> None:
    for index in range(count):
        order = Order.objects.create(
            customer=data.customer(),
            number=f"{sku}-{Order.objects.count()}",
            currency="CNY",
            placed_at=timezone.now() - timedelta(days=2),
        )
        OrderLine.objects.create(
            order=order,
            sku=sku,
            product_name="Kettle",
            supplier=supplier,
            unit_price_amount=10,
        )
        if index < complaints:
            data.tickets(1, order=order)


def test_a_defect_rate_above_the_limit_alerts_once_per_sku_and_supplier_and_clears(
    acme, pushed, supervisor_wang, django_capture_on_commit_callbacks
):
    orders_of("SKU-X", 20, complaints=1)  # 5% of 20 orders
    orders_of("SKU-Y", 19, complaints=5, supplier="Midea")  # too few orders

    with django_capture_on_commit_callbacks(execute=True):
        raised = alerts.check_defect_rates()

    assert sorted(alert.key for alert in raised) == ["sku:SKU-X", "supplier:Fotile"]
    sku = next(alert for alert in raised if alert.key == "sku:SKU-X")
    assert sku.title == "Defect rate of SKU-X Kettle is 5.00%, above the 1% limit"
    assert (sku.details["orders"], sku.details["complaint_orders"]) == (20, 1)
    assert len(mail.outbox) == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts.check_defect_rates() == []

    orders_of("SKU-X", 100)  # 1 of 120: 0.83%
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts.check_defect_rates() == []
    assert list(alerts.active_alerts()) == []
    assert SupervisorAlert.objects.filter(kind=Kind.DEFECT_RATE).count() == 2


# --- at the same moment ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs real row locks")
def test_checks_at_the_same_moment_alert_once(tenant_acme, supervisor_wang):
    with tenancy.activate(tenant_acme):
        data.reason_codes()
        data.tickets(30, escalated=2)
        policy()
    barrier = threading.Barrier(8)
    raised: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            with tenancy.activate(tenant_acme):
                alert = alerts.check_escalation_rate()
            if alert is not None:
                raised.append(alert.pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert len(raised) == 1
    with tenancy.activate(tenant_acme):
        assert SupervisorAlert.objects.count() == 1
        assert SupervisorAlert.objects.get().emailed_at is not None
    assert len(mail.outbox) == 1


def test_the_beat_schedule_sweeps_alerts(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["sweep-alerts"]
    assert entry["task"] == "escalation.tasks.sweep_alerts"
    assert entry["schedule"] == 300
    assert Role.SUPERVISOR in alerts.ALERTED_ROLES
