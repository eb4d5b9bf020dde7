"""The getting-started checklist: each step ticks itself from the merchant's data, the owner
may skip steps, and the tickets list reminds owners and admins until it is all settled."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from helpdesk import tenancy
from helpdesk.models import Invitation, OnboardingProgress
from tests.conftest import acting, login

pytestmark = pytest.mark.django_db


def states(client) -> dict[str, str]:
    steps = client.get("/onboarding/").context["checklist"].steps
    return {
        step.key: ("done" if step.done else "skipped" if step.skipped else "todo") for step in steps
    }


def progress_line(client) -> str:
    page = client.get("/onboarding/").content.decode()
    return page.split('id="onboarding-count">')[1].split("<")[0]


def test_a_new_merchant_starts_with_seven_steps_to_do(owner_chen):
    client = login(owner_chen)
    page = client.get("/onboarding/")
    assert page.status_code == 200
    assert progress_line(client) == "0 of 7 done"
    assert set(states(client).values()) == {"todo"}
    html = page.content.decode()
    for address in ("/settings/channels/new/", "/settings/members/", "/settings/imports/"):
        assert f'href="{address}"' in html


def test_each_step_is_done_when_the_data_says_so(owner_chen, tenant_acme, tenant_globex):
    from channels_in.models import ChannelAccount, ChatVisitor, WebChat
    from escalation import policy_settings
    from tickets.models.imports import ImportJob

    client = login(owner_chen)
    # Another merchant's setup ticks nothing here.
    with tenancy.activate(tenant_globex):
        ChannelAccount.objects.create(kind="email", name="Globex support")
    assert states(client)["email"] == "todo"

    with tenancy.activate(tenant_acme):
        ChannelAccount.objects.create(kind="email", name="Support", is_active=False)
    assert states(client)["email"] == "todo"  # a paused-by-hand mailbox brings no mail
    with tenancy.activate(tenant_acme):
        ChannelAccount.objects.create(kind="email", name="Support")
        chat = ChannelAccount.objects.create(kind="chat", name="Store chat")
        WebChat.objects.create(
            account=chat, public_key="acme.k1", allowed_origins=["https://shop.acme.example"]
        )
    assert states(client)["email"] == "done"
    assert states(client)["chat"] == "todo"  # the widget was never opened on the store
    assert "acme.k1" in client.get("/onboarding/").content.decode()  # the snippet to paste

    with tenancy.activate(tenant_acme):
        ChatVisitor.objects.create(account=chat, visitor_id="v1")
        ChannelAccount.objects.create(kind="wechat", name="Acme 公众号")
        ChannelAccount.objects.create(kind="phone", name="Hotline")
    assert {key: states(client)[key] for key in ("chat", "wechat", "phone")} == {
        "chat": "done",
        "wechat": "done",
        "phone": "done",
    }

    assert states(client)["team"] == "todo"
    Invitation.objects.create(
        tenant=tenant_acme,
        email="xu@acme.example",
        token_hash="x" * 64,
        sent_at=timezone.now(),
        expires_at=timezone.now() + timedelta(days=7),
    )
    assert states(client)["team"] == "done"

    assert states(client)["limits"] == "todo"
    with tenancy.activate(tenant_acme):
        policy_settings.update_escalation_policy(
            acting_agent=acting(owner_chen), threshold_percent=Decimal("4")
        )
    assert states(client)["limits"] == "done"

    assert states(client)["import"] == "todo"
    with tenancy.activate(tenant_acme):
        ImportJob.objects.create(
            kind="customers", original_name="c.csv", format="csv", state=ImportJob.State.FAILED
        )
    assert states(client)["import"] == "todo"  # a failed import is not done
    with tenancy.activate(tenant_acme):
        ImportJob.objects.create(
            kind="customers", original_name="c.csv", format="csv", state=ImportJob.State.DONE
        )
    assert progress_line(client) == "7 of 7 done"


def test_a_remedy_limit_or_another_member_ticks_their_steps(owner_chen, tenant_acme, agent_li):
    from escalation import policies

    with tenancy.activate(tenant_acme):
        policies.set_limit(
            acting_agent=acting(owner_chen),
            kind="refund",
            currency="CNY",
            role="agent",
            per_grant_max_amount="50",
        )
    found = states(login(owner_chen))
    assert found["limits"] == "done" and found["team"] == "done"


def test_the_owner_skips_a_step_and_it_counts_as_settled(owner_chen, tenant_acme):
    client = login(owner_chen)
    response = client.post("/onboarding/wechat/skip/")
    assert response.status_code == 302
    assert states(client)["wechat"] == "skipped"
    assert progress_line(client) == "1 of 7 done"
    client.post("/onboarding/wechat/skip/", {"skip": "0"})
    assert states(client)["wechat"] == "todo"
    with tenancy.activate(tenant_acme):
        assert OnboardingProgress.objects.get().skipped_steps == []


def test_only_the_owner_skips_steps_and_unknown_steps_are_refused(owner_chen, admin_zhao):
    assert (
        login(admin_zhao).post("/onboarding/wechat/skip/", HTTP_ACCEPT="text/html").status_code
        == 403
    )
    assert (
        login(owner_chen).post("/onboarding/teleport/skip/", HTTP_ACCEPT="text/html").status_code
        == 400
    )
    assert states(login(owner_chen))["wechat"] == "todo"


def test_admins_see_the_checklist_agents_and_supervisors_do_not(
    admin_zhao, agent_li, supervisor_wang
):
    admin = login(admin_zhao)
    assert admin.get("/onboarding/").status_code == 200
    assert 'href="/onboarding/"' in admin.get("/settings/members/").content.decode()
    for person in (agent_li, supervisor_wang):
        response = login(person).get("/onboarding/")
        assert response.status_code == 302 and response["Location"] == "/tickets/"


def test_the_tickets_list_reminds_admins_until_dismissed(admin_zhao, agent_li):
    admin = login(admin_zhao)
    listing = admin.get("/tickets/").content.decode()
    assert "Finish setting up: 1 of 7 done" in listing  # two members: the team step is done
    assert "setup-reminder" not in login(agent_li).get("/tickets/").content.decode()

    admin.post("/onboarding/reminder/")
    assert "setup-reminder" not in admin.get("/tickets/").content.decode()
    assert admin.get("/onboarding/").status_code == 200  # still under Settings
    admin.post("/onboarding/reminder/", {"dismissed": "0"})
    assert "setup-reminder" in admin.get("/tickets/").content.decode()


def test_the_reminder_goes_once_every_step_is_settled(owner_chen):
    client = login(owner_chen)
    for step in ("email", "chat", "wechat", "phone", "team", "limits"):
        client.post(f"/onboarding/{step}/skip/")
    assert "Finish setting up: 6 of 7 done" in client.get("/tickets/").content.decode()
    client.post("/onboarding/import/skip/")
    assert "setup-reminder" not in client.get("/tickets/").content.decode()


def test_a_dismissed_reminder_costs_the_tickets_list_one_query(admin_zhao, tenant_acme):
    """An admin who hid the reminder is not charged the checklist's queries on every list."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from helpdesk import onboarding

    with tenancy.activate(tenant_acme):
        admin = acting(admin_zhao)
        shown = CaptureQueriesContext(connection)
        with shown:
            assert onboarding.reminder(admin) is not None
        onboarding.dismiss_reminder(acting_agent=admin)
        hidden = CaptureQueriesContext(connection)
        with hidden:
            assert onboarding.reminder(admin) is None
    assert len(hidden.captured_queries) == 1
    assert len(shown.captured_queries) > 4  # the steps are read while it shows
