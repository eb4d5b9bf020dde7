"""The JSON message API channel, through its real endpoint (/inbound/<merchant>/api/<id>/) and
the pipeline: a merchant's system posts signed messages and events, agents' replies are posted
back, signed, to the merchant's callback URL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from channels_in import outbound
from channels_in.models import ApiChannel, ChannelAccount, RawInbound
from channels_in.tasks import deliver_message
from helpdesk import tenancy
from helpdesk.errors import BadInput
from helpdesk.models import WebhookDelivery
from tests.channels_in.mails import customer_mail
from tests.channels_in.test_email_roundtrip import post_mail
from tests.conftest import acting, login
from tickets.models import Attachment, Customer, CustomerEvent, IdentityKind, Message, Ticket
from tickets.services import reply_to_customer

pytestmark = pytest.mark.django_db(transaction=True)


# --- a merchant's system: signs and posts ----------------------------------------------------


def signed_headers(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The two signing headers, computed here with hmac (not with the helpdesk's own code)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"HTTP_X_HELPDESK_TIMESTAMP": ts, "HTTP_X_HELPDESK_SIGNATURE": f"sha256={digest}"}


def url(account: ChannelAccount, tenant_slug: str | None = None) -> str:
    return f"/inbound/{tenant_slug or account.tenant.slug}/api/{account.pk}/"


def post(
    account: ChannelAccount,
    document: dict[str, Any] | bytes,
    *,
    secret: str | None = None,
    timestamp: int | None = None,
    tenant_slug: str | None = None,
) -> Any:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    headers = signed_headers(
        account.inbound_secret if secret is None else secret, body, timestamp=timestamp
    )
    return Client().post(
        url(account, tenant_slug), body, content_type="application/json", **headers
    )


def message(
    *,
    id: str = "m-1001",
    conversation_id: str = "c-77",
    text: str = "我的订单什么时候发货？\n订单号 SO20260001",
    customer: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "message": {"id": id, "conversation_id": conversation_id, "text": text, **fields},
        "customer": customer or {"id": "cust-42", "name": "Li Wei"},
    }


@pytest.fixture
def acme_api(tenant_acme) -> ChannelAccount:
    with tenancy.activate(tenant_acme):
        account = ChannelAccount.objects.create(kind="api", name="Acme shop")
        ApiChannel.objects.create(account=account)
        return account


@pytest.fixture
def globex_api(tenant_globex) -> ChannelAccount:
    with tenancy.activate(tenant_globex):
        account = ChannelAccount.objects.create(kind="api", name="Globex app")
        ApiChannel.objects.create(account=account)
        return account


def raw_count(account: ChannelAccount) -> int:
    with tenancy.activate(account.tenant):
        return RawInbound.objects.count()


# --- messages in -----------------------------------------------------------------------------


def test_a_signed_message_becomes_a_ticket_of_the_customer_with_that_id(acme_api):
    response = post(
        acme_api, message(html="<p>我的订单<script>alert(1)</script>什么时候发货？</p>")
    )
    assert response.status_code == 202
    answer = response.json()
    assert answer["status"] == "accepted" and answer["state"] == "received"
    with tenancy.activate(acme_api.tenant):
        ticket = Ticket.objects.get()
        assert ticket.channel == "api"
        assert ticket.subject == "我的订单什么时候发货？"  # the first line of the text
        assert ticket.customer.name == "Li Wei"
        identity = ticket.customer.identities.get()
        assert (identity.kind, identity.value, identity.account_id) == (
            IdentityKind.EXTERNAL,
            "cust-42",
            acme_api.pk,
        )
        filed = Message.objects.get()
        assert filed.conversation_id == "c-77" and filed.channel_account_id == acme_api.pk
        assert "script" not in filed.body_html and "什么时候发货" in filed.body_html
        assert RawInbound.objects.get(pk=answer["id"]).state == RawInbound.State.PROCESSED


def test_the_stored_delivery_shows_the_signature_it_arrived_with(acme_api):
    response = post(acme_api, message())
    with tenancy.activate(acme_api.tenant):
        raw = RawInbound.objects.get(pk=response.json()["id"])
    assert raw.external_id == "message:m-1001"
    assert raw.envelope["headers"]["x-helpdesk-signature"].startswith("sha256=")
    assert raw.envelope["headers"]["x-helpdesk-timestamp"].isdigit()
    assert (raw.sender, raw.subject) == ("cust-42", "我的订单什么时候发货？")


def test_the_same_customer_id_and_conversation_continue_one_ticket(acme_api):
    post(acme_api, message(id="m-1"))
    post(acme_api, message(id="m-2", text="还在吗？"))
    post(acme_api, message(id="m-3", customer={"id": "cust-43"}, conversation_id="c-78"))
    with tenancy.activate(acme_api.tenant):
        first = Customer.objects.get(identities__value="cust-42")
        assert first.tickets.get().messages.count() == 2
        assert Customer.objects.count() == 2


def test_a_customer_who_wrote_by_email_and_then_through_the_api_is_one_customer(
    acme_email, acme_api, supervisor_wang
):
    post_mail(acme_email, customer_mail(sender="李伟 <li.wei@example.cn>", subject="邮件咨询"))
    response = post(
        acme_api,
        message(customer={"id": "cust-42", "name": "李伟", "email": "Li.Wei@example.cn"}),
    )
    assert response.status_code == 202
    with tenancy.activate(acme_api.tenant):
        customer = Customer.objects.get()
        assert set(customer.identities.values_list("kind", flat=True)) == {"email", "external"}
        by_email = Ticket.objects.get(channel="email")
        by_api = Ticket.objects.get(channel="api")
        assert by_email.customer == by_api.customer == customer
    page = login(supervisor_wang).get(f"/tickets/{by_api.number}/").content.decode()
    assert f"#{by_email.number}" in page  # the customer's other ticket, on the agent's page


def test_a_redelivery_is_recognised_three_times_over(acme_api):
    document = message()
    statuses = [post(acme_api, document).json()["status"] for _ in range(3)]
    assert statuses == ["accepted", "duplicate", "duplicate"]
    with tenancy.activate(acme_api.tenant):
        assert Message.objects.count() == 1
        assert RawInbound.objects.count() == 1


def test_two_api_channels_of_one_merchant_may_use_the_same_message_id(acme_api, tenant_acme):
    with tenancy.activate(tenant_acme):
        app = ChannelAccount.objects.create(kind="api", name="Acme app")
        ApiChannel.objects.create(account=app)
    assert post(acme_api, message(id="m-1")).json()["status"] == "accepted"
    assert post(app, message(id="m-1")).json()["status"] == "accepted"
    with tenancy.activate(tenant_acme):
        assert Message.objects.count() == 2


# --- refused before anything is stored -------------------------------------------------------


def test_a_bad_signature_gets_401_and_stores_nothing(acme_api):
    response = post(acme_api, message(), secret="not-the-secret")
    assert response.status_code == 401
    assert response.json()["code"] == "bad_signature"
    assert raw_count(acme_api) == 0


def test_a_stale_timestamp_gets_401_and_stores_nothing(acme_api):
    response = post(acme_api, message(), timestamp=int(time.time()) - 3600)
    assert response.status_code == 401
    assert response.json()["code"] == "stale_timestamp"
    assert raw_count(acme_api) == 0


def test_an_unsigned_request_gets_401(acme_api):
    response = Client().post(url(acme_api), message(), content_type="application/json")
    assert response.status_code == 401
    assert response.json()["code"] == "missing_signature"
    assert raw_count(acme_api) == 0


def test_the_previous_secret_signs_during_its_grace_after_a_rotation(acme_api, admin_zhao):
    old_secret = acme_api.inbound_secret
    login(admin_zhao).post(f"/settings/channels/{acme_api.pk}/rotate-secret/")
    assert post(acme_api, message(id="m-old"), secret=old_secret).status_code == 202
    with tenancy.activate(acme_api.tenant):
        acme_api.refresh_from_db()
    assert acme_api.inbound_secret != old_secret
    assert post(acme_api, message(id="m-new")).status_code == 202


def test_malformed_json_gets_400_with_the_reason(acme_api):
    response = post(acme_api, b'{"message": {"id": "m-1",')
    assert response.status_code == 400
    assert response.json()["code"] == "bad_json"
    assert "not valid JSON" in response.json()["message"]
    assert raw_count(acme_api) == 0


def test_a_missing_customer_id_gets_400_naming_the_field(acme_api):
    response = post(acme_api, message(customer={"name": "Li Wei"}))
    assert response.status_code == 400
    assert response.json() == {
        "message": "customer.id is required.",
        "code": "bad_request",
        "extra": {"field": "customer.id"},
    }
    assert raw_count(acme_api) == 0


@pytest.mark.parametrize(
    ("document", "field", "words"),
    [
        ([1, 2], "", "must be a JSON object"),
        ({"customer": {"id": "c"}}, "", 'either "message" or "event"'),
        (message(id=""), "message.id", "is required"),
        (message(conversation_id=None), "message.conversation_id", "is required"),
        (message(text=""), "message.text", "is required"),
        (message(text=7), "message.text", "must be a string"),
        (message(customer={"id": "c", "email": "no-at-sign"}), "customer.email", "not an email"),
        (message(customer={"id": "c", "phone": "call me"}), "customer.phone", "not a phone"),
        (message(sent_at="yesterday"), "message.sent_at", "ISO 8601"),
        (message(priority="asap"), "message.priority", "must be one of low, normal"),
        (message(customer={"id": "c", "vip": "yes"}), "customer.vip", "true or false"),
        (message(customer={"id": "c", "locale": "中文"}), "customer.locale", "language code"),
        (message(customer={"id": "c", "persona": "Nice Folks!"}), "customer.persona", "short"),
        (message(sent_at="2026-01-05T10:30:00"), "message.sent_at", "time zone"),
        (
            message(attachments=[{"filename": "a.txt", "content_base64": "%%%"}]),
            "message.attachments[0].content_base64",
            "not valid base64",
        ),
        (
            message(attachments=[{"filename": "a.txt", "url": "ftp://files.example/a.txt"}]),
            "message.attachments[0].url",
            "http:// or https://",
        ),
        (
            message(attachments=[{"filename": "a.txt", "url": "https://x", "content_base64": ""}]),
            "message.attachments[0]",
            "not both",
        ),
        (
            message(attachments=[{"content_base64": "YQ=="}] * 21),
            "message.attachments",
            "at most 20",
        ),
        (
            {"event": {"id": "e-1", "type": "exploded"}, "customer": {"id": "c"}},
            "event.type",
            "must be one of",
        ),
    ],
)
def test_a_body_not_in_the_format_gets_400_naming_what_is_wrong(acme_api, document, field, words):
    body = json.dumps(document).encode()
    response = post(acme_api, body)
    assert response.status_code == 400, response.content
    answer = response.json()
    assert words in answer["message"]
    assert answer["extra"].get("field", "") == field
    assert raw_count(acme_api) == 0


def test_another_merchants_channel_under_this_merchants_address_is_404(acme_api, globex_api):
    assert post(globex_api, message(), tenant_slug="acme").status_code == 404
    assert raw_count(globex_api) == 0


def test_an_email_channel_id_under_the_api_address_is_404(acme_email):
    response = Client().post(
        f"/inbound/acme/api/{acme_email.pk}/",
        json.dumps(message()),
        content_type="application/json",
        **signed_headers(acme_email.inbound_secret, json.dumps(message()).encode()),
    )
    assert response.status_code == 404


# --- attachments -----------------------------------------------------------------------------


@dataclass
class Served:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    path: str
    headers: Any
    body: bytes


class LocalServer:
    """A real HTTP server on 127.0.0.1 in a thread: answers each request with the next queued
    ``Served`` (else ``default``) and records what it saw."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.queue: list[Served] = []
        self.default = Served(200, b"ok")
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.answer()

            def do_POST(self) -> None:
                self.answer()

            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.seen.append(Seen(self.path, self.headers, self.rfile.read(length)))
                served = server.queue.pop(0) if server.queue else server.default
                self.send_response(served.status)
                for name, value in served.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(served.body)))
                self.end_headers()
                self.wfile.write(served.body)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.port = self.http.server_address[1]
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def local_server(allow_egress) -> Iterator[LocalServer]:
    server = LocalServer()
    allow_egress("127.0.0.1", server.port)
    server.thread.start()
    try:
        yield server
    finally:
        server.http.shutdown()
        server.http.server_close()


