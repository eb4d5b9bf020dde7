"""WeChat pushes through the real endpoint (/inbound/<merchant>/wechat/<id>/) and the pipeline:
the URL check, signatures, safe mode, every documented message and event type, redelivery, and
hostile XML. Pushes are built and encrypted by wechatpy, or taken from tests/corpus/wechat."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from django.test import Client
from wechatpy.utils import check_signature

from channels_in.models import ChannelAccount, RawInbound, WeChatAccount
from helpdesk import tenancy
from tests.channels_in import wechat_server
from tests.channels_in.wechat_server import (
    TOKEN,
    Media,
    connect_wechat,
    encrypted_push,
    inbound_path,
    post_push,
    push_url,
    signed_query,
    text_xml,
)
from tests.conftest import login
from tickets.models import Attachment, Customer, CustomerEvent, IdentityKind, Message, Ticket

pytestmark = pytest.mark.django_db(transaction=True)

# Fixtures of the WeChat tests.
acme_wechat = wechat_server.acme_wechat
acme_wechat_safe = wechat_server.acme_wechat_safe
wechat_api = wechat_server.wechat_api


CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "wechat"


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def stored(account: ChannelAccount) -> list[RawInbound]:
    with tenancy.activate(account.tenant):
        return list(RawInbound.objects.order_by("pk"))


def only_message(account: ChannelAccount) -> Message:
    with tenancy.activate(account.tenant):
        return Message.objects.select_related("ticket__customer").get()


# --- the server URL check ----------------------------------------------------------------------


def test_wechats_url_check_is_answered_with_the_echo_and_shown_as_verified(acme_wechat):
    query = signed_query(echostr="5927782489442352469")
    # What WeChat computes, checked by wechatpy: the query really is WeChat-signed.
    check_signature(TOKEN, query["signature"], query["timestamp"], query["nonce"])
    response = Client().get(push_url(inbound_path(acme_wechat), query))
    assert response.status_code == 200
    assert response.content == b"5927782489442352469"
    assert response["Content-Type"].startswith("text/plain")
    with tenancy.activate(acme_wechat.tenant):
        assert WeChatAccount.objects.get(account=acme_wechat).verified_at is not None


def test_a_url_check_with_a_wrong_signature_gets_403_and_no_echo(acme_wechat):
    query = signed_query(token="someone-elses", echostr="12345")
    response = Client().get(push_url(inbound_path(acme_wechat), query))
    assert response.status_code == 403
    assert b"12345" not in response.content
    with tenancy.activate(acme_wechat.tenant):
        assert WeChatAccount.objects.get(account=acme_wechat).verified_at is None


# --- messages in -------------------------------------------------------------------------------


def test_a_text_message_becomes_a_ticket_of_the_customer_with_that_openid(acme_wechat):
    response = post_push(acme_wechat, text_xml())
    assert response.status_code == 200
    assert response.content == b"success"
    message = only_message(acme_wechat)
    ticket = message.ticket
    assert ticket.channel == "wechat"
    assert message.body_text == "你好，我的订单 SO20260001 还没到"
    assert ticket.subject == "你好，我的订单 SO20260001 还没到"
    with tenancy.activate(acme_wechat.tenant):
        identity = ticket.customer.identities.get()
        assert (identity.kind, identity.value, identity.account_id) == (
            IdentityKind.WECHAT,
            "oCustomer0001",
            acme_wechat.pk,
        )
        (raw,) = RawInbound.objects.all()
        assert raw.state == RawInbound.State.PROCESSED and raw.sender == "oCustomer0001"
        assert raw.envelope["query"]["signature"]


def test_a_push_redelivered_three_times_yields_one_message(acme_wechat):
    body = text_xml(msg_id="24000000000000777")
    answers = [post_push(acme_wechat, body) for _ in range(4)]  # the push and WeChat's 3 retries
    assert [(a.status_code, a.content) for a in answers] == [(200, b"success")] * 4
    with tenancy.activate(acme_wechat.tenant):
        assert Message.objects.count() == 1
        assert RawInbound.objects.count() == 1


def test_one_customer_writing_twice_has_one_conversation_two_customers_two(acme_wechat):
    post_push(acme_wechat, text_xml("在吗", msg_id="1001"))
    post_push(acme_wechat, text_xml("订单还没到", msg_id="1002"))
    post_push(acme_wechat, text_xml("我也有问题", msg_id="1003", openid="oSomeoneElse"))
    with tenancy.activate(acme_wechat.tenant):
        first = Customer.objects.get(identities__value="oCustomer0001")
        assert first.tickets.get().messages.count() == 2
        assert Customer.objects.count() == 2
        assert Ticket.objects.count() == 2


def test_the_same_openid_on_two_merchants_is_two_customers(acme_wechat, tenant_globex):
    globex = connect_wechat(tenant_globex, name="Globex")
    post_push(acme_wechat, text_xml(msg_id="2001"))
    post_push(globex, text_xml(msg_id="2001"))
    for account in (acme_wechat, globex):
        with tenancy.activate(account.tenant):
            assert Message.objects.count() == 1
            assert Customer.objects.get().identities.get().account_id == account.pk


def test_a_wrong_signature_gets_403_and_stores_nothing(acme_wechat):
    query = signed_query(token="not-the-token")
    assert post_push(acme_wechat, text_xml(), query).status_code == 403
    unsigned = Client().post(inbound_path(acme_wechat), text_xml(), content_type="text/xml")
    assert unsigned.status_code == 403
    assert stored(acme_wechat) == []


def test_another_merchants_channel_under_this_merchants_address_is_404(acme_wechat, tenant_globex):
    globex = connect_wechat(tenant_globex, name="Globex")
    assert post_push(globex, text_xml(), tenant_slug="acme").status_code == 404
    assert stored(globex) == [] and stored(acme_wechat) == []


# --- safe mode ---------------------------------------------------------------------------------


def test_a_push_encrypted_by_wechatpy_is_accepted_in_safe_mode(acme_wechat_safe):
    query, body = encrypted_push(text_xml("加密的消息：退货", msg_id="3001"))
    assert b"\xe9\x80\x80" not in body  # the text travels encrypted
    response = post_push(acme_wechat_safe, body, query)
    assert (response.status_code, response.content) == (200, b"success")
    message = only_message(acme_wechat_safe)
    assert message.body_text == "加密的消息：退货"
    with tenancy.activate(acme_wechat_safe.tenant):
        raw = RawInbound.objects.get()
        assert bytes(raw.payload) == body  # stored as it arrived
        assert raw.external_id == f"{acme_wechat_safe.pk}:3001"


def test_a_safe_mode_push_with_a_body_not_matching_its_msg_signature_gets_403(acme_wechat_safe):
    query, body = encrypted_push(text_xml(msg_id="3002"))
    _, other_body = encrypted_push(text_xml("篡改", msg_id="3003"))
    assert post_push(acme_wechat_safe, other_body, query).status_code == 403
    assert stored(acme_wechat_safe) == []


def test_a_key_that_can_no_longer_be_decrypted_refuses_pushes_with_a_reason_not_a_500(
    acme_wechat_safe,
):
    # HELPDESK_FERNET_KEYS rotated without the old key: the stored EncodingAESKey is lost.
    with tenancy.activate(acme_wechat_safe.tenant):
        WeChatAccount.objects.filter(account=acme_wechat_safe).update(
            encoding_aes_key_encrypted="gAAAAABnot-a-token-of-these-keys"
        )
    query, body = encrypted_push(text_xml(msg_id="3009"))
    response = post_push(acme_wechat_safe, body, query)
    assert response.status_code == 403
    assert response.json()["code"] == "not_configured"
    assert stored(acme_wechat_safe) == []


def test_a_push_encrypted_for_another_appid_gets_403(acme_wechat_safe):
    query, body = encrypted_push(text_xml(), app_id="wx0000000000000001")
    response = post_push(acme_wechat_safe, body, query)
    assert response.status_code == 403
    assert "another AppID" in response.json()["message"]
    assert stored(acme_wechat_safe) == []


def test_a_channel_in_safe_mode_refuses_plain_pushes(acme_wechat_safe):
    response = post_push(acme_wechat_safe, text_xml())
    assert response.status_code == 403
    assert response.json()["code"] == "encryption_required"
    assert stored(acme_wechat_safe) == []


def test_the_corpus_safe_mode_voice_push_is_accepted_with_its_recognition(tenant_acme):
    vector = json.loads(corpus("synthesized/safe_mode_push_voice.json"))
    account = connect_wechat(tenant_acme, aes_key=vector["encoding_aes_key"])
    with tenancy.activate(tenant_acme):
        WeChatAccount.objects.filter(account=account).update(
            token=vector["token"], app_id=vector["appid"], app_secret_encrypted=""
        )
    body = corpus("synthesized/" + vector["body_file"])
    response = post_push(account, body, vector["query"])
    assert (response.status_code, response.content) == (200, b"success")
    message = only_message(account)
    assert "我的订单还没发货，能帮我查一下吗" in message.body_text
    # No AppSecret: the voice file cannot be had, and the message says so.
    with tenancy.activate(tenant_acme):
        assert message.ticket.customer.identities.get().value == "oAbCdEfGhIjKlMnOpQrStUvWxYz"
        (attachment,) = Attachment.objects.all()
    assert "AppSecret" in attachment.missing_reason


def test_tencents_own_compatible_mode_sample_is_read_from_its_encrypted_part(tenant_acme):
    vector = next(
        v for v in json.loads(corpus("kat.json")) if v["name"] == "tencent_mp_sample_decrypt"
    )
    account = connect_wechat(tenant_acme, aes_key=vector["encoding_aes_key"])
    with tenancy.activate(tenant_acme):
        WeChatAccount.objects.filter(account=account).update(
            token=vector["token"], app_id=vector["appid"]
        )
    query = {
        "timestamp": vector["timestamp"],
        "nonce": vector["nonce"],
        "msg_signature": vector["msg_signature"],
        "encrypt_type": "aes",
    }
    response = post_push(account, vector["post_body"].encode(), query)
    assert response.status_code == 200
    message = only_message(account)
    assert message.body_text == "abcdteT"
    with tenancy.activate(tenant_acme):
        assert message.ticket.customer.identities.get().value == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
    query["nonce"] = "1320562133"  # one digit off
    assert post_push(account, vector["post_body"].encode(), query).status_code == 403


# --- every documented type ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("wechatpy/test_parser/test_parse_text_message.xml", "this is a test"),
        (
            "wechatpy/test_parser/test_parse_link_message.xml",
            "公众平台官网链接\n公众平台官网链接\nurl",
        ),
        (
            "wechatpy/test_parser/test_parse_location_message.xml",
            "(location) 位置信息, latitude 23.134521, longitude 113.358803",
        ),
        ("wechatpy/test_parser/test_parse_voice_message.xml", "(voice message)"),
        ("wechatpy/test_parser/test_parse_image_message.xml", "(image)"),
        ("wechatpy/test_parser/test_parse_video_message.xml", "(video)"),
        ("synthesized/shortvideo.xml", "(short video)"),
        (
            "synthesized/voice_with_recognition.xml",
            "(voice message, recognised by WeChat) 我的订单还没发货，能帮我查一下吗",
        ),
        ("synthesized/voice_recognition_empty.xml", "(voice message)"),
        (
            "synthesized/text_with_emoji_and_cdata_edge.xml",
            "退款😡 <b>not html</b> ]]> & 订单号 #A-1001",
        ),
        (
            "wechatpy/test_parser/test_parse_unknown_message.xml",
            "(a WeChat message of type notsure, which the helpdesk cannot show)",
        ),
        (
            "wechatpy/test_parser/test_parse_device_text_event.xml",
            "(a WeChat message of type device_text, which the helpdesk cannot show)",
        ),
    ],
)
def test_each_message_type_of_the_corpus_is_filed_with_what_it_says(
    acme_wechat, wechat_api, name, text
):
    response = post_push(acme_wechat, corpus(name))
    assert (response.status_code, response.content) == (200, b"success")
    message = only_message(acme_wechat)
    assert message.body_text == text
    assert message.ticket.channel == "wechat"
    assert message.metadata["wechat"]["MsgType"]  # every field kept for the record


def test_an_image_voice_and_video_are_downloaded_into_attachments(acme_wechat, wechat_api):
    wechat_api.media["media_id"] = Media(b"\xff\xd8\xff\xe0 jpeg bytes \xff\xd9", "image/jpeg")
    post_push(acme_wechat, corpus("wechatpy/test_parser/test_parse_image_message.xml"))
    with tenancy.activate(acme_wechat.tenant):
        image = Attachment.objects.get()
        assert (image.content_type, image.missing_reason) == ("image/jpeg", "")
        assert image.file.read() == b"\xff\xd8\xff\xe0 jpeg bytes \xff\xd9"
        assert image.filename == "media_id.jpeg"
        Ticket.objects.all().delete()

    wechat_api.media["MEDIA_ID_1"] = Media(b"#!AMR\n voice", "audio/amr")
    post_push(acme_wechat, corpus("synthesized/voice_with_recognition.xml"))
    wechat_api.media["THUMB_ID_3"] = Media(b"thumb", "image/jpeg")
    wechat_api.media["MEDIA_ID_3"] = Media(
        b"\x00\x00\x00\x18ftypmp42 video", "video/mp4", video=True
    )
    post_push(acme_wechat, corpus("synthesized/shortvideo.xml"))
    with tenancy.activate(acme_wechat.tenant):
        voice, video = Attachment.objects.order_by("pk")
        assert voice.file.read() == b"#!AMR\n voice" and voice.content_type == "audio/amr"
        # WeChat answers a video's media/get with a link, which is followed.
        assert video.file.read() == b"\x00\x00\x00\x18ftypmp42 video"
        assert video.content_type == "video/mp4"
    assert "/video/MEDIA_ID_3" in wechat_api.calls
    assert wechat_api.tokens_issued == 1  # one token, cached, for all three downloads


def test_media_wechat_no_longer_has_is_listed_as_missing_and_the_message_kept(
    acme_wechat, wechat_api, supervisor_wang
):
    post_push(acme_wechat, corpus("wechatpy/test_parser/test_parse_image_message.xml"))
    message = only_message(acme_wechat)
    with tenancy.activate(acme_wechat.tenant):
        (attachment,) = Attachment.objects.all()
    assert "40007" in attachment.missing_reason and not attachment.file
    page = login(supervisor_wang).get(f"/tickets/{message.ticket.number}/").content.decode()
    assert "40007" in page


# --- events ------------------------------------------------------------------------------------


def test_following_by_a_qr_scene_lands_on_the_timeline_with_the_scene(acme_wechat):
    body = corpus("wechatpy/test_parser/test_parse_subscribe_scan_event.xml")
    assert post_push(acme_wechat, body).content == b"success"
    assert post_push(acme_wechat, body).content == b"success"  # WeChat's retry
    with tenancy.activate(acme_wechat.tenant):
        event = CustomerEvent.objects.get()
        assert event.kind == CustomerEvent.Kind.SUBSCRIBED
        assert event.data["scene"] == "123123" and event.data["Ticket"] == "TICKET"
        assert event.customer.identities.get().value == "FromUser"
        assert Ticket.objects.count() == 0
        (raw,) = RawInbound.objects.all()
        assert raw.external_id == f"{acme_wechat.pk}:FromUser:123456789:subscribe"


@pytest.mark.parametrize(
    ("event", "kind", "data"),
    [
        ("unsubscribe", CustomerEvent.Kind.UNSUBSCRIBED, {}),
        (
            "kf_create_session",
            CustomerEvent.Kind.CONVERSATION_STARTED,
            {"KfAccount": "kf2001@acme"},
        ),
        ("kf_close_session", CustomerEvent.Kind.CONVERSATION_ENDED, {"KfAccount": "kf2001@acme"}),
    ],
)
def test_unfollowing_and_customer_service_sessions_land_on_the_timeline(
    acme_wechat, event, kind, data
):
    extra = "".join(f"<{name}><![CDATA[{value}]]></{name}>" for name, value in data.items())
    body = (
        "<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>"
        "<FromUserName><![CDATA[oCustomer0001]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event>{extra}</xml>"
    ).encode()
    assert post_push(acme_wechat, body).status_code == 200
    with tenancy.activate(acme_wechat.tenant):
        recorded = CustomerEvent.objects.get()
        assert recorded.kind == kind
        assert {name: recorded.data[name] for name in data} == data


@pytest.mark.parametrize(
    "name",
    [
        "test_parse_click_event.xml",
        "test_parse_view_event.xml",
        "test_parse_scan_event.xml",
        "test_parse_location_event.xml",
        "test_parse_submit_invoice_title_event.xml",
    ],
)
def test_menu_clicks_scans_and_other_events_are_stored_not_rejected(acme_wechat, name):
    response = post_push(acme_wechat, corpus(f"wechatpy/test_parser/{name}"))
    assert (response.status_code, response.content) == (200, b"success")
    (raw,) = stored(acme_wechat)
    assert raw.state == RawInbound.State.IGNORED
    assert raw.subject.startswith("event:")
    with tenancy.activate(acme_wechat.tenant):
        assert Ticket.objects.count() == 0


def test_a_transfer_between_customer_service_agents_is_stored_not_rejected(acme_wechat):
    body = (
        "<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>"
        "<FromUserName><![CDATA[oCustomer0001]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[kf_switch_session]]></Event>"
        "<FromKfAccount><![CDATA[kf2001@acme]]></FromKfAccount>"
        "<ToKfAccount><![CDATA[kf2002@acme]]></ToKfAccount></xml>"
    ).encode()
    assert post_push(acme_wechat, body).content == b"success"
    (raw,) = stored(acme_wechat)
    assert raw.state == RawInbound.State.IGNORED and raw.subject == "event: kf_switch_session"
    with tenancy.activate(acme_wechat.tenant):
        assert not CustomerEvent.objects.exists() and not Ticket.objects.exists()


# --- hostile and broken bodies -----------------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh_1</ToUserName><FromUserName>oX</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&secret;</Content><MsgId>1</MsgId></xml>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><ToUserName>gh_1</ToUserName><FromUserName>oX</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&lol3;</Content><MsgId>2</MsgId></xml>"""


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (XXE, 400, "xml_entities"),
        (BILLION_LAUGHS, 400, "xml_entities"),
        (b"<xml><ToUserName>", 400, "bad_xml"),
        (b'{"not": "xml"}', 400, "bad_xml"),
        (b"<root><MsgType>text</MsgType></root>", 400, "bad_xml"),
        (b"<xml><Content>no sender</Content></xml>", 400, "bad_push"),
        (text_xml("长" * 30_000), 413, "too_large"),
    ],
)
def test_hostile_or_broken_xml_gets_a_clear_4xx_and_nothing_is_stored(
    acme_wechat, body, status, code
):
    response = post_push(acme_wechat, body)
    assert response.status_code == status
    assert response.json()["code"] == code
    assert stored(acme_wechat) == []


def test_hostile_xml_inside_a_safe_mode_push_is_refused_too(acme_wechat_safe):
    query, body = encrypted_push(BILLION_LAUGHS)
    response = post_push(acme_wechat_safe, body, query)
    assert response.status_code == 400 and response.json()["code"] == "xml_entities"
    assert stored(acme_wechat_safe) == []


def test_a_wechat_address_of_a_channel_never_set_up_is_404(tenant_acme):
    with tenancy.activate(tenant_acme):
        bare = ChannelAccount.objects.create(kind="wechat", name="half done")
    assert post_push(bare, text_xml()).status_code == 404
    assert Client().get(push_url(inbound_path(bare), signed_query(echostr="1"))).status_code == 404
