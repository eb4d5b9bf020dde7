"""`make run` (SQLite, Celery inline) takes calls too: a signed missed call becomes a ticket once,
a call-back shows in the agent's "Call-backs due" view from its time, and logging the call
takes it out (the queue compares with the database's own clock, on SQLite as on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from tests.make_run import make_run_manage

SQLITE_PHONE = """
from datetime import timedelta
from urllib.parse import urlencode
from django.contrib.auth import get_user_model
from django.test import Client
from django.test.utils import setup_test_environment
from django.utils import timezone
from twilio.request_validator import RequestValidator
from channels_in import crypto, phone_calls
from channels_in.models import ChannelAccount, PhoneLine
from helpdesk import tenancy
from helpdesk.models import Membership, Role, Tenant
from helpdesk.permissions import acting_agent_for
from tickets import inbox
from tickets.models import Ticket

setup_test_environment()
tenant = Tenant.objects.create(name="Shop", slug="shop", locale="en", phone_region="US")
boss = get_user_model().objects.create(username="boss")
Membership.objects.create(tenant=tenant, user=boss, role=Role.OWNER)
with tenancy.activate(tenant):
    account = ChannelAccount.objects.create(kind="phone", name="Line")
    PhoneLine.objects.create(
        account=account, number="+14155550100", auth_token_encrypted=crypto.encrypt_secret("tok")
    )

def call(step, **form):
    path = f"/inbound/shop/phone/{account.pk}/?event={step}"
    signature = RequestValidator("tok").compute_signature(f"http://testserver{path}", form)
    return Client().post(
        path, urlencode(form), content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    ).status_code

codes = [
    call("voice", CallSid="CA1", From="+14155550142", To="+14155550100", CallStatus="ringing"),
    call("status", CallSid="CA1", From="+14155550142", To="+14155550100", CallStatus="busy"),
    call("status", CallSid="CA1", From="+14155550142", To="+14155550100", CallStatus="busy"),
]
with tenancy.activate(tenant):
    acting = acting_agent_for(boss, tenant)
    ticket = Ticket.objects.get()
    view = inbox.VIEWS["call_backs"]
    later = phone_calls.schedule_call_back(
        acting_agent=acting, ticket=ticket, due_at=timezone.now() + timedelta(hours=1)
    )
    before = inbox.view_tickets(agent=acting, view=view).count()
    type(later).objects.filter(pk=later.pk).update(due_at=timezone.now() - timedelta(minutes=1))
    due = inbox.view_tickets(agent=acting, view=view).count()
    phone_calls.log_call(
        acting_agent=acting, ticket=ticket, direction="outbound", number="+14155550142",
        outcome="answered", duration_seconds=30,
    )
    after = inbox.view_tickets(agent=acting, view=view).count()
    print(codes, ticket.subject, ticket.messages.count(), before, due, after)
"""


def test_make_run_on_sqlite_files_a_missed_call_and_queues_its_call_back(tmp_path: Path):
    manage = make_run_manage(tmp_path)

    manage("migrate", "-v0")
    out = manage("shell", "-c", SQLITE_PHONE).strip().splitlines()[-1]
    assert out == "[200, 200, 200] Missed call from +1 415-555-0142 2 0 1 0"
