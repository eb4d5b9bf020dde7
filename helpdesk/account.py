"""The merchant's account settings: its name, logo, currency, time zone and languages.

Who may change what:
- admins and owners set the merchant's profile (name, logo, default currency, time zone, the
  default language and the languages customers are answered in);
- only owners export all the merchant's data or delete the merchant (helpdesk.exports,
  helpdesk.deletion): ``Capability.MANAGE_MERCHANT``.

The slug is the merchant's address (sign-in, forwarding addresses, the API) and never changes.
Every change is audited with its old and new values.
"""

from __future__ import annotations

import io
import zoneinfo
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils.translation import gettext as _
from PIL import Image, UnidentifiedImageError

from helpdesk.errors import BadInput
from helpdesk.models import Tenant
from helpdesk.money import checked_currency
from helpdesk.permissions import ActingAgent, Capability, require
from tickets import audit
from tickets.audit import AuditKind

# The profile is an admin's to set: admins and owners have MANAGE_MEMBERS, supervisors do not.
PROFILE_CAPABILITY = Capability.MANAGE_MEMBERS

MAX_NAME_LENGTH = 200
LOGO_MAX_BYTES = 1024 * 1024
LOGO_MAX_SIDE = 1024
# Pillow's name of each format a logo may have, and the extension it is stored with.
LOGO_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
LOGO_CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}

# Languages a merchant may answer customers in (the interface itself is in LANGUAGES).
CUSTOMER_LANGUAGE_CODES = (
    "zh-hans",
    "zh-hant",
    "en",
    "ja",
    "ko",
    "fr",
    "de",
    "es",
    "pt",
    "ru",
    "ar",
    "th",
    "vi",
    "id",
    "ms",
)


def interface_languages() -> list[str]:
    return [code for code, _name in settings.LANGUAGES]


@cache
def time_zone_names() -> list[str]:
    return sorted(zoneinfo.available_timezones())


@dataclass(frozen=True)
class AccountSettings:
    """What the account page sets, as a form cleaned it."""

    name: str
    default_currency: str
    time_zone: str
    locale: str
    customer_languages: list[str]


def _checked(wanted: AccountSettings) -> dict[str, object]:
    name = " ".join(wanted.name.split())
    if not name:
        raise BadInput(_("The merchant needs a name"), field="name")
    if len(name) > MAX_NAME_LENGTH:
        raise BadInput(
            _("A name has at most %(count)s characters") % {"count": MAX_NAME_LENGTH},
            field="name",
        )
    try:
        currency = checked_currency(wanted.default_currency)
    except BadInput as exc:
        raise BadInput(exc.message, field="default_currency") from exc
    if wanted.time_zone not in time_zone_names():
        raise BadInput(
            _("%(zone)s is not a time zone") % {"zone": wanted.time_zone}, field="time_zone"
        )
    if wanted.locale not in interface_languages():
        raise BadInput(
            _("%(language)s is not a language the helpdesk speaks") % {"language": wanted.locale},
            field="locale",
        )
    unknown = [code for code in wanted.customer_languages if code not in CUSTOMER_LANGUAGE_CODES]
    if unknown:
        raise BadInput(
            _("%(language)s is not a language offered here") % {"language": unknown[0]},
            field="customer_languages",
        )
    # The default language is always offered, first; the rest keep the list's order.
    languages = [wanted.locale] + [
        code for code in CUSTOMER_LANGUAGE_CODES if code in wanted.customer_languages
    ]
    return {
        "name": name,
        "default_currency": currency,
        "time_zone": wanted.time_zone,
        "locale": wanted.locale,
        "customer_languages": list(dict.fromkeys(languages)),
    }


def change_account_settings(*, acting_agent: ActingAgent, wanted: AccountSettings) -> Tenant:
    """Set the merchant's name, default currency, time zone and languages (admins and owners);
    the slug stays. Nothing changes when nothing differs; a change is audited."""
    require(acting_agent, PROFILE_CAPABILITY)
    values = _checked(wanted)
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=acting_agent.tenant.pk)
        changes = {
            field: (getattr(tenant, field), new)
            for field, new in values.items()
            if getattr(tenant, field) != new
        }
        if not changes:
            return tenant
        for field, (_old, new) in changes.items():
            setattr(tenant, field, new)
        tenant.save(update_fields=list(changes))
        audit.record(
            actor=acting_agent,
            kind=AuditKind.MERCHANT_SETTINGS_CHANGED,
            obj=tenant,
            changes=changes,
        )
    _refresh_acting_tenant(acting_agent, tenant)
    return tenant


def _refresh_acting_tenant(acting_agent: ActingAgent, tenant: Tenant) -> None:
    """The request's tenant object shows the new values on the page that follows."""
    for field in (
        "name",
        "default_currency",
        "time_zone",
        "locale",
        "customer_languages",
        "logo",
    ):
        setattr(acting_agent.tenant, field, getattr(tenant, field))


def check_logo_size(size: int) -> None:
    """Refuse a logo over 1 MB (called before an upload is read, and again on its bytes)."""
    if size > LOGO_MAX_BYTES:
        raise BadInput(
            _("A logo may be at most %(size)s KB") % {"size": LOGO_MAX_BYTES // 1024},
            field="logo",
        )


def checked_logo(content: bytes) -> str:
    """The stored extension of a logo that is really a PNG, JPEG or WebP image of at most 1 MB
    and 1024x1024 pixels; BadInput otherwise, whatever the file's name or declared type."""
    check_logo_size(len(content))
    try:
        with Image.open(io.BytesIO(content)) as image:
            image_format = image.format
            width, height = image.size
            image.verify()  # a truncated or corrupt file fails here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadInput(_("The logo must be a PNG, JPEG or WebP image"), field="logo") from exc
    if image_format not in LOGO_FORMATS:
        raise BadInput(_("The logo must be a PNG, JPEG or WebP image"), field="logo")
    if width > LOGO_MAX_SIDE or height > LOGO_MAX_SIDE:
        raise BadInput(
            _("A logo may be at most %(side)sx%(side)s pixels; this one is %(w)sx%(h)s")
            % {"side": LOGO_MAX_SIDE, "w": width, "h": height},
            field="logo",
        )
    return LOGO_FORMATS[image_format]


def set_logo(*, acting_agent: ActingAgent, content: bytes | None) -> Tenant:
    """Set the merchant's logo (checked as ``checked_logo``), or remove it with None; the old
    file is removed once the change is committed. Audited."""
    require(acting_agent, PROFILE_CAPABILITY)
    extension = checked_logo(content) if content is not None else None
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=acting_agent.tenant.pk)
        old_name = tenant.logo.name or ""
        if extension is None and not old_name:
            return tenant
        if extension is not None:
            # The storage writes the file now; a rollback leaves an orphan, never a dead link.
            tenant.logo.save(f"logo.{extension}", ContentFile(content), save=False)
        else:
            tenant.logo = ""
        tenant.save(update_fields=["logo"])
        audit.record(
            actor=acting_agent,
            kind=AuditKind.MERCHANT_LOGO_CHANGED,
            obj=tenant,
            changes={"logo": (old_name.rpartition("/")[2], tenant.logo.name.rpartition("/")[2])},
        )
        if old_name:
            transaction.on_commit(lambda: default_storage.delete(old_name))
    _refresh_acting_tenant(acting_agent, tenant)
    return tenant
