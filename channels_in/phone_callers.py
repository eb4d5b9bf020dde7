"""The words of the phone channel shared by its modules: the steps of a Twilio call, reading
a callback's fields, and the caller as a customer's identity."""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime

import phonenumbers
from django.utils.translation import gettext as _

from channels_in.base import Envelope, Identity
from helpdesk.errors import BadInput
from tickets.models import IdentityKind
from tickets.services import normalise_identity

VOICE, DIAL, RECORDED, RECORDING, TRANSCRIPTION, STATUS, PBX = (
    "voice",
    "dial",
    "recorded",
    "recording",
    "transcription",
    "status",
    "pbx",
)
TWILIO_STEPS = (VOICE, DIAL, RECORDED, RECORDING, TRANSCRIPTION, STATUS)
# A call's final statuses; the others (queued, ringing, in-progress) change nothing here.
MISSED_STATUSES = {"no-answer", "busy", "failed", "canceled"}
ANSWERED_DIAL = {"completed", "answered"}
# Caller ids that name nobody: each such call is a customer of its own.
WITHHELD = {"", "anonymous", "restricted", "unknown", "blocked", "private", "unavailable"}
TEXT_CHARS = 4000


def step_of(envelope: Envelope) -> str:
    return (envelope.query.get("event") or [""])[0]


def field(envelope: Envelope, name: str) -> str:
    return (envelope.form.get(name) or [""])[0].strip()


def spoken_duration(seconds: int) -> str:
    minutes, seconds = divmod(max(seconds, 0), 60)
    return f"{minutes}:{seconds:02d}"


def seconds_of(value: str) -> int:
    return int(value) if value.isdigit() else 0


class Caller:
    """Who called, as the customer's identity: an E.164 number (the merchant's region read as
    the default), else the raw id kept as it came ("client:alice", a SIP address), else a
    withheld number, which names nobody and is kept per call."""

    def __init__(self, raw: str, *, call_id: str, region: str) -> None:
        self.raw = raw.strip()
        self.identity: Identity
        self.label = self.raw
        if self.raw.lower() in WITHHELD:
            self.identity = Identity(IdentityKind.EXTERNAL, f"anonymous:{call_id}")
            self.label = _("a withheld number")
            return
        if not self.raw.lower().startswith(("client:", "sip:")):
            try:
                e164 = normalise_identity(kind=IdentityKind.PHONE, value=self.raw, region=region)
            except BadInput:
                pass
            else:
                self.identity = Identity(IdentityKind.PHONE, e164)
                self.label = phonenumbers.format_number(
                    phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL
                )
                return
        self.identity = Identity(IdentityKind.EXTERNAL, self.raw[:200])


def sent_at(envelope: Envelope) -> datetime | None:
    """When Twilio says the callback happened (its ``Timestamp``), if it says."""
    value = field(envelope, "Timestamp")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
