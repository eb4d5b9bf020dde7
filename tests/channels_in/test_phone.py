"""The phone channel through its real endpoint (/inbound/<merchant>/phone/<id>/?event=...) and
the pipeline, with Twilio played by the tests: the corpus's requests, signed with twilio's own
RequestValidator (not with the helpdesk's code). PBX call events are in test_phone_pbx.py, call
logs and call-backs in test_phone_calls.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest
from django.test import Client
from twilio.request_validator import RequestValidator

from channels_in import crypto, pipeline
from channels_in.models import ChannelAccount, PhoneLine, RawInbound
from channels_in.outbound import reply_recipient
from channels_in.phone_twiml import signature_valid
from helpdesk import tenancy
from helpdesk.errors import BadInput
from helpdesk.models import Membership, Tenant
from tests.conftest import acting, login
from tickets.models import (
    AgentPresence,
    CustomerEvent,
    CustomerIdentity,
    Group,
    GroupMember,
    Message,
    Ticket,
)

pytestmark = pytest.mark.django_db(transaction=True)

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "twilio"
TOKEN = "auth-token-of-the-merchants-twilio-account"
CALL = "CAa1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4"  # the corpus's call
CALLER = "+8613800138000"


def corpus_form(name: str, **changes: str) -> dict[str, str]:
    """A synthesized request's form fields, with ``changes`` (a field set to None is dropped)."""
    form = dict(json.loads((CORPUS / "synthesized" / f"{name}.json").read_text())["form"])
    for key, value in changes.items():
        if value is None:
            form.pop(key, None)
        else:
            form[key] = value
    return form


def phone_line(tenant: Tenant, *, token: str = TOKEN, **fields: Any) -> ChannelAccount:
    with tenancy.activate(tenant):
        account = ChannelAccount.objects.create(kind="phone", name="Hotline")
        PhoneLine.objects.create(
            account=account,
            number=fields.pop("number", "+14155550100"),
            auth_token_encrypted=crypto.encrypt_secret(token),
            **fields,
        )
        return account


def path_of(account: ChannelAccount, step: str, tenant_slug: str | None = None) -> str:
    return f"/inbound/{tenant_slug or account.tenant.slug}/phone/{account.pk}/?event={step}"


def post_twilio(
    account: ChannelAccount,
    step: str,
    form: dict[str, str],
    *,
    token: str = TOKEN,
    signature: str | None = None,
    signed_url: str | None = None,
    tenant_slug: str | None = None,
) -> Any:
    """POST a form as Twilio does, signed over the full URL with twilio's RequestValidator."""
    path = path_of(account, step, tenant_slug)
    url = signed_url or f"http://testserver{path}"
    if signature is None:
        signature = RequestValidator(token).compute_signature(url, form)
    return Client().post(
        path,
        urlencode(form),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )


def post_pbx(account: ChannelAccount, event: dict[str, Any], *, secret: str | None = None) -> Any:
    return Client().post(
        path_of(account, "pbx"),
        json.dumps(event),
        content_type="application/json",
        HTTP_X_HELPDESK_SECRET=account.inbound_secret if secret is None else secret,
    )


def twiml(response: Any) -> ElementTree.Element:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/xml")
    return ElementTree.fromstring(response.content)


def on_duty(tenant: Tenant, user: Any, phone: str) -> None:
    """``user`` online, in the merchant's default group, with ``phone`` in their profile."""
    with tenancy.activate(tenant):
        group = Group.objects.filter(is_default=True).first() or Group.objects.create(
            name="Support", is_default=True
        )
        GroupMember.objects.get_or_create(group=group, user=user)
        AgentPresence.objects.update_or_create(
            user=user, defaults={"status": AgentPresence.Status.ONLINE}
        )
    Membership.objects.filter(tenant=tenant, user=user).update(phone=phone)


def closed_default_group(tenant: Tenant) -> None:
    with tenancy.activate(tenant):
        Group.objects.update_or_create(
            name="Support",
            defaults={
                "is_default": True,
                "always_open": False,
                "weekly_hours": [[] for _day in range(7)],
            },
        )


@pytest.fixture
def acme_phone(tenant_acme) -> ChannelAccount:
    return phone_line(tenant_acme, number="+862155550100")


@pytest.fixture
def globex_phone(tenant_globex) -> ChannelAccount:
    return phone_line(tenant_globex)


def tickets_of(tenant: Tenant) -> list[Ticket]:
    with tenancy.activate(tenant):
        return list(Ticket.objects.order_by("pk"))


