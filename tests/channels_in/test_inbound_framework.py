"""The generic inbound endpoint with an adapter that needs what email never did: a provider's GET
handshake, a signature in the query string, a synchronous plain-text answer, headers that must
be stored to parse the delivery later, and events that are not messages. Written the way the
WeChat adapter will be (``docs/channels.md``), so the framework is proven before that channel
lands."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator

import pytest
from django.http import HttpRequest
from django.test import Client

from channels_in import pipeline, registry
from channels_in.base import (
    Adapter,
    AdapterError,
    Answer,
    Envelope,
    InboundEvent,
    InboundMessage,
    Refused,
)
from channels_in.models import ChannelAccount, RawInbound
from helpdesk import tenancy
from tickets.models import CustomerEvent, Message

pytestmark = pytest.mark.django_db(transaction=True)


class PushAdapter(Adapter):
    """A push provider: ``?token=`` authenticates it, ``GET ?echo=`` is its handshake, the
    sender's id rides in a header and the body holds only the text."""

    kind = "chat"

    def handshake(self, request: HttpRequest) -> Answer | None:
        self.verify(request)
        return Answer(200, request.GET.get("echo", "").encode(), "text/plain")

    def verify(self, request: HttpRequest) -> None:
        if not hmac.compare_digest(request.GET.get("token", ""), self.account.inbound_secret):
            raise Refused(401, "bad_token", "The token is missing or wrong")

    def envelope(self, request: HttpRequest) -> Envelope:
        return Envelope.from_request(request, headers=("X-Push-Id", "X-Push-From", "X-Push-Kind"))

    def answer(self, raw: RawInbound, created: bool) -> Answer:
        return Answer(200, b"success", "text/plain")

    def delivery_id(self, envelope: Envelope) -> str:
        if not envelope.header("X-Push-Id"):
            raise AdapterError("No X-Push-Id header", permanent=True)
        return envelope.header("X-Push-Id")

    def parse(self, envelope: Envelope) -> list[InboundMessage | InboundEvent]:
        sender = envelope.header("X-Push-From")
        if envelope.header("X-Push-Kind") == "subscribe":
            return [
                InboundEvent(
                    channel="chat",
                    external_id=envelope.header("X-Push-Id"),
                    kind=CustomerEvent.Kind.SUBSCRIBED,
                    sender_kind="chat",
                    sender_value=sender,
                    data={"scene": envelope.query.get("scene", [""])[0]},
                )
            ]
        text = envelope.body.decode()
        return [
            InboundMessage(
                channel="chat",
                external_id=envelope.header("X-Push-Id"),
                sender_kind="chat",
                sender_value=sender,
                subject=text[:40],
                text=text,
            )
        ]

    def prepare_reply(self, message: Message) -> None:
        message.external_id = f"reply-{message.ticket.number}"

    def send(self, message: Message) -> str:
        return message.external_id


@pytest.fixture
def push(tenant_acme, monkeypatch) -> Iterator[ChannelAccount]:
    monkeypatch.setitem(
        registry.ADAPTERS, "chat", "tests.channels_in.test_inbound_framework.PushAdapter"
    )
    registry.adapter_class.cache_clear()
    with tenancy.activate(tenant_acme):
        yield ChannelAccount.objects.create(kind="chat", name="App push")
    registry.adapter_class.cache_clear()


def url(account: ChannelAccount, **query: str) -> str:
    token = query.pop("token", account.inbound_secret)
    params = "&".join(f"{k}={v}" for k, v in {"token": token, **query}.items())
    return f"/inbound/{account.tenant.slug}/chat/{account.pk}/?{params}"


def deliver(account: ChannelAccount, body: bytes, **headers: str):  # type: ignore[no-untyped-def]
    return Client().post(
        url(account, scene="qr"),
        body,
        content_type="text/plain",
        **{f"HTTP_X_PUSH_{k.upper()}": v for k, v in headers.items()},
    )


def test_the_providers_handshake_is_answered_and_a_wrong_token_refused(push):
    answer = Client().get(url(push, echo="abc123"))
    assert (answer.status_code, answer.content, answer["Content-Type"]) == (
        200,
        b"abc123",
        "text/plain",
    )
    refused = Client().get(url(push, token="wrong", echo="abc123"))
    assert refused.status_code == 401
    assert json.loads(refused.content)["code"] == "bad_token"


def test_a_channel_without_a_handshake_answers_get_with_405(acme_email):
    answer = Client().get(f"/inbound/{acme_email.tenant.slug}/email/{acme_email.pk}/")
    assert answer.status_code == 405


def test_the_provider_gets_the_adapters_answer_and_the_envelope_is_stored(push):
    answer = deliver(push, "我的快递到哪了".encode(), id="p-1", **{"from": "visitor-9"})
    assert (answer.status_code, answer.content) == (200, b"success")
    with tenancy.activate(push.tenant):
        raw = RawInbound.objects.get(account=push)
        message = Message.objects.get(external_id="p-1")
    assert raw.state == RawInbound.State.PROCESSED
    assert raw.envelope["headers"] == {"x-push-id": "p-1", "x-push-from": "visitor-9"}
    assert raw.envelope["query"]["scene"] == ["qr"]
    assert message.body_text == "我的快递到哪了"
    assert message.channel_account_id == push.pk
    assert message.author_customer.identities.get().account_id == push.pk


def test_a_refused_request_stores_nothing(push):
    answer = Client().post(
        url(push, token="wrong"), b"hi", content_type="text/plain", HTTP_X_PUSH_ID="p-2"
    )
    assert answer.status_code == 401
    with tenancy.activate(push.tenant):
        assert not RawInbound.objects.exists()


def test_a_retry_parses_the_stored_envelope_not_a_new_request(push, monkeypatch):
    broken = {"on": True}
    real_parse = PushAdapter.parse

    def parse_once_broken(self, envelope):  # type: ignore[no-untyped-def]
        if broken["on"]:
            raise AdapterError("the provider's API was down")
        return real_parse(self, envelope)

    monkeypatch.setattr(PushAdapter, "parse", parse_once_broken)
    deliver(push, b"where is my parcel", id="p-3", **{"from": "visitor-3"})
    with tenancy.activate(push.tenant):
        raw = RawInbound.objects.get(external_id="p-3")
        assert raw.state == RawInbound.State.FAILED
        broken["on"] = False
        assert pipeline.process_raw(raw.pk).state == RawInbound.State.PROCESSED
        message = Message.objects.get(external_id="p-3")
    # The sender came from a header of the original request, kept with the payload.
    assert message.author_customer.identities.get().value == "visitor-3"


def test_an_event_lands_on_the_customers_timeline_and_opens_no_ticket(push):
    deliver(push, b"", id="p-4", kind="subscribe", **{"from": "visitor-4"})
    deliver(push, b"", id="p-4", kind="subscribe", **{"from": "visitor-4"})  # redelivered
    with tenancy.activate(push.tenant):
        event = CustomerEvent.objects.get()
        assert not Message.objects.exists()
        raw = RawInbound.objects.get()
    assert event.kind == CustomerEvent.Kind.SUBSCRIBED
    assert event.data == {"scene": "qr"}
    assert event.customer.identities.get().value == "visitor-4"
    assert raw.state == RawInbound.State.PROCESSED and raw.note == "event: subscribed"
