"""Call events from a merchant's own PBX (Asterisk, FreeSWITCH): one JSON object per event,
posted to the phone channel's URL with ``?event=pbx`` and the channel secret (X-Helpdesk-Secret,
a Bearer token or HTTP Basic's password)::

    {"event": "ringing" | "answered" | "hung_up" | "recording_ready",
     "call_id": "1701356400.42",          # the PBX's id of the call (Asterisk's uniqueid)
     "caller": "+8613800138000",          # caller id; "anonymous" is kept per call
     "called": "+862155550100",
     "occurred_at": "2026-12-01T09:15:00+08:00",
     "answered": true,                    # hung_up: whether anyone answered (else looked up)
     "duration": 42,                      # hung_up: seconds
     "recording_id": "rec-1",             # recording_ready: the recording's id
     "recording_url": "https://pbx.example.com/rec/1.wav",
     "transcript": "..."}                 # recording_ready: optional

The delivery id is the call's id, the event and (for a recording) the recording's id, so a
redelivered event is stored once. ``ringing`` starts the call on the caller's timeline;
``hung_up`` ends it, and a call nobody answered becomes a missed-call ticket; a recording is
filed as a voicemail on the call's ticket.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.http import HttpRequest
from django.utils.translation import gettext as _

from channels_in.base import AdapterError, Refused, presented_secret, secret_accepted
from tickets.models import CustomerEvent

if TYPE_CHECKING:
    from channels_in.models import ChannelAccount
    from channels_in.phone import PhoneAdapter
    from tickets.incoming import InboundEvent, InboundMessage

EVENTS = ("ringing", "answered", "hung_up", "recording_ready")
MAX_ID_CHARS = 120


@dataclass(frozen=True)
class PbxEvent:
    event: str
    call_id: str
    caller: str
    called: str = ""
    occurred_at: datetime | None = None
    answered: bool | None = None
    duration: int = 0
    recording_id: str = ""
    recording_url: str = ""
    transcript: str = ""


def verify(account: ChannelAccount, request: HttpRequest) -> None:
    if not secret_accepted(account, presented_secret(request)):
        raise Refused(403, "bad_secret", "The channel secret is missing or wrong")


def _refused(message: str) -> AdapterError:
    return AdapterError(message, permanent=True)


def _text(document: dict[str, Any], key: str, *, limit: int, required: bool = False) -> str:
    value = document.get(key)
    if value is None:
        value = ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _refused(_("%(field)s must be a string") % {"field": key})
    value = value.strip()
    if required and not value:
        raise _refused(_("%(field)s is required") % {"field": key})
    if len(value) > limit or "\x00" in value:
        raise _refused(_("%(field)s is too long") % {"field": key})
    return value


def read(body: bytes) -> PbxEvent:
    """The event, every field checked; ``AdapterError(permanent=True)`` naming what is wrong
    (the endpoint answers it 400 before anything is stored)."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise _refused(_("The body is not JSON")) from None
    if not isinstance(document, dict):
        raise _refused(_("The body must be a JSON object"))
    event = _text(document, "event", limit=32, required=True)
    if event not in EVENTS:
        raise _refused(_("event must be one of %(events)s") % {"events": ", ".join(EVENTS)})
    occurred_at = None
    if moment := _text(document, "occurred_at", limit=64):
        try:
            occurred_at = datetime.fromisoformat(moment)
        except ValueError:
            raise _refused(_("occurred_at is not an ISO 8601 time")) from None
        if occurred_at.tzinfo is None:
            raise _refused(_("occurred_at needs a time zone offset"))
    answered = document.get("answered")
    if answered is not None and not isinstance(answered, bool):
        raise _refused(_("answered must be true or false"))
    duration = document.get("duration", 0) or 0
    if not isinstance(duration, int) or isinstance(duration, bool) or duration < 0:
        raise _refused(_("duration must be a whole number of seconds"))
    recording_url = _text(document, "recording_url", limit=2000)
    if recording_url and urlsplit(recording_url).scheme not in ("http", "https"):
        raise _refused(_("recording_url must be an http:// or https:// address"))
    if event == "recording_ready" and not recording_url:
        raise _refused(_("recording_url is required"))
    return PbxEvent(
        event=event,
        call_id=_text(document, "call_id", limit=MAX_ID_CHARS, required=True),
        caller=_text(document, "caller", limit=200),
        called=_text(document, "called", limit=200),
        occurred_at=occurred_at,
        answered=answered,
        duration=duration,
        recording_id=_text(document, "recording_id", limit=MAX_ID_CHARS),
        recording_url=recording_url,
        transcript=_text(document, "transcript", limit=4000),
    )


def recording_key(event: PbxEvent) -> str:
    return event.recording_id or hashlib.sha256(event.recording_url.encode()).hexdigest()[:24]


def delivery_id(event: PbxEvent) -> str:
    if event.event == "recording_ready":
        return f"pbx:{event.call_id}:{event.event}:{recording_key(event)}"
    return f"pbx:{event.call_id}:{event.event}"


def _happened(adapter: PhoneAdapter, event: PbxEvent, name: str) -> bool:
    """Whether the PBX told of ``name`` for this call (its ringing is where the call starts)."""
    call = f"pbx:{event.call_id}"
    return adapter.stored_steps(call, name, first=f"{call}:ringing").exists()


def parse(adapter: PhoneAdapter, event: PbxEvent) -> list[InboundMessage | InboundEvent]:
    from channels_in.phone_callers import spoken_duration

    call_id = f"pbx:{event.call_id}"
    caller = adapter.caller(event.caller, call_id)
    if event.event == "ringing":
        started = adapter.call_event(
            CustomerEvent.Kind.CALL_STARTED,
            caller,
            call_id,
            occurred_at=event.occurred_at,
            to=event.called,
        )
        return [started]
    if event.event == "answered":
        return []  # how the call ends is told by hung_up
    answered = (
        event.answered if event.answered is not None else _happened(adapter, event, "answered")
    )
    if event.event == "recording_ready":
        subject = (
            _("Recording of a call with %(caller)s") if answered else _("Voicemail from %(caller)s")
        ) % {"caller": caller.label}
        text = _("Voicemail (%(duration)s): %(url)s") % {
            "duration": spoken_duration(event.duration),
            "url": event.recording_url,
        }
        if event.transcript:
            text += "\n\n" + _("Transcript of the voicemail: %(text)s") % {"text": event.transcript}
        message = adapter.call_message(
            caller=caller,
            call_id=call_id,
            suffix=f"recording:{recording_key(event)}",
            subject=subject,
            text=text,
            sent=event.occurred_at,
            metadata={"recording_url": event.recording_url, "transcript": event.transcript},
        )
        return [message]
    # hung_up
    ended = adapter.call_event(
        CustomerEvent.Kind.CALL_ENDED,
        caller,
        call_id,
        occurred_at=event.occurred_at,
        to=event.called,
        duration_seconds=event.duration,
        answered=answered,
    )
    if answered or _happened(adapter, event, "recording_ready"):
        return [ended]
    missed = adapter.call_event(
        CustomerEvent.Kind.CALL_MISSED,
        caller,
        call_id,
        occurred_at=event.occurred_at,
        to=event.called,
        status="no-answer",
    )
    message = adapter.call_message(
        caller=caller,
        call_id=call_id,
        suffix="call",
        subject=_("Missed call from %(caller)s") % {"caller": caller.label},
        text=_("Missed call from %(caller)s (%(status)s). Call them back.")
        % {"caller": caller.label, "status": _("nobody answered")},
        sent=event.occurred_at,
        metadata={"call_status": "no-answer"},
    )
    return [message, missed]