def messages_of(ticket: Ticket) -> list[str]:
    with tenancy.activate(ticket.tenant):
        return list(ticket.messages.order_by("pk").values_list("body_text", flat=True))


def events_of(tenant: Tenant) -> list[tuple[str, dict[str, Any]]]:
    with tenancy.activate(tenant):
        return list(CustomerEvent.objects.order_by("pk").values_list("kind", "data"))


# --- the signature -----------------------------------------------------------------------------


def test_the_signature_check_agrees_with_every_known_answer_vector():
    vectors = json.loads((CORPUS / "kat.json").read_text())
    for vector in vectors:
        pairs = [tuple(p) for p in vector.get("form_pairs", [])] or list(
            vector.get("form", {}).items()
        )
        signature = vector.get("expected") or vector["expected_variant_signature"]
        body = vector.get("raw_body", "").encode()
        assert signature_valid(
            auth_token=vector["auth_token"],
            url=vector["url"],
            params=pairs,
            signature=signature,
            body=body,
        ), vector["name"]
        assert not signature_valid(
            auth_token="another-token",
            url=vector["url"],
            params=pairs,
            signature=signature,
            body=body,
        ), vector["name"]
    for signed in sorted((CORPUS / "synthesized").glob("*.signed.json")):
        request = json.loads(signed.read_text())
        form = list(request["form"].items())
        signature = request["headers"]["X-Twilio-Signature"]
        assert signature_valid(
            auth_token=request["auth_token"],
            url=request["url"],
            params=form,
            signature=signature,
            body=b"",
        ), signed.name
        tampered = [*form, ("Digits", "9")]
        assert not signature_valid(
            auth_token=request["auth_token"],
            url=request["url"],
            params=tampered,
            signature=signature,
            body=b"",
        ), signed.name


@pytest.mark.parametrize(
    "step", ["voice", "dial", "recorded", "recording", "transcription", "status"]
)
def test_every_step_with_a_bad_signature_is_refused_403_and_nothing_is_stored(acme_phone, step):
    form = corpus_form("07_call_status_completed")
    forged = RequestValidator("not-the-merchants-token").compute_signature(
        f"http://testserver{path_of(acme_phone, step)}", form
    )
    assert post_twilio(acme_phone, step, form, signature=forged).status_code == 403
    assert post_twilio(acme_phone, step, form, signature="").status_code == 403
    # Signed for another step's URL: the URL is part of what is signed.
    other = "status" if step != "status" else "voice"
    moved = post_twilio(
        acme_phone, step, form, signed_url=f"http://testserver{path_of(acme_phone, other)}"
    )
    assert moved.status_code == 403
    assert moved.json()["code"] == "bad_signature"
    with tenancy.activate(acme_phone.tenant):
        assert RawInbound.objects.count() == 0


def test_a_line_without_an_auth_token_refuses_twilio(tenant_acme):
    account = phone_line(tenant_acme, token="")
    response = post_twilio(account, "voice", corpus_form("01_incoming_call"), token="")
    assert response.status_code == 403 and response.json()["code"] == "not_configured"


def test_another_merchants_phone_channel_is_404(acme_phone, globex_phone):
    form = corpus_form("01_incoming_call")
    response = post_twilio(globex_phone, "voice", form, tenant_slug="acme")
    assert response.status_code == 404
    assert tickets_of(globex_phone.tenant) == [] and events_of(acme_phone.tenant) == []


# --- answering a call ----------------------------------------------------------------------------


def test_an_incoming_call_rings_the_on_duty_agents_in_chinese(
    acme_phone, agent_li, supervisor_wang
):
    on_duty(acme_phone.tenant, agent_li, "+8613900139000")
    on_duty(acme_phone.tenant, supervisor_wang, "+8613700137000")
    with tenancy.activate(acme_phone.tenant):  # online but away from the group: not rung
        AgentPresence.objects.filter(user=supervisor_wang).update(status="away")
    root = twiml(post_twilio(acme_phone, "voice", corpus_form("01_incoming_call")))
    say, dial = root.find("Say"), root.find("Dial")
    assert say.get("language") == "zh-CN"
    assert say.text == "感谢致电 Acme 家电。"
    assert [n.text for n in dial.findall("Number")] == ["+8613900139000"]
    assert dial.get("action") == f"http://testserver{path_of(acme_phone, 'dial')}"
    assert dial.get("callerId") == "+862155550100"
    # The call starts on the caller's timeline, matched by their number in E.164.
    assert events_of(acme_phone.tenant) == [
        ("call_started", {"caller": CALLER, "to": "+14155550100"})
    ]
    with tenancy.activate(acme_phone.tenant):
        identity = CustomerIdentity.objects.get()
        assert (identity.kind, identity.value) == ("phone", CALLER)