PHOTO = b"\xff\xd8\xff\xe0 a small jpeg \xff\xd9"


def test_an_attachment_by_url_is_downloaded_and_stored(acme_api, local_server):
    local_server.default = Served(200, PHOTO, {"Content-Type": "image/jpeg"})
    attachment = {
        "filename": "破损.jpg",
        "content_type": "image/jpeg",
        "url": local_server.url("/p/1.jpg"),
    }
    assert post(acme_api, message(attachments=[attachment])).status_code == 202
    with tenancy.activate(acme_api.tenant):
        stored = Attachment.objects.get()
        assert (stored.filename, stored.content_type, stored.missing_reason) == (
            "破损.jpg",
            "image/jpeg",
            "",
        )
        assert stored.file.read() == PHOTO
    assert local_server.seen[0].path == "/p/1.jpg"


def test_an_attachment_that_cannot_be_downloaded_is_listed_as_missing_and_the_message_kept(
    acme_api, local_server, supervisor_wang
):
    local_server.default = Served(404, b"not found")
    attachments = [
        {"filename": "gone.jpg", "content_type": "image/jpeg", "url": local_server.url("/gone")},
        {"filename": "inside.jpg", "url": "http://10.1.2.3/secret.jpg"},  # never fetched
    ]
    assert post(acme_api, message(attachments=attachments)).status_code == 202
    with tenancy.activate(acme_api.tenant):
        ticket = Ticket.objects.get()
        gone, inside = Attachment.objects.order_by("filename")
        assert "404" in gone.missing_reason and not gone.file
        assert "public" in inside.missing_reason and not inside.file
    assert [seen.path for seen in local_server.seen] == ["/gone"]
    page = login(supervisor_wang).get(f"/tickets/{ticket.number}/").content.decode()
    assert "gone.jpg" in page and "404" in page


