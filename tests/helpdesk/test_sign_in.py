"""Signing in (django-allauth): username or email, limits on failed attempts, and TOTP, which
platform operators cannot do without."""

from __future__ import annotations

import time
import types

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.contrib.auth import get_user_model
from django.test import Client

from tests.conftest import PASSWORD, give_totp

pytestmark = pytest.mark.django_db

ACTIVATE_TOTP = "/accounts/2fa/totp/activate/"
ENTER_CODE = "/accounts/2fa/authenticate/"


def sign_in(client: Client, login: str, password: str = PASSWORD, **extra: str):
    return client.post("/login/", {"username": login, "password": password, **extra})


def totp_code(secret: str) -> str:
    """The code an authenticator app shows now for ``secret`` (RFC 6238, 30 s, 6 digits)."""
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def signed_in(client: Client) -> bool:
    response = client.get("/tickets/")
    return response.status_code == 200


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """allauth's rate-limit clock, moved by tests instead of sleeping (``clock[0] += 300``)."""
    from allauth.core.internal import ratelimit

    now = [time.time()]
    fake_time = types.SimpleNamespace(
        time=lambda: now[0], monotonic=time.monotonic, sleep=time.sleep
    )
    monkeypatch.setattr(ratelimit, "time", fake_time)
    return now


@pytest.fixture
def operator(tenant_acme):
    return get_user_model().objects.create_superuser("operator", "op@example.com", PASSWORD)


def test_an_agent_signs_in_with_their_username_and_is_not_asked_for_a_code(agent_li):
    client = Client()
    response = sign_in(client, "li.acme")
    assert response.status_code == 302 and response["Location"] == "/tickets/"
    assert signed_in(client)


def test_an_agent_signs_in_with_their_email(supervisor_wang):
    client = Client()
    response = sign_in(client, "wang.acme@example.com")
    assert response["Location"] == "/tickets/"
    assert signed_in(client)


def test_the_sign_in_page_is_the_helpdesks_own_and_offers_signup_and_a_password_reset(agent_li):
    page = Client().get("/login/").content.decode()
    assert 'name="username"' in page and 'name="password"' in page
    assert "Helpdesk" in page
    assert 'href="/signup/"' in page and 'href="/accounts/password/reset/"' in page


def test_nobody_can_sign_up_while_signup_is_closed(settings):
    settings.HELPDESK_SIGNUP_OPEN = False
    client = Client()
    assert 'href="/signup/"' not in client.get("/login/").content.decode()
    for address in ("/signup/", "/accounts/signup/"):
        assert "Sign up is closed" in client.get(address).content.decode()
        client.post(
            address,
            {
                "shop_name": "Mallory",
                "slug": "mallory",
                "owner_name": "Mallory",
                "email": "m@example.com",
                "password1": "x9!long-enough-pw",
                "default_currency": "CNY",
                "time_zone": "Asia/Shanghai",
                "language": "en",
            },
        )
    assert not get_user_model().objects.filter(email="m@example.com").exists()


def test_signing_out_ends_the_session(agent_li):
    client = Client()
    sign_in(client, "li.acme")
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert not signed_in(client)


def test_wrong_passwords_for_one_account_lock_it_until_the_window_passes(agent_li, settings, clock):
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "100/m/ip,3/5m/key"}
    client = Client()
    for _ in range(3):
        page = sign_in(client, "li.acme", "guess").content.decode()
        assert "enter a correct username and password" in page

    # Even the right password is refused now, and nobody is signed in.
    page = sign_in(client, "li.acme").content.decode()
    assert "Too many failed login attempts" in page
    assert not signed_in(client)

    clock[0] += 5 * 60 + 1
    response = sign_in(client, "li.acme")
    assert response["Location"] == "/tickets/"
    assert signed_in(client)


def test_wrong_passwords_from_one_address_lock_every_account_there_until_the_window_passes(
    agent_li, supervisor_wang, settings, clock
):
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "3/m/ip,100/m/key"}
    client = Client()
    for login in ("zhao", "qian", "sun"):
        sign_in(client, login, "guess")

    assert "Too many failed login attempts" in sign_in(client, "wang.acme").content.decode()
    assert not signed_in(client)

    clock[0] += 61
    assert sign_in(client, "wang.acme")["Location"] == "/tickets/"


def test_too_many_sign_in_posts_from_one_address_get_429_then_recover(agent_li, settings, clock):
    settings.ACCOUNT_RATE_LIMITS = {"login": "2/m/ip", "login_failed": False}
    client = Client()
    sign_in(client, "nobody", "guess")
    sign_in(client, "nobody", "guess")
    response = sign_in(client, "li.acme")
    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()

    clock[0] += 61
    assert sign_in(client, "li.acme")["Location"] == "/tickets/"


def test_an_operator_without_totp_is_sent_to_set_it_up_and_reaches_nothing_else(operator):
    client = Client()
    client.cookies["django_language"] = "en"  # Acme, where they land, works in Chinese
    response = sign_in(client, "operator")
    assert client.get(response["Location"])["Location"] == ACTIVATE_TOTP
    for path in ("/tickets/", "/admin/", "/api/v1/tickets/", "/settings/api-keys/"):
        response = client.get(path)
        assert (response.status_code, response["Location"]) == (302, ACTIVATE_TOTP), path

    # Changing how one signs in asks for the password once more first.
    confirm = client.get(ACTIVATE_TOTP)
    assert confirm["Location"].startswith("/accounts/reauthenticate/")
    response = client.post(confirm["Location"], {"password": PASSWORD})
    assert response["Location"] == ACTIVATE_TOTP

    setup = client.get(ACTIVATE_TOTP)
    assert setup.status_code == 200
    assert "Platform operators can act for every merchant" in setup.content.decode()
    secret = client.session["mfa.totp.secret"]
    assert secret in setup.content.decode()  # shown, for apps that cannot scan

    assert client.post(ACTIVATE_TOTP, {"code": "000000"}).status_code == 200  # wrong: stays
    assert not Authenticator.objects.filter(user=operator).exists()
    client.post(ACTIVATE_TOTP, {"code": totp_code(secret)})
    assert Authenticator.objects.filter(user=operator, type=Authenticator.Type.TOTP).exists()
    assert signed_in(client)
    assert client.get("/admin/").status_code == 200


def test_an_operator_with_totp_needs_a_code_to_sign_in(operator):
    secret = give_totp(operator)
    client = Client()
    response = sign_in(client, "operator")
    assert response["Location"] == ENTER_CODE
    assert not signed_in(client)  # the password alone signs nobody in

    page = client.post(ENTER_CODE, {"code": "000000"}).content.decode()
    assert "Incorrect code" in page
    assert not signed_in(client)

    response = client.post(ENTER_CODE, {"code": totp_code(secret)})
    assert response["Location"] == "/tickets/"
    assert signed_in(client)


def test_the_admins_own_sign_in_page_sends_operators_through_the_helpdesk_sign_in(operator):
    give_totp(operator)
    response = Client().get("/admin/login/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")
    # A password posted straight to the admin's form does not skip the code either.
    client = Client()
    client.post("/admin/login/", {"username": "operator", "password": PASSWORD})
    assert client.get("/admin/").status_code == 302