def test_the_merchants_own_greeting_is_said_in_its_language(tenant_acme, agent_li):
    account = phone_line(
        tenant_acme, greetings={"zh-hans": "您好，这里是 Acme 家电售后。", "en": "Hello"}
    )
    on_duty(tenant_acme, agent_li, "+8613900139000")
    root = twiml(post_twilio(account, "voice", corpus_form("01_incoming_call")))
    assert root.find("Say").text == "您好，这里是 Acme 家电售后。"


def test_out_of_hours_the_caller_records_a_voicemail_in_english(globex_phone, globex_agent_li):
    on_duty(globex_phone.tenant, globex_agent_li, "+14155550111")
    closed_default_group(globex_phone.tenant)
    root = twiml(post_twilio(globex_phone, "voice", corpus_form("01_incoming_call")))
    assert root.find("Dial") is None
    says = [say.text for say in root.findall("Say")]
    assert says == [
        "Thank you for calling Globex Outdoor.",
        "We are closed right now. Please leave a message after the tone.",
    ]
    assert {say.get("language") for say in root.findall("Say")} == {"en-US"}
    record = root.find("Record")
    base = f"http://testserver{path_of(globex_phone, 'x')}".removesuffix("x")
    assert record.get("action") == base + "recorded"
    assert record.get("transcribe") == "true"
    assert record.get("transcribeCallback") == base + "transcription"
    assert record.get("recordingStatusCallback") == base + "recording"


def test_in_hours_with_nobody_on_duty_the_caller_is_asked_for_a_voicemail(tenant_acme, agent_li):
    account = phone_line(tenant_acme)
    on_duty(tenant_acme, agent_li, "")  # online, but no phone number in their profile
    root = twiml(post_twilio(account, "voice", corpus_form("01_incoming_call")))
    assert root.find("Dial") is None and root.find("Record") is not None
    assert root.findall("Say")[1].text == "现在无人接听，请在提示音后留言。"


def test_when_nobody_answers_the_dial_the_caller_leaves_a_voicemail(acme_phone):
    form = corpus_form("01_incoming_call", DialCallStatus="no-answer")
    root = twiml(post_twilio(acme_phone, "dial", form))
    assert root.find("Record") is not None
    answered = twiml(post_twilio(acme_phone, "dial", {**form, "DialCallStatus": "completed"}))
    assert answered.find("Record") is None and answered.find("Hangup") is not None


# --- what each callback files --------------------------------------------------------------------


def test_a_voicemail_its_recording_and_its_transcript_land_on_one_ticket(acme_phone):
    post_twilio(acme_phone, "voice", corpus_form("01_incoming_call"))
    post_twilio(acme_phone, "dial", corpus_form("01_incoming_call", DialCallStatus="no-answer"))
    goodbye = twiml(post_twilio(acme_phone, "recorded", corpus_form("02_record_action")))
    assert goodbye.find("Hangup") is not None
    [ticket] = tickets_of(acme_phone.tenant)
    recording = corpus_form("02_record_action")["RecordingUrl"]
    assert ticket.channel == "phone"
    assert ticket.subject == "+86 138 0013 8000 的语音留言"
    assert messages_of(ticket) == [f"语音留言（0:17）：{recording}"]
    # The recording status callback (no From in it) is the same voicemail: recognised.
    twiml(post_twilio(acme_phone, "recording", corpus_form("03_recording_status_callback")))
    twiml(post_twilio(acme_phone, "transcription", corpus_form("05_transcribe_callback")))
    twiml(post_twilio(acme_phone, "transcription", corpus_form("06_transcribe_callback_failed")))
    twiml(post_twilio(acme_phone, "status", corpus_form("07_call_status_completed")))
    assert tickets_of(acme_phone.tenant) == [ticket]
    assert messages_of(ticket) == [
        f"语音留言（0:17）：{recording}",
        "语音留言转写：Hi, my order 4711 arrived damaged, please call me back.",
    ]
    with tenancy.activate(acme_phone.tenant):
        first = ticket.messages.order_by("pk").first()
        assert first.metadata["recording_url"] == recording
        assert first.author_customer.identities.get().value == CALLER
        states = dict(RawInbound.objects.values_list("external_id", "state"))
    assert states[f"{CALL}:recording:REf0e1d2c3f0e1d2c3f0e1d2c3f0e1d2c3:completed"] == "duplicate"
    assert [kind for kind, _data in events_of(acme_phone.tenant)] == ["call_started", "call_ended"]


