"""Signup pages: /signup/ for a new merchant (allauth's signup view with our form), the same
address for a signed-in person adding another merchant, and sending the verification mail
again."""

from __future__ import annotations

from allauth.account.adapter import get_adapter
from allauth.account.internal.flows.email_verification import send_verification_email_for_user
from allauth.account.views import SignupView
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from helpdesk.errors import BadInput
from helpdesk.signup import email_unverified
from helpdesk.signup_forms import AddMerchantForm
from helpdesk.tenancy import SESSION_KEY
from helpdesk.views_settings import form_error

merchant_signup = SignupView.as_view(template_name="account/signup.html")


def signup(request: HttpRequest) -> HttpResponse:
    """A new merchant: with a new account when signed out, for the signed-in person otherwise."""
    if request.user.is_authenticated:
        return add_merchant(request)
    return merchant_signup(request)


@login_required
def add_merchant(request: HttpRequest) -> HttpResponse:
    """Another merchant owned by the signed-in person (one account, several merchants)."""
    if not get_adapter().is_open_for_signup(request):
        return render(request, "account/signup_closed.html", status=403)
    form = AddMerchantForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        owner_name = request.user.get_full_name() or request.user.get_username()
        try:
            tenant = form.create_merchant(request.user, owner_name)
        except BadInput as exc:
            form_error(form, exc)
        else:
            request.session[SESSION_KEY] = tenant.pk
            messages.success(request, _("%(merchant)s is ready.") % {"merchant": tenant.name})
            return redirect("onboarding")
    return render(
        request,
        "account/signup_merchant.html",
        {"form": form},
        status=400 if request.method == "POST" else 200,
    )


@require_POST
@login_required
def resend_verification(request: HttpRequest) -> HttpResponse:
    """Send the link to verify the signed-in person's email again (allauth limits how often)."""
    if not email_unverified(request.user):
        messages.info(request, _("Your email address is already verified."))
    elif not send_verification_email_for_user(request, request.user):
        messages.warning(
            request,
            _("We sent the link a moment ago; check your inbox (and spam folder) for it."),
        )
    next_url = request.POST.get("next", "")
    if next_url and url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        return redirect(next_url)
    return redirect("onboarding")
