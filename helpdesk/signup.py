"""Merchants signing up: a new merchant with its first owner, another merchant for someone who
already has an account, and what an owner may not do before their email is verified.

Rules, in the merchant's words:
- one email is one account on the platform: a person who works for several merchants signs in
  once and switches between them;
- a shop's address (its slug) is unique, lower-case letters, digits and hyphens;
- whoever creates a merchant is its owner;
- an account whose email address is not verified yet may not invite people or issue API keys
  (both reach outside the helpdesk in the merchant's name); everything else works. Accounts
  the platform operator made (the admin, ``seed_demo``) and people who came by invitation are
  trusted as they are.
"""

from __future__ import annotations

import re
import zoneinfo
from functools import cache
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils.text import slugify
from django.utils.translation import gettext as _

from helpdesk import tenancy
from helpdesk.errors import BadInput, PermissionDenied
from helpdesk.models import Membership, Role, Tenant
from helpdesk.money import KNOWN_CURRENCIES
from helpdesk.permissions import ActingAgent, Actor, SystemActor

SLUG_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,58}[a-z0-9])")
# Addresses a shop may not take: they name the platform's own pages or mailboxes (a merchant's
# forwarding address starts with its slug).
RESERVED_SLUGS = frozenset(
    {
        "abuse",
        "admin",
        "api",
        "help",
        "helpdesk",
        "hostmaster",
        "info",
        "mail",
        "mailer-daemon",
        "no-reply",
        "noreply",
        "postmaster",
        "root",
        "security",
        "signup",
        "static",
        "support",
        "webmaster",
        "www",
    }
)


@cache
def time_zones() -> list[str]:
    """Every IANA time zone name, sorted (what the signup form offers)."""
    return sorted(name for name in zoneinfo.available_timezones() if "/" in name or name == "UTC")


def currencies() -> list[str]:
    return sorted(KNOWN_CURRENCIES)


def suggested_slug(name: str) -> str:
    """A shop address made from its name ("Acme 家电" → "acme"); "" when nothing is left."""
    return slugify(name)[:60].strip("-")


def slug_is_taken(slug: str) -> bool:
    return Tenant.objects.filter(slug=slug).exists()


def checked_slug(slug: str) -> str:
    """A free, well-formed shop address; BadInput on the ``slug`` field otherwise."""
    slug = (slug or "").strip().lower()
    if not SLUG_PATTERN.fullmatch(slug):
        raise BadInput(
            _(
                "Use 3 to 60 lower-case letters, digits and hyphens, starting and ending with a "
                "letter or digit"
            ),
            field="slug",
        )
    if slug in RESERVED_SLUGS or slug_is_taken(slug):
        raise BadInput(
            _("The address “%(slug)s” is taken; choose another") % {"slug": slug}, field="slug"
        )
    return slug


def _checked_settings(*, default_currency: str, time_zone: str, language: str) -> None:
    if default_currency not in KNOWN_CURRENCIES:
        raise BadInput(
            _("%(currency)s is not a currency code") % {"currency": default_currency},
            field="default_currency",
        )
    if time_zone not in time_zones():
        raise BadInput(_("Choose a time zone from the list"), field="time_zone")
    if language not in dict(settings.LANGUAGES):
        raise BadInput(_("Choose a language from the list"), field="language")


def create_merchant(
    *,
    owner: Any,
    name: str,
    slug: str,
    default_currency: str,
    time_zone: str,
    language: str,
    owner_name: str = "",
) -> Tenant:
    """A new merchant whose first owner is ``owner`` (a new account at signup, or someone who
    already works for other merchants)."""
    from tickets import audit
    from tickets.audit import AuditKind

    name = (name or "").strip()
    if not name:
        raise BadInput(_("Give the shop a name"), field="name")
    slug = checked_slug(slug)
    _checked_settings(default_currency=default_currency, time_zone=time_zone, language=language)
    try:
        with transaction.atomic():
            tenant = Tenant.objects.create(
                name=name[:200],
                slug=slug,
                default_currency=default_currency,
                time_zone=time_zone,
                locale=language,
            )
            membership = Membership.objects.create(
                tenant=tenant, user=owner, role=Role.OWNER, display_name=owner_name[:120]
            )
            with tenancy.activate(tenant):
                audit.record(
                    actor=ActingAgent(user=owner, tenant=tenant, membership=membership),
                    kind=AuditKind.MERCHANT_CREATED,
                    obj=tenant,
                    changes={"name": (None, tenant.name), "slug": (None, tenant.slug)},
                )
    except IntegrityError as exc:  # another signup took the address a moment earlier
        raise BadInput(
            _("The address “%(slug)s” is taken; choose another") % {"slug": slug}, field="slug"
        ) from exc
    return tenant


def email_taken(email: str) -> bool:
    """Whether an account already has this address (any case)."""
    email = (email or "").strip()
    return bool(email) and (
        get_user_model().objects.filter(email__iexact=email).exists()
        or EmailAddress.objects.filter(email__iexact=email).exists()
    )


def email_unverified(user: Any) -> bool:
    """Whether the person signed up and has not verified their email address yet.

    Only an address allauth recorded as unverified counts: accounts made by the operator, and
    people who came by invitation (their address is verified), are not held back.
    """
    if not getattr(user, "is_authenticated", False) or not user.email:
        return False
    addresses = list(
        EmailAddress.objects.filter(user=user, email__iexact=user.email).values_list(
            "verified", flat=True
        )
    )
    return bool(addresses) and not any(addresses)


def require_verified_email(acting_agent: Actor) -> None:
    """Refuse (403, nothing written) while the acting person's email is unverified."""
    if isinstance(acting_agent, SystemActor) or acting_agent.is_operator:
        return
    if email_unverified(acting_agent.user):
        raise PermissionDenied(
            _(
                "Verify your email address first: open the link we sent to %(email)s, or send "
                "it again from the banner at the top of the page"
            )
            % {"email": acting_agent.user.email},
            reason="email_unverified",
        )