def test_a_recording_status_callback_alone_files_the_voicemail_for_the_caller_of_the_call(
    acme_phone,
):
    post_twilio(acme_phone, "voice", corpus_form("01_incoming_call"))
    post_twilio(acme_phone, "recording", corpus_form("03_recording_status_callback"))
    [ticket] = tickets_of(acme_phone.tenant)
    assert ticket.subject == "+86 138 0013 8000 的语音留言"
    post_twilio(acme_phone, "recorded", corpus_form("02_record_action"))
    assert len(messages_of(ticket)) == 1


def test_a_silent_recording_files_nothing_and_the_call_ends_as_abandoned(acme_phone):
    post_twilio(acme_phone, "voice", corpus_form("01_incoming_call"))
    post_twilio(acme_phone, "recording", corpus_form("04_recording_status_absent"))
    assert tickets_of(acme_phone.tenant) == []
    post_twilio(acme_phone, "status", corpus_form("07_call_status_completed"))
    [ticket] = tickets_of(acme_phone.tenant)
    assert ticket.subject == "+86 138 0013 8000 的放弃来电"
    assert messages_of(ticket) == ["+86 138 0013 8000 在 0:42 后挂断，无人接听，也未留言，请回电。"]


@pytest.mark.parametrize("status", ["no-answer", "busy", "failed", "canceled"])
def test_a_missed_call_becomes_a_ticket_and_a_missed_call_on_the_timeline(acme_phone, status):
    post_twilio(acme_phone, "voice", corpus_form("01_incoming_call"))
    post_twilio(acme_phone, "status", corpus_form("07_call_status_completed", CallStatus=status))
    [ticket] = tickets_of(acme_phone.tenant)
    assert ticket.subject == "+86 138 0013 8000 的未接来电"
    assert messages_of(ticket) == [f"+86 138 0013 8000 的未接来电（{status}），请回电。"]
    assert [kind for kind, _data in events_of(acme_phone.tenant)] == [
        "call_started",
        "call_missed",
    ]


def test_an_answered_call_ends_on_the_timeline_without_a_ticket(acme_phone, agent_li):
    on_duty(acme_phone.tenant, agent_li, "+8613900139000")
    post_twilio(acme_phone, "voice", corpus_form("01_incoming_call"))
    post_twilio(acme_phone, "dial", corpus_form("01_incoming_call", DialCallStatus="completed"))
    post_twilio(acme_phone, "status", corpus_form("07_call_status_completed"))
    assert tickets_of(acme_phone.tenant) == []
    kind, data = events_of(acme_phone.tenant)[-1]
    assert kind == "call_ended"
    assert data["answered"] is True and data["duration_seconds"] == 42


def test_a_redelivered_callback_is_answered_alike_and_files_nothing_twice(acme_phone):
    steps = [
        ("voice", corpus_form("01_incoming_call")),
        ("dial", corpus_form("01_incoming_call", DialCallStatus="no-answer")),
        ("recorded", corpus_form("02_record_action")),
        ("recording", corpus_form("03_recording_status_callback")),
        ("transcription", corpus_form("05_transcribe_callback")),
        ("status", corpus_form("07_call_status_completed")),
    ]
    answers = [post_twilio(acme_phone, step, form).content for step, form in steps]
    with tenancy.activate(acme_phone.tenant):
        filed = (RawInbound.objects.count(), Message.objects.count(), CustomerEvent.objects.count())
    assert filed == (6, 2, 2)
    again = [post_twilio(acme_phone, step, form).content for step, form in steps]
    assert again == answers  # Twilio is told the same, the call goes on the same
    with tenancy.activate(acme_phone.tenant):
        assert (
            RawInbound.objects.count(),
            Message.objects.count(),
            CustomerEvent.objects.count(),
        ) == filed
    assert len(tickets_of(acme_phone.tenant)) == 1


