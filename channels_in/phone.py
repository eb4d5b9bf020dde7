"""The phone channel: Twilio-compatible voice webhooks and a PBX call-event webhook.

Every request reaches ``/inbound/<merchant>/phone/<channel id>/?event=<step>``, one step of a
call each (the settings page lists the URLs to paste into Twilio):

- ``voice``: a call comes in. Answered at once with TwiML in the merchant's language: the
  greeting, then the on-duty agents' phones rung together (``phone_lines.on_duty``), or a
  voicemail out of hours or when nobody is on duty. The call starts on the caller's timeline.
- ``dial``: how ringing the agents went; nobody answered: a voicemail.
- ``recorded``, ``recording``: the voicemail (the <Record> action and the recording status
  callback, whichever comes first files it; the other is recognised by the message's id).
- ``transcription``: the voicemail's transcript, filed on the voicemail's ticket.
- ``status``: the call ended. A missed call (no-answer, busy, failed, canceled) and an
  abandoned one (the caller hung up before anyone answered or a message was left) become
  tickets; an answered call, or one that left a voicemail, ends on the timeline.
- ``pbx``: a JSON call event from the merchant's own PBX (``channels_in.phone_events``).

Twilio's requests are verified with X-Twilio-Signature on every step (``phone_twiml``, which
also writes the TwiML); the PBX's with the channel secret. What each callback files is in
``phone_callbacks``; the caller and the steps' words in ``phone_callers``. Each step's delivery id is the call's id, the step and its
status, recording or transcription id, so a redelivered callback is stored once.

A call has no text channel back: replies on a phone ticket are refused with why, and agents
log a call-back (``channels_in.phone_calls``) or write on another channel the customer has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest
from django.utils import translation
from django.utils.translation import gettext as _

from channels_in import phone_callbacks, phone_events, phone_lines, phone_twiml
from channels_in.base import (
    Adapter,
    AdapterError,
    Answer,
    Envelope,
    InboundEvent,
    InboundMessage,
    Refused,
)
from channels_in.models import PhoneLine, RawInbound
from channels_in.phone_callers import (
    ANSWERED_DIAL,
    DIAL,
    PBX,
    RECORDED,
    RECORDING,
    STATUS,
    TEXT_CHARS,
    TRANSCRIPTION,
    TWILIO_STEPS,
    VOICE,
    Caller,
    field,
    sent_at,
    step_of,
)
from helpdesk.errors import BadInput
from tickets.models import CustomerEvent, IdentityKind, Message

if TYPE_CHECKING:
    from datetime import datetime

    from django.db.models import QuerySet

    from channels_in.models import ChannelAccount


class PhoneAdapter(Adapter):
    """Voice webhooks in, TwiML out; replies are calls, which agents log."""

    kind = "phone"
    max_body_bytes = 256 * 1024

    def __init__(self, account: ChannelAccount) -> None:
        super().__init__(account)
        self._line: PhoneLine | None = None
        self._url = ""
        self._envelope: Envelope | None = None

    def line(self) -> PhoneLine:
        if self._line is None:
            self._line = (
                PhoneLine.objects.select_related("group").filter(account=self.account).first()
            )
        if self._line is None:
            raise AdapterError(_("The phone channel has no phone line set up"), permanent=True)
        return self._line

    # --- the request ---

    def verify(self, request: HttpRequest) -> None:
        step = request.GET.get("event", "")
        self._url = request.build_absolute_uri()
        if step == PBX:
            phone_events.verify(self.account, request)
            return
        try:
            token = phone_lines.auth_token(self.line())
        except AdapterError:
            token = ""
        if not token:
            raise Refused(
                403, "not_configured", "This phone channel has no Twilio auth token to check with"
            )
        signed = phone_twiml.signature_valid(
            auth_token=token,
            url=self._url,
            params=[(key, value) for key, values in request.POST.lists() for value in values],
            signature=request.headers.get(phone_twiml.SIGNATURE_HEADER, ""),
            body=request.body,
        )
        if not signed:
            raise Refused(403, "bad_signature", "The X-Twilio-Signature does not match")
        if step not in TWILIO_STEPS:
            raise Refused(400, "unknown_event", f"Unknown event {step!r}: use ?event=voice etc.")

    def envelope(self, request: HttpRequest) -> Envelope:
        envelope = Envelope.from_request(request, headers=(phone_twiml.SIGNATURE_HEADER,))
        if step_of(envelope) != PBX:
            form = {key: request.POST.getlist(key) for key in request.POST}
            envelope = Envelope(
                body=envelope.body,
                method=envelope.method,
                headers=envelope.headers,
                query=envelope.query,
                form=form,
            )
        self._envelope = envelope
        return envelope

    def answer(self, raw: RawInbound, created: bool) -> Answer:
        """Twilio's steps are answered with TwiML (the call goes on as it says); the PBX's
        events like any other delivery."""
        envelope = self._envelope or Envelope.stored(bytes(raw.payload), raw.envelope)
        step = step_of(envelope)
        if step == PBX:
            return super().answer(raw, created)
        with translation.override(self.account.tenant.locale):
            body = self.twiml(step, envelope)
        return Answer(200, body, "text/xml; charset=utf-8")

    def twiml(self, step: str, envelope: Envelope) -> bytes:
        line = self.line()
        locale = self.account.tenant.locale
        language = phone_twiml.say_language(locale)
        if step == VOICE:
            duty = phone_lines.on_duty(line)
            greeting = phone_lines.greeting(line, locale)
            if duty.numbers:
                return phone_twiml.dial_agents(
                    greeting=greeting,
                    language=language,
                    numbers=duty.numbers,
                    action_url=self.step_url(DIAL),
                    timeout=line.ring_seconds,
                    caller_id=line.number,
                )
            prompt = (
                _("Nobody can take your call right now. Please leave a message after the tone.")
                if duty.open
                else _("We are closed right now. Please leave a message after the tone.")
            )
            return phone_twiml.take_voicemail(
                greeting=greeting, prompt=prompt, language=language, recording=self.recording()
            )
        if step == DIAL:
            if field(envelope, "DialCallStatus") in ANSWERED_DIAL:
                return phone_twiml.say_goodbye(text="", language=language)
            return phone_twiml.take_voicemail(
                greeting="",
                prompt=_("Sorry, nobody could answer. Please leave a message after the tone."),
                language=language,
                recording=self.recording(),
            )
        if step == RECORDED:
            return phone_twiml.say_goodbye(
                text=_("Thank you. We will call you back. Goodbye."), language=language
            )
        return phone_twiml.nothing_more()

    def step_url(self, step: str) -> str:
        """This channel's URL for one step, on the host Twilio reached us at."""
        base = self._url.split("?", 1)[0]
        return f"{base}?event={step}"

    def recording(self) -> phone_twiml.Recording:
        return phone_twiml.Recording(
            action_url=self.step_url(RECORDED),
            transcription_url=self.step_url(TRANSCRIPTION),
            recording_status_url=self.step_url(RECORDING),
        )

    # --- the stored delivery ---

    def delivery_id(self, envelope: Envelope) -> str:
        step = step_of(envelope)
        if step == PBX:
            return phone_events.delivery_id(phone_events.read(envelope.body))
        sid = field(envelope, "CallSid")
        if not sid:
            raise AdapterError(_("The request names no call (CallSid)"), permanent=True)
        detail = {
            VOICE: "",
            DIAL: field(envelope, "DialCallStatus"),
            RECORDED: field(envelope, "RecordingSid"),
            RECORDING: f"{field(envelope, 'RecordingSid')}:{field(envelope, 'RecordingStatus')}",
            TRANSCRIPTION: field(envelope, "TranscriptionSid"),
            STATUS: field(envelope, "CallStatus"),
        }.get(step, "")
        return f"{sid}:{step}:{detail}" if detail else f"{sid}:{step}"

    def summarise(self, envelope: Envelope) -> tuple[str, str]:
        step = step_of(envelope)
        if step == PBX:
            try:
                event = phone_events.read(envelope.body)
            except AdapterError:
                return "", ""
            return event.caller, f"pbx {event.event}"
        status = field(envelope, "CallStatus") or field(envelope, "DialCallStatus")
        return field(envelope, "From"), f"{step} {status}".strip()

    def parse(self, envelope: Envelope) -> list[InboundMessage | InboundEvent]:
        with translation.override(self.account.tenant.locale):
            step = step_of(envelope)
            if step == PBX:
                return phone_events.parse(self, phone_events.read(envelope.body))
            sid = field(envelope, "CallSid")
            if step == VOICE:
                caller = self.caller(field(envelope, "From"), sid)
                started = self.call_event(
                    CustomerEvent.Kind.CALL_STARTED,
                    caller,
                    sid,
                    occurred_at=sent_at(envelope),
                    to=field(envelope, "To"),
                )
                return [started]
            if step in (RECORDED, RECORDING):
                return phone_callbacks.voicemail(self, envelope, sid, step)
            if step == TRANSCRIPTION:
                return phone_callbacks.transcript(self, envelope, sid)
            if step == STATUS:
                return phone_callbacks.call_ended(self, envelope, sid)
            return []  # ``dial``: steers the call; the status callback tells how it ended

    # --- what each step files ---

    def caller(self, raw: str, call_id: str) -> Caller:
        return Caller(raw, call_id=call_id, region=self.account.tenant.phone_region)

    def stored_id(self, provider_id: str) -> str:
        """Messages and events are filed under the channel's id and the call's: two phone
        channels of one merchant never shadow each other."""
        return f"{self.account.pk}:{provider_id}"

    def call_event(
        self,
        kind: str,
        caller: Caller,
        call_id: str,
        *,
        occurred_at: datetime | None,
        to: str,
        **data: object,
    ) -> InboundEvent:
        """A step of the call on the caller's timeline (started, ended, missed)."""
        return InboundEvent(
            channel=self.kind,
            external_id=self.stored_id(f"{call_id}:{kind}"),
            kind=kind,
            sender_kind=caller.identity.kind,
            sender_value=caller.identity.value,
            sender_name=caller.label if caller.identity.kind != IdentityKind.PHONE else "",
            conversation_id=call_id,
            occurred_at=occurred_at,
            data={"caller": caller.raw, "to": to, **data},
        )

    def call_message(
        self,
        *,
        caller: Caller,
        call_id: str,
        suffix: str,
        subject: str,
        text: str,
        sent: datetime | None = None,
        metadata: dict[str, object] | None = None,
    ) -> InboundMessage:
        """A message on the call's ticket: the call's id is its conversation, so the voicemail,
        its transcript and the missed call of one call land on one ticket."""
        return InboundMessage(
            channel=self.kind,
            external_id=self.stored_id(f"{call_id}:{suffix}"),
            sender_kind=caller.identity.kind,
            sender_value=caller.identity.value,
            sender_name=caller.label if caller.identity.kind != IdentityKind.PHONE else "",
            conversation_id=call_id,
            subject=subject,
            text=text[:TEXT_CHARS],
            full_text=text[:TEXT_CHARS],
            sent_at=sent,
            metadata={"call_sid": call_id, "caller": caller.raw, **(metadata or {})},
        )

    def earlier_step(self, call_id: str, step: str) -> list[Envelope]:
        """What an earlier step of this call delivered (stored before anything else, so a
        later callback can tell how the call went)."""
        return [
            Envelope.stored(bytes(row.payload), row.envelope)
            for row in self.stored_steps(call_id, step, first=f"{call_id}:{VOICE}")
        ]

    def stored_steps(self, call_id: str, step: str, *, first: str) -> QuerySet[RawInbound]:
        """The call's stored deliveries of ``step`` (their ids start with the call's and the
        step's). Looked for from the call's ``first`` delivery on, by its exact id: a prefix
        alone cannot use the index under every collation, and a line takes many calls."""
        rows = RawInbound.objects.filter(
            account=self.account, external_id__startswith=f"{call_id}:{step}"
        ).order_by("pk")
        start = (
            RawInbound.objects.filter(account=self.account, external_id=first)
            .values_list("pk", flat=True)
            .first()
        )
        return rows.filter(pk__gte=start) if start is not None else rows

    def caller_of_call(self, envelope: Envelope, call_id: str) -> Caller:
        """The caller: the request's own From, else the From of the call's first request (the
        recording status callback carries none)."""
        raw = field(envelope, "From")
        if not raw:
            earlier = self.earlier_step(call_id, VOICE) + self.earlier_step(call_id, RECORDED)
            raw = next((field(e, "From") for e in earlier if field(e, "From")), "")
        if not raw:
            # The call's first request may still be on its way: try again later.
            raise AdapterError(_("The call %(call)s is not known yet") % {"call": call_id})
        return self.caller(raw, call_id)

    # --- replies ---

    def prepare_reply(self, message: Message) -> None:
        raise BadInput(
            _(
                "a call has no text channel back. Log your call-back below, or write to the "
                "customer on another channel they have."
            )
        )

    def send(self, message: Message) -> str:
        raise AdapterError(_("Replies cannot be sent on a phone line"), permanent=True)
