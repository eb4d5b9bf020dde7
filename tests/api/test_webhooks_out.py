"""Webhook subscriptions: events reach a real receiver on loopback, signed as documented
(HMAC-SHA256 over "<timestamp>.<body>" with the subscription's secret); a receiver that keeps
failing is tried again with backoff, then the delivery is failed, and an admin resends it."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from helpdesk import tasks, tenancy, webhooks
from helpdesk.models import WebhookDelivery, WebhookSubscription
from tests.conftest import login
from tests.helpdesk.test_http_client import Answer, Receiver
from tickets import audit
from tickets.audit import AuditKind
from tickets.models import AuditEvent, Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(allow_egress):
    with Receiver() as server:
        allow_egress("127.0.0.1", server.port)
        yield server


def signed_by(request, secret: str) -> bool:
    """The receiver's check, as README documents it."""
    timestamp = request.headers["X-Helpdesk-Timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    return (
        hmac.compare_digest(request.headers["X-Helpdesk-Signature"], f"sha256={expected}")
        and abs(time.time() - int(timestamp)) <= 300
    )


def subscribe(admin_api, url: str, events: list[str]) -> dict:
    response = admin_api.post("/api/v1/webhooks/", {"url": url, "events": events}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_url_on_a_private_address_cannot_be_subscribed(admin_api, allow_egress):
    with Receiver() as internal:  # not allow-listed
        response = admin_api.post(
            "/api/v1/webhooks/",
            {"url": internal.url(), "events": ["ticket.created"]},
            format="json",
        )
    assert response.status_code == 400
    assert response.json()["code"] == "egress_refused"
    assert response.json()["extra"]["field"] == "url"


def test_events_reach_the_subscriber_signed_with_its_secret(
    acme, receiver, admin_api, supervisor_api, django_capture_on_commit_callbacks
):
    made = subscribe(
        admin_api,
        receiver.url(),
        [
            "ticket.created",
            "ticket.updated",
            "message.created",
            "escalation.created",
            "escalation.resolved",
        ],
    )
    with django_capture_on_commit_callbacks(execute=True):
        opened = supervisor_api.post(
            "/api/v1/tickets/", {"customer": acme.customer, "subject": "坏了"}, format="json"
        )
    number = opened.json()["number"]
    with django_capture_on_commit_callbacks(execute=True):
        supervisor_api.patch(f"/api/v1/tickets/{number}/", {"status": "open"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        supervisor_api.post(
            f"/api/v1/tickets/{number}/messages/", {"kind": "note", "text": "看看"}, format="json"
        )
    with django_capture_on_commit_callbacks(execute=True):
        raised = supervisor_api.post(
            f"/api/v1/tickets/{number}/escalations/", {"reason": "经理"}, format="json"
        )
    with django_capture_on_commit_callbacks(execute=True):
        supervisor_api.post(
            f"/api/v1/escalations/{raised.json()['id']}/resolve/",
            {"resolution": "已退款"},
            format="json",
        )

    events = [request.headers["X-Helpdesk-Event"] for request in receiver.received]
    assert events == [
        "ticket.created",
        "ticket.updated",
        "message.created",
        "escalation.created",
        "escalation.resolved",
    ]
    for request in receiver.received:
        assert signed_by(request, made["secret"])
        assert not signed_by(request, "another secret")
        body = json.loads(request.body)
        assert body["id"] == request.headers["X-Helpdesk-Delivery"]
        assert body["merchant"] == "acme"
    created, updated, noted, escalated, resolved = (json.loads(r.body) for r in receiver.received)
    assert (created["data"]["number"], created["data"]["subject"]) == (number, "坏了")
    assert updated["changes"] == {"status": ["new", "open"]}
    assert (noted["data"]["ticket"], noted["data"]["body_text"]) == (number, "看看")
    assert (escalated["data"]["ticket"], escalated["data"]["state"]) == (number, "open")
    assert (resolved["data"]["state"], resolved["data"]["resolution"]) == ("resolved", "已退款")
    log = admin_api.get(f"/api/v1/webhooks/{made['id']}/deliveries/").json()["results"]
    assert {row["state"] for row in log} == {"delivered"}


def test_an_event_nobody_subscribed_to_sends_nothing(
    acme, receiver, admin_api, supervisor_api, django_capture_on_commit_callbacks
):
    subscribe(admin_api, receiver.url(), ["remedy.granted"])
    with django_capture_on_commit_callbacks(execute=True):
        supervisor_api.post(
            "/api/v1/tickets/", {"customer": acme.customer, "subject": "x"}, format="json"
        )
    assert receiver.received == []


def test_a_ticket_moved_to_another_group_or_returned_in_bulk_is_told_as_updated(
    tenant_acme, acme, receiver, admin_api, supervisor_api, django_capture_on_commit_callbacks
):
    """Changes written by ``audit.record_all`` (a bulk insert, no post_save) are told too."""
    from tickets.models import Group

    with tenancy.activate(tenant_acme):
        first = Group.objects.create(name="售前")
        second = Group.objects.create(name="售后")
    subscribe(admin_api, receiver.url(), ["ticket.updated"])
    with django_capture_on_commit_callbacks(execute=True):
        supervisor_api.patch(f"/api/v1/tickets/{acme.ticket}/", {"group": first.pk}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        supervisor_api.patch(f"/api/v1/tickets/{acme.ticket}/", {"group": second.pk}, format="json")
    tenant_acme.refresh_from_db()  # the events it is subscribed to, as a request reads them
    with tenancy.activate(tenant_acme), django_capture_on_commit_callbacks(execute=True):
        audit.record_all(
            [
                audit.entry(
                    actor=None,
                    kind=AuditKind.TICKET_PRIORITY_CHANGED,
                    obj=Ticket.objects.get(number=acme.ticket),
                    changes={"priority": ("normal", "high")},
                )
            ]
        )
    bodies = [json.loads(request.body) for request in receiver.received]
    assert [body["changes"] for body in bodies] == [
        {"group": [None, "售前"]},
        {"group": ["售前", "售后"]},
        {"priority": ["normal", "high"]},
    ]
    assert all(body["data"]["number"] == acme.ticket for body in bodies)


def test_a_failing_receiver_is_retried_with_backoff_then_the_delivery_fails(
    tenant_acme, acme, receiver, admin_api, admin_zhao, django_capture_on_commit_callbacks
):
    made = subscribe(admin_api, receiver.url(), ["ticket.updated"])
    receiver.answers += [Answer(status=503, body=b"down")] * tasks.WEBHOOK_TRIES
    with tenancy.activate(tenant_acme):
        subscription = WebhookSubscription.objects.get(pk=made["id"])
        delivery = webhooks_queue(subscription, tenant_acme)
        waits = []
        # As a worker runs it: each failure schedules the next try, later each time.
        for retries in range(tasks.MAX_RETRIES):
            tasks.deliver_webhook.push_request(retries=retries)
            try:
                with pytest.raises(webhooks.WebhookFailed):
                    tasks.deliver_webhook.run(tenant_acme.pk, delivery.pk)
            finally:
                tasks.deliver_webhook.pop_request()
            delivery.refresh_from_db()
            assert delivery.state == WebhookDelivery.State.RETRYING
            waits.append(round((delivery.next_attempt_at - delivery.updated_at).total_seconds()))
        tasks.deliver_webhook.push_request(retries=tasks.MAX_RETRIES)
        try:
            assert tasks.deliver_webhook.run(tenant_acme.pk, delivery.pk) == "failed"
        finally:
            tasks.deliver_webhook.pop_request()
        delivery.refresh_from_db()

    assert waits == [30, 120, 480, 1920, 7680]
    assert (delivery.state, delivery.attempts) == ("failed", tasks.WEBHOOK_TRIES)
    assert len(receiver.received) == tasks.WEBHOOK_TRIES
    assert {r.headers["X-Helpdesk-Delivery"] for r in receiver.received} == {str(delivery.pk)}
    assert all(signed_by(r, made["secret"]) for r in receiver.received)

    # The admin resends it from the API (the settings page does the same): delivered now.
    receiver.answers.append(Answer(status=200))
    with django_capture_on_commit_callbacks(execute=True):
        resent = admin_api.post(f"/api/v1/webhook-deliveries/{delivery.pk}/resend/")
    assert resent.status_code == 202
    with tenancy.activate(tenant_acme):
        delivery.refresh_from_db()
    assert delivery.state == "delivered"
    assert signed_by(receiver.received[-1], made["secret"])


def webhooks_queue(subscription, tenant):
    from helpdesk.webhook_subscriptions import queue_event

    return queue_event(
        subscription=subscription,
        event="ticket.updated",
        built={"data": {"number": 1}},
        tenant=tenant,
    )


def test_the_settings_pages_list_subscriptions_and_their_deliveries_for_admins_only(
    tenant_acme, acme, receiver, admin_zhao, agent_li, admin_api
):
    made = subscribe(admin_api, receiver.url(), ["ticket.created"])
    page = login(admin_zhao).get("/settings/webhook-subscriptions/")
    assert page.status_code == 200
    assert receiver.url() in page.content.decode()
    assert login(agent_li).get("/settings/webhook-subscriptions/").status_code == 403
    detail = login(admin_zhao).get(f"/settings/webhook-subscriptions/{made['id']}/")
    assert detail.status_code == 200
    assert (
        login(admin_zhao)
        .get(f"/settings/webhook-subscriptions/{acme.subscription + 999}/")
        .status_code
        == 404
    )


def test_remedies_granted_and_executed_by_hand_are_told(
    tenant_acme, acme, receiver, admin_api, supervisor_wang, django_capture_on_commit_callbacks
):
    from decimal import Decimal

    from escalation.execution import mark_executed_by_hand
    from escalation.models import Remedy, RemedyLimit
    from tests.conftest import acting

    made = subscribe(admin_api, receiver.url(), ["remedy.granted", "remedy.executed"])
    with tenancy.activate(tenant_acme):
        RemedyLimit.objects.create(
            role="supervisor", kind="refund", currency="CNY", per_grant_max_amount=Decimal("100")
        )
    with django_capture_on_commit_callbacks(execute=True):
        granted = key_api(tenant_acme, supervisor_wang).post(
            f"/api/v1/tickets/{acme.ticket}/remedies/",
            {"kind": "refund", "amount": "50.00"},
            format="json",
        )
    assert granted.status_code == 201, granted.content
    tenant_acme.refresh_from_db()  # as a request or a task reads it: with the subscription
    with tenancy.activate(tenant_acme), django_capture_on_commit_callbacks(execute=True):
        mark_executed_by_hand(
            acting_agent=acting(supervisor_wang),
            remedy=Remedy.objects.get(pk=granted.json()["id"]),
            note="refunded in the shop",
        )

    told = [(r.headers["X-Helpdesk-Event"], json.loads(r.body)["data"]) for r in receiver.received]
    assert [(event, data["amount"], data["ticket"]) for event, data in told] == [
        ("remedy.granted", "50.00", acme.ticket),
        ("remedy.executed", "50.00", acme.ticket),
    ]
    assert all(signed_by(r, made["secret"]) for r in receiver.received)


def key_api(tenant, user):
    from tests.api.conftest import key_client

    return key_client(tenant, user)


def test_an_admin_subscribes_on_the_settings_page_and_sees_the_secret_once(
    tenant_acme, receiver, admin_zhao
):
    page = login(admin_zhao)
    refused = page.post(
        "/settings/webhook-subscriptions/",
        {"url": "http://10.0.0.5/hook", "events": ["ticket.created"]},
    )
    assert refused.status_code == 400
    assert "not a public internet address" in refused.content.decode()

    made = page.post(
        "/settings/webhook-subscriptions/",
        {"url": receiver.url(), "events": ["ticket.created", "message.created"]},
    )
    assert made.status_code == 200
    with tenancy.activate(tenant_acme):
        subscription = WebhookSubscription.objects.get()
    assert subscription.secret in made.content.decode()
    assert subscription.events == ["ticket.created", "message.created"]
    tenant_acme.refresh_from_db()
    assert tenant_acme.webhook_events == ["ticket.created", "message.created"]
    assert subscription.secret not in page.get("/settings/webhook-subscriptions/").content.decode()

    detail = f"/settings/webhook-subscriptions/{subscription.pk}/"
    assert subscription.secret not in page.get(detail).content.decode()
    rotated = page.post(detail, {"action": "rotate"})
    with tenancy.activate(tenant_acme):
        new_secret = WebhookSubscription.objects.get().secret
    assert new_secret != subscription.secret
    assert new_secret in rotated.content.decode()
    page.post(f"/settings/webhook-subscriptions/{subscription.pk}/", {"action": "delete"})
    tenant_acme.refresh_from_db()
    assert tenant_acme.webhook_events == []
    with tenancy.activate(tenant_acme):
        logged = list(
            AuditEvent.objects.filter(action__startswith="webhook.")
            .order_by("pk")
            .values_list("action", "actor__username")
        )
        changes = str(list(AuditEvent.objects.values_list("changes", flat=True)))
    assert logged == [
        ("webhook.subscribed", "zhao.acme"),
        ("webhook.secret_rotated", "zhao.acme"),
        ("webhook.unsubscribed", "zhao.acme"),
    ]
    assert receiver.url() in changes  # the log says what changed, never the secret
    assert subscription.secret not in changes and new_secret not in changes


def test_the_url_is_checked_again_at_delivery(
    acme, receiver, admin_api, supervisor_api, settings, django_capture_on_commit_callbacks
):
    made = subscribe(admin_api, receiver.url(), ["ticket.created"])
    settings.HELPDESK_EGRESS_ALLOW = []  # the name now points somewhere the platform refuses
    with django_capture_on_commit_callbacks(execute=True):
        supervisor_api.post(
            "/api/v1/tickets/", {"customer": acme.customer, "subject": "x"}, format="json"
        )

    assert receiver.received == []
    [delivery] = admin_api.get(f"/api/v1/webhooks/{made['id']}/deliveries/").json()["results"]
    assert delivery["state"] == "failed"
    assert "not a public internet address" in delivery["last_error"]


def test_the_readmes_receiver_code_verifies_a_real_delivery(
    acme, receiver, admin_api, supervisor_api, django_capture_on_commit_callbacks
):
    """The check README.md documents for receivers, run as written against what we sent."""
    import hashlib as hashlib_module
    import hmac as hmac_module
    import re
    import time as time_module
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    webhooks_section = readme[readme.index("### Webhooks") :]
    snippet = re.search(r"```python\n(.*?)```", webhooks_section, re.S).group(1)
    made = subscribe(admin_api, receiver.url(), ["ticket.created"])
    with django_capture_on_commit_callbacks(execute=True):
        supervisor_api.post(
            "/api/v1/tickets/", {"customer": acme.customer, "subject": "x"}, format="json"
        )
    [request] = receiver.received

    def run(secret: str) -> bool:
        scope = {
            "hmac": hmac_module,
            "hashlib": hashlib_module,
            "time": time_module,
            "request": request,
            "secret": secret,
        }
        exec(snippet, scope)  # the documentation's own code, as written
        return scope["ok"]

    assert run(made["secret"]) is True
    assert run("not the secret") is False
