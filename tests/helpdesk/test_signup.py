"""A merchant signs up: the shop, its owner's account and a mail to verify it; one account per
email; limited until verified; password reset and the limits on both."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import IntegrityError, transaction
from django.test import Client

from helpdesk.models import ApiKey, Invitation, Membership, Role, Tenant
from tests.conftest import PASSWORD, login
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

User = get_user_model()


def shop(**overrides: str) -> dict[str, str]:
    return {
        "shop_name": "Bamboo Tea 竹茶",
        "slug": "bamboo-tea",
        "owner_name": "Wu Fang",
        "email": "fang@bamboo.example",
        "password1": "green-oolong-1987",
        "default_currency": "CNY",
        "time_zone": "Asia/Shanghai",
        "language": "zh-hans",
        **overrides,
    }


def link_in(message: mail.EmailMessage) -> str:
    """The path of the first link to this helpdesk in a mail."""
    return re.search(r"https?://[^/\s]+(/\S+)", message.body).group(1)


def sign_up(client: Client | None = None, **overrides: str):
    if client is None:
        client = Client()
        # The person reads English; the shop's own language (zh-hans) would apply otherwise.
        client.cookies["django_language"] = "en"
    return client, client.post("/signup/", shop(**overrides))


def test_signup_creates_the_merchant_its_owner_and_sends_a_link_to_verify_the_email():
    client, response = sign_up()

    assert response.status_code == 302 and response["Location"] == "/onboarding/"
    tenant = Tenant.objects.get(slug="bamboo-tea")
    assert (tenant.name, tenant.default_currency, tenant.time_zone, tenant.locale) == (
        "Bamboo Tea 竹茶",
        "CNY",
        "Asia/Shanghai",
        "zh-hans",
    )
    owner = User.objects.get(email="fang@bamboo.example")
    assert owner.first_name == "Wu Fang" and owner.check_password("green-oolong-1987")
    membership = Membership.objects.get(tenant=tenant, user=owner)
    assert membership.role == Role.OWNER and membership.display_name == "Wu Fang"
    assert [m.to for m in mail.outbox] == [["fang@bamboo.example"]]
    assert "/accounts/confirm-email/" in mail.outbox[0].body
    # Signed in, acting for the new merchant, on its checklist.
    page = client.get("/onboarding/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200 and "Getting started" in page.content.decode()
    assert page.context["tenant"] == tenant


def test_the_owner_signs_in_with_their_email():
    sign_up()
    client = Client()
    response = client.post(
        "/login/", {"username": "fang@bamboo.example", "password": "green-oolong-1987"}
    )
    assert response.status_code == 302
    assert client.get("/tickets/").status_code == 200


def test_a_taken_shop_address_is_a_form_error_and_creates_nothing(tenant_acme):
    client, response = sign_up(slug="acme")
    assert response.status_code == 200
    assert "The address “acme” is taken; choose another" in response.content.decode()
    assert not User.objects.filter(email="fang@bamboo.example").exists()
    assert Tenant.objects.count() == 1 and mail.outbox == []


@pytest.mark.parametrize("slug", ["a", "Bamboo Tea", "-tea", "tea_shop", "postmaster"])
def test_a_malformed_or_reserved_shop_address_is_refused(slug):
    _client, response = sign_up(slug=slug)
    assert response.status_code == 200 and response.context["form"].errors["slug"]
    assert not Tenant.objects.exists()


def test_a_known_email_is_told_to_sign_in_and_never_gets_a_second_account(agent_li):
    users = User.objects.count()
    _client, response = sign_up(email="LI.ACME@example.com")
    page = response.content.decode()
    assert response.status_code == 200
    assert "This email already has an account: sign in, and add a merchant from there." in page
    assert User.objects.count() == users
    assert not Tenant.objects.filter(slug="bamboo-tea").exists()
    assert mail.outbox == []


def test_a_second_signup_with_the_same_slug_or_email_is_refused():
    sign_up()
    _c, same_slug = sign_up(email="other@bamboo.example")
    _c, same_email = sign_up(slug="bamboo-tea-2")
    assert same_slug.context["form"].errors["slug"]
    assert same_email.context["form"].errors["email"]
    assert Tenant.objects.count() == 1 and User.objects.count() == 1


def test_the_password_must_pass_djangos_validators():
    _client, response = sign_up(password1="password")
    assert response.status_code == 200 and response.context["form"].errors["password1"]
    assert not User.objects.exists() and not Tenant.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("default_currency", "XYZ"), ("time_zone", "Mars/Olympus"), ("language", "fr")],
)
def test_a_currency_time_zone_or_language_off_the_list_is_refused(field, value):
    _client, response = sign_up(**{field: value})
    assert response.context["form"].errors[field]
    assert not Tenant.objects.exists()


def test_a_signed_in_person_adds_another_merchant_to_their_own_account(owner_chen, tenant_acme):
    users = User.objects.count()
    client = login(owner_chen)
    form = client.get("/signup/")
    assert form.status_code == 200 and 'name="email"' not in form.content.decode()

    response = client.post(
        "/signup/",
        {
            k: v
            for k, v in shop().items()
            if k in {"shop_name", "slug", "default_currency", "time_zone", "language"}
        },
    )

    assert response.status_code == 302 and response["Location"] == "/onboarding/"
    assert User.objects.count() == users
    tenant = Tenant.objects.get(slug="bamboo-tea")
    assert Membership.objects.get(tenant=tenant, user=owner_chen).role == Role.OWNER
    assert Membership.objects.get(tenant=tenant_acme, user=owner_chen).role == Role.OWNER
    assert client.get("/onboarding/").context["tenant"] == tenant


def test_nobody_adds_a_merchant_while_signup_is_closed(owner_chen, settings):
    settings.HELPDESK_SIGNUP_OPEN = False
    client = login(owner_chen)
    assert client.get("/signup/").status_code == 403
    client.post(
        "/signup/",
        {
            "shop_name": "Second",
            "slug": "second-shop",
            "default_currency": "CNY",
            "time_zone": "Asia/Shanghai",
            "language": "en",
        },
    )
    assert not Tenant.objects.filter(slug="second-shop").exists()


def test_one_account_per_email_is_held_by_the_database_whatever_the_case(agent_li):
    with pytest.raises(IntegrityError), transaction.atomic():
        UserFactory(username="li-again", email="Li.Acme@Example.com")
    # Accounts without an email stay possible (bench and operator accounts).
    UserFactory(username="no-mail-1", email="")
    UserFactory(username="no-mail-2", email="")


# --- limited until verified -------------------------------------------------------------------


def test_an_unverified_owner_sees_the_banner_and_cannot_invite_or_create_api_keys():
    client, _response = sign_up()
    tickets = client.get("/tickets/", HTTP_ACCEPT_LANGUAGE="en")
    assert "Verify your email address: we sent a link to fang@bamboo.example" in (
        tickets.content.decode()
    )

    invited = client.post(
        "/settings/members/invite/",
        {"email": "agent@bamboo.example", "role": "agent"},
        HTTP_ACCEPT="text/html",
    )
    assert invited.status_code == 403
    assert "Verify your email address first" in invited.content.decode()
    keyed = client.post(
        "/settings/api-keys/", {"name": "Shop", "scopes": ["read"]}, HTTP_ACCEPT="text/html"
    )
    assert keyed.status_code == 403
    assert not Invitation.objects.exists() and not ApiKey.objects.exists()
    # Everything else works.
    assert client.get("/settings/channels/").status_code == 200


def test_the_link_in_the_mail_verifies_the_address_and_returns_to_the_checklist():
    client, _response = sign_up()
    confirm_page = client.get(link_in(mail.outbox[0]))
    assert confirm_page.status_code == 200
    response = client.post(link_in(mail.outbox[0]))
    assert response.status_code == 302 and response["Location"] == "/onboarding/"
    assert EmailAddress.objects.get(email="fang@bamboo.example").verified
    page = client.get("/onboarding/").content.decode()
    assert "verify-banner" not in page

    invited = client.post(
        "/settings/members/invite/", {"email": "agent@bamboo.example", "role": "agent"}
    )
    assert invited.status_code == 302
    assert Invitation.objects.filter(email="agent@bamboo.example").exists()


def test_the_banner_sends_the_link_again_but_not_twice_in_a_row():
    client, _response = sign_up()
    mail.outbox.clear()
    # allauth waits a few minutes between two mails to one address: the signup's counts.
    response = client.post("/signup/resend/", {"next": "/tickets/"}, follow=True)
    assert response.redirect_chain[-1][0] == "/tickets/"
    assert mail.outbox == []
    assert "We sent the link a moment ago" in response.content.decode()


def test_the_banner_sends_the_link_again_after_the_pause(settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "confirm_email": False}
    settings.ACCOUNT_EMAIL_CONFIRMATION_COOLDOWN = 0
    client, _response = sign_up()
    mail.outbox.clear()
    client.post("/signup/resend/")
    assert [m.to for m in mail.outbox] == [["fang@bamboo.example"]]
    assert "/accounts/confirm-email/" in mail.outbox[0].body


def test_people_made_by_the_operator_are_not_held_back(admin_zhao):
    client = login(admin_zhao)
    assert "verify-banner" not in client.get("/tickets/").content.decode()
    assert (
        client.post(
            "/settings/members/invite/", {"email": "new@acme.example", "role": "agent"}
        ).status_code
        == 302
    )


# --- throttling and password reset --------------------------------------------------------------


def test_signups_from_one_address_are_limited(settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "signup": "2/h/ip"}
    sign_up(slug="one", email="one@example.com")
    sign_up(slug="two", email="two@example.com")
    _client, third = sign_up(slug="three", email="three@example.com")
    assert third.status_code == 429
    assert sorted(Tenant.objects.values_list("slug", flat=True)) == ["one", "two"]


def test_a_forgotten_password_is_reset_by_the_emailed_link(agent_li):
    client = Client()
    page = client.get("/accounts/password/reset/").content.decode()
    assert "Reset your password" in page

    response = client.post("/accounts/password/reset/", {"email": "li.acme@example.com"})
    assert response.status_code == 302
    assert [m.to for m in mail.outbox] == [["li.acme@example.com"]]
    key_page = client.get(link_in(mail.outbox[0]), follow=True)
    assert "Choose a new password" in key_page.content.decode()
    done = client.post(
        key_page.redirect_chain[-1][0],
        {"password1": "a-brand-new-secret-42", "password2": "a-brand-new-secret-42"},
    )
    assert done.status_code == 302
    agent_li.refresh_from_db()
    assert agent_li.check_password("a-brand-new-secret-42")
    assert not agent_li.check_password(PASSWORD)
    # The link works once.
    again = client.get(link_in(mail.outbox[0]), follow=True)
    assert "This link no longer works" in again.content.decode()


def test_password_reset_mails_to_one_address_are_limited(agent_li, settings):
    settings.ACCOUNT_RATE_LIMITS = {
        **settings.ACCOUNT_RATE_LIMITS,
        "reset_password": "20/m/ip,2/h/key",
    }
    client = Client()
    for _ in range(3):
        last = client.post("/accounts/password/reset/", {"email": "li.acme@example.com"})
    assert last.status_code == 429
    assert len(mail.outbox) == 2


def test_the_profile_page_offers_two_factor_sign_in_to_agents(agent_li):
    page = login(agent_li).get("/profile/").content.decode()
    assert 'href="/accounts/2fa/"' in page


def test_the_admin_refuses_a_second_account_for_a_known_email(agent_li):
    operator = UserFactory(username="operator", is_staff=True, is_superuser=True)
    client = login(operator)
    users = User.objects.count()
    response = client.post(
        "/admin/auth/user/add/",
        {
            "username": "li-twin",
            "email": "LI.ACME@example.com",
            "usable_password": "true",
            "password1": "another-secret-771",
            "password2": "another-secret-771",
        },
    )
    assert response.status_code == 200
    assert "Another account already has this email" in response.content.decode()
    assert User.objects.count() == users
    change = client.post(
        f"/admin/auth/user/{operator.pk}/change/",
        {
            "username": "operator",
            "email": "li.acme@example.com",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert "Another account already has this email" in change.content.decode()
