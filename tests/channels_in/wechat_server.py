"""WeChat's side of the channel, for tests: a local HTTP server speaking the Official Account
API's documented JSON, and pushes built, signed and encrypted by wechatpy (an independent
client, not the helpdesk's own code).

The fake API issues access tokens (``/cgi-bin/token``), takes Customer Service Messages
(``/cgi-bin/message/custom/send``), image uploads (``/cgi-bin/media/upload``) and serves
customers' media (``/cgi-bin/media/get``; a video as a JSON ``video_url``). It answers like
WeChat: HTTP 200 with ``{"errcode": ...}`` on refusal: 40125 for a wrong AppSecret, 42001 for an
expired token, 40001 for an unknown one, 45015 outside the 48-hour window, 40007 for an unknown
media id.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from channels_in.crypto import encrypt_secret
from channels_in.models import ChannelAccount, WeChatAccount
from helpdesk import tenancy

APP_ID = "wx2c2769f8efd9abc2"
APP_SECRET = "0123456789abcdef0123456789abcdef"
TOKEN = "acmeToken2026"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OFFICIAL_ID = "gh_0123456789ab"


@dataclass
class Media:
    content: bytes
    content_type: str
    video: bool = False


@dataclass
class FakeWeChatApi:
    """The API's state: what it issued, took and holds."""

    app_id: str = APP_ID
    app_secret: str = APP_SECRET
    valid_tokens: set[str] = field(default_factory=set)
    expired_tokens: set[str] = field(default_factory=set)
    tokens_issued: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    media: dict[str, Media] = field(default_factory=dict)
    out_of_window: set[str] = field(default_factory=set)  # openids WeChat refuses (45015)
    # msgtype -> how many of the next sends of that type are answered -1 "system busy"
    busy: dict[str, int] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    port: int = 0

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired (WeChat's 42001)."""
        self.expired_tokens |= self.valid_tokens
        self.valid_tokens.clear()

    # --- the endpoints ---

    def answer(self, method: str, path: str, query: dict[str, str], body: bytes, headers: Any):
        self.calls.append(path)
        if path == "/cgi-bin/token":
            return self.token(query)
        if path.startswith("/video/"):
            item = self.media[path.removeprefix("/video/")]
            return 200, item.content, {"Content-Type": "video/mp4"}
        refused = self.check_token(query.get("access_token", ""))
        if refused:
            return _json(refused)
        if path == "/cgi-bin/message/custom/send" and method == "POST":
            document = json.loads(body)
            if self.busy.get(document["msgtype"]):
                self.busy[document["msgtype"]] -= 1
                return _json({"errcode": -1, "errmsg": "system error"})
            if document["touser"] in self.out_of_window:
                return _json(
                    {
                        "errcode": 45015,
                        "errmsg": "response out of time limit or subscription is canceled",
                    }
                )
            if document["msgtype"] == "image" and document["image"]["media_id"] not in self.uploads:
                return _json({"errcode": 40007, "errmsg": "invalid media_id"})
            self.sent.append(document)
            return _json({"errcode": 0, "errmsg": "ok"})
        if path == "/cgi-bin/media/upload" and method == "POST":
            form = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body
            )
            (part,) = list(form.iter_parts())
            assert part.get_param("name", header="content-disposition") == "media"
            media_id = f"UPLOADED_{len(self.uploads) + 1}"
            self.uploads[media_id] = part.get_payload(decode=True)
            return _json({"type": query.get("type"), "media_id": media_id, "created_at": 1})
        if path == "/cgi-bin/media/get":
            item = self.media.get(query.get("media_id", ""))
            if item is None:
                return _json({"errcode": 40007, "errmsg": "invalid media_id"})
            if item.video:
                return _json({"video_url": f"{self.url()}/video/{query['media_id']}"})
            disposition = f'attachment; filename="{query["media_id"]}.{item.content_type[6:]}"'
            return (
                200,
                item.content,
                {"Content-Type": item.content_type, "Content-Disposition": disposition},
            )
        return 404, b"not found", {}

    def token(self, query: dict[str, str]):
        if query.get("appid") != self.app_id:
            return _json({"errcode": 40013, "errmsg": "invalid appid"})
        if query.get("secret") != self.app_secret:
            return _json({"errcode": 40125, "errmsg": "invalid appsecret"})
        self.tokens_issued += 1
        token = f"TOKEN_{self.tokens_issued}_{secrets.token_hex(4)}"
        self.valid_tokens.add(token)
        return _json({"access_token": token, "expires_in": 7200})

    def check_token(self, token: str) -> dict[str, Any] | None:
        if token in self.valid_tokens:
            return None
        if token in self.expired_tokens:
            return {"errcode": 42001, "errmsg": "access_token expired"}
        return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"}