def test_an_attachment_in_the_body_is_stored_and_one_over_the_limit_listed_as_missing(
    acme_api, tenant_acme
):
    tenant_acme.max_attachment_bytes = 1024
    tenant_acme.save()
    attachments = [
        {"filename": "note.txt", "content_type": "text/plain", "content_base64": "5L2g5aW9"},
        {"filename": "big.bin", "content_base64": base64.b64encode(b"x" * 2048).decode()},
    ]
    assert post(acme_api, message(attachments=attachments)).status_code == 202
    with tenancy.activate(tenant_acme):
        big, note = Attachment.objects.order_by("filename")
        assert note.file.read() == "你好".encode() and note.content_type == "text/plain"
        assert big.size == 2048 and not big.file
        assert "larger than this helpdesk keeps" in big.missing_reason


# --- events ----------------------------------------------------------------------------------


def test_an_event_lands_on_the_customers_timeline_and_opens_no_ticket(acme_api):
    document = {
        "event": {
            "id": "e-1",
            "type": "subscribed",
            "occurred_at": "2026-01-05T10:30:00+08:00",
            "data": {"plan": "VIP"},
        },
        "customer": {"id": "cust-42", "name": "Li Wei", "phone": "138 0013 8000"},
    }
    response = post(acme_api, document)
    assert response.status_code == 202
    assert post(acme_api, document).json()["status"] == "duplicate"
    with tenancy.activate(acme_api.tenant):
        event = CustomerEvent.objects.get()
        assert (event.kind, event.data, event.channel_account_id) == (
            "subscribed",
            {"plan": "VIP"},
            acme_api.pk,
        )
        assert event.occurred_at.isoformat() == "2026-01-05T02:30:00+00:00"
        assert set(event.customer.identities.values_list("value", flat=True)) == {
            "cust-42",
            "+8613800138000",
        }
        assert Ticket.objects.count() == 0
        assert RawInbound.objects.get().state == RawInbound.State.PROCESSED


