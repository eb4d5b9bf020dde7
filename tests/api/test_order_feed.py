"""The shop's signed order events keep orders current: stored first, applied by order number,
a redelivery is a no-op, a bad signature is refused and a bad order stays visible as failed."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from helpdesk import signing, tenancy
from helpdesk.models import OrderEvent
from tests.conftest import login
from tickets.api_order_feed import order_feed
from tickets.models import Order

pytestmark = pytest.mark.django_db

URL = "/api/v1/shop/acme/orders/"


@pytest.fixture
def feed_secret(tenant_acme) -> str:
    with tenancy.activate(tenant_acme):
        return order_feed().secret


def post_event(body: bytes, secret: str):
    return Client().post(
        URL,
        body,
        content_type="application/json",
        headers=signing.sign(secret, body),
    )


def event(event_id: str, **order) -> bytes:
    return json.dumps(
        {"id": event_id, "type": "order.updated", "order": order}, ensure_ascii=False
    ).encode()


NEW_ORDER = {
    "number": "SO-9",
    "customer": {"email": "buyer@example.cn", "name": "钱多多"},
    "currency": "CNY",
    "total_amount": "1299.00",
    "paid_amount": "1299.00",
    "placed_at": "2026-11-30T08:00:00+08:00",
    "lines": [{"sku": "TV-55", "product_name": "电视", "unit_price_amount": "1299.00"}],
}


def test_a_signed_event_creates_then_updates_the_order(tenant_acme, feed_secret):
    created = post_event(event("evt-1", **NEW_ORDER), feed_secret)
    assert created.status_code == 200, created.content
    assert created.json() == {
        "status": "applied",
        "event": "evt-1",
        "order": "SO-9",
        "created": True,
    }

    shipped = post_event(
        event("evt-2", number="SO-9", status="shipped", tracking_number="SF123"), feed_secret
    )
    assert shipped.json()["created"] is False
    with tenancy.activate(tenant_acme):
        order = Order.objects.get(number="SO-9")
        assert (order.status, order.tracking_number, str(order.total_amount)) == (
            "shipped",
            "SF123",
            "1299.0000",
        )
        assert order.lines.get().sku == "TV-55"
        assert list(OrderEvent.objects.values_list("event_id", "state").order_by("pk")) == [
            ("evt-1", "applied"),
            ("evt-2", "applied"),
        ]


def test_a_redelivered_event_is_a_no_op(tenant_acme, feed_secret):
    body = event("evt-1", **NEW_ORDER)
    post_event(body, feed_secret)
    post_event(event("evt-2", number="SO-9", status="cancelled"), feed_secret)

    again = post_event(body, feed_secret)  # the shop retries the first one, late

    assert again.json() == {"status": "duplicate", "event": "evt-1"}
    with tenancy.activate(tenant_acme):
        assert Order.objects.get(number="SO-9").status == "cancelled"
        assert OrderEvent.objects.count() == 2


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Helpdesk-Timestamp": "1", "X-Helpdesk-Signature": "sha256=" + "0" * 64},
        "wrong secret",
        "stale",
    ],
)
def test_a_bad_signature_is_refused_and_nothing_is_stored(tenant_acme, feed_secret, headers):
    body = event("evt-1", **NEW_ORDER)
    if headers == "wrong secret":
        headers = signing.sign("not the secret", body)
    elif headers == "stale":
        headers = signing.sign(feed_secret, body, timestamp=1_000_000)
    response = Client().post(URL, body, content_type="application/json", headers=headers)

    assert response.status_code == 403
    assert set(response.json()) == {"message", "code", "extra"}
    with tenancy.activate(tenant_acme):
        assert not OrderEvent.objects.exists()
        assert not Order.objects.exists()


def test_another_merchants_secret_does_not_sign_for_this_one(tenant_acme, tenant_globex):
    with tenancy.activate(tenant_globex):
        globex_secret = order_feed().secret
    body = event("evt-1", **NEW_ORDER)
    assert post_event(body, globex_secret).status_code == 403
    unknown = Client().post("/api/v1/shop/nobody/orders/", body, content_type="application/json")
    assert unknown.status_code == 404


def test_an_order_that_cannot_be_saved_stays_failed_and_is_retried_by_an_admin(
    tenant_acme, feed_secret, admin_zhao
):
    broken = {**NEW_ORDER, "customer": {"name": "nobody"}}
    refused = post_event(event("evt-1", **broken), feed_secret)

    assert refused.status_code == 422
    assert refused.json()["code"] == "order_not_saved"
    assert "customer" in refused.json()["message"]
    with tenancy.activate(tenant_acme):
        stored = OrderEvent.objects.get()
        assert stored.state == "failed" and b"nobody" in bytes(stored.body)
    page = login(admin_zhao).get("/settings/webhook-subscriptions/").content.decode()
    assert "evt-1" in page and "Retry" in page

    # A redelivery of the same event tries again (and fails again, visibly).
    assert post_event(event("evt-1", **broken), feed_secret).status_code == 422
    response = login(admin_zhao).post(
        f"/settings/webhook-subscriptions/order-events/{stored.pk}/retry/"
    )
    assert response.status_code == 302
    with tenancy.activate(tenant_acme):
        assert OrderEvent.objects.get().state == "failed"


def test_not_json_is_kept_as_a_failed_event(tenant_acme, feed_secret):
    response = post_event(b"\xff not json", feed_secret)
    assert response.status_code == 422
    with tenancy.activate(tenant_acme):
        assert OrderEvent.objects.get().error == "The body is not JSON"


def test_after_a_rotation_the_old_secret_still_signs_for_a_while(
    tenant_acme, feed_secret, admin_zhao
):
    login(admin_zhao).post("/settings/webhook-subscriptions/order-feed/rotate/")
    with tenancy.activate(tenant_acme):
        new_secret = order_feed().secret
    assert new_secret != feed_secret
    assert post_event(event("evt-1", **NEW_ORDER), feed_secret).status_code == 200
    assert post_event(event("evt-2", number="SO-9"), new_secret).status_code == 200
