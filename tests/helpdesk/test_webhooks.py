"""Signed webhooks we post to merchants, against a real receiver on loopback that checks our
signature itself; and the delivery log merchant admins read (Settings → Webhooks)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from channels_in.models import ChannelAccount
from helpdesk import tasks, tenancy, webhooks
from helpdesk.errors import PermissionDenied
from helpdesk.models import WebhookDelivery
from tests.conftest import acting, login
from tests.factories import CustomerFactory
from tests.helpdesk.test_http_client import Answer, Receiver
from tickets.models import AuditEvent, Message, Ticket

pytestmark = pytest.mark.django_db

Delivered = WebhookDelivery.State.DELIVERED
Retrying = WebhookDelivery.State.RETRYING
Failed = WebhookDelivery.State.FAILED


@pytest.fixture
def receiver(allow_egress):
    with Receiver() as server:
        allow_egress("127.0.0.1", server.port)
        yield server


@pytest.fixture
def acme_channel(in_acme) -> ChannelAccount:
    return ChannelAccount.objects.create(kind="email", name="Acme support")


def verified_by_receiver(request, secret: str) -> bool:
    """What a merchant's receiver does: recompute the signature with hmac, check the clock."""
    timestamp = request.headers["X-Helpdesk-Timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    return (
        hmac.compare_digest(request.headers["X-Helpdesk-Signature"], f"sha256={expected}")
        and abs(time.time() - int(timestamp)) <= 300
    )


def new_delivery(url: str, account=None, message=None, **payload) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        url=url,
        event="message.created",
        body=webhooks.encode_payload(payload or {"text": "你好"}),
        channel_account=account,
        message=message,
    )


def a_ticket_message(number: int = 7) -> Message:
    customer = CustomerFactory(name="李伟")
    ticket = Ticket.objects.create(
        number=number, subject="吸油烟机噪音很大", channel="email", customer=customer
    )
    return Message.objects.create(
        ticket=ticket, direction="inbound", channel="email", author_customer=customer
    )


# Sending --------------------------------------------------------------------------------------


def test_a_503_is_recorded_as_retrying_and_the_next_200_as_delivered(receiver, acme_channel):
    receiver.answers += [Answer(status=503, body=b"busy"), Answer(status=200, body=b"thanks")]
    delivery = new_delivery(receiver.url(), acme_channel, text="你好", ticket=7)

    with pytest.raises(webhooks.WebhookFailed) as failure:
        webhooks.send_signed(delivery=delivery, secret=acme_channel.inbound_secret)

    assert failure.value.permanent is False
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == (Retrying, 1, 503)
    assert "answered 503" in delivery.last_error
    assert delivery.last_response == "busy"

    webhooks.send_signed(delivery=delivery, secret=acme_channel.inbound_secret)

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == (Delivered, 2, 200)
    assert delivery.last_error == ""
    assert delivery.delivered_at is not None
    assert [(entry["status"], bool(entry["error"])) for entry in delivery.attempt_log] == [
        (503, True),
        (200, False),
    ]
    # The receiver got the same signed bytes twice, under one delivery id, and believed them.
    first, second = receiver.received
    for request in (first, second):
        assert request.body == '{"text":"你好","ticket":7}'.encode()
        assert request.headers["X-Helpdesk-Delivery"] == str(delivery.pk)
        assert request.headers["X-Helpdesk-Event"] == "message.created"
        assert request.headers["Content-Type"] == "application/json; charset=utf-8"
        assert verified_by_receiver(request, acme_channel.inbound_secret)
    assert not verified_by_receiver(first, "another secret")


def test_a_4xx_answer_fails_for_good(receiver, acme_channel):
    receiver.answers.append(Answer(status=410, body=b"endpoint removed"))
    delivery = new_delivery(receiver.url(), acme_channel)

    with pytest.raises(webhooks.WebhookFailed) as failure:
        webhooks.send_signed(delivery=delivery, secret=acme_channel.inbound_secret)

    assert failure.value.permanent is True
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_status_code) == (Failed, 410)
    assert delivery.last_response == "endpoint removed"


def test_a_url_on_a_private_address_fails_for_good_and_nothing_is_sent(in_acme, acme_channel):
    with Receiver() as internal:  # not allow-listed
        delivery = new_delivery(internal.url(), acme_channel)

        with pytest.raises(webhooks.WebhookFailed):
            webhooks.send_signed(delivery=delivery, secret=acme_channel.inbound_secret)

        assert internal.received == []
    delivery.refresh_from_db()
    assert delivery.state == Failed
    assert "not a public internet address" in delivery.last_error
    assert delivery.last_status_code is None