# --- replies out -----------------------------------------------------------------------------


@pytest.fixture
def receiver(local_server, acme_api) -> LocalServer:
    """The merchant's system receiving replies at the channel's callback URL."""
    with tenancy.activate(acme_api.tenant):
        ApiChannel.objects.filter(account=acme_api).update(
            callback_url=local_server.url("/helpdesk/replies")
        )
    return local_server


@pytest.fixture
def api_ticket(acme_api) -> Ticket:
    assert post(acme_api, message()).status_code == 202
    with tenancy.activate(acme_api.tenant):
        return Ticket.objects.get()


def verify(secret: str, seen: Seen) -> dict[str, Any]:
    """Check a callback's signature the way the merchant's system would; return its JSON."""
    timestamp = seen.headers["X-Helpdesk-Timestamp"]
    assert abs(time.time() - int(timestamp)) < 60
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + seen.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(seen.headers["X-Helpdesk-Signature"], f"sha256={expected}")
    return json.loads(seen.body)


def test_an_agents_reply_is_posted_signed_to_the_callback_url(
    acme_api, api_ticket, receiver, supervisor_wang
):
    with tenancy.activate(acme_api.tenant):
        reply = reply_to_customer(
            acting_agent=acting(supervisor_wang), ticket=api_ticket, text="今天下午发货。"
        )
        reply.refresh_from_db()
    assert reply.delivery_state == Message.Delivery.SENT
    (seen,) = receiver.seen
    assert seen.path == "/helpdesk/replies"
    assert seen.headers["X-Helpdesk-Event"] == "message.created"
    document = verify(acme_api.inbound_secret, seen)
    assert document["type"] == "message.created"
    assert document["customer"] == {"id": "cust-42"}
    assert document["message"]["id"] == reply.external_id
    assert document["message"]["conversation_id"] == "c-77"
    assert document["message"]["text"] == "今天下午发货。"
    assert document["message"]["ticket"] == api_ticket.number
    assert document["message"]["author"] == {"name": "wang.acme"}
    with tenancy.activate(acme_api.tenant):
        delivery = WebhookDelivery.objects.get(message=reply)
    assert delivery.state == WebhookDelivery.State.DELIVERED
    assert seen.headers["X-Helpdesk-Delivery"] == str(delivery.pk)