def _json(document: dict[str, Any]):
    return 200, json.dumps(document).encode(), {"Content-Type": "application/json"}


class WeChatApiServer:
    """The fake API on a real socket, in a thread."""

    def __init__(self) -> None:
        self.api = FakeWeChatApi()
        api = self.api

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.handle_call("GET")

            def do_POST(self) -> None:
                self.handle_call("POST")

            def handle_call(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = {key: values[0] for key, values in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, content, headers = api.answer(method, parts.path, query, body, self.headers)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.api.port = self.http.server_address[1]
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


# --- pushes, as WeChat's servers send them (built with wechatpy) -------------------------------


def sign(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def signed_query(token: str = TOKEN, **extra: str) -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
    return {
        "signature": sign(token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        **extra,
    }


def text_xml(
    content: str = "你好，我的订单 SO20260001 还没到",
    *,
    openid: str = "oCustomer0001",
    msg_id: str = "24000000000000100",
    create_time: int | None = None,
) -> bytes:
    created = create_time or int(time.time())
    return (
        f"<xml><ToUserName><![CDATA[{OFFICIAL_ID}]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    ).encode()


def encrypted_push(
    plain: bytes, *, token: str = TOKEN, aes_key: str = AES_KEY, app_id: str = APP_ID
) -> tuple[dict[str, str], bytes]:
    """The query and body of a safe-mode push carrying ``plain``, encrypted and signed by
    wechatpy's WeChatCrypto, with the plain ``signature`` WeChat sends beside it."""
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
    envelope = WeChatCrypto(token, aes_key, app_id).encrypt_message(
        plain.decode(), nonce, timestamp
    )
    encrypt = envelope.split("<Encrypt><![CDATA[", 1)[1].split("]]>", 1)[0]
    msg_signature = envelope.split("<MsgSignature><![CDATA[", 1)[1].split("]]>", 1)[0]
    body = (
        f"<xml><ToUserName><![CDATA[{OFFICIAL_ID}]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    ).encode()
    query = {
        "signature": sign(token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        "openid": "oCustomer0001",
        "encrypt_type": "aes",
        "msg_signature": msg_signature,
    }
    return query, body


def push_url(path: str, query: dict[str, str]) -> str:
    return f"{path}?{urlencode(query)}"


# --- fixtures (imported by the test modules) ---------------------------------------------------


@pytest.fixture
def wechat_api(allow_egress, settings) -> Iterator[FakeWeChatApi]:
    """The fake API, running, let through the egress guard and named as the API base."""
    server = WeChatApiServer()
    allow_egress("127.0.0.1", server.api.port)
    settings.HELPDESK_WECHAT_API_BASE = server.api.url()
    server.start()
    try:
        yield server.api
    finally:
        server.stop()


def connect_wechat(tenant, *, name: str = "Acme 公众号", aes_key: str = "") -> ChannelAccount:
    """A WeChat channel of ``tenant`` as the settings page saves one."""
    with tenancy.activate(tenant):
        account = ChannelAccount.objects.create(kind="wechat", name=name)
        WeChatAccount.objects.create(
            account=account,
            app_id=APP_ID,
            token=TOKEN,
            encoding_aes_key_encrypted=encrypt_secret(aes_key),
            app_secret_encrypted=encrypt_secret(APP_SECRET),
        )
        return account


@pytest.fixture
def acme_wechat(tenant_acme) -> ChannelAccount:
    """Acme's Official Account in plain mode."""
    return connect_wechat(tenant_acme)


@pytest.fixture
def acme_wechat_safe(tenant_acme) -> ChannelAccount:
    """Acme's Official Account in safe mode (an EncodingAESKey saved)."""
    return connect_wechat(tenant_acme, name="Acme 安全模式", aes_key=AES_KEY)


def inbound_path(account: ChannelAccount, tenant_slug: str | None = None) -> str:
    return f"/inbound/{tenant_slug or account.tenant.slug}/wechat/{account.pk}/"


def post_push(
    account: ChannelAccount,
    body: bytes,
    query: dict[str, str] | None = None,
    *,
    tenant_slug: str | None = None,
) -> Any:
    """POST a push the way WeChat's servers do: XML body, signature in the query."""
    query = signed_query() if query is None else query
    return Client().post(
        push_url(inbound_path(account, tenant_slug), query), body, content_type="text/xml"
    )