def test_withheld_numbers_are_callers_of_their_own_and_client_ids_are_kept_raw(acme_phone):
    for sid in ("CA01", "CA02"):
        form = corpus_form("01_incoming_call", CallSid=sid, From="anonymous", Caller="anonymous")
        post_twilio(acme_phone, "voice", form)
        post_twilio(acme_phone, "status", {**form, "CallStatus": "no-answer"})
    client = corpus_form("01_incoming_call", CallSid="CA03", From="client:alice")
    post_twilio(acme_phone, "voice", client)
    post_twilio(acme_phone, "status", {**client, "CallStatus": "no-answer"})
    tickets = tickets_of(acme_phone.tenant)
    assert [t.subject for t in tickets] == [
        "隐藏号码 的未接来电",
        "隐藏号码 的未接来电",
        "client:alice 的未接来电",
    ]
    with tenancy.activate(acme_phone.tenant):
        assert len({t.customer_id for t in tickets}) == 3
        values = set(CustomerIdentity.objects.values_list("kind", "value"))
    assert values == {
        ("external", "anonymous:CA01"),
        ("external", "anonymous:CA02"),
        ("external", "client:alice"),
    }


def test_a_phone_ticket_takes_no_text_reply_and_says_why(acme_phone, agent_li):
    post_twilio(acme_phone, "voice", corpus_form("01_incoming_call"))
    post_twilio(acme_phone, "status", corpus_form("07_call_status_completed", CallStatus="busy"))
    [ticket] = tickets_of(acme_phone.tenant)
    with tenancy.activate(acme_phone.tenant), pytest.raises(BadInput, match="no text channel"):
        reply_recipient(ticket)
    with tenancy.activate(acme_phone.tenant):
        Ticket.objects.filter(pk=ticket.pk).update(assignee=agent_li)
    page = login(agent_li).get(f"/tickets/{ticket.number}/").content.decode()
    assert "No reply can be sent from here:" in page and "Log your call-back below" in page
    assert 'id="calls"' in page and "+8613800138000" in page


def test_an_english_merchants_call_tickets_read_in_english(globex_phone):
    caller = "+14155550142"
    post_twilio(globex_phone, "voice", corpus_form("01_incoming_call", From=caller))
    post_twilio(globex_phone, "recorded", corpus_form("02_record_action", From=caller))
    post_twilio(globex_phone, "transcription", corpus_form("05_transcribe_callback", From=caller))
    [ticket] = tickets_of(globex_phone.tenant)
    assert ticket.subject == "Voicemail from +1 415-555-0142"
    recording = corpus_form("02_record_action")["RecordingUrl"]
    assert messages_of(ticket) == [
        f"Voicemail (0:17): {recording}",
        "Transcript of the voicemail: Hi, my order 4711 arrived damaged, please call me back.",
    ]
    with tenancy.activate(globex_phone.tenant):
        assert ticket.customer.identities.get().value == "+14155550142"


def test_a_signed_request_for_a_step_the_channel_does_not_know_is_a_400(acme_phone):
    response = post_twilio(acme_phone, "fax", corpus_form("01_incoming_call"))
    assert response.status_code == 400 and response.json()["code"] == "unknown_event"
    with tenancy.activate(acme_phone.tenant):
        assert RawInbound.objects.count() == 0


def test_a_phone_ticket_of_a_customer_with_an_address_offers_writing_by_email(
    acme_phone, agent_li, acme_email
):
    post_twilio(acme_phone, "voice", corpus_form("01_incoming_call"))
    post_twilio(acme_phone, "status", corpus_form("07_call_status_completed", CallStatus="busy"))
    [ticket] = tickets_of(acme_phone.tenant)
    with tenancy.activate(acme_phone.tenant):
        CustomerIdentity.objects.create(
            customer=ticket.customer, kind="email", value="li.wei@example.cn"
        )
        Ticket.objects.filter(pk=ticket.pk).update(assignee=agent_li)
    page = login(agent_li).get(f"/tickets/{ticket.number}/").content.decode()
    assert f'href="/tickets/new/?customer={ticket.customer_id}"' in page
    assert "Or write to li.wei@example.cn by email." in page


def test_a_recording_of_a_call_not_yet_known_stays_failed_and_files_on_retry(
    acme_phone, admin_zhao
):
    response = post_twilio(acme_phone, "recording", corpus_form("03_recording_status_callback"))
    assert response.status_code == 200  # stored first: Twilio is not asked to send it again
    with tenancy.activate(acme_phone.tenant):
        raw = RawInbound.objects.get()
        assert raw.state == "failed" and raw.error == f"尚未收到通话 {CALL}"  # the merchant's words
    post_twilio(acme_phone, "voice", corpus_form("01_incoming_call"))
    with tenancy.activate(acme_phone.tenant):
        pipeline.retry_inbound(acting_agent=acting(admin_zhao), raw=raw)
        raw.refresh_from_db()
        assert raw.state == "processed"
    [ticket] = tickets_of(acme_phone.tenant)
    assert ticket.subject == "+86 138 0013 8000 的语音留言"