def test_a_reply_the_receiver_cannot_take_yet_is_retried_and_sent_once(
    acme_api, api_ticket, receiver, supervisor_wang, monkeypatch
):
    receiver.queue = [Served(503, b"busy")]
    with tenancy.activate(acme_api.tenant):
        with monkeypatch.context() as queue_only:  # the test plays the worker
            queue_only.setattr(deliver_message, "delay", lambda *args, **kwargs: None)
            reply = reply_to_customer(
                acting_agent=acting(supervisor_wang), ticket=api_ticket, text="稍等。"
            )
        with pytest.raises(outbound.DeliveryDeferred):
            outbound.deliver(message_id=reply.pk, retry_in=30)
        reply.refresh_from_db()
        assert reply.delivery_state == Message.Delivery.QUEUED and reply.is_retrying
        assert "503" in reply.delivery_error
        assert outbound.deliver(message_id=reply.pk, after_attempt=1) == Message.Delivery.SENT
        delivery = WebhookDelivery.objects.get(message=reply)
    first, second = receiver.seen
    assert first.body == second.body
    assert first.headers["X-Helpdesk-Delivery"] == second.headers["X-Helpdesk-Delivery"]
    verify(acme_api.inbound_secret, second)
    assert delivery.attempts == 2 and delivery.state == WebhookDelivery.State.DELIVERED


def test_a_reply_the_receiver_refuses_fails_at_once_with_the_reason(
    acme_api, api_ticket, receiver, supervisor_wang
):
    receiver.queue = [Served(400, b'{"error": "unknown customer"}')]
    with tenancy.activate(acme_api.tenant):
        reply = reply_to_customer(
            acting_agent=acting(supervisor_wang), ticket=api_ticket, text="您好"
        )
        reply.refresh_from_db()
    assert reply.delivery_state == Message.Delivery.FAILED
    assert "400" in reply.delivery_error
    assert len(receiver.seen) == 1
    page = login(supervisor_wang).get(f"/tickets/{api_ticket.number}/").content.decode()
    assert reply.delivery_error in page


def test_a_callback_url_the_platform_must_not_reach_pauses_the_channel(
    acme_api, api_ticket, supervisor_wang, settings
):
    settings.HELPDESK_EGRESS_ALLOW = []
    with tenancy.activate(acme_api.tenant):
        # Saved before the guard was this strict (the settings page refuses it now).
        ApiChannel.objects.filter(account=acme_api).update(callback_url="http://127.0.0.1/hook")
        reply = reply_to_customer(
            acting_agent=acting(supervisor_wang), ticket=api_ticket, text="您好"
        )
        reply.refresh_from_db()
        acme_api.refresh_from_db()
    assert reply.delivery_state == Message.Delivery.FAILED
    assert acme_api.paused and "public" in acme_api.last_error
    assert "channel paused" in reply.delivery_error


def test_no_reply_is_possible_on_a_channel_without_a_callback_url(
    acme_api, api_ticket, supervisor_wang
):
    with tenancy.activate(acme_api.tenant):
        with pytest.raises(BadInput) as refused:
            reply_to_customer(acting_agent=acting(supervisor_wang), ticket=api_ticket, text="您好")
        assert Message.objects.filter(direction="outbound").count() == 0
    assert "API" in refused.value.message


# --- the documented examples, run as written (docs/channels.md) -----------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "channels.md"
DOCUMENTED_URL = "https://help.example.com/inbound/acme/api/7/"
DOCUMENTED_SECRET = "your-channel-secret"


