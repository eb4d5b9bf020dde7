"""Idempotency-Key on writes, and the per-key and per-address quotas (429 with Retry-After)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from helpdesk import tenancy, throttles
from helpdesk.models import IdempotentRequest
from tests.api.conftest import key_client
from tickets.models import Message, Ticket

pytestmark = pytest.mark.django_db


def note(client, ticket: int, text: str, key: str):
    return client.post(
        f"/api/v1/tickets/{ticket}/messages/",
        {"kind": "note", "text": text},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_a_repeated_key_gets_the_first_answer_without_doing_it_again(tenant_acme, acme, agent_api):
    first = note(agent_api, acme.ticket, "已联系快递", key="note-1")
    again = note(agent_api, acme.ticket, "已联系快递", key="note-1")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    with tenancy.activate(tenant_acme):
        assert Message.objects.filter(body_text="已联系快递").count() == 1


def test_a_repeated_key_repeats_a_refusal_too(tenant_acme, acme, agent_api):
    body = {"customer": acme.customer, "subject": ""}
    first = agent_api.post("/api/v1/tickets/", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    again = agent_api.post("/api/v1/tickets/", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert first.status_code == again.status_code == 400
    assert again.json() == first.json()


def test_the_same_key_with_another_body_is_refused_with_the_reason(tenant_acme, acme, agent_api):
    note(agent_api, acme.ticket, "first", key="same")
    other = note(agent_api, acme.ticket, "second", key="same")

    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert "another request" in other.json()["message"]
    with tenancy.activate(tenant_acme):
        assert not Message.objects.filter(body_text="second").exists()


def test_a_repeat_while_the_first_is_still_running_is_409(tenant_acme, acme, agent_api):
    first = note(agent_api, acme.ticket, "slow", key="busy")
    with tenancy.activate(tenant_acme):
        # As while the first request is still being answered: claimed, no answer kept yet.
        IdempotentRequest.objects.filter(key="busy").update(status=None, body=b"")
    again = note(agent_api, acme.ticket, "slow", key="busy")

    assert first.status_code == 201
    assert (again.status_code, again.json()["code"]) == (409, "idempotency_key_in_progress")
    with tenancy.activate(tenant_acme):
        assert Message.objects.filter(body_text="slow").count() == 1


def test_a_claim_its_process_abandoned_is_taken_over(tenant_acme, acme, agent_api):
    note(agent_api, acme.ticket, "lost", key="dead")
    with tenancy.activate(tenant_acme):
        Message.objects.filter(body_text="lost").delete()  # as if it had never committed
        IdempotentRequest.objects.filter(key="dead").update(
            status=None, body=b"", created_at="2000-01-01T00:00:00Z"
        )
    again = note(agent_api, acme.ticket, "lost", key="dead")

    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    with tenancy.activate(tenant_acme):
        assert Message.objects.filter(body_text="lost").count() == 1


def test_a_malformed_key_is_400(acme, agent_api):
    response = note(agent_api, acme.ticket, "x", key="x" * 256)
    assert (response.status_code, response.json()["code"]) == (400, "bad_input")


def test_keys_belong_to_their_caller(tenant_acme, acme, agent_li, agent_api):
    another_key = key_client(tenant_acme, agent_li)
    note(agent_api, acme.ticket, "mine", key="shared-name")
    theirs = note(another_key, acme.ticket, "mine", key="shared-name")

    assert theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs
    with tenancy.activate(tenant_acme):
        assert Message.objects.filter(body_text="mine").count() == 2


def test_an_expired_key_may_be_used_again(tenant_acme, acme, agent_api):
    note(agent_api, acme.ticket, "once", key="old")
    with tenancy.activate(tenant_acme):
        IdempotentRequest.objects.update(expires_at="2000-01-01T00:00:00Z")
    again = note(agent_api, acme.ticket, "once", key="old")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    with tenancy.activate(tenant_acme):
        assert Message.objects.filter(body_text="once").count() == 2


def test_a_write_without_a_key_is_done_each_time(tenant_acme, acme, agent_api):
    for _ in range(2):
        agent_api.post(
            "/api/v1/tickets/", {"customer": acme.customer, "subject": "twice"}, format="json"
        )
    with tenancy.activate(tenant_acme):
        assert Ticket.objects.filter(subject="twice").count() == 2


# --- quotas ------------------------------------------------------------------------------------


def test_a_key_past_its_quota_gets_429_with_retry_after(settings, acme, agent_api, monkeypatch):
    settings.HELPDESK_API_RATE = "3/m"
    monkeypatch.setattr(throttles, "clock", lambda: 600.0 + 15)  # 45 s left in the minute
    answers = [agent_api.get("/api/v1/tickets/").status_code for _ in range(4)]

    assert answers == [200, 200, 200, 429]
    refused = agent_api.get("/api/v1/tickets/")
    assert refused["Retry-After"] == "45"
    assert refused.json() == {
        "message": refused.json()["message"],
        "code": "rate_limited",
        "extra": {"retry_after_seconds": 45},
    }


def test_one_address_past_its_quota_gets_429_whatever_the_key(
    settings, tenant_acme, acme, agent_li, supervisor_wang
):
    settings.HELPDESK_API_ADDRESS_RATE = "2/m"
    first, second = key_client(tenant_acme, agent_li), key_client(tenant_acme, supervisor_wang)
    assert first.get("/api/v1/tickets/").status_code == 200
    assert second.get("/api/v1/tickets/").status_code == 200
    refused = second.get("/api/v1/tickets/")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    # Another address is counted on its own.
    assert first.get("/api/v1/tickets/", REMOTE_ADDR="203.0.113.9").status_code == 200


def test_an_address_guessing_keys_is_refused_even_its_right_guess(
    settings, tenant_acme, acme, agent_li
):
    settings.HELPDESK_API_BAD_KEY_RATE = "3/10m"
    guesser = APIClient()
    for n in range(3):
        guesser.credentials(HTTP_AUTHORIZATION=f"Bearer hd_guess{n}_wrongsecret")
        assert guesser.get("/api/v1/tickets/").status_code == 401
    guesser.credentials(HTTP_AUTHORIZATION="Bearer hd_guess9_wrongsecret")
    barred = guesser.get("/api/v1/tickets/")
    assert barred.status_code == 429
    assert int(barred["Retry-After"]) > 0
    assert barred.json()["code"] == "rate_limited"
    # Even the right key from that address waits: a right guess answers like a wrong one.
    right = key_client(tenant_acme, agent_li)
    assert right.get("/api/v1/tickets/").status_code == 429
    # Another address is not held back by it.
    assert right.get("/api/v1/tickets/", REMOTE_ADDR="203.0.113.10").status_code == 200