def test_an_attempt_that_was_superseded_sends_nothing(receiver, acme_channel):
    delivery = new_delivery(receiver.url(), acme_channel)
    stale = WebhookDelivery.objects.get(pk=delivery.pk)
    webhooks.send_signed(delivery=delivery, secret=acme_channel.inbound_secret)

    with pytest.raises(webhooks.AttemptSuperseded):
        webhooks.send_signed(delivery=stale, secret=acme_channel.inbound_secret)

    assert len(receiver.received) == 1


def test_only_the_last_20_attempts_are_kept(receiver, acme_channel):
    delivery = new_delivery(receiver.url(), acme_channel)
    for _ in range(22):
        receiver.answers.append(Answer(status=500))
        with pytest.raises(webhooks.WebhookFailed):
            webhooks.send_signed(delivery=delivery, secret=acme_channel.inbound_secret)

    delivery.refresh_from_db()
    assert delivery.attempts == 22
    assert len(delivery.attempt_log) == 20


# Queueing and retrying ------------------------------------------------------------------------


def test_a_queued_webhook_is_delivered_after_commit_signed_with_the_channels_secret(
    receiver, acme_channel, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        delivery = webhooks.queue(
            url=receiver.url(),
            event="ticket.created",
            payload={"ticket": 7, "subject": "噪音"},
            channel_account=acme_channel,
        )
        assert receiver.received == []  # not before the transaction commits

    delivery.refresh_from_db()
    assert delivery.state == Delivered
    [request] = receiver.received
    assert json.loads(request.body) == {"ticket": 7, "subject": "噪音"}
    assert request.body == '{"ticket":7,"subject":"噪音"}'.encode()
    assert bytes(delivery.body) == request.body
    assert request.headers["X-Helpdesk-Event"] == "ticket.created"
    assert verified_by_receiver(request, acme_channel.inbound_secret)


def test_a_failure_that_may_pass_is_tried_again_with_backoff(receiver, acme_channel):
    receiver.answers.append(Answer(status=503))
    delivery = new_delivery(receiver.url(), acme_channel)

    # Called as a worker would (not eager): the retry is scheduled, the row says when.
    with pytest.raises(webhooks.WebhookFailed):
        tasks.deliver_webhook.run(delivery.tenant_id, delivery.pk)

    delivery.refresh_from_db()
    assert delivery.state == Retrying
    assert delivery.next_attempt_at is not None
    wait = delivery.next_attempt_at - timezone.now()
    assert timedelta(seconds=25) < wait <= timedelta(seconds=30)
    assert [tasks.webhook_backoff(n) for n in range(5)] == [30, 120, 480, 1920, 7680]


def test_inline_celery_cannot_wait_so_a_failure_that_may_pass_ends_failed(
    receiver, acme_channel, django_capture_on_commit_callbacks
):
    receiver.answers.append(Answer(status=503))
    with django_capture_on_commit_callbacks(execute=True):
        delivery = webhooks.queue(
            url=receiver.url(), event="ticket.created", payload={}, channel_account=acme_channel
        )

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == (Failed, 1, 503)


def test_a_delivery_whose_channel_was_removed_fails_with_a_reason(receiver, acme_channel):
    delivery = new_delivery(receiver.url(), acme_channel)
    acme_channel.delete()

    assert tasks.deliver_webhook.run(delivery.tenant_id, delivery.pk) == "failed"

    delivery.refresh_from_db()
    assert delivery.state == Failed
    assert "no secret" in delivery.last_error
    assert receiver.received == []


def test_a_task_queued_before_a_later_attempt_stands_down(receiver, acme_channel):
    delivery = new_delivery(receiver.url(), acme_channel)
    webhooks.send_signed(delivery=delivery, secret=acme_channel.inbound_secret)

    assert tasks.deliver_webhook.run(delivery.tenant_id, delivery.pk, after_attempt=0) == (
        "superseded"
    )
    assert len(receiver.received) == 1


# Resending ------------------------------------------------------------------------------------


def test_an_admin_resends_a_failed_delivery_with_the_same_body_and_id(
    receiver, acme_channel, admin_zhao, django_capture_on_commit_callbacks
):
    receiver.answers += [Answer(status=404), Answer(status=200)]
    delivery = new_delivery(receiver.url(), acme_channel)
    with pytest.raises(webhooks.WebhookFailed):
        webhooks.send_signed(delivery=delivery, secret=acme_channel.inbound_secret)

    with django_capture_on_commit_callbacks(execute=True):
        webhooks.resend(acting_agent=acting(admin_zhao), delivery=delivery)

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (Delivered, 2)
    first, again = receiver.received
    assert again.body == first.body
    assert again.headers["X-Helpdesk-Delivery"] == first.headers["X-Helpdesk-Delivery"]
    assert verified_by_receiver(again, acme_channel.inbound_secret)
    audit = AuditEvent.objects.get(action="webhook.resent")
    assert audit.actor == admin_zhao
    assert audit.object_id == str(delivery.pk)
    assert audit.changes["state"] == ["failed", "pending"]
    assert audit.changes["details"]["event"] == delivery.event


def test_an_agent_may_not_resend(receiver, acme_channel, agent_li):
    delivery = new_delivery(receiver.url(), acme_channel)

    with pytest.raises(PermissionDenied):
        webhooks.resend(acting_agent=acting(agent_li), delivery=delivery)

    delivery.refresh_from_db()
    assert delivery.attempts == 0
    assert not AuditEvent.objects.filter(action="webhook.resent").exists()


# The delivery log -----------------------------------------------------------------------------


def test_the_log_lists_deliveries_newest_first_with_their_ticket(
    receiver, acme_channel, admin_zhao
):
    failing = new_delivery("https://hooks.acme-shop.example/helpdesk", acme_channel)
    WebhookDelivery.objects.filter(pk=failing.pk).update(
        state=Failed, attempts=6, last_status_code=500, last_error="hooks answered 500"
    )
    newest = new_delivery(receiver.url(), acme_channel, message=a_ticket_message(number=7))

    page = login(admin_zhao).get("/settings/webhooks/")

    assert page.status_code == 200
    html = page.content.decode()
    assert html.index(f"/settings/webhooks/{newest.pk}/") < html.index(
        f"/settings/webhooks/{failing.pk}/"
    )
    assert "hooks.acme-shop.example" in html
    assert "hooks answered 500" in html
    assert 'href="/tickets/7/"' in html
    assert "message.created" in html

    only_failed = login(admin_zhao).get("/settings/webhooks/?state=failed").content.decode()
    assert f"/settings/webhooks/{failing.pk}/" in only_failed
    assert f"/settings/webhooks/{newest.pk}/" not in only_failed


def test_a_delivery_page_shows_the_body_readably_and_every_attempt(
    receiver, acme_channel, admin_zhao
):
    receiver.answers.append(Answer(status=503, body=b"maintenance"))
    delivery = new_delivery(receiver.url(), acme_channel, text="你好", ticket=7)
    with pytest.raises(webhooks.WebhookFailed):
        webhooks.send_signed(delivery=delivery, secret=acme_channel.inbound_secret)

    page = login(admin_zhao).get(f"/settings/webhooks/{delivery.pk}/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "{\n  &quot;text&quot;: &quot;你好&quot;,\n  &quot;ticket&quot;: 7\n}" in html
    assert "<code>503</code>" in html
    assert "maintenance" in html
    assert f"X-Helpdesk-Delivery: {delivery.pk}" in html
    assert acme_channel.inbound_secret not in html


def test_the_resend_button_sends_it_again(
    receiver, acme_channel, admin_zhao, django_capture_on_commit_callbacks
):
    delivery = new_delivery(receiver.url(), acme_channel)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state=Failed)

    with django_capture_on_commit_callbacks(execute=True):
        response = login(admin_zhao).post(f"/settings/webhooks/{delivery.pk}/")

    assert response.status_code == 302
    assert response["Location"] == f"/settings/webhooks/{delivery.pk}/"
    delivery.refresh_from_db()
    assert delivery.state == Delivered
    assert len(receiver.received) == 1


def test_an_agent_gets_403_on_the_log_and_on_a_delivery(acme_channel, agent_li):
    delivery = new_delivery("https://hooks.acme-shop.example/helpdesk", acme_channel)
    browser = login(agent_li)

    assert browser.get("/settings/webhooks/").status_code == 403
    assert browser.get(f"/settings/webhooks/{delivery.pk}/").status_code == 403
    assert browser.post(f"/settings/webhooks/{delivery.pk}/").status_code == 403


def test_another_merchants_delivery_is_404_and_not_listed(
    acme_channel, admin_zhao, tenant_globex, django_capture_on_commit_callbacks
):
    with tenancy.activate(tenant_globex):
        globex_delivery = new_delivery("https://hooks.globex.example/helpdesk")
    browser = login(admin_zhao)

    assert browser.get(f"/settings/webhooks/{globex_delivery.pk}/").status_code == 404
    with django_capture_on_commit_callbacks(execute=True) as queued:
        assert browser.post(f"/settings/webhooks/{globex_delivery.pk}/").status_code == 404
    assert queued == []
    assert "hooks.globex.example" not in browser.get("/settings/webhooks/").content.decode()
