"""With a real Celery worker and the Redis broker: the endpoint answers at once, a worker files
the mail, and a transient failure is retried with backoff until it succeeds."""

from __future__ import annotations

import pytest
from django.test import Client

from channels_in import tasks
from channels_in.models import RawInbound
from helpdesk import tenancy
from tests.channels_in.mails import customer_mail
from tests.channels_in.polling import wait_for
from tickets import services
from tickets.models import Ticket

pytestmark = pytest.mark.django_db(transaction=True)


def post(account, payload: bytes) -> dict:
    response = Client().post(
        f"/inbound/{account.tenant.slug}/email/{account.pk}/",
        payload,
        content_type="message/rfc822",
        HTTP_X_HELPDESK_SECRET=account.inbound_secret,
    )
    assert response.status_code == 202
    return response.json()


def test_the_endpoint_stores_and_a_worker_files_the_mail(real_worker, acme_email, tenant_acme):
    body = post(acme_email, customer_mail(subject="保修期多久？"))
    assert body["state"] == "received"  # answered before any processing

    def filed() -> bool:
        with tenancy.activate(tenant_acme):
            return Ticket.objects.filter(subject="保修期多久？").exists()

    wait_for(filed)


def test_a_transient_failure_is_retried_by_the_worker(
    real_worker, acme_email, tenant_acme, monkeypatch
):
    monkeypatch.setattr(tasks, "backoff", lambda retries: 0)
    real_find = services.find_order_reference
    calls = {"n": 0}

    def flaky(**kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("order service timed out")
        return real_find(**kwargs)

    monkeypatch.setattr(services, "find_order_reference", flaky)
    body = post(acme_email, customer_mail(subject="退款还没到账"))

    def processed() -> bool:
        with tenancy.activate(tenant_acme):
            return RawInbound.objects.get(pk=body["id"]).state == "processed"

    wait_for(processed)
    with tenancy.activate(tenant_acme):
        raw = RawInbound.objects.get(pk=body["id"])
        assert raw.attempts == 2 and raw.error == ""
        assert Ticket.objects.get().subject == "退款还没到账"
