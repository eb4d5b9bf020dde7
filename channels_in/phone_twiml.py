"""Twilio's side of the phone channel: the X-Twilio-Signature check and the TwiML answers.

Twilio signs every webhook with the account's auth token: HMAC-SHA1 over the full URL it
requested followed by each POST parameter's name and value, sorted, base64-encoded
(https://www.twilio.com/docs/usage/webhooks/webhooks-security). The check is written here,
mirroring twilio-python's ``RequestValidator`` (tests sign with that one): sorted pairs, identical
pairs once, and the URL accepted with or without its scheme's default port.

The answers are TwiML (https://www.twilio.com/docs/voice/twiml), built with ElementTree so text
a merchant typed (the greeting) is escaped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit
from xml.etree import ElementTree

SIGNATURE_HEADER = "X-Twilio-Signature"
# What <Say> is told per interface language (Twilio's language codes).
SAY_LANGUAGES = {"zh-hans": "zh-CN", "en": "en-US"}
# Twilio transcribes recordings of up to two minutes.
VOICEMAIL_MAX_SECONDS = 120


def twilio_signature(*, auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The X-Twilio-Signature Twilio sends for a request to ``url`` with these form fields."""
    pairs = {(str(key), str(value)) for key, value in params}
    text = url + "".join(key + value for key, value in sorted(pairs))
    digest = hmac.new(auth_token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> list[str]:
    """The URL as requested, without its default port and with it (Twilio signs what it was
    given, and a proxy may add or drop ``:443``)."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    variants = [url]
    if parts.port is not None and parts.port == default:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}")))
    elif parts.port is None and default is not None:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
    return variants


def signature_valid(
    *, auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str, body: bytes
) -> bool:
    """Whether ``signature`` is Twilio's for this request. A JSON-bodied webhook is signed over
    its URL alone, with the body's SHA-256 in the URL's ``bodySHA256`` parameter."""
    if not auth_token or not signature:
        return False
    pairs = list(params)
    query = dict(part.partition("=")[::2] for part in urlsplit(url).query.split("&") if part)
    if "bodySHA256" in query:
        expected_body = hashlib.sha256(body).hexdigest()
        if not hmac.compare_digest(expected_body, query["bodySHA256"]):
            return False
        pairs = []
    found = False
    for candidate in _url_variants(url):
        expected = twilio_signature(auth_token=auth_token, url=candidate, params=pairs)
        # Every variant is compared, in constant time, whatever an earlier one said.
        found = hmac.compare_digest(expected, signature) or found
    return found


# --- TwiML -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """Where Twilio posts what becomes of a voicemail."""

    action_url: str
    transcription_url: str
    recording_status_url: str


def say_language(locale: str) -> str:
    return SAY_LANGUAGES.get(locale, SAY_LANGUAGES["en"])


def _document(root: ElementTree.Element) -> bytes:
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def _say(parent: ElementTree.Element, text: str, language: str) -> None:
    if text.strip():
        ElementTree.SubElement(parent, "Say", language=language).text = text.strip()


def _record(parent: ElementTree.Element, recording: Recording) -> None:
    ElementTree.SubElement(
        parent,
        "Record",
        action=recording.action_url,
        method="POST",
        maxLength=str(VOICEMAIL_MAX_SECONDS),
        playBeep="true",
        transcribe="true",
        transcribeCallback=recording.transcription_url,
        recordingStatusCallback=recording.recording_status_url,
        recordingStatusCallbackEvent="completed absent",
    )


def dial_agents(
    *,
    greeting: str,
    language: str,
    numbers: list[str],
    action_url: str,
    timeout: int,
    caller_id: str = "",
) -> bytes:
    """Greet the caller and ring every number at once; Twilio then posts the outcome (answered
    or not) to ``action_url``."""
    root = ElementTree.Element("Response")
    _say(root, greeting, language)
    attributes = {"action": action_url, "method": "POST", "timeout": str(timeout)}
    if caller_id:
        attributes["callerId"] = caller_id
    dial = ElementTree.SubElement(root, "Dial", **attributes)
    for number in numbers:
        ElementTree.SubElement(dial, "Number").text = number
    return _document(root)


def take_voicemail(*, greeting: str, prompt: str, language: str, recording: Recording) -> bytes:
    """Greet (if given), ask for a message after the tone and record it, transcribed."""
    root = ElementTree.Element("Response")
    _say(root, greeting, language)
    _say(root, prompt, language)
    _record(root, recording)
    return _document(root)


def say_goodbye(*, text: str, language: str) -> bytes:
    root = ElementTree.Element("Response")
    _say(root, text, language)
    ElementTree.SubElement(root, "Hangup")
    return _document(root)


def nothing_more() -> bytes:
    """The answer to a callback that only reports: an empty response."""
    return _document(ElementTree.Element("Response"))
