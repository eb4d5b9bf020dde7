"""Sign-in on django-allauth: signup open or closed, the login form, and TOTP for platform
operators.

Platform operators (superusers) can act for every merchant, so a stolen password must not be
enough: they cannot use the helpdesk until they have set up an authenticator app, and allauth
then asks for its code at every sign-in. Merchants' agents may opt in but are not asked.
"""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.forms import LoginForm
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import Resolver404, resolve, reverse
from django.utils.translation import gettext_lazy as _


class AccountAdapter(DefaultAccountAdapter):
    """Merchants sign themselves up while ``HELPDESK_SIGNUP_OPEN`` is on (helpdesk.signup);
    their people join by invitation (helpdesk.invitations)."""

    error_messages = {
        **DefaultAccountAdapter.error_messages,
        # Django's wording, which agents already know (and tests read).
        "username_password_mismatch": _(
            "Please enter a correct username and password. Note that both fields may be "
            "case-sensitive."
        ),
        "email_password_mismatch": _("Please enter a correct email address and password."),
        "email_taken": _(
            "This email already has an account: sign in, and add a merchant from there."
        ),
    }

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return bool(settings.HELPDESK_SIGNUP_OPEN)


class SignInForm(LoginForm):
    """allauth's login form, whose login field is posted as ``username`` as Django's was, so
    password managers and scripts that sign in keep working."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["login"].label = _("Username or email")

    def add_prefix(self, field_name: str) -> str:
        if field_name == "login":
            field_name = "username"
        return super().add_prefix(field_name)


# What an operator without TOTP may still reach: the setup itself (and the password check it
# may ask for first), signing out and choosing a language.
_REACHABLE_WITHOUT_TOTP = frozenset(
    {
        "mfa_activate_totp",
        "account_reauthenticate",
        "logout",
        "account_logout",
        "set_language",
    }
)


def operator_lacks_totp(user: Any) -> bool:
    """Whether a signed-in platform operator has not set up an authenticator app yet."""
    return bool(
        user.is_authenticated
        and user.is_superuser
        and not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    )


class OperatorTotpRequiredMiddleware:
    """Send a platform operator without TOTP to set it up; nothing else answers until done."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if operator_lacks_totp(request.user) and _url_name(request) not in _REACHABLE_WITHOUT_TOTP:
            return HttpResponseRedirect(reverse("mfa_activate_totp"))
        return self.get_response(request)


def _url_name(request: HttpRequest) -> str | None:
    try:
        return resolve(request.path_info).url_name
    except Resolver404:
        return None
