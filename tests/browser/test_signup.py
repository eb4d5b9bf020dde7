"""In a real browser: a new merchant signs up, verifies their email by the mailed link, sees the
getting-started checklist and invites an agent; the agent opens the invitation in a browser of
their own, chooses a password and lands signed in on the tickets list.

The live server runs in this process, so the mails it sends are in ``django.core.mail.outbox``.
"""

from __future__ import annotations

import os
import re

import pytest
from django.core import mail

from helpdesk.models import Membership, Role
from tests.browser.conftest import CHROMIUM

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
]


def path_of_link(message: mail.EmailMessage, fragment: str) -> str:
    return re.search(rf"https?://[^/\s]+({re.escape(fragment)}\S+)", message.body).group(1)


def test_a_merchant_signs_up_verifies_invites_an_agent_who_joins(
    live_asgi_server, chromium, settings
):
    server = live_asgi_server
    owner = chromium.new_page(locale="en-US")
    owner.context.add_cookies([{"name": "django_language", "value": "en", "url": server}])

    owner.goto(f"{server}/login/")
    owner.click("#signup-link")
    owner.fill("#id_shop_name", "Bamboo Tea")
    # The shop address follows the name until typed by hand.
    assert owner.input_value("#id_slug") == "bamboo-tea"
    owner.fill("#id_owner_name", "Wu Fang")
    owner.fill("#id_email", "fang@bamboo.example")
    owner.fill("#id_password1", "green-oolong-1987")
    owner.select_option("#id_default_currency", "CNY")
    owner.select_option("#id_time_zone", "Asia/Shanghai")
    owner.select_option("#id_language", "en")
    owner.click("#signup-form button[type=submit]")

    owner.wait_for_url(f"{server}/onboarding/")
    assert owner.inner_text("#onboarding-count") == "0 of 7 done"
    assert "Verify your email address" in owner.inner_text("#verify-banner")

    [verification] = mail.outbox
    owner.goto(server + path_of_link(verification, "/accounts/confirm-email/"))
    owner.click("#confirm-email")
    owner.wait_for_url(f"{server}/onboarding/")
    assert owner.locator("#verify-banner").count() == 0

    owner.click("[data-step=team] a:has-text('Set up')")
    owner.wait_for_url(f"{server}/settings/members/")
    owner.fill("#invite-form input[name=email]", "xu@bamboo.example")
    owner.select_option("#invite-form select[name=role]", "agent")
    owner.click("#invite-form button[type=submit]")
    owner.wait_for_selector("[data-invitation='xu@bamboo.example']")

    invitation = mail.outbox[-1]
    assert invitation.to == ["xu@bamboo.example"]
    link = path_of_link(invitation, "/invitations/")

    agent_context = chromium.new_context(locale="en-US")
    agent_context.add_cookies([{"name": "django_language", "value": "en", "url": server}])
    agent = agent_context.new_page()
    agent.goto(server + link)
    assert "Join Bamboo Tea" in agent.inner_text("h1")
    agent.fill("#id_name", "Xu Ming")
    agent.fill("#id_password1", "tea-and-dumplings-77")
    agent.click("#accept-invitation")
    agent.wait_for_url(f"{server}/tickets/")
    assert "Welcome to Bamboo Tea" in agent.inner_text("main")
    assert "Xu Ming · Agent" in agent.inner_text(".who")

    membership = Membership.objects.get(user__email="xu@bamboo.example")
    assert membership.tenant.slug == "bamboo-tea" and membership.role == Role.AGENT
    owner.goto(f"{server}/onboarding/")
    assert owner.inner_text("[data-step=team]").startswith("Done")
