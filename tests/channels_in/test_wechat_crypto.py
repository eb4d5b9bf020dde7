"""The helpdesk's own WeChat signature and AES code against known answers (Tencent's official
samples, wechatpy's vectors: tests/corpus/wechat/kat.json) and against wechatpy both ways."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from wechatpy.crypto import PrpCrypto, WeChatCrypto

from channels_in.wechat_crypto import CipherError, MessageCipher, aes_key, signature
from channels_in.wechat_push import PushRefused, read_push

KAT = json.loads(
    (Path(__file__).resolve().parents[1] / "corpus" / "wechat" / "kat.json").read_text()
)


def vector(name: str) -> dict[str, Any]:
    return next(item for item in KAT if item["name"] == name)


def encrypt_of(xml: str) -> str:
    return xml.split("<Encrypt><![CDATA[", 1)[1].split("]]>", 1)[0]


@pytest.mark.parametrize("name", ["tencent_java_sample_encrypt_1", "tencent_java_sample_encrypt_2"])
def test_encryption_matches_tencents_java_sample_byte_for_byte(name):
    v = vector(name)
    cipher = MessageCipher(v["encoding_aes_key"], v["appid"])
    encrypted = cipher.encrypt(v["plaintext"].encode(), random16=v["random16"].encode())
    assert encrypted == v["expected_encrypt"]
    assert cipher.decrypt(encrypted) == v["plaintext"].encode()


def test_tencents_official_account_sample_decrypts_and_its_msg_signature_checks():
    v = vector("tencent_mp_sample_decrypt")
    encrypt = v["post_body"].split("<Encrypt><![CDATA[", 1)[1].split("]]>", 1)[0]
    assert signature(v["token"], v["timestamp"], v["nonce"], encrypt) == v["msg_signature"]
    plain = MessageCipher(v["encoding_aes_key"], v["appid"]).decrypt(encrypt)
    assert plain.decode() == v["expected_plaintext"]


def test_wecoms_vectors_use_the_same_scheme_with_the_corp_id():
    v = vector("wechatpy_work_decrypt")
    encrypt = v["post_body"].split("<Encrypt><![CDATA[", 1)[1].split("]]>", 1)[0]
    assert signature(v["token"], v["timestamp"], v["nonce"], encrypt) == v["msg_signature"]
    cipher = MessageCipher(v["encoding_aes_key"], v["corp_id"])
    assert cipher.decrypt(encrypt).decode() == v["expected_plaintext"]

    reply = vector("wechatpy_work_encrypt_reply")
    cipher = MessageCipher(reply["encoding_aes_key"], reply["corp_id"])
    encrypted = cipher.encrypt(reply["plaintext"].encode(), random16=reply["random16"].encode())
    assert encrypted == reply["expected_encrypt"]
    expected = reply["expected_msg_signature"]
    assert signature(reply["token"], reply["timestamp"], reply["nonce"], encrypted) == expected

    echo = vector("wechatpy_work_verify_url_echostr")
    assert (
        signature(echo["token"], echo["timestamp"], echo["nonce"], echo["echostr"])
        == echo["msg_signature"]
    )
    negative = echo["negative_case"]["nonce"]
    assert (
        signature(echo["token"], echo["timestamp"], negative, echo["echostr"])
        != (echo["msg_signature"])
    )
    echoed = MessageCipher(echo["encoding_aes_key"], echo["corp_id"]).decrypt(echo["echostr"])
    assert echoed.decode() == echo["expected_echo_plaintext"]


def test_the_plain_mode_signature_vector():
    v = vector("plain_mode_signature_selfcomputed")
    assert signature(v["token"], v["timestamp"], v["nonce"]) == v["expected_signature"]


def test_what_wechatpy_encrypts_the_helpdesk_decrypts_and_the_other_way():
    v = vector("tencent_java_sample_encrypt_1")
    theirs = WeChatCrypto(v["token"], v["encoding_aes_key"], v["appid"])
    envelope = theirs.encrypt_message("<xml><Content>退货</Content></xml>", "123", "1700000000")
    ours = MessageCipher(v["encoding_aes_key"], v["appid"])
    assert ours.decrypt(encrypt_of(envelope)).decode() == "<xml><Content>退货</Content></xml>"

    encrypted = ours.encrypt("我们的回复".encode())
    key = aes_key(v["encoding_aes_key"])
    assert PrpCrypto(key).decrypt(encrypted, v["appid"]) == "我们的回复"


def test_a_message_for_another_appid_or_garbage_is_refused():
    v = vector("tencent_java_sample_encrypt_1")
    encrypted = MessageCipher(v["encoding_aes_key"], v["appid"]).encrypt(b"<xml/>")
    with pytest.raises(CipherError, match="another AppID"):
        MessageCipher(v["encoding_aes_key"], "wx0000000000000001").decrypt(encrypted)
    for garbage in ("not base64!", "", "AAAA", encrypted[:-8] + "AAAAAAA="):
        with pytest.raises(CipherError):
            MessageCipher(v["encoding_aes_key"], v["appid"]).decrypt(garbage)


@pytest.mark.parametrize("key", ["short", "a" * 44, "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF!"])
def test_an_encoding_aes_key_that_is_not_43_letters_and_digits_is_refused(key):
    with pytest.raises(ValueError):
        aes_key(key)


def test_an_encrypted_push_without_a_key_or_encrypt_field_is_refused():
    with pytest.raises(PushRefused) as no_key:
        read_push(b"<xml><Encrypt>x</Encrypt></xml>", encrypted=True, cipher=None)
    assert no_key.value.status == 403
    with pytest.raises(PushRefused) as no_field:
        read_push(
            b"<xml><ToUserName>gh</ToUserName></xml>",
            encrypted=True,
            cipher=MessageCipher("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx1"),
        )
    assert no_field.value.code == "bad_xml"
