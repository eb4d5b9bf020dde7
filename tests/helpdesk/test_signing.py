"""The one signing scheme of signed webhooks: what a receiver must compute, and what a signed
request we receive must carry to be believed."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from helpdesk import signing
from helpdesk.signing import SignatureRefused, sign, verify

SECRET = "whsec_acme_2026"
PREVIOUS_SECRET = "whsec_acme_2025"
TIMESTAMP = 1767225600  # 2026-01-01T00:00:00Z
BODY = '{"event":"message.created","text":"你好"}'.encode()


def signature_header(secret: str, body: bytes, timestamp: int | str) -> str:
    """The scheme, written out as a merchant's receiver would: HMAC-SHA256 over
    "<timestamp>." + body, keyed with the secret, in lowercase hex after "sha256="."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def refusal(**kwargs) -> str:
    arguments = {
        "secrets": [SECRET],
        "body": BODY,
        "timestamp": str(TIMESTAMP),
        "signature": signature_header(SECRET, BODY, TIMESTAMP),
        "now": TIMESTAMP + 1,
    }
    with pytest.raises(SignatureRefused) as refused:
        verify(**{**arguments, **kwargs})
    return refused.value.code


def test_it_signs_the_timestamp_a_dot_and_the_raw_body_with_hmac_sha256_in_lowercase_hex():
    headers = sign(SECRET, BODY, timestamp=TIMESTAMP)

    assert headers == {
        "X-Helpdesk-Timestamp": "1767225600",
        "X-Helpdesk-Signature": signature_header(SECRET, BODY, TIMESTAMP),
    }
    # The same vector, pinned, as the docs quote it.
    assert headers["X-Helpdesk-Signature"] == (
        "sha256=085b243b7d17861583ff5ddd4f74ebd1035615bcc5573652bf78a2484b625bd8"
    )


def test_it_signs_with_the_current_time_when_no_timestamp_is_given(monkeypatch):
    monkeypatch.setattr(signing.time, "time", lambda: TIMESTAMP + 0.9)

    headers = sign(SECRET, BODY)

    assert headers["X-Helpdesk-Timestamp"] == str(TIMESTAMP)
    assert headers["X-Helpdesk-Signature"] == signature_header(SECRET, BODY, TIMESTAMP)


def test_a_request_signed_with_the_current_or_the_previous_secret_is_accepted():
    for secret in (SECRET, PREVIOUS_SECRET):
        verify(
            secrets=[SECRET, PREVIOUS_SECRET],
            body=BODY,
            timestamp=str(TIMESTAMP),
            signature=signature_header(secret, BODY, TIMESTAMP),
            now=TIMESTAMP + 5,
        )


def test_a_signature_header_with_several_values_is_accepted_when_one_matches():
    header = ",".join(
        [
            signature_header("an old secret", BODY, TIMESTAMP),
            "v2=whatever-comes-next",
            " " + signature_header(SECRET, BODY, TIMESTAMP).upper().replace("SHA256", "sha256"),
        ]
    )

    verify(secrets=[SECRET], body=BODY, timestamp=str(TIMESTAMP), signature=header, now=TIMESTAMP)


def test_a_secret_that_is_no_longer_accepted_is_refused():
    assert refusal(signature=signature_header(PREVIOUS_SECRET, BODY, TIMESTAMP)) == "bad_signature"


def test_an_unset_previous_secret_never_accepts_a_request_signed_with_an_empty_key():
    assert (
        refusal(secrets=[SECRET, ""], signature=signature_header("", BODY, TIMESTAMP))
        == "bad_signature"
    )


def test_a_tampered_body_is_refused():
    tampered = BODY.replace("你好".encode(), "退款".encode())

    assert refusal(body=tampered) == "bad_signature"


def test_a_signature_for_another_timestamp_is_refused():
    assert (
        refusal(timestamp=str(TIMESTAMP + 1), signature=signature_header(SECRET, BODY, TIMESTAMP))
        == "bad_signature"
    )


@pytest.mark.parametrize(
    "header", ["sha256=", "sha256=zz", "md5=abc", "garbage", "sha256=" + "a" * 63]
)
def test_a_malformed_signature_is_refused(header):
    assert refusal(signature=header) == "bad_signature"


def test_timestamps_further_than_the_tolerance_in_the_past_or_future_are_refused():
    signed = {"timestamp": str(TIMESTAMP), "signature": signature_header(SECRET, BODY, TIMESTAMP)}

    assert refusal(now=TIMESTAMP + 301, **signed) == "stale_timestamp"
    assert refusal(now=TIMESTAMP - 301, **signed) == "stale_timestamp"
    for now in (TIMESTAMP + 300, TIMESTAMP - 300):
        verify(secrets=[SECRET], body=BODY, now=now, **signed)


def test_the_tolerance_is_the_operators_setting(settings):
    settings.HELPDESK_WEBHOOK_TOLERANCE_SECONDS = 30

    assert refusal(now=TIMESTAMP + 31) == "stale_timestamp"


def test_a_stale_timestamp_is_refused_even_when_the_signature_matches_it():
    # A captured request replayed an hour later.
    assert refusal(now=TIMESTAMP + 3600) == "stale_timestamp"


@pytest.mark.parametrize(
    "missing", [{"timestamp": None}, {"signature": None}, {"timestamp": ""}, {"signature": "  "}]
)
def test_a_request_without_the_headers_is_refused_as_unsigned(missing):
    assert refusal(**missing) == "missing_signature"


@pytest.mark.parametrize("timestamp", ["soon", "1767225600.5", "-1767225600", "١٧٦٧٢٢٥٦٠٠", "1e9"])
def test_a_timestamp_that_is_not_whole_unix_seconds_is_refused(timestamp):
    assert refusal(timestamp=timestamp) == "bad_timestamp"


def test_a_refusal_is_a_403_with_a_reason_and_its_code():
    with pytest.raises(SignatureRefused) as refused:
        verify(secrets=[SECRET], body=BODY, timestamp=None, signature=None)

    assert refused.value.status == 403
    assert refused.value.as_dict()["code"] == "missing_signature"
    assert "X-Helpdesk-Signature" in refused.value.message


def test_signing_with_an_empty_secret_is_refused():
    with pytest.raises(ValueError):
        sign("", BODY)
