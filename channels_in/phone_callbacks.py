"""What each Twilio callback of a call files (``channels_in.phone``): the voicemail, its
transcript, and how the call ended (answered, with a voicemail, missed or abandoned).

A later callback tells how the call went from what the call's earlier callbacks delivered
(stored before anything else): the dial outcome, the recording.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from channels_in.base import Envelope, InboundEvent, InboundMessage
from channels_in.phone_callers import (
    ANSWERED_DIAL,
    DIAL,
    MISSED_STATUSES,
    RECORDED,
    RECORDING,
    field,
    seconds_of,
    sent_at,
    spoken_duration,
)
from tickets.models import CustomerEvent

if TYPE_CHECKING:
    from channels_in.phone import PhoneAdapter


def voicemail(
    adapter: PhoneAdapter, envelope: Envelope, call_id: str, step: str
) -> list[InboundMessage]:
    url = field(envelope, "RecordingUrl")
    seconds = seconds_of(field(envelope, "RecordingDuration"))
    status = field(envelope, "RecordingStatus")
    if not url or seconds <= 0 or (step == RECORDING and status != "completed"):
        return []  # an empty or failed recording: the status callback files the call
    caller = adapter.caller_of_call(envelope, call_id)
    return [
        adapter.call_message(
            caller=caller,
            call_id=call_id,
            suffix="voicemail",
            subject=_("Voicemail from %(caller)s") % {"caller": caller.label},
            text=_("Voicemail (%(duration)s): %(url)s")
            % {"duration": spoken_duration(seconds), "url": url},
            metadata={
                "recording_url": url,
                "recording_sid": field(envelope, "RecordingSid"),
                "recording_seconds": seconds,
            },
        )
    ]


def transcript(adapter: PhoneAdapter, envelope: Envelope, call_id: str) -> list[InboundMessage]:
    text = field(envelope, "TranscriptionText")
    if field(envelope, "TranscriptionStatus") != "completed" or not text:
        return []  # the recording itself is on the ticket already
    caller = adapter.caller_of_call(envelope, call_id)
    return [
        adapter.call_message(
            caller=caller,
            call_id=call_id,
            suffix=f"transcript:{field(envelope, 'TranscriptionSid')}",
            subject=_("Voicemail from %(caller)s") % {"caller": caller.label},
            text=_("Transcript of the voicemail: %(text)s") % {"text": text},
            metadata={
                "transcript": text,
                "recording_url": field(envelope, "RecordingUrl"),
                "transcription_sid": field(envelope, "TranscriptionSid"),
            },
        )
    ]


def call_ended(
    adapter: PhoneAdapter, envelope: Envelope, call_id: str
) -> list[InboundMessage | InboundEvent]:
    status = field(envelope, "CallStatus")
    seconds = seconds_of(field(envelope, "CallDuration"))
    caller = adapter.caller_of_call(envelope, call_id)
    answered = any(
        field(e, "DialCallStatus") in ANSWERED_DIAL for e in adapter.earlier_step(call_id, DIAL)
    )
    moment, to = sent_at(envelope), field(envelope, "To")
    ended = adapter.call_event(
        CustomerEvent.Kind.CALL_ENDED,
        caller,
        call_id,
        occurred_at=moment,
        to=to,
        status=status,
        duration_seconds=seconds,
        answered=answered,
    )
    if status in MISSED_STATUSES:
        missed = adapter.call_event(
            CustomerEvent.Kind.CALL_MISSED,
            caller,
            call_id,
            occurred_at=moment,
            to=to,
            status=status,
        )
        message = adapter.call_message(
            caller=caller,
            call_id=call_id,
            suffix="call",
            subject=_("Missed call from %(caller)s") % {"caller": caller.label},
            text=_("Missed call from %(caller)s (%(status)s). Call them back.")
            % {"caller": caller.label, "status": status},
            sent=moment,
            metadata={"call_status": status},
        )
        return [message, missed]
    if status != "completed":
        return []
    if answered or voicemail_left(adapter, call_id):
        return [ended]
    message = adapter.call_message(
        caller=caller,
        call_id=call_id,
        suffix="call",
        subject=_("Abandoned call from %(caller)s") % {"caller": caller.label},
        text=_(
            "%(caller)s hung up after %(duration)s, before anyone answered or a message "
            "was left. Call them back."
        )
        % {"caller": caller.label, "duration": spoken_duration(seconds)},
        sent=moment,
        metadata={"call_status": "abandoned", "call_seconds": seconds},
    )
    return [message, ended]


def voicemail_left(adapter: PhoneAdapter, call_id: str) -> bool:
    recorded = adapter.earlier_step(call_id, RECORDED) + adapter.earlier_step(call_id, RECORDING)
    return any(
        seconds_of(field(e, "RecordingDuration")) > 0
        and field(e, "RecordingStatus") in ("", "completed")
        for e in recorded
    )