def documented(kind: str, name: str) -> str:
    """The code block after ``<!-- kind: name -->`` in docs/channels.md."""
    found = re.search(
        rf"<!-- {kind}: {re.escape(name)} -->\n```\w*\n(?P<code>.*?)\n```", DOCS.read_text(), re.S
    )
    assert found, f"docs/channels.md no longer has the {kind} {name!r}"
    return found.group("code")


def filled_in(code: str, account: ChannelAccount, base_url: str) -> str:
    # Only what a merchant fills in is replaced: the endpoint and the secret.
    assert DOCUMENTED_URL in code or DOCUMENTED_SECRET in code
    return code.replace(DOCUMENTED_URL, f"{base_url}{url(account)}").replace(
        DOCUMENTED_SECRET, account.inbound_secret
    )


def test_the_documented_curl_command_posts_a_message_that_becomes_a_ticket(live_server, acme_api):
    script = filled_in(documented("example", "curl"), acme_api, live_server.url)
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "accepted"
    with tenancy.activate(acme_api.tenant):
        ticket = Ticket.objects.get()
        assert ticket.subject == "我的订单什么时候发货？"
        assert ticket.customer.identities.get().value == "cust-42"


def test_the_documented_python_sender_posts_a_message_that_becomes_a_ticket(
    live_server, acme_api, capsys
):
    code = filled_in(documented("example", "python-send"), acme_api, live_server.url)
    exec(compile(code, "docs/channels.md", "exec"), {})
    status, answer = capsys.readouterr().out.split(" ", 1)
    assert status == "202" and "'accepted'" in answer
    with tenancy.activate(acme_api.tenant):
        message_ = Message.objects.get()
        assert message_.body_text == "还有一个问题。"
        assert set(message_.author_customer.identities.values_list("value", flat=True)) == {
            "cust-42",
            "li.wei@example.cn",
        }


def test_the_documented_python_verifier_accepts_our_callback_and_nothing_else(
    acme_api, api_ticket, receiver, supervisor_wang
):
    namespace: dict[str, Any] = {}
    code = filled_in(documented("example", "python-verify"), acme_api, "")
    exec(compile(code, "docs/channels.md", "exec"), namespace)
    with tenancy.activate(acme_api.tenant):
        reply_to_customer(acting_agent=acting(supervisor_wang), ticket=api_ticket, text="已发货。")
    (seen,) = receiver.seen
    verified = namespace["verified_callback"]
    assert verified(seen.headers, seen.body)["message"]["text"] == "已发货。"
    with pytest.raises(ValueError, match="bad signature"):
        verified(seen.headers, seen.body.replace("已发货".encode(), "未发货".encode()))
    namespace["SECRET"] = "another-secret"
    with pytest.raises(ValueError, match="bad signature"):
        verified(seen.headers, seen.body)


def test_the_documented_answers_are_the_answers_given(acme_api):
    missing_id = post(acme_api, message(customer={"name": "Li Wei"}))
    assert missing_id.json() == json.loads(documented("answer", "missing customer id"))
    bad_signature = post(acme_api, message(), secret="not-the-secret")
    assert bad_signature.json() == json.loads(documented("answer", "bad signature"))


def test_a_reply_whose_last_try_fails_reads_failed_in_the_delivery_log_too(
    acme_api, api_ticket, receiver, supervisor_wang
):
    # Inline Celery: the first try is the last, so a 503 fails the reply for good.
    receiver.queue = [Served(503, b"busy")]
    with tenancy.activate(acme_api.tenant):
        reply = reply_to_customer(
            acting_agent=acting(supervisor_wang), ticket=api_ticket, text="稍等。"
        )
        reply.refresh_from_db()
        delivery = WebhookDelivery.objects.get(message=reply)
    assert reply.delivery_state == Message.Delivery.FAILED
    assert delivery.state == WebhookDelivery.State.FAILED


def test_attachments_past_the_messages_download_budget_are_listed_as_missing(
    acme_api, local_server, monkeypatch
):
    from channels_in import json_api

    local_server.default = Served(200, PHOTO, {"Content-Type": "image/jpeg"})
    monkeypatch.setattr(json_api, "FETCH_BUDGET_FILES", 0)  # the budget is spent at once
    attachment = {"filename": "late.jpg", "url": local_server.url("/late.jpg")}
    assert post(acme_api, message(attachments=[attachment])).status_code == 202
    with tenancy.activate(acme_api.tenant):
        late = Attachment.objects.get()
        assert Message.objects.filter(direction="inbound").count() == 1
    assert "ran out" in late.missing_reason and not late.file
    assert local_server.seen == []
