"""Call events from a merchant's own PBX (Asterisk, FreeSWITCH) on the phone channel's URL with
``?event=pbx``, authenticated with the channel secret."""

from __future__ import annotations

from typing import Any

import pytest

from channels_in.models import RawInbound
from helpdesk import tenancy
from tests.channels_in.test_phone import (
    acme_phone,  # noqa: F401 (a fixture)
    events_of,
    messages_of,
    post_pbx,
    tickets_of,
)

pytestmark = pytest.mark.django_db(transaction=True)


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "event": kind,
        "call_id": "1701356400.42",
        "caller": "13800138000",  # as Asterisk gives it: national, read in the merchant's region
        "called": "02155550100",
        "occurred_at": "2026-12-01T09:15:00+08:00",
        **fields,
    }


def test_an_answered_pbx_call_starts_and_ends_on_the_timeline(acme_phone):  # noqa: F811
    for kind in ("ringing", "answered"):
        assert post_pbx(acme_phone, event(kind)).status_code == 202
    response = post_pbx(acme_phone, event("hung_up", duration=95))
    assert response.status_code == 202 and response.json()["status"] == "accepted"
    assert tickets_of(acme_phone.tenant) == []
    kinds = events_of(acme_phone.tenant)
    assert [kind for kind, _data in kinds] == ["call_started", "call_ended"]
    assert kinds[1][1]["answered"] is True and kinds[1][1]["duration_seconds"] == 95
    with tenancy.activate(acme_phone.tenant):
        customer_numbers = {e.customer.identities.get().value for e in _events()}
    assert customer_numbers == {"+8613800138000"}


def _events() -> list[Any]:
    from tickets.models import CustomerEvent

    return list(CustomerEvent.objects.select_related("customer"))


def test_a_pbx_call_nobody_answered_becomes_a_missed_call_ticket(acme_phone):  # noqa: F811
    post_pbx(acme_phone, event("ringing"))
    post_pbx(acme_phone, event("hung_up", duration=20))
    [ticket] = tickets_of(acme_phone.tenant)
    assert ticket.subject == "+86 138 0013 8000 的未接来电"
    assert messages_of(ticket) == ["+86 138 0013 8000 的未接来电（无人接听），请回电。"]


def test_a_pbx_recording_is_a_voicemail_with_its_transcript(acme_phone):  # noqa: F811
    post_pbx(acme_phone, event("ringing"))
    ready = event(
        "recording_ready",
        duration=12,
        recording_id="rec-7",
        recording_url="https://pbx.acme.example/rec/7.wav",
        transcript="洗衣机漏水，请回电。",
    )
    assert post_pbx(acme_phone, ready).status_code == 202
    post_pbx(acme_phone, event("hung_up", duration=30))
    [ticket] = tickets_of(acme_phone.tenant)
    assert ticket.subject == "+86 138 0013 8000 的语音留言"
    assert messages_of(ticket) == [
        "语音留言（0:12）：https://pbx.acme.example/rec/7.wav\n\n语音留言转写：洗衣机漏水，请回电。"
    ]


def test_a_redelivered_pbx_event_is_stored_once(acme_phone):  # noqa: F811
    post_pbx(acme_phone, event("ringing"))
    first = post_pbx(acme_phone, event("hung_up"))
    again = post_pbx(acme_phone, event("hung_up"))
    assert first.json()["status"] == "accepted" and again.json()["status"] == "duplicate"
    assert len(tickets_of(acme_phone.tenant)) == 1
    assert len(events_of(acme_phone.tenant)) == 2  # started, missed


@pytest.mark.parametrize("secret", ["", "wrong-secret"])
def test_a_pbx_event_without_the_channel_secret_is_refused(acme_phone, secret):  # noqa: F811
    response = post_pbx(acme_phone, event("ringing"), secret=secret)
    assert response.status_code == 403 and response.json()["code"] == "bad_secret"
    with tenancy.activate(acme_phone.tenant):
        assert RawInbound.objects.count() == 0


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"event": "exploded", "call_id": "1"}, "event must be one of"),
        ({"event": "ringing"}, "call_id is required"),
        ({"event": "recording_ready", "call_id": "1"}, "recording_url is required"),
        (
            {"event": "recording_ready", "call_id": "1", "recording_url": "file:///etc/passwd"},
            "recording_url must be an http",
        ),
        ({"event": "ringing", "call_id": "1", "occurred_at": "yesterday"}, "ISO 8601"),
    ],
)
def test_a_pbx_event_the_channel_cannot_take_is_a_400_saying_why(
    acme_phone,  # noqa: F811
    document,
    reason,
):
    response = post_pbx(acme_phone, document)
    assert response.status_code == 400 and reason in response.json()["message"]
    with tenancy.activate(acme_phone.tenant):
        assert RawInbound.objects.count() == 0
